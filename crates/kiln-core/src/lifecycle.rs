//! Image and snapshot lifecycle: block public access, deprecation, disabling, deregistration
//! protection, the last launch time, and a recipient cancelling a share.
//!
//! The rules follow EC2's documentation:
//!
//! - **Block public access** is an account setting per region, kept in the settings table
//!   (`image_block_public_access/<account>/<region>`, `snapshot_block_public_access/…`;
//!   absent means `unblocked`). For images, `block-new-sharing` refuses making an image public;
//!   images that are already public stay public. For snapshots, `block-new-sharing` refuses
//!   making a snapshot public; `block-all-sharing` also treats the account's public snapshots as
//!   private for every other account: they vanish from other accounts' `DescribeSnapshots` and
//!   cannot be restored, registered or read through the EBS direct API. Their
//!   `createVolumePermission` still says `all`, so lifting the block makes them public again.
//!   Explicit shares with an account are never affected.
//! - **Deprecation**: `DeprecateAt` is rounded to the nearest minute and must lie in the future
//!   (at most 10 years ahead, 2 years after creation for a public image). Once the time has
//!   passed, other accounts' `DescribeImages` leaves the image out unless they ask for it by id
//!   or with `IncludeDeprecated`; its owner always sees it; it stays launchable by id.
//! - **Disabling** makes an image private (all launch permissions go and do not come back on
//!   `EnableImage`), refuses launches and shares (`InvalidAMIID.Unavailable`), and hides it
//!   from `DescribeImages` — for its owner too, even by id — unless the owner passes
//!   `IncludeDisabled`.
//! - **Deregistration protection** refuses `DeregisterImage`. Enabled with a cooldown,
//!   disabling it leaves it in force for 24 hours (`disabled-until <time>`).
//! - **Last launch time** is written by `RunInstances` in its own transaction and shown to the
//!   image's owner only.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Months, Utc};
use kiln_meta::MetaTxn;
use kiln_types::{format_time, Grantee, ResourceKind};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::images::ImageData;
use crate::item::{self, Item};
use crate::snapshots::{may_restore, SnapshotData};
use crate::{Ctx, Kiln};

/// The block public access state that blocks nothing.
pub const UNBLOCKED: &str = "unblocked";
/// Refuses new public sharing (images and snapshots).
pub const BLOCK_NEW_SHARING: &str = "block-new-sharing";
/// Refuses new public sharing and hides existing public snapshots (snapshots only).
pub const BLOCK_ALL_SHARING: &str = "block-all-sharing";

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

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
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

/// Rounds to the nearest minute (half a minute rounds up), as EC2 does with `DeprecateAt`.
pub fn round_to_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    let ms = t.timestamp_millis();
    let rounded = (ms + 30_000).div_euclid(60_000) * 60_000;
    DateTime::from_timestamp_millis(rounded).unwrap_or(t)
}

/// Validates a `DeprecateAt` and returns the time to store: the value must lie in the future,
/// at most 10 years from now, or 2 years from its creation for a public image.
pub fn deprecation_time(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    created: Option<DateTime<Utc>>,
    public: bool,
) -> CoreResult<DateTime<Utc>> {
    if at <= now {
        return Err(CoreError::InvalidParameterValue(format!(
            "The deprecation time {} is in the past. Specify a future date and time.",
            format_time(at)
        )));
    }
    let rounded = round_to_minute(at);
    let (limit, what) = match created {
        Some(c) if public => (c.checked_add_months(Months::new(24)), "2 years after the creation of a public image"),
        _ => (now.checked_add_months(Months::new(120)), "10 years from now"),
    };
    if limit.is_some_and(|l| rounded > l) {
        return Err(CoreError::InvalidParameterValue(format!(
            "The deprecation time {} is too far in the future: the limit is {what}.",
            format_time(rounded)
        )));
    }
    Ok(rounded)
}

/// What `DescribeImages` includes beyond its defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    /// `IncludeDeprecated=true`.
    pub deprecated: bool,
    /// `IncludeDisabled=true`.
    pub disabled: bool,
}

