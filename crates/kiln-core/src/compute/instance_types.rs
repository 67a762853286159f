//! The built-in instance type catalogue (`DescribeInstanceTypes`,
//! `DescribeInstanceTypeOfferings`) with an hourly price per region.
//!
//! Figures follow AWS's published specifications and us-east-1 on-demand Linux prices; a
//! region's price is the base price times the region's `price_factor`, and configuration can
//! override any single (region, type) price.

use std::collections::BTreeMap;

use kiln_types::{Filter, Page};

use crate::error::{CoreError, CoreResult};
use crate::network::regions::zones_of;
use crate::records::filter::{apply_by, b, s};
use crate::records::page::paginate;
use crate::{Ctx, Kiln};

/// Local instance storage of a type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceStorage {
    /// Number of disks.
    pub count: u32,
    /// Size of each disk, GB.
    pub size_gb: u32,
    /// `ssd` or `hdd`.
    pub kind: &'static str,
}

/// One instance type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceType {
    /// Name, e.g. `t3.micro`.
    pub name: &'static str,
    /// Default vCPUs.
    pub vcpus: u32,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// `x86_64` or `arm64`.
    pub arch: &'static str,
    /// Local instance storage, if any.
    pub storage: Option<InstanceStorage>,
    /// Burstable (T family).
    pub burstable: bool,
    /// `nitro` or `xen`.
    pub hypervisor: &'static str,
    /// Sustained clock speed, GHz.
    pub clock_ghz: f64,
    /// EC2's network performance label.
    pub network: &'static str,
    /// Free tier eligible.
    pub free_tier: bool,
    /// us-east-1 on-demand price, USD per hour.
    pub base_price: f64,
}

/// Families EC2 lists as previous generation.
const PREVIOUS_GENERATION: [&str; 9] = ["t1.", "m1.", "m2.", "m3.", "c1.", "c3.", "r3.", "t2.", "i3."];

impl InstanceType {
    /// Whether EC2 counts the type as current generation.
    pub fn current_generation(&self) -> bool {
        !PREVIOUS_GENERATION.iter().any(|p| self.name.starts_with(p))
    }

    /// Root device types: `instance-store` only where the type has local disks, as in EC2.
    pub fn root_device_types(&self) -> Vec<String> {
        let mut v = vec!["ebs".to_string()];
        if self.storage.is_some() {
            v.push("instance-store".to_string());
        }
        v
    }

    /// Threads per core: Graviton has one, x86 families two (except 1-vCPU sizes).
    pub fn threads_per_core(&self) -> u32 {
        if self.arch == "arm64" || self.vcpus == 1 {
            1
        } else {
            2
        }
    }
}

macro_rules! it {
    ($name:expr, $vcpu:expr, $mem:expr, $arch:expr, $burst:expr, $hv:expr, $ghz:expr, $net:expr, $price:expr) => {
        InstanceType {
            name: $name,
            vcpus: $vcpu,
            memory_mib: $mem,
            arch: $arch,
            storage: None,
            burstable: $burst,
            hypervisor: $hv,
            clock_ghz: $ghz,
            network: $net,
            free_tier: false,
            base_price: $price,
        }
    };
}

