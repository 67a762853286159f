//! Configuration: one strict TOML tree, defaults named, validated once at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kiln_core::compute::instance_types::Catalogue;
use kiln_core::identity::accounts::DeclaredAccount;
use kiln_core::images::quotas::Quotas;
use kiln_core::RegionSpec;
use kiln_types::AccountId;
use serde::Deserialize;

/// The port Kiln listens on by default (OpenStack's historical EC2 API port).
pub const DEFAULT_PORT: u16 = 8773;

/// Whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8773`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where Kiln keeps its state. Default `$KILN_DATA_DIR`, else `$HOME/.local/share/kiln`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Host name reported as every region's endpoint. Default: the listen address.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Largest accepted request body, bytes. Default 4 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A connection that moves no byte either way for this long is closed, seconds. Default 120.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Open connections one client address may hold (API and metadata service). Default 256.
    #[serde(default = "default_connections_per_client")]
    pub connections_per_client: usize,
    /// Requests one access key may have running at once; more wait their turn. Default 8.
    #[serde(default = "default_jobs_per_client")]
    pub jobs_per_client: usize,
    /// Regions and zones; replaces the default set when given.
    #[serde(default = "default_regions")]
    pub regions: Vec<RegionConfig>,
    /// Accounts with fixed ids and keys, created at start-up if absent.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// Hourly price overrides: `[prices.us-east-1] "t3.micro" = 0.0104`.
    #[serde(default)]
    pub prices: BTreeMap<String, BTreeMap<String, f64>>,
    /// How long a chunk stays unreferenced before garbage collection may delete it, seconds.
    /// Default 3600.
    #[serde(default = "default_gc_grace")]
    pub gc_grace_secs: u64,
    /// How often garbage collection runs, seconds. Default 600.
    #[serde(default = "default_gc_interval")]
    pub gc_interval_secs: u64,
    /// Length of one Recycle Bin retention day, seconds. Default 86400; tests shorten it.
    #[serde(default = "default_recycle_bin_day")]
    pub recycle_bin_day_secs: u64,
    /// Provided images to build and publish at start-up (`minimal`, `debian-12`). Default
    /// `["minimal"]`;
    /// `[]` turns it off (a machine without access to Debian's packages, or tests).
    #[serde(default = "default_provided_images")]
    pub provided_images: Vec<String>,
    /// Regions provided images are published in. Default: us-east-1, us-west-2 and eu-west-1
    /// where configured, else every configured region.
    #[serde(default)]
    pub provided_image_regions: Option<Vec<String>>,
    /// Where provided images are built and cached. Default `<data dir>/image-cache`.
    #[serde(default)]
    pub image_cache_dir: Option<PathBuf>,
    /// How instances run.
    #[serde(default)]
    pub instances: InstancesConfig,
    /// Per-account quotas.
    #[serde(default)]
    pub quotas: QuotasConfig,
}

impl Config {
    /// The regions provided images are published in.
    pub fn provided_regions(&self) -> Vec<String> {
        if let Some(list) = &self.provided_image_regions {
            return list.clone();
        }
        let configured: Vec<String> = self.regions.iter().map(|r| r.name.clone()).collect();
        let defaults: Vec<String> =
            configured.iter().filter(|r| DEFAULT_PROVIDED_IMAGE_REGIONS.contains(&r.as_str())).cloned().collect();
        if defaults.is_empty() {
            configured
        } else {
            defaults
        }
    }

    /// The network namespace of this server's instances: the configured one, or one named
    /// after the data directory's absolute path, so a restart finds the same namespace and
    /// another server (another data directory) gets its own.
    pub fn netns(&self) -> String {
        if let Some(name) = &self.instances.netns {
            return name.clone();
        }
        let dir = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        kiln_net::Netns::default_name(dir.as_os_str().as_encoded_bytes())
    }

    /// The provided-image cache directory.
    pub fn image_cache(&self) -> PathBuf {
        self.image_cache_dir.clone().unwrap_or_else(|| self.data_dir.join("image-cache"))
    }
}

impl InstancesConfig {
    /// `public_ip_pool` as network and prefix length.
    pub fn public_pool(&self) -> anyhow::Result<(std::net::Ipv4Addr, u8)> {
        let bad = || {
            anyhow::anyhow!("[instances] public_ip_pool must be an IPv4 CIDR such as \"100.64.0.0/10\" with a prefix of at most /28, not {:?}", self.public_ip_pool)
        };
        let (net, len) = self.public_ip_pool.split_once('/').ok_or_else(bad)?;
        let net: std::net::Ipv4Addr = net.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 28 {
            return Err(bad());
        }
        Ok((net, len))
    }
}

