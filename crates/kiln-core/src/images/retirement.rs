//! Image retirement: deprecation, disabling, deregistration protection, the last launch time,
//! and a recipient cancelling a share.
//!
//! The rules follow EC2's documentation:
//!
//! - **Block public access** (see [`crate::storage::public_access`]) refuses new public sharing.
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

use chrono::{DateTime, Months, Utc};
use kiln_meta::MetaTxn;
use kiln_types::{format_time, Grantee, ImageState, ResourceKind};

use crate::error::{CoreError, CoreResult};
use crate::records::image::{parse_time, ImageData, Protection};
use crate::records::item::{self, Item};
use crate::{Ctx, Kiln};

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
            if i.data.state == ImageState::Disabled {
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
            match image.data.state {
                ImageState::Available | ImageState::Disabled => {}
                other => {
                    return Err(CoreError::ImageUnavailable(format!(
                        "The image '{id}' cannot be disabled in state {other}."
                    )))
                }
            }
            image.data.state = ImageState::Disabled;
            image.data.launch_permissions.clear();
            Ok(())
        })
    }

    /// `EnableImage` (owner only): `available` again; its launch permissions stay empty.
    pub fn enable_image(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        self.change_owned_image(ctx, id, |image, _| {
            match image.data.state {
                ImageState::Available | ImageState::Disabled => {}
                other => {
                    return Err(CoreError::ImageUnavailable(format!(
                        "The image '{id}' cannot be enabled in state {other}."
                    )))
                }
            }
            image.data.state = ImageState::Available;
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