/// The built-in types.
pub fn builtin() -> Vec<InstanceType> {
    let x = "x86_64";
    let a = "arm64";
    let mut v = vec![
        it!("t2.nano", 1, 512, x, true, "xen", 2.4, "Low to Moderate", 0.0058),
        it!("t2.micro", 1, 1024, x, true, "xen", 2.5, "Low to Moderate", 0.0116),
        it!("t2.small", 1, 2048, x, true, "xen", 2.5, "Low to Moderate", 0.023),
        it!("t2.medium", 2, 4096, x, true, "xen", 2.3, "Low to Moderate", 0.0464),
        it!("t2.large", 2, 8192, x, true, "xen", 2.3, "Low to Moderate", 0.0928),
        it!("t2.xlarge", 4, 16384, x, true, "xen", 2.3, "Moderate", 0.1856),
        it!("t2.2xlarge", 8, 32768, x, true, "xen", 2.3, "Moderate", 0.3712),
        it!("t3.nano", 2, 512, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0052),
        it!("t3.micro", 2, 1024, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0104),
        it!("t3.small", 2, 2048, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0208),
        it!("t3.medium", 2, 4096, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0416),
        it!("t3.large", 2, 8192, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0832),
        it!("t3.xlarge", 4, 16384, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.1664),
        it!("t3.2xlarge", 8, 32768, x, true, "nitro", 2.5, "Up to 5 Gigabit", 0.3328),
        it!("m5.large", 2, 8192, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.096),
        it!("m5.xlarge", 4, 16384, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.192),
        it!("m5.2xlarge", 8, 32768, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.384),
        it!("m5.4xlarge", 16, 65536, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.768),
        it!("m5.8xlarge", 32, 131072, x, false, "nitro", 3.1, "10 Gigabit", 1.536),
        it!("m5.12xlarge", 48, 196608, x, false, "nitro", 3.1, "12 Gigabit", 2.304),
        it!("m5.16xlarge", 64, 262144, x, false, "nitro", 3.1, "20 Gigabit", 3.072),
        it!("m5.24xlarge", 96, 393216, x, false, "nitro", 3.1, "25 Gigabit", 4.608),
        it!("c5.large", 2, 4096, x, false, "nitro", 3.4, "Up to 10 Gigabit", 0.085),
        it!("c5.xlarge", 4, 8192, x, false, "nitro", 3.4, "Up to 10 Gigabit", 0.17),
        it!("c5.2xlarge", 8, 16384, x, false, "nitro", 3.4, "Up to 10 Gigabit", 0.34),
        it!("c5.4xlarge", 16, 32768, x, false, "nitro", 3.4, "Up to 10 Gigabit", 0.68),
        it!("c5.9xlarge", 36, 73728, x, false, "nitro", 3.4, "12 Gigabit", 1.53),
        it!("c5.18xlarge", 72, 147456, x, false, "nitro", 3.4, "25 Gigabit", 3.06),
        it!("r5.large", 2, 16384, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.126),
        it!("r5.xlarge", 4, 32768, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.252),
        it!("r5.2xlarge", 8, 65536, x, false, "nitro", 3.1, "Up to 10 Gigabit", 0.504),
        it!("r5.4xlarge", 16, 131072, x, false, "nitro", 3.1, "Up to 10 Gigabit", 1.008),
        it!("r5.8xlarge", 32, 262144, x, false, "nitro", 3.1, "10 Gigabit", 2.016),
        it!("r5.16xlarge", 64, 524288, x, false, "nitro", 3.1, "20 Gigabit", 4.032),
        it!("i3.large", 2, 15616, x, false, "xen", 2.3, "Up to 10 Gigabit", 0.156),
        it!("i3.xlarge", 4, 31232, x, false, "xen", 2.3, "Up to 10 Gigabit", 0.312),
        it!("i3.2xlarge", 8, 62464, x, false, "xen", 2.3, "Up to 10 Gigabit", 0.624),
        it!("i3.4xlarge", 16, 124928, x, false, "xen", 2.3, "Up to 10 Gigabit", 1.248),
        it!("i3.8xlarge", 32, 249856, x, false, "xen", 2.3, "10 Gigabit", 2.496),
        it!("i3.16xlarge", 64, 499712, x, false, "xen", 2.3, "25 Gigabit", 4.992),
        it!("t4g.nano", 2, 512, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0042),
        it!("t4g.micro", 2, 1024, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0084),
        it!("t4g.small", 2, 2048, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0168),
        it!("t4g.medium", 2, 4096, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0336),
        it!("t4g.large", 2, 8192, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.0672),
        it!("t4g.xlarge", 4, 16384, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.1344),
        it!("t4g.2xlarge", 8, 32768, a, true, "nitro", 2.5, "Up to 5 Gigabit", 0.2688),
        it!("m6g.medium", 1, 4096, a, false, "nitro", 2.5, "Up to 10 Gigabit", 0.0385),
        it!("m6g.large", 2, 8192, a, false, "nitro", 2.5, "Up to 10 Gigabit", 0.077),
        it!("m6g.xlarge", 4, 16384, a, false, "nitro", 2.5, "Up to 10 Gigabit", 0.154),
        it!("m6g.2xlarge", 8, 32768, a, false, "nitro", 2.5, "Up to 10 Gigabit", 0.308),
        it!("m6g.4xlarge", 16, 65536, a, false, "nitro", 2.5, "Up to 10 Gigabit", 0.616),
        // Previous generation types EC2 still lists (and old scripts and tutorials still name).
        it!("t1.micro", 1, 627, x, true, "xen", 2.0, "Very Low", 0.02),
        it!("m1.small", 1, 1740, x, false, "xen", 2.0, "Low", 0.044),
        it!("m1.medium", 1, 3840, x, false, "xen", 2.0, "Moderate", 0.087),
        it!("m1.large", 2, 7680, x, false, "xen", 2.0, "Moderate", 0.175),
        it!("m1.xlarge", 4, 15360, x, false, "xen", 2.0, "High", 0.35),
        it!("m2.xlarge", 2, 17510, x, false, "xen", 2.0, "Moderate", 0.245),
        it!("m2.2xlarge", 4, 35021, x, false, "xen", 2.0, "Moderate", 0.49),
        it!("m2.4xlarge", 8, 70042, x, false, "xen", 2.0, "High", 0.98),
        it!("c1.medium", 2, 1740, x, false, "xen", 2.0, "Moderate", 0.13),
        it!("c1.xlarge", 8, 7168, x, false, "xen", 2.0, "High", 0.52),
        it!("m3.medium", 1, 3840, x, false, "xen", 2.5, "Moderate", 0.067),
        it!("m3.large", 2, 7680, x, false, "xen", 2.5, "Moderate", 0.133),
        it!("m3.xlarge", 4, 15360, x, false, "xen", 2.5, "High", 0.266),
        it!("m3.2xlarge", 8, 30720, x, false, "xen", 2.5, "High", 0.532),
        it!("c3.large", 2, 3840, x, false, "xen", 2.8, "Moderate", 0.105),
        it!("c3.xlarge", 4, 7680, x, false, "xen", 2.8, "Moderate", 0.21),
        it!("c3.2xlarge", 8, 15360, x, false, "xen", 2.8, "High", 0.42),
        it!("r3.large", 2, 15616, x, false, "xen", 2.5, "Moderate", 0.166),
        it!("r3.xlarge", 4, 31232, x, false, "xen", 2.5, "Moderate", 0.333),
    ];
    let old_disks: [(&str, u32, u32, &str); 18] = [
        ("m1.small", 1, 160, "hdd"),
        ("m1.medium", 1, 410, "hdd"),
        ("m1.large", 2, 420, "hdd"),
        ("m1.xlarge", 4, 420, "hdd"),
        ("m2.xlarge", 1, 420, "hdd"),
        ("m2.2xlarge", 1, 850, "hdd"),
        ("m2.4xlarge", 2, 840, "hdd"),
        ("c1.medium", 1, 350, "hdd"),
        ("c1.xlarge", 4, 420, "hdd"),
        ("m3.medium", 1, 4, "ssd"),
        ("m3.large", 1, 32, "ssd"),
        ("m3.xlarge", 2, 40, "ssd"),
        ("m3.2xlarge", 2, 80, "ssd"),
        ("c3.large", 2, 16, "ssd"),
        ("c3.xlarge", 2, 40, "ssd"),
        ("c3.2xlarge", 2, 80, "ssd"),
        ("r3.large", 1, 32, "ssd"),
        ("r3.xlarge", 1, 80, "ssd"),
    ];
    for (name, count, size_gb, kind) in old_disks {
        if let Some(t) = v.iter_mut().find(|t| t.name == name) {
            t.storage = Some(InstanceStorage { count, size_gb, kind });
        }
    }
    let i3_disks = [(1, 475), (1, 950), (1, 1900), (2, 1900), (4, 1900), (8, 1900)];
    for (t, (count, size_gb)) in v.iter_mut().filter(|t| t.name.starts_with("i3.")).zip(i3_disks) {
        t.storage = Some(InstanceStorage { count, size_gb, kind: "ssd" });
    }
    for t in v.iter_mut().filter(|t| t.name == "t2.micro" || t.name == "t3.micro") {
        t.free_tier = true;
    }
    v
}