/// The `[instances]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstancesConfig {
    /// Run instances at all. Default true; without QEMU they are refused with a clear error.
    pub enabled: bool,
    /// `auto` (TAP networking when running as root with `ip` and `nft`, else none), `tap` (fail
    /// to start without it) or `none` (VMs without a NIC).
    pub network: String,
    /// Memory cap per VM, MiB (the scale-down policy). Default 1024.
    pub max_instance_memory_mib: u64,
    /// Memory kept for the host, MiB. Default 1024.
    pub reserved_memory_mib: u64,
    /// Memory over-commit, as Nova's `ram_allocation_ratio`: instances may be given this many
    /// times the host's memory less the reserve. Default 1.5.
    pub ram_allocation_ratio: f64,
    /// vCPU over-commit, as Nova's `cpu_allocation_ratio`: vCPUs per host CPU. Default 16.
    pub cpu_allocation_ratio: f64,
    /// How long terminated instances stay describable, seconds. Default 3600.
    pub terminated_retention_secs: u64,
    /// How long a stop waits for the guest before forcing it off, seconds. Default 30.
    pub stop_timeout_secs: u64,
    /// Where the instance metadata service listens, inside the server's network namespace
    /// (TAP networking only).
    pub metadata_listen: SocketAddr,
    /// The network namespace (`ip netns`) holding this server's TAPs, firewall and metadata
    /// service. Default `kiln-<8 hex digits of the data directory's path>`, so two servers with
    /// two data directories never share one.
    pub netns: Option<String>,
    /// The CIDR public addresses come from. Default `100.64.0.0/10`; servers that share a
    /// host need disjoint pools, as the host routes each public address to one of them.
    pub public_ip_pool: String,
    /// `q35` (default; volumes hot-plug into running instances) or `microvm` (boots a little
    /// faster, volumes attach only while stopped).
    pub machine: String,
}

impl Default for InstancesConfig {
    fn default() -> InstancesConfig {
        InstancesConfig {
            enabled: true,
            network: "auto".into(),
            max_instance_memory_mib: 1024,
            reserved_memory_mib: 1024,
            ram_allocation_ratio: kiln_core::compute::runtime::DEFAULT_RAM_ALLOCATION_RATIO,
            cpu_allocation_ratio: kiln_core::compute::runtime::DEFAULT_CPU_ALLOCATION_RATIO,
            terminated_retention_secs: 3600,
            stop_timeout_secs: 30,
            metadata_listen: SocketAddr::from(([169, 254, 169, 254], 80)),
            netns: None,
            public_ip_pool: "100.64.0.0/10".into(),
            machine: "q35".into(),
        }
    }
}

/// The `[quotas]` section: limits every account has in every region, EC2's defaults unless set.
/// Exceeding one is `ResourceLimitExceeded`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Images per account and region (available, pending and disabled). Default 50000.
    pub images_per_region: u64,
    /// Public images per account and region. Default 5.
    pub public_images_per_region: u64,
    /// Accounts one image may be shared with. Default 1000.
    pub launch_permission_targets_per_image: u64,
}

impl Default for QuotasConfig {
    fn default() -> QuotasConfig {
        let q = Quotas::default();
        QuotasConfig {
            images_per_region: q.images_per_region,
            public_images_per_region: q.public_images_per_region,
            launch_permission_targets_per_image: q.launch_permission_targets_per_image,
        }
    }
}

impl QuotasConfig {
    /// The quotas in core's terms.
    pub fn quotas(&self) -> Quotas {
        Quotas {
            images_per_region: self.images_per_region,
            public_images_per_region: self.public_images_per_region,
            launch_permission_targets_per_image: self.launch_permission_targets_per_image,
        }
    }
}

fn default_provided_images() -> Vec<String> {
    vec!["minimal".to_string()]
}

fn default_gc_grace() -> u64 {
    3600
}

fn default_recycle_bin_day() -> u64 {
    kiln_core::storage::recycle_bin::DAY_SECS
}

fn default_gc_interval() -> u64 {
    600
}