/// The lifecycle part of `DescribeImages` over the images the caller may launch: disabled
/// images only for their owner with `IncludeDisabled`; deprecated images of other accounts
/// only when asked for by id or with `IncludeDeprecated`; the last launch time only for the
/// owner.
pub fn describe_view(
    images: Vec<Item<ImageData>>,
    ctx: &Ctx,
    ids: &[String],
    include: Include,
    now: DateTime<Utc>,
) -> Vec<Item<ImageData>> {
    images
        .into_iter()
        .filter(|i| {
            let own = i.account == ctx.account;
            if i.data.state == "disabled" {
                return own && include.disabled;
            }
            own || include.deprecated || ids.contains(&i.id) || !i.data.lifecycle.deprecated_at(now)
        })
        .map(|mut i| {
            if i.account != ctx.account {
                i.data.lifecycle.last_launched_time = None;
            }
            i
        })
        .collect()
}

fn image_key(account: &str, region: &str) -> String {
    format!("image_block_public_access/{account}/{region}")
}

fn snapshot_key(account: &str, region: &str) -> String {
    format!("snapshot_block_public_access/{account}/{region}")
}

fn sharing_state(txn: &mut dyn MetaTxn, key: &str) -> CoreResult<String> {
    Ok(txn.setting(key)?.unwrap_or_else(|| UNBLOCKED.to_string()))
}

/// Refuses a launch permission addition that the image's state or its owner's block public
/// access forbids.
pub(crate) fn check_image_sharing(txn: &mut dyn MetaTxn, image: &Item<ImageData>, add: &[Grantee]) -> CoreResult<()> {
    if add.is_empty() {
        return Ok(());
    }
    if image.data.state == "disabled" {
        return Err(CoreError::ImageUnavailable(format!(
            "The image '{}' is disabled and cannot be shared. Enable it with EnableImage first.",
            image.id
        )));
    }
    if add.contains(&Grantee::All) && sharing_state(txn, &image_key(&image.account, &image.region))? != UNBLOCKED {
        return Err(CoreError::OperationNotPermitted(
            "You can't publicly share this image because block public access for AMIs is enabled for this account. \
             To publicly share the image, you must call the DisableImageBlockPublicAccess API."
                .into(),
        ));
    }
    Ok(())
}

/// Refuses making a snapshot public while its owner blocks public access to snapshots.
pub(crate) fn check_snapshot_sharing(
    txn: &mut dyn MetaTxn,
    snap: &Item<SnapshotData>,
    add: &[Grantee],
) -> CoreResult<()> {
    if !add.contains(&Grantee::All) {
        return Ok(());
    }
    let state = sharing_state(txn, &snapshot_key(&snap.account, &snap.region))?;
    if state != UNBLOCKED {
        return Err(CoreError::OperationNotPermitted(format!(
            "You can't publicly share this snapshot because block public access for snapshots is enabled ({state}) \
             for this account and Region. To publicly share it, call DisableSnapshotBlockPublicAccess first."
        )));
    }
    Ok(())
}

/// True when the caller reaches a snapshot only through public sharing that its owner's
/// `block-all-sharing` switches off.
pub(crate) fn public_access_blocked(txn: &mut dyn MetaTxn, ctx: &Ctx, snap: &Item<SnapshotData>) -> CoreResult<bool> {
    let perms = &snap.data.create_volume_permissions;
    if snap.account == ctx.account
        || !perms.contains(&Grantee::All)
        || perms.contains(&Grantee::Account(ctx.account.clone()))
    {
        return Ok(false);
    }
    Ok(sharing_state(txn, &snapshot_key(&snap.account, &snap.region))? == BLOCK_ALL_SHARING)
}