/// The catalogue and its price table.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// All types, in catalogue order.
    pub types: Vec<InstanceType>,
    /// `(region, type) → USD/hour` overrides.
    pub price_overrides: BTreeMap<(String, String), f64>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue { types: builtin(), price_overrides: BTreeMap::new() }
    }
}

impl Catalogue {
    /// Looks up a type by name.
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.types.iter().find(|t| t.name == name)
    }
}

/// One `DescribeInstanceTypeOfferings` row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Offering {
    /// Instance type.
    pub instance_type: &'static str,
    /// `region`, `availability-zone` or `availability-zone-id`.
    pub location_type: String,
    /// The region, zone or zone id.
    pub location: String,
}

fn type_filter(t: &InstanceType, name: &str) -> Option<Vec<String>> {
    Some(match name {
        "instance-type" => s(t.name),
        "current-generation" => b(t.current_generation()),
        "free-tier-eligible" => b(t.free_tier),
        "burstable-performance-supported" => b(t.burstable),
        "bare-metal" => b(false),
        "hypervisor" => s(t.hypervisor),
        "processor-info.supported-architecture" => s(t.arch),
        "processor-info.sustained-clock-speed-in-ghz" => s(t.clock_ghz.to_string()),
        "vcpu-info.default-vcpus" => s(t.vcpus.to_string()),
        "vcpu-info.default-threads-per-core" => s(t.threads_per_core().to_string()),
        "vcpu-info.default-cores" => s((t.vcpus / t.threads_per_core()).to_string()),
        "memory-info.size-in-mib" => s(t.memory_mib.to_string()),
        "instance-storage-supported" => b(t.storage.is_some()),
        "instance-storage-info.total-size-in-gb" => {
            t.storage.map(|d| s((d.count * d.size_gb).to_string())).unwrap_or_default()
        }
        "instance-storage-info.disk.type" => t.storage.map(|d| s(d.kind)).unwrap_or_default(),
        "network-info.network-performance" => s(t.network),
        "supported-root-device-type" => t.root_device_types(),
        "supported-usage-class" => vec!["on-demand".to_string()],
        "supported-virtualization-type" => s("hvm"),
        "supported-boot-mode" => vec!["legacy-bios".to_string(), "uefi".to_string()],
        _ => return None,
    })
}