/// One `[[regions]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Region name, e.g. `eu-west-2`.
    pub name: String,
    /// Zone names, e.g. `["eu-west-2a", "eu-west-2b"]`.
    pub zones: Vec<String>,
    /// Multiplier for catalogue prices in this region. Default 1.0.
    #[serde(default = "one")]
    pub price_factor: f64,
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// 12-digit account id.
    pub id: String,
    /// Unique account name.
    pub name: String,
    /// Access keys of the account.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
    /// Owner alias shown on the account's images and usable in `Owners` (e.g. `kiln`).
    #[serde(default)]
    pub alias: Option<String>,
}

/// Shortest access key id a declared account may use: local AWS endpoints are commonly driven
/// with keys such as `test`/`test` or `FOOBARKEY`, while generated keys stay AWS-shaped.
pub const MIN_DECLARED_KEY_ID_LEN: usize = 3;

/// The rule for declared access keys: an id of at least [`MIN_DECLARED_KEY_ID_LEN`] characters
/// that can stand in a SigV4 credential scope (no `/`, no whitespace, printable ASCII) and a
/// non-empty secret.
fn check_declared_key(id: &str, secret: &str) -> anyhow::Result<()> {
    let printable = |c: char| c.is_ascii_graphic() && c != '/';
    if id.chars().count() < MIN_DECLARED_KEY_ID_LEN || !id.chars().all(printable) {
        bail!(
            "access key id {id:?} is invalid: it needs at least {MIN_DECLARED_KEY_ID_LEN} printable ASCII characters, \
             without spaces or '/'"
        );
    }
    if secret.is_empty() {
        bail!("access key {id}: the secret must not be empty");
    }
    Ok(())
}

/// One access key of a configured account.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    /// Access key id.
    pub id: String,
    /// Secret access key.
    pub secret: String,
}

impl std::fmt::Debug for AccessKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyConfig").field("id", &self.id).finish_non_exhaustive()
    }
}

fn one() -> f64 {
    1.0
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}

fn default_max_body() -> usize {
    4 << 20
}

/// `$KILN_DATA_DIR`, else `$HOME/.local/share/kiln`, else `./kiln-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_DATA_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => Path::new(&h).join(".local/share/kiln"),
        None => PathBuf::from("kiln-data"),
    }
}

/// AWS's public regions with their zones; prices as in us-east-1 but for eu-west-1's 10% more.
fn default_idle_timeout() -> u64 {
    120
}

fn default_connections_per_client() -> usize {
    256
}

fn default_jobs_per_client() -> usize {
    8
}

impl Config {
    /// The connection limits of the server's listeners.
    pub fn conn_limits(&self) -> crate::conn::ConnLimits {
        crate::conn::ConnLimits {
            idle: std::time::Duration::from_secs(self.idle_timeout_secs.max(1)),
            per_address: self.connections_per_client.max(1),
        }
    }
}

fn default_regions() -> Vec<RegionConfig> {
    kiln_core::network::regions::AWS_REGIONS
        .iter()
        .map(|(r, letters)| RegionConfig {
            name: r.to_string(),
            zones: letters.chars().map(|z| format!("{r}{z}")).collect(),
            price_factor: if *r == "eu-west-1" { 1.1 } else { 1.0 },
        })
        .collect()
}

/// Where provided images are published unless `provided_image_regions` says otherwise: each
/// region holds its own copy of every image's chunks, so not all of AWS's.
const DEFAULT_PROVIDED_IMAGE_REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty configuration is valid")
    }
}

