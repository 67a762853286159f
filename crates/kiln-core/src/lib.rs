//! Kiln's use cases over the metadata store: accounts, regions and zones, the instance type
//! catalogue, key pairs, default networks, security groups and tags.
//!
//! Every call takes a [`Ctx`] (the authenticated account and the request's region) and sees
//! only that account's resources in that region: isolation is enforced here, once, by the
//! lookup helpers in [`item`], never by callers.

pub mod accounts;
pub mod aliases;
pub mod catalogue;
pub mod copies;
pub mod ebs;
mod error;
pub mod filter;
pub mod gc;
pub mod idempotency;
pub mod image_references;
pub mod images;
pub mod instances;
pub mod item;
pub mod keypairs;
pub mod keys;
pub mod lifecycle;
pub mod network;
pub mod page;
pub mod provided;
pub mod quotas;
pub mod recycle_bin;
pub mod regions;
pub mod security_groups;
pub mod snapshots;
pub mod storage;
pub mod tags;
#[cfg(test)]
mod test_support;
pub mod volumes;

use std::sync::Arc;

pub use error::CoreError;
use kiln_meta::MetaStore;

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
    pub store: Arc<dyn MetaStore>,
    /// Configured regions.
    pub regions: Vec<RegionSpec>,
    /// Instance type catalogue with per-region prices.
    pub catalogue: catalogue::Catalogue,
    /// Endpoint host reported by `DescribeRegions`.
    pub endpoint_host: String,
    /// Volume files, snapshot bases and chunk stores.
    pub storage: storage::Storage,
    /// The VMs behind instances, once enabled.
    pub compute: instances::Compute,
    /// Per-account quotas (EC2's defaults unless configured).
    pub quotas: quotas::Quotas,
    /// Length of one Recycle Bin retention day, seconds (86400 but in tests).
    pub recycle_bin_day_secs: u64,
    /// Volume builds in progress.
    pub volume_builds: volumes::Builds,
    /// `(account, region)` pairs whose default network is known to exist.
    touched_regions: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl Kiln {
    /// Creates the service over a store.
    pub fn new(
        store: Arc<dyn MetaStore>,
        regions: Vec<RegionSpec>,
        catalogue: catalogue::Catalogue,
        endpoint_host: String,
        data_dir: &std::path::Path,
    ) -> Self {
        Kiln {
            store,
            regions,
            catalogue,
            endpoint_host,
            storage: storage::Storage::new(data_dir),
            compute: instances::Compute::default(),
            quotas: quotas::Quotas::default(),
            recycle_bin_day_secs: recycle_bin::DAY_SECS,
            volume_builds: volumes::Builds::default(),
            touched_regions: Default::default(),
        }
    }

    /// The service with these quotas instead of EC2's defaults.
    pub fn with_quotas(mut self, quotas: quotas::Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The service with Recycle Bin retention days of this many seconds.
    pub fn with_recycle_bin_day_secs(mut self, secs: u64) -> Self {
        self.recycle_bin_day_secs = secs.max(1);
        self
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
