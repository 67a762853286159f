//! Kiln's use cases over the metadata store, cut by domain. Each folder imports only the ones
//! below it:
//!
//! ```text
//! compute   instances, instance types, the VM runtime     (uses images, storage, network)
//! images    registry, retirement, quotas, aliases, copies  (uses storage)
//! storage   files, volumes, snapshots, EBS direct, bin, GC
//! identity  accounts, keys, key pairs                      (uses network for default VPCs)
//! network   regions, default VPCs and subnets, security groups
//! records   what is stored: one file per kind, lookups, filters, pages, tags
//! ```
//!
//! [`Kiln`] is the facade the API layer calls; each domain adds its use cases to it in its
//! own folder. Every call takes a [`Ctx`] (the authenticated account and the request's region)
//! and sees only that account's resources in that region: isolation is enforced once, by the
//! lookup helpers in [`records::item`], never by callers.

pub mod compute;
mod error;
pub mod identity;
pub mod images;
pub mod network;
pub mod records;
pub mod storage;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use kiln_meta::MetaStore;

pub use error::{BlockArgument, CoreError};

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// The caller's account id.
    pub account: String,
    /// The region named in the request's credential scope.
    pub region: String,
}

/// A region and its availability zones.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSpec {
    /// Region name, e.g. `us-east-1`.
    pub name: String,
    /// Zone names, e.g. `us-east-1a`.
    pub zones: Vec<String>,
    /// Multiplier applied to catalogue prices in this region.
    pub price_factor: f64,
}

/// Everything the use cases need, shared by all requests.
pub struct Kiln {
    /// Metadata store.
    store: Arc<dyn MetaStore>,
    /// Configured regions.
    regions: Vec<RegionSpec>,
    /// Instance type catalogue with per-region prices.
    catalogue: compute::instance_types::Catalogue,
    /// Endpoint host reported by `DescribeRegions`.
    endpoint_host: String,
    /// Volume files, snapshot bases and chunk stores.
    storage: storage::files::Storage,
    /// The VMs behind instances, once enabled.
    compute: compute::Compute,
    /// Per-account quotas (EC2's defaults unless configured).
    quotas: images::quotas::Quotas,
    /// Length of one Recycle Bin retention day, seconds (86400 but in tests).
    recycle_bin_day_secs: u64,
    /// Volume builds in progress.
    volume_builds: storage::volumes::Builds,
    /// `(account, region)` pairs whose default network is known to exist.
    touched_regions: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl Kiln {
    /// Creates the service over a store.
    pub fn new(
        store: Arc<dyn MetaStore>,
        regions: Vec<RegionSpec>,
        catalogue: compute::instance_types::Catalogue,
        endpoint_host: String,
        data_dir: &std::path::Path,
    ) -> Self {
        Kiln {
            store,
            regions,
            catalogue,
            endpoint_host,
            storage: storage::files::Storage::new(data_dir),
            compute: compute::Compute::default(),
            quotas: images::quotas::Quotas::default(),
            recycle_bin_day_secs: storage::recycle_bin::DAY_SECS,
            volume_builds: storage::volumes::Builds::default(),
            touched_regions: Default::default(),
        }
    }

    /// The service with these quotas instead of EC2's defaults.
    pub fn with_quotas(mut self, quotas: images::quotas::Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The service with Recycle Bin retention days of this many seconds.
    pub fn with_recycle_bin_day_secs(mut self, secs: u64) -> Self {
        self.recycle_bin_day_secs = secs.max(1);
        self
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    /// The configured regions.
    pub fn regions(&self) -> &[RegionSpec] {
        &self.regions
    }

    /// The instance type catalogue.
    pub fn catalogue(&self) -> &compute::instance_types::Catalogue {
        &self.catalogue
    }

    /// Volume files, snapshot bases and chunk stores.
    pub fn storage(&self) -> &storage::files::Storage {
        &self.storage
    }

    /// The VMs behind instances.
    pub fn compute(&self) -> &compute::Compute {
        &self.compute
    }

    /// The per-account quotas in force.
    pub fn quotas(&self) -> &images::quotas::Quotas {
        &self.quotas
    }

    /// Length of one Recycle Bin retention day, seconds.
    pub fn recycle_bin_day_secs(&self) -> u64 {
        self.recycle_bin_day_secs
    }

    /// Endpoint host reported by `DescribeRegions`.
    pub fn endpoint_host(&self) -> &str {
        &self.endpoint_host
    }

    /// The region spec of a name, if configured.
    pub fn region(&self, name: &str) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.name == name)
    }
}

/// Current time as stored in records.
pub(crate) fn now() -> String {
    kiln_types::format_time(chrono::Utc::now())
}