impl Config {
    /// Reads and validates a file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let config: Config = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => Config::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the cross-field rules serde cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.instances.public_pool()?;
        for name in &self.provided_images {
            if !kiln_images::IMAGE_NAMES.contains(&name.as_str()) {
                bail!("unknown provided image {name:?}; Kiln provides: {}", kiln_images::IMAGE_NAMES.join(", "));
            }
        }
        if self.recycle_bin_day_secs == 0 {
            bail!("recycle_bin_day_secs must be at least 1");
        }
        if !matches!(self.instances.network.as_str(), "auto" | "tap" | "none") {
            bail!("[instances] network must be auto, tap or none, not {:?}", self.instances.network);
        }
        if !matches!(self.instances.machine.as_str(), "q35" | "microvm") {
            bail!("[instances] machine must be q35 or microvm, not {:?}", self.instances.machine);
        }
        if self.regions.is_empty() {
            bail!("at least one region must be configured");
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.regions {
            if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                bail!("region name {:?} must be lowercase letters, digits and dashes", r.name);
            }
            if !seen.insert(r.name.clone()) {
                bail!("region {} is configured twice", r.name);
            }
            if r.zones.is_empty() {
                bail!("region {} needs at least one zone", r.name);
            }
            for z in &r.zones {
                if !z.starts_with(&r.name) {
                    bail!("zone {z} must start with its region's name {}", r.name);
                }
            }
            if !(r.price_factor.is_finite() && r.price_factor > 0.0) {
                bail!("region {} has an invalid price_factor", r.name);
            }
        }
        for (name, ratio) in [
            ("ram_allocation_ratio", self.instances.ram_allocation_ratio),
            ("cpu_allocation_ratio", self.instances.cpu_allocation_ratio),
        ] {
            if !(ratio.is_finite() && ratio > 0.0) {
                bail!("[instances] {name} must be a positive number, not {ratio}");
            }
        }
        for r in self.provided_image_regions.iter().flatten() {
            if !self.regions.iter().any(|c| &c.name == r) {
                bail!("provided_image_regions names {r}, which is not a configured region");
            }
        }
        for a in &self.accounts {
            AccountId::parse(&a.id).with_context(|| format!("account {}", a.name))?;
            for k in &a.access_keys {
                check_declared_key(&k.id, &k.secret).with_context(|| format!("account {}", a.name))?;
            }
        }
        for (region, types) in &self.prices {
            if !self.regions.iter().any(|r| &r.name == region) {
                bail!("prices given for unknown region {region}");
            }
            let catalogue = Catalogue::default();
            for (t, p) in types {
                if catalogue.get(t).is_none() {
                    bail!("prices given for unknown instance type {t}");
                }
                if !(p.is_finite() && *p >= 0.0) {
                    bail!("price of {t} in {region} is invalid");
                }
            }
        }
        Ok(())
    }

    /// Regions in core's terms.
    pub fn region_specs(&self) -> Vec<RegionSpec> {
        self.regions
            .iter()
            .map(|r| RegionSpec { name: r.name.clone(), zones: r.zones.clone(), price_factor: r.price_factor })
            .collect()
    }

    /// Accounts in core's terms.
    pub fn declared_accounts(&self) -> anyhow::Result<Vec<DeclaredAccount>> {
        self.accounts
            .iter()
            .map(|a| {
                Ok(DeclaredAccount {
                    id: AccountId::parse(&a.id)?,
                    name: a.name.clone(),
                    access_keys: a.access_keys.iter().map(|k| (k.id.clone(), k.secret.clone())).collect(),
                    alias: a.alias.clone(),
                })
            })
            .collect()
    }

    /// The catalogue with configured price overrides.
    pub fn catalogue(&self) -> Catalogue {
        let mut c = Catalogue::default();
        for (region, types) in &self.prices {
            for (t, p) in types {
                c.price_overrides.insert((region.clone(), t.clone()), *p);
            }
        }
        c
    }

    /// The endpoint host reported by `DescribeRegions`.
    pub fn endpoint_host(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| self.listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_knows_awss_regions_and_publishes_in_three() {
        let c = Config::default();
        assert_eq!(c.regions.len(), kiln_core::network::regions::AWS_REGIONS.len());
        let use1 = c.regions.iter().find(|r| r.name == "us-east-1").unwrap();
        assert_eq!(use1.zones.len(), 6);
        assert!(c.regions.iter().any(|r| r.name == "ap-southeast-2" && r.zones[0] == "ap-southeast-2a"));
        assert_eq!(c.provided_regions(), ["us-east-1", "us-west-2", "eu-west-1"]);
        let narrowed: Config = toml::from_str("[[regions]]\nname = \"eu-west-2\"\nzones = [\"eu-west-2a\"]").unwrap();
        assert_eq!(narrowed.provided_regions(), ["eu-west-2"]);
        let bad: Config = toml::from_str("provided_image_regions = [\"mars-1\"]").unwrap();
        assert!(bad.validate().is_err());
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        c.validate().unwrap();
    }

    #[test]
    fn each_data_directory_has_its_own_network_namespace() {
        let at = |dir: &str| Config { data_dir: PathBuf::from(dir), ..Config::default() };
        assert_eq!(at("/var/lib/kiln").netns(), at("/var/lib/kiln").netns());
        assert_ne!(at("/var/lib/kiln").netns(), at("/var/lib/kiln-2").netns());
        assert!(at("/var/lib/kiln").netns().starts_with("kiln-"));
        assert_eq!(at("/srv/k").netns().len(), "kiln-".len() + 8);
        let named: Config = toml::from_str("[instances]\nnetns = \"kiln-a\"").unwrap();
        assert_eq!(named.netns(), "kiln-a");
        let pool: Config = toml::from_str("[instances]\npublic_ip_pool = \"100.80.0.0/16\"").unwrap();
        assert_eq!(pool.instances.public_pool().unwrap(), (std::net::Ipv4Addr::new(100, 80, 0, 0), 16));
        for bad in ["100.80.0.0", "100.80.0.0/29", "banana/8"] {
            let c: Config = toml::from_str(&format!("[instances]\npublic_ip_pool = \"{bad}\"")).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn documented_shapes_parse() {
        let c: Config = toml::from_str(
            r#"
            [[regions]]
            name = "eu-west-2"
            zones = ["eu-west-2a", "eu-west-2b"]

            [[accounts]]
            id = "111122223333"
            name = "team-a"
            access_keys = [{ id = "AKIAEXAMPLETEAMA0001", secret = "team-a-secret" }]

            [prices.eu-west-2]
            "t3.micro" = 0.02
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.regions[0].zones.len(), 2);
        assert_eq!(c.declared_accounts().unwrap()[0].access_keys[0].0, "AKIAEXAMPLETEAMA0001");
    }

    #[test]
    fn quotas_default_to_ec2s_and_can_be_set() {
        assert_eq!(Config::default().quotas.quotas(), Quotas::default());
        let c: Config = toml::from_str("[quotas]\nimages_per_region = 2\npublic_images_per_region = 0").unwrap();
        let q = c.quotas.quotas();
        assert_eq!((q.images_per_region, q.public_images_per_region), (2, 0));
        assert_eq!(q.launch_permission_targets_per_image, 1000);
        assert!(toml::from_str::<Config>("[quotas]\nimages = 2").is_err());
        assert!(toml::from_str::<Config>("[quotas]\nimages_per_region = -1").is_err());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let bad_zone: Config = toml::from_str("[[regions]]\nname = \"eu-west-2\"\nzones = [\"us-east-1a\"]").unwrap();
        assert!(bad_zone.validate().is_err());
        let bad_account: Config = toml::from_str("[[accounts]]\nid = \"12\"\nname = \"x\"").unwrap();
        assert!(bad_account.validate().is_err());
        let bad_price: Config = toml::from_str("[prices.us-east-1]\n\"t9.huge\" = 1.0").unwrap();
        assert!(bad_price.validate().is_err());
    }

    #[test]
    fn declared_keys_may_be_short_but_must_fit_a_credential_scope() {
        let with_key = |id: &str, secret: &str| {
            let text = format!(
                "[[accounts]]\nid = \"111122223333\"\nname = \"a\"\naccess_keys = [{{ id = \"{id}\", secret = \"{secret}\" }}]"
            );
            toml::from_str::<Config>(&text).unwrap().validate()
        };
        for ok in ["test", "FOOBARKEY", "abc", "AKIAEXAMPLETEAMA0001"] {
            with_key(ok, "test").unwrap();
        }
        for bad in ["", "ab", "a b c", "ab/cd"] {
            let err = format!("{:#}", with_key(bad, "test").unwrap_err());
            assert!(err.contains("at least 3 printable ASCII characters"), "{err}");
        }
        assert!(format!("{:#}", with_key("test", "").unwrap_err()).contains("secret must not be empty"));
    }

    /// The configuration sample in the README is a real, valid configuration.
    #[test]
    fn the_readme_sample_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("the README has a TOML sample") + "```toml\n".len();
        let sample = &readme[start..start + readme[start..].find("```").expect("the sample ends")];
        let c: Config = toml::from_str(sample).unwrap_or_else(|e| panic!("README sample: {e}"));
        c.validate().unwrap();
        assert_eq!(c.instances.ram_allocation_ratio, 1.5);
        assert_eq!(c.regions[0].name, "eu-west-2");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c: Config = toml::from_str("[[accounts]]\nid = \"111122223333\"\nname = \"a\"\naccess_keys = [{ id = \"AKIAEXAMPLETEAMA0001\", secret = \"hunter2\" }]").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
