//! Block public access for images and snapshots, an account setting per region, and the
//! sharing checks it drives. The rules follow EC2's documentation:
//!
//! - **The setting** is kept per account and region in the settings table
//!   (`image_block_public_access/<account>/<region>`, `snapshot_block_public_access/…`;
//!   absent means `unblocked`). For images, `block-new-sharing` refuses making an image public;
//!   images that are already public stay public. For snapshots, `block-new-sharing` refuses
//!   making a snapshot public; `block-all-sharing` also treats the account's public snapshots as
//!   private for every other account: they vanish from other accounts' `DescribeSnapshots` and
//!   cannot be restored, registered or read through the EBS direct API. Their
//!   `createVolumePermission` still says `all`, so lifting the block makes them public again.
//!   Explicit shares with an account are never affected.

use std::collections::HashMap;

use kiln_meta::MetaTxn;
use kiln_types::{Grantee, ImageState};

use crate::error::{CoreError, CoreResult};
use crate::records::image::ImageData;
use crate::records::item::Item;
use crate::records::snapshot::{may_restore, SnapshotData};
use crate::{Ctx, Kiln};

/// The block public access state that blocks nothing.
pub const UNBLOCKED: &str = "unblocked";

/// Refuses new public sharing (images and snapshots).
pub const BLOCK_NEW_SHARING: &str = "block-new-sharing";

/// Refuses new public sharing and hides existing public snapshots (snapshots only).
pub const BLOCK_ALL_SHARING: &str = "block-all-sharing";

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
    if image.data.state == ImageState::Disabled {
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

impl Kiln {
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
}