/// The snapshots of `all` the caller may restore, block public access applied.
pub(crate) fn restorable_snapshots(
    txn: &mut dyn MetaTxn,
    ctx: &Ctx,
    all: Vec<Item<SnapshotData>>,
) -> CoreResult<Vec<Item<SnapshotData>>> {
    let mut blocked_owners: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::new();
    for snap in all.into_iter().filter(|s| may_restore(ctx, s)) {
        let public_only = snap.account != ctx.account
            && !snap.data.create_volume_permissions.contains(&Grantee::Account(ctx.account.clone()));
        if public_only {
            let blocked = match blocked_owners.get(&snap.account) {
                Some(b) => *b,
                None => {
                    let b = public_access_blocked(txn, ctx, &snap)?;
                    blocked_owners.insert(snap.account.clone(), b);
                    b
                }
            };
            if blocked {
                continue;
            }
        }
        out.push(snap);
    }
    Ok(out)
}

/// Refuses deregistering a protected image.
pub(crate) fn check_deregistration(image: &Item<ImageData>) -> CoreResult<()> {
    let protection = &image.data.lifecycle.protection;
    if protection.blocks_at(Utc::now()) {
        let how = match protection {
            Protection::CoolingDown { until } => {
                format!("Its protection was disabled with a cooldown that ends at {until}.")
            }
            _ => "Disable it with DisableImageDeregistrationProtection first.".to_string(),
        };
        return Err(CoreError::OperationNotPermitted(format!(
            "The image {} cannot be deregistered because deregistration protection is enabled. {how}",
            image.id
        )));
    }
    Ok(())
}

/// Records a launch from the image inside the launch's transaction.
pub(crate) fn record_launch(txn: &mut dyn MetaTxn, image_id: &str, when: &str) -> CoreResult<()> {
    let Some(rec) = txn.get(image_id)? else { return Ok(()) };
    let mut image = Item::<ImageData>::from_record(rec)?;
    image.data.lifecycle.last_launched_time = Some(when.to_string());
    image.save(txn)
}

impl Kiln {
    /// Applies `change` to an image the caller owns, in one transaction.
    fn change_owned_image<T>(
        &self,
        ctx: &Ctx,
        id: &str,
        change: impl FnOnce(&mut Item<ImageData>, DateTime<Utc>) -> CoreResult<T>,
    ) -> CoreResult<T> {
        let mut txn = self.store.begin()?;
        let mut image = self.owned_image(txn.as_mut(), ctx, id)?;
        let out = change(&mut image, Utc::now())?;
        image.save(txn.as_mut())?;
        txn.commit()?;
        Ok(out)
    }

    /// `CancelImageLaunchPermission`: the caller leaves an image's launch permissions. Only an
    /// image shared with the caller's account by id qualifies; anything else (unknown, public
    /// only, not shared) is `NotFound`, as in EC2; the owner is refused.
    pub fn cancel_image_launch_permission(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let mut image = item::get_in_region::<ImageData>(txn.as_mut(), ctx, id)?;
        if image.account == ctx.account {
            return Err(CoreError::OperationNotPermitted(format!(
                "You own the image {id}: only an image shared with your account can have its launch permission \
                 cancelled. Use ModifyImageAttribute to change who may launch it."
            )));
        }
        let me = Grantee::Account(ctx.account.clone());
        if !image.data.launch_permissions.contains(&me) {
            return Err(CoreError::NotFound { kind: ResourceKind::Image, id: id.to_string() });
        }
        image.data.launch_permissions.retain(|g| g != &me);
        image.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }

    /// `GetImageBlockPublicAccessState`.
    pub fn image_block_public_access(&self, ctx: &Ctx) -> CoreResult<String> {
        let mut txn = self.store.read()?;
        sharing_state(txn.as_mut(), &image_key(&ctx.account, &ctx.region))
    }