impl Kiln {
    /// The hourly price of a type in a region, USD.
    pub fn price(&self, region: &str, instance_type: &str) -> Option<f64> {
        if let Some(p) = self.catalogue.price_overrides.get(&(region.to_string(), instance_type.to_string())) {
            return Some(*p);
        }
        let t = self.catalogue.get(instance_type)?;
        let factor = self.region(region).map(|r| r.price_factor).unwrap_or(1.0);
        Some((t.base_price * factor * 1e6).round() / 1e6)
    }

    /// `DescribeInstanceTypes`.
    pub fn describe_instance_types(
        &self,
        names: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<InstanceType>, Option<String>)> {
        let unknown: Vec<String> = names.iter().filter(|n| self.catalogue.get(n).is_none()).cloned().collect();
        if !unknown.is_empty() {
            return Err(CoreError::InvalidInstanceType(unknown));
        }
        let types: Vec<(usize, InstanceType)> = self
            .catalogue
            .types
            .iter()
            .enumerate()
            .filter(|(_, t)| names.is_empty() || names.iter().any(|n| n == t.name))
            .map(|(i, t)| (i, t.clone()))
            .collect();
        let types = apply_by(types, filters, |(_, t), name| type_filter(t, name))?;
        let (types, next) = paginate(types, page, |(i, _)| *i as i64)?;
        Ok((types.into_iter().map(|(_, t)| t).collect(), next))
    }

    /// `DescribeInstanceTypeOfferings` for the caller's region.
    pub fn describe_offerings(
        &self,
        ctx: &Ctx,
        location_type: &str,
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Offering>, Option<String>)> {
        let spec =
            self.region(&ctx.region).ok_or_else(|| CoreError::Internal(format!("region {} vanished", ctx.region)))?;
        let locations: Vec<String> = match location_type {
            "region" => vec![spec.name.clone()],
            "availability-zone" => spec.zones.clone(),
            "availability-zone-id" => zones_of(spec).into_iter().map(|z| z.id).collect(),
            other => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Value ({other}) for parameter locationType is invalid. Valid values: region, availability-zone, availability-zone-id"
                )))
            }
        };
        let mut rows = Vec::new();
        for t in &self.catalogue.types {
            for l in &locations {
                rows.push((
                    rows.len() as i64,
                    Offering { instance_type: t.name, location_type: location_type.to_string(), location: l.clone() },
                ));
            }
        }
        let rows = apply_by(rows, filters, |(_, o), name| match name {
            "instance-type" => Some(s(o.instance_type)),
            "location" => Some(s(&o.location)),
            _ => None,
        })?;
        let (rows, next) = paginate(rows, page, |(i, _)| *i)?;
        Ok((rows.into_iter().map(|(_, o)| o).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_covers_the_families() {
        let c = Catalogue::default();
        for family in ["t2.", "t3.", "m5.", "c5.", "r5.", "i3.", "t4g.", "m6g."] {
            assert!(c.types.iter().any(|t| t.name.starts_with(family)), "{family}");
        }
        assert!(c.types.iter().filter(|t| t.name.starts_with("i3.")).all(|t| t.storage.is_some()));
        assert!(c.types.iter().any(|t| t.arch == "arm64"));
        let mut names: Vec<_> = c.types.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), c.types.len());
    }
}
