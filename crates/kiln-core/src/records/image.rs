//! An image's record: the root volume template's mapping, launch permissions and state, and
//! the one launch-permission rule.

use chrono::{DateTime, Duration, Utc};
use kiln_meta::MetaTxn;
use kiln_meta::Query;
use kiln_types::{format_time, Architecture, BlockDeviceMapping, Grantee, ImageState, ResourceKind, RootDeviceType};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::records::item::{self, Body, Item};
use crate::Ctx;

/// Prefix of Kiln's `ImageLocation` for instance-store images whose root template is a
/// snapshot: `kiln:snapshot/snap-…`.
pub const SNAPSHOT_LOCATION_PREFIX: &str = "kiln:snapshot/";

/// An image's stored fields (its name is the record name).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageData {
    /// Description.
    pub description: Option<String>,
    /// `x86_64`, `arm64`, `i386`, …
    pub architecture: Architecture,
    /// Root device name.
    pub root_device_name: String,
    /// `ebs` or `instance-store`.
    pub root_device_type: RootDeviceType,
    /// Block device mappings.
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    /// `hvm` or `paravirtual`.
    pub virtualization_type: String,
    /// Boot mode, when set.
    pub boot_mode: Option<String>,
    /// ENA flag.
    pub ena_support: bool,
    /// SR-IOV (`simple`).
    pub sriov_net_support: Option<String>,
    /// `v2.0` when IMDSv2 is required.
    pub imds_support: Option<String>,
    /// `v2.0` for TPM.
    pub tpm_support: Option<String>,
    /// Kernel id (paravirtual).
    pub kernel_id: Option<String>,
    /// Ramdisk id (paravirtual).
    pub ramdisk_id: Option<String>,
    /// Image location (instance-store images).
    pub image_location: Option<String>,
    /// `pending`, `available`, `failed`, `disabled`.
    pub state: ImageState,
    /// Launch permissions besides the owner.
    pub launch_permissions: Vec<Grantee>,
    /// `windows` or none (Linux/UNIX).
    pub platform: Option<String>,
    /// Kiln's image type: `provided`, `marketplace`, `community` or `custom`.
    pub kiln_type: String,
    /// Instance it was made from.
    pub source_instance_id: Option<String>,
    /// Deprecation, deregistration protection and last launch.
    #[serde(default)]
    pub lifecycle: ImageLifecycle,
    /// Image it was copied from (`CopyImage`).
    #[serde(default)]
    pub source_image_id: Option<String>,
    /// Region of that image.
    #[serde(default)]
    pub source_image_region: Option<String>,
}

impl Body for ImageData {
    const KIND: ResourceKind = ResourceKind::Image;

    fn state(&self) -> &str {
        self.state.as_str()
    }

    fn grantees(&self) -> Option<Vec<String>> {
        Some(super::item::grant_tokens(&self.launch_permissions))
    }
}

impl ImageData {
    /// Public: launchable by everyone.
    pub fn is_public(&self) -> bool {
        self.launch_permissions.contains(&Grantee::All)
    }

    /// Snapshots the image's mappings (and instance-store root) name.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.block_device_mappings.iter().filter_map(|m| m.ebs.as_ref()?.snapshot_id.clone()).collect();
        if let Some(loc) = self.image_location.as_deref().and_then(|l| l.strip_prefix(SNAPSHOT_LOCATION_PREFIX)) {
            ids.push(loc.to_string());
        }
        ids
    }
}

/// The one launch-permission rule: owner, shared account, or public.
pub fn may_launch(ctx: &Ctx, image: &Item<ImageData>) -> bool {
    image.account == ctx.account || Grantee::grants(&image.data.launch_permissions, &ctx.account)
}

/// An image in the caller's region the caller may see; anything else is missing.
pub fn visible_image(txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<ImageData>> {
    let image = item::get_in_region::<ImageData>(txn, ctx, id)?;
    if may_launch(ctx, &image) {
        Ok(image)
    } else {
        Err(CoreError::NotFound { kind: ResourceKind::Image, id: id.to_string() })
    }
}

/// The first image in a region whose mappings use the snapshot.
pub fn image_using_snapshot(txn: &mut dyn MetaTxn, region: &str, snapshot_id: &str) -> CoreResult<Option<String>> {
    for rec in txn.find(&Query { kind: Some(ResourceKind::Image), region: Some(region), ..Default::default() })? {
        let image = Item::<ImageData>::from_record(rec)?;
        if image.data.snapshot_ids().iter().any(|s| s == snapshot_id) {
            return Ok(Some(image.id));
        }
    }
    Ok(None)
}

/// How long deregistration protection enabled with a cooldown outlives its disabling.
const COOLDOWN_HOURS: i64 = 24;

/// An image's lifecycle fields, stored with the image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageLifecycle {
    /// When the image is (or was) deprecated, in EC2's time format, rounded to the minute.
    pub deprecation_time: Option<String>,
    /// Deregistration protection.
    pub protection: Protection,
    /// When an instance was last launched from the image.
    pub last_launched_time: Option<String>,
}

/// Deregistration protection of one image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Protection {
    /// Not protected.
    #[default]
    Disabled,
    /// Protected; with a cooldown, disabling leaves it in force for 24 hours.
    Enabled {
        /// Enabled with `WithCooldown=true`.
        with_cooldown: bool,
    },
    /// Disabled after being enabled with a cooldown: still in force until `until`.
    CoolingDown {
        /// End of the cooldown, EC2 time format.
        until: String,
    },
}

pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

impl Protection {
    /// The `deregistrationProtection` value EC2 reports at `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> String {
        match self {
            Protection::Disabled => "disabled".into(),
            Protection::Enabled { with_cooldown: false } => "enabled-without-cooldown".into(),
            Protection::Enabled { with_cooldown: true } => "enabled-with-cooldown".into(),
            Protection::CoolingDown { until } if parse_time(until).is_some_and(|u| u > now) => {
                format!("disabled-until {until}")
            }
            Protection::CoolingDown { .. } => "disabled".into(),
        }
    }

    /// True when `DeregisterImage` must be refused at `now`.
    pub fn blocks_at(&self, now: DateTime<Utc>) -> bool {
        match self {
            Protection::Disabled => false,
            Protection::Enabled { .. } => true,
            Protection::CoolingDown { until } => parse_time(until).is_some_and(|u| u > now),
        }
    }

    /// The protection after `DisableImageDeregistrationProtection` at `now`.
    pub fn disabled_at(&self, now: DateTime<Utc>) -> Protection {
        match self {
            Protection::Enabled { with_cooldown: true } => {
                Protection::CoolingDown { until: format_time(now + Duration::hours(COOLDOWN_HOURS)) }
            }
            Protection::CoolingDown { .. } if self.blocks_at(now) => self.clone(),
            _ => Protection::Disabled,
        }
    }
}

impl ImageLifecycle {
    /// True once the deprecation time has passed.
    pub fn deprecated_at(&self, now: DateTime<Utc>) -> bool {
        self.deprecation_time.as_deref().and_then(parse_time).is_some_and(|t| t <= now)
    }

    /// The `deregistrationProtection` value EC2 reports now.
    pub fn protection_status(&self) -> String {
        self.protection.status_at(Utc::now())
    }
}