    /// `EnableImageBlockPublicAccess` (`Some(state)`, which must be `block-new-sharing`) and
    /// `DisableImageBlockPublicAccess` (`None`). Returns the new state.
    pub fn set_image_block_public_access(&self, ctx: &Ctx, state: Option<&str>) -> CoreResult<String> {
        let state = match state {
            Some(BLOCK_NEW_SHARING) => BLOCK_NEW_SHARING,
            Some(other) => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Value ({other}) for parameter ImageBlockPublicAccessState is invalid. Valid values: {BLOCK_NEW_SHARING}"
                )))
            }
            None => UNBLOCKED,
        };
        let mut txn = self.store.begin()?;
        txn.set_setting(&image_key(&ctx.account, &ctx.region), state)?;
        txn.commit()?;
        Ok(state.to_string())
    }

    /// `GetSnapshotBlockPublicAccessState`.
    pub fn snapshot_block_public_access(&self, ctx: &Ctx) -> CoreResult<String> {
        let mut txn = self.store.read()?;
        sharing_state(txn.as_mut(), &snapshot_key(&ctx.account, &ctx.region))
    }

    /// `EnableSnapshotBlockPublicAccess` (`Some(state)`: `block-all-sharing` or
    /// `block-new-sharing`) and `DisableSnapshotBlockPublicAccess` (`None`). Returns the new
    /// state.
    pub fn set_snapshot_block_public_access(&self, ctx: &Ctx, state: Option<&str>) -> CoreResult<String> {
        let state = match state {
            Some(s @ (BLOCK_ALL_SHARING | BLOCK_NEW_SHARING)) => s,
            Some(other) => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Value ({other}) for parameter State is invalid. Valid values: {BLOCK_ALL_SHARING}, {BLOCK_NEW_SHARING}"
                )))
            }
            None => UNBLOCKED,
        };
        let mut txn = self.store.begin()?;
        txn.set_setting(&snapshot_key(&ctx.account, &ctx.region), state)?;
        txn.commit()?;
        Ok(state.to_string())
    }

    /// `EnableImageDeprecation` (owner only).
    pub fn enable_image_deprecation(&self, ctx: &Ctx, id: &str, at: DateTime<Utc>) -> CoreResult<()> {
        self.change_owned_image(ctx, id, |image, now| {
            let created = parse_time(&image.created_at);
            let when = deprecation_time(at, now, created, image.data.is_public())?;
            image.data.lifecycle.deprecation_time = Some(format_time(when));
            Ok(())
        })
    }

    /// `DisableImageDeprecation` (owner only).
    pub fn disable_image_deprecation(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        self.change_owned_image(ctx, id, |image, _| {
            image.data.lifecycle.deprecation_time = None;
            Ok(())
        })
    }

    /// `DisableImage` (owner only): `disabled`, and private for good.
    pub fn disable_image(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        self.change_owned_image(ctx, id, |image, _| {
            match image.data.state.as_str() {
                "available" | "disabled" => {}
                other => {
                    return Err(CoreError::ImageUnavailable(format!(
                        "The image '{id}' cannot be disabled in state {other}."
                    )))
                }
            }
            image.data.state = "disabled".into();
            image.data.launch_permissions.clear();
            Ok(())
        })
    }

    /// `EnableImage` (owner only): `available` again; its launch permissions stay empty.
    pub fn enable_image(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        self.change_owned_image(ctx, id, |image, _| {
            match image.data.state.as_str() {
                "available" | "disabled" => {}
                other => {
                    return Err(CoreError::ImageUnavailable(format!(
                        "The image '{id}' cannot be enabled in state {other}."
                    )))
                }
            }
            image.data.state = "available".into();
            Ok(())
        })
    }

    /// `EnableImageDeregistrationProtection` (owner only). Returns the new status.
    pub fn enable_image_deregistration_protection(
        &self,
        ctx: &Ctx,
        id: &str,
        with_cooldown: bool,
    ) -> CoreResult<String> {
        self.change_owned_image(ctx, id, |image, now| {
            image.data.lifecycle.protection = Protection::Enabled { with_cooldown };
            Ok(image.data.lifecycle.protection.status_at(now))
        })
    }

    /// `DisableImageDeregistrationProtection` (owner only). Returns the new status, which
    /// names the end of the cooldown when one applies.
    pub fn disable_image_deregistration_protection(&self, ctx: &Ctx, id: &str) -> CoreResult<String> {
        self.change_owned_image(ctx, id, |image, now| {
            image.data.lifecycle.protection = image.data.lifecycle.protection.disabled_at(now);
            Ok(image.data.lifecycle.protection.status_at(now))
        })
    }
}

#[cfg(test)]
mod tests;
