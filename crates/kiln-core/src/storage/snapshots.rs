//! Snapshots: `CreateSnapshot`, `CreateSnapshots`, `DescribeSnapshots`, `DeleteSnapshot`,
//! `CopySnapshot` and the `createVolumePermission` attribute.
//!
//! A snapshot's bytes are an index of chunk ids (see `kiln-chunks`), stored as a blob in the
//! metadata store. Its chunk references are added in the same transaction that stores the
//! index and marks the snapshot `completed`, after every chunk file is durable and while the
//! chunk store's insert guard keeps the sweeper away: a crash at any point leaves either no
//! reference or a complete snapshot, never a reference to a missing chunk.

use std::sync::Arc;

use kiln_chunks::SnapshotIndex;
use kiln_meta::MetaTxn;
use kiln_types::{Filter, Grantee, Page, ResourceKind, SnapshotState, TagSpecification, VolumeState};

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{apply, b, s};
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::snapshot::index_bytes;
use crate::records::snapshot::index_key;
use crate::records::snapshot::load_index;
use crate::records::snapshot::may_restore;
use crate::records::snapshot::references;
use crate::records::snapshot::SnapshotData;
use crate::records::snapshot::NO_VOLUME;
use crate::records::tags;
use crate::records::volume::{VolumeData, GIB};
use crate::{Ctx, Kiln};

/// A snapshot in the caller's region that the caller owns or may restore; anything else is
/// reported missing, so existence never leaks. A public snapshot whose owner blocks all
/// public sharing counts as private.
pub fn visible_snapshot(txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
    let snap = item::get_in_region::<SnapshotData>(txn, ctx, id)?;
    if may_restore(ctx, &snap) && !crate::storage::public_access::public_access_blocked(txn, ctx, &snap)? {
        Ok(snap)
    } else {
        Err(CoreError::NotFound { kind: ResourceKind::Snapshot, id: id.to_string() })
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Checks a grantee list: 12-digit account ids and the group `all`.
pub fn validate_grantees(grantees: &[Grantee]) -> CoreResult<()> {
    for g in grantees {
        if let Grantee::Account(a) = g {
            if kiln_types::AccountId::parse(a).is_err() {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Invalid user id: '{a}' (expecting a 12-digit account id)"
                )));
            }
        }
    }
    Ok(())
}

/// Applies additions, then removals, keeping order and uniqueness.
pub fn apply_grantees(list: &mut Vec<Grantee>, add: &[Grantee], remove: &[Grantee]) {
    for g in add {
        if !list.contains(g) {
            list.push(g.clone());
        }
    }
    list.retain(|g| !remove.contains(g));
}

impl Kiln {
    /// `CreateSnapshot`: records a `pending` snapshot and reads the volume in the background.
    pub fn create_snapshot(
        self: &Arc<Self>,
        ctx: &Ctx,
        volume_id: &str,
        description: Option<&str>,
        specs: &[TagSpecification],
    ) -> CoreResult<Item<SnapshotData>> {
        let tags = tags::from_specs(specs, ResourceKind::Snapshot)?;
        if description.is_some_and(|d| d.chars().count() > 255) {
            return Err(CoreError::InvalidParameterValue("Snapshot descriptions are limited to 255 characters".into()));
        }
        let mut txn = self.store.begin()?;
        let vol = item::get::<VolumeData>(txn.as_mut(), ctx, volume_id)?;
        // A volume still `creating` has no writes yet: the snapshot waits for its file.
        if !matches!(vol.data.state, VolumeState::Available | VolumeState::InUse | VolumeState::Creating) {
            return Err(CoreError::IncorrectState(format!("The volume '{volume_id}' is in state {}.", vol.data.state)));
        }
        let mut snap = Item::new(
            ctx,
            None,
            String::new(),
            tags,
            SnapshotData {
                volume_id: vol.id.clone(),
                volume_size: vol.data.size,
                description: description.unwrap_or("").to_string(),
                state: SnapshotState::Pending,
                progress: 0,
                start_time: crate::now(),
                encrypted: vol.data.encrypted,
                ..Default::default()
            },
        );
        snap.insert(txn.as_mut())?;
        txn.commit()?;
        self.start_snapshot_job(snap.clone());
        Ok(snap)
    }

    /// Runs a `pending` snapshot on a worker thread (also used at start-up to resume the
    /// snapshots a crash interrupted).
    pub fn start_snapshot_job(self: &Arc<Self>, snap: Item<SnapshotData>) {
        let kiln = Arc::clone(self);
        std::thread::spawn(move || {
            if let Err(e) = kiln.run_snapshot(&snap) {
                tracing::warn!(snapshot = %snap.id, error = %e, "snapshot failed");
                let _ = kiln.fail_snapshot(&snap.id, &e.to_string());
            }
        });
    }

    /// Takes a pending snapshot. A volume in use by a running VM is read while the VM is
    /// frozen (CPUs paused, I/O drained), so the snapshot is one crash-consistent point in time.
    pub(crate) fn run_snapshot(&self, snap: &Item<SnapshotData>) -> CoreResult<()> {
        self.volume_builds.wait(&snap.data.volume_id);
        let attached_vm = {
            let mut txn = self.store.read()?;
            match txn.get(&snap.data.volume_id)? {
                Some(rec) => Item::<VolumeData>::from_record(rec)?
                    .data
                    .attachments
                    .first()
                    .and_then(|a| self.vm_of(&a.instance_id)),
                None => None,
            }
        };
        match attached_vm {
            Some(vm) if vm.state().0 == kiln_vm::VmState::Running => {
                vm.frozen(|| self.read_snapshot(snap)).map_err(|e| CoreError::Internal(e.to_string()))?
            }
            _ => self.read_snapshot(snap),
        }
    }

    /// Reads a pending snapshot's volume and completes it (the caller decides about freezing).
    pub(crate) fn read_snapshot(&self, snap: &Item<SnapshotData>) -> CoreResult<()> {
        let (vol, base) = {
            let mut txn = self.store.read()?;
            let Some(rec) = txn.get(&snap.data.volume_id)? else {
                return Err(CoreError::Internal(format!("volume {} no longer exists", snap.data.volume_id)));
            };
            let vol = Item::<VolumeData>::from_record(rec)?;
            if vol.data.state == VolumeState::Error {
                return Err(CoreError::Internal(format!("volume {} could not be created", vol.id)));
            }
            let base = vol.data.snapshot_id.as_deref().map(|b| load_index(txn.as_mut(), b)).transpose()?;
            (vol, base)
        };
        let snap_id = snap.id.clone();
        let progress = |pct: u8| {
            let _ = self.set_snapshot_progress(&snap_id, pct);
        };
        self.storage.snapshot_volume(
            &vol.region,
            &vol.id,
            vol.data.size as u64 * GIB,
            base.as_ref(),
            &progress,
            &mut |index| {
                // Runs with the chunk store's insert guard held: every chunk is on disk.
                let mut txn = self.store.begin()?;
                let Some(rec) = txn.get(&snap_id)? else {
                    return Err(CoreError::Internal("snapshot deleted while pending".into()));
                };
                let mut s = Item::<SnapshotData>::from_record(rec)?;
                txn.add_chunk_refs(&vol.region, &references(index), 1, unix_now())?;
                txn.put_blob(&index_key(&snap_id), &index.encode())?;
                s.data.state = SnapshotState::Completed;
                s.data.progress = 100;
                s.data.completion_time = Some(crate::now());
                s.data.full_size_bytes =
                    index.blocks().iter().filter(|b| b.is_some()).count() as u64 * kiln_chunks::BLOCK_SIZE as u64;
                s.save(txn.as_mut())?;
                txn.commit()?;
                Ok(())
            },
        )
    }

    pub(crate) fn set_snapshot_progress(&self, id: &str, pct: u8) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(id)? else { return Ok(()) };
        let mut s = Item::<SnapshotData>::from_record(rec)?;
        if s.data.state == SnapshotState::Pending && pct > s.data.progress {
            s.data.progress = pct.min(99);
            s.save(txn.as_mut())?;
            txn.commit()?;
        }
        Ok(())
    }

    pub(crate) fn fail_snapshot(&self, id: &str, message: &str) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(id)? else { return Ok(()) };
        let mut s = Item::<SnapshotData>::from_record(rec)?;
        s.data.state = SnapshotState::Error;
        s.data.state_message = Some(message.to_string());
        s.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }

    /// `DescribeSnapshots`: by default everything the caller may restore (own, shared,
    /// public); `Owner.N` and `RestorableBy.N` narrow it.
    pub fn describe_snapshots(
        &self,
        ctx: &Ctx,
        ids: &[String],
        owners: &[String],
        restorable_by: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Item<SnapshotData>>, Option<String>)> {
        let mut txn = self.store.read()?;
        let all: Vec<Item<SnapshotData>> = txn
            .find(&kiln_meta::Query {
                kind: Some(ResourceKind::Snapshot),
                region: Some(&ctx.region),
                ..Default::default()
            })?
            .into_iter()
            .map(Item::from_record)
            .collect::<CoreResult<_>>()?;
        let aliases = self.owner_aliases(txn.as_mut())?;
        let mut snaps = crate::storage::public_access::restorable_snapshots(txn.as_mut(), ctx, all)?;
        drop(txn);
        if let Some(bad) = ids.iter().find(|id| !ResourceKind::Snapshot.is_well_formed(id)) {
            return Err(CoreError::Malformed { kind: ResourceKind::Snapshot, id: bad.clone() });
        }
        let missing: Vec<String> = ids.iter().filter(|id| !snaps.iter().any(|s| &&s.id == id)).cloned().collect();
        if !missing.is_empty() {
            return Err(CoreError::not_found(ResourceKind::Snapshot, missing));
        }
        if !ids.is_empty() {
            snaps.retain(|s| ids.contains(&s.id));
        }
        if !owners.is_empty() {
            snaps.retain(|s| owners.iter().any(|o| owner_matches(o, &s.account, ctx, &aliases)));
        }
        if !restorable_by.is_empty() {
            snaps.retain(|s| {
                restorable_by.iter().any(|r| {
                    let who = if r == "self" { ctx.account.as_str() } else { r.as_str() };
                    if r == "all" {
                        s.data.create_volume_permissions.contains(&Grantee::All)
                    } else {
                        s.account == who || Grantee::grants(&s.data.create_volume_permissions, who)
                    }
                })
            });
        }
        let snaps = apply(snaps, filters, |sn, name| {
            let d = &sn.data;
            Some(match name {
                "snapshot-id" => s(&sn.id),
                "volume-id" => s(&d.volume_id),
                "volume-size" => s(d.volume_size.to_string()),
                "owner-id" => s(&sn.account),
                "owner-alias" => aliases.get(&sn.account).map(s).unwrap_or_default(),
                "status" => s(d.state),
                "progress" => s(format!("{}%", d.progress)),
                "start-time" => s(&d.start_time),
                "description" => s(&d.description),
                "encrypted" => b(d.encrypted),
                "storage-tier" => s("standard"),
                _ => return None,
            })
        })?;
        paginate(snaps, page, |s| s.seq)
    }

    /// `DeleteSnapshot`: refused while an image uses it, and while pending.
    pub fn delete_snapshot(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let snap = item::get::<SnapshotData>(txn.as_mut(), ctx, id)?;
        let user = match crate::records::image::image_using_snapshot(txn.as_mut(), &snap.region, id)? {
            Some(image) => Some(image),
            None => crate::storage::recycle_bin::binned_image_using_snapshot(txn.as_mut(), &snap.region, id, "")?,
        };
        if let Some(image) = user {
            return Err(CoreError::SnapshotInUse { snapshot: id.to_string(), image });
        }
        if snap.data.state == SnapshotState::Pending {
            return Err(CoreError::IncorrectState(format!("Snapshot '{id}' is still pending.")));
        }
        let binned = self.remove_snapshot(txn.as_mut(), &snap)?;
        txn.commit()?;
        if !binned {
            self.release_base(&snap.region, &snap.id);
        }
        Ok(())
    }

    /// Deletes a snapshot inside `txn`: into the Recycle Bin when a retention rule applies
    /// (true; its index and chunk references stay), else for good (false).
    pub(crate) fn remove_snapshot(&self, txn: &mut dyn MetaTxn, snap: &Item<SnapshotData>) -> CoreResult<bool> {
        match self.retention_secs(txn, &snap.account, &snap.region, ResourceKind::Snapshot, &snap.tags)? {
            Some(secs) => {
                self.bin_record(txn, snap.to_record()?, secs)?;
                Ok(true)
            }
            None => {
                self.drop_snapshot(txn, snap)?;
                Ok(false)
            }
        }
    }

    /// Removes a snapshot's materialised base once the snapshot is gone and no volume in the
    /// region is layered over it any more. Best effort: a base left behind is only disk.
    pub fn release_base(&self, region: &str, snapshot_id: &str) {
        let still_needed = (|| -> CoreResult<bool> {
            let mut txn = self.store.read()?;
            if txn.get(snapshot_id)?.is_some() {
                return Ok(true);
            }
            for rec in txn.find(&kiln_meta::Query {
                kind: Some(ResourceKind::Volume),
                region: Some(region),
                ..Default::default()
            })? {
                if Item::<VolumeData>::from_record(rec)?.data.snapshot_id.as_deref() == Some(snapshot_id) {
                    return Ok(true);
                }
            }
            Ok(false)
        })();
        if matches!(still_needed, Ok(false)) {
            self.storage.drop_base(region, snapshot_id);
        }
    }

    /// Deletes a snapshot record, its index and its chunk references inside `txn`.
    pub(crate) fn drop_snapshot(&self, txn: &mut dyn MetaTxn, snap: &Item<SnapshotData>) -> CoreResult<()> {
        if let Some(bytes) = txn.blob(&index_key(&snap.id))? {
            let index = SnapshotIndex::decode(&bytes).map_err(|e| CoreError::Internal(e.to_string()))?;
            txn.add_chunk_refs(&snap.region, &references(&index), -1, unix_now())?;
            txn.delete_blob(&index_key(&snap.id))?;
        }
        txn.delete(&snap.id)?;
        Ok(())
    }

    /// `CopySnapshot` within a region: a new snapshot sharing every chunk of the source (a
    /// metadata operation: no bytes move).
    pub fn copy_snapshot(
        &self,
        ctx: &Ctx,
        source_region: &str,
        source_id: &str,
        description: Option<&str>,
        encrypted: Option<bool>,
        specs: &[TagSpecification],
    ) -> CoreResult<Item<SnapshotData>> {
        if source_region != ctx.region {
            return Err(CoreError::Unsupported(format!(
                "Copying snapshots between regions ({source_region} to {}) is not supported by this server yet.",
                ctx.region
            )));
        }
        let tags = tags::from_specs(specs, ResourceKind::Snapshot)?;
        let mut txn = self.store.begin()?;
        let src = visible_snapshot(txn.as_mut(), ctx, source_id)?;
        if src.data.state != SnapshotState::Completed {
            return Err(CoreError::IncorrectState(format!("Snapshot '{source_id}' is not completed.")));
        }
        let bytes = index_bytes(txn.as_mut(), &src.id)?;
        let index = SnapshotIndex::decode(&bytes).map_err(|e| CoreError::Internal(e.to_string()))?;
        let now = crate::now();
        let mut copy = Item::new(
            ctx,
            None,
            String::new(),
            tags,
            SnapshotData {
                volume_id: NO_VOLUME.into(),
                volume_size: src.data.volume_size,
                description: description.map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "[Copied {} from {}]{}",
                        src.id,
                        source_region,
                        if src.data.description.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", src.data.description)
                        }
                    )
                }),
                state: SnapshotState::Completed,
                progress: 100,
                start_time: now.clone(),
                completion_time: Some(now),
                encrypted: src.data.encrypted || encrypted.unwrap_or(false),
                full_size_bytes: src.data.full_size_bytes,
                source_snapshot_id: Some(src.id.clone()),
                ..Default::default()
            },
        );
        copy.insert(txn.as_mut())?;
        txn.add_chunk_refs(&ctx.region, &references(&index), 1, unix_now())?;
        txn.put_blob(&index_key(&copy.id), &bytes)?;
        txn.commit()?;
        Ok(copy)
    }

    /// `DescribeSnapshotAttribute` (owner only).
    pub fn snapshot_permissions(&self, ctx: &Ctx, id: &str, attribute: &str) -> CoreResult<Vec<Grantee>> {
        let mut txn = self.store.read()?;
        let snap = self.owned_snapshot(txn.as_mut(), ctx, id)?;
        match attribute {
            "createVolumePermission" => Ok(snap.data.create_volume_permissions),
            "productCodes" => Ok(vec![]),
            other => {
                Err(CoreError::InvalidParameterValue(format!("Value ({other}) for parameter attribute is invalid.")))
            }
        }
    }

    /// `ModifySnapshotAttribute` (owner only).
    pub fn modify_snapshot_permissions(
        &self,
        ctx: &Ctx,
        id: &str,
        add: &[Grantee],
        remove: &[Grantee],
    ) -> CoreResult<()> {
        validate_grantees(add)?;
        validate_grantees(remove)?;
        if add.is_empty() && remove.is_empty() {
            return Err(CoreError::MissingParameter("CreateVolumePermission".into()));
        }
        let mut txn = self.store.begin()?;
        let mut snap = self.owned_snapshot(txn.as_mut(), ctx, id)?;
        crate::storage::public_access::check_snapshot_sharing(txn.as_mut(), &snap, add)?;
        apply_grantees(&mut snap.data.create_volume_permissions, add, remove);
        snap.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }

    /// `ResetSnapshotAttribute` (owner only): private again.
    pub fn reset_snapshot_permissions(&self, ctx: &Ctx, id: &str, attribute: &str) -> CoreResult<()> {
        if attribute != "createVolumePermission" {
            return Err(CoreError::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid."
            )));
        }
        let mut txn = self.store.begin()?;
        let mut snap = self.owned_snapshot(txn.as_mut(), ctx, id)?;
        snap.data.create_volume_permissions.clear();
        snap.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }

    /// A snapshot the caller owns; one it can merely see is `AuthFailure`-style refused.
    fn owned_snapshot(&self, txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
        let snap = visible_snapshot(txn, ctx, id)?;
        if snap.account != ctx.account {
            return Err(CoreError::NotOwner(id.to_string()));
        }
        Ok(snap)
    }
}

/// Whether an `Owner.N` value names `account`: `self`, an account id, or an alias.
/// The accounts an `Owner` value names (`self`, an account id, or an owner alias): the same
/// rule as [`owner_matches`], as a list the metadata store can look up.
pub fn owner_accounts(owner: &str, ctx: &Ctx, aliases: &std::collections::HashMap<String, String>) -> Vec<String> {
    match owner {
        "self" => vec![ctx.account.clone()],
        o if o.len() == 12 && o.bytes().all(|c| c.is_ascii_digit()) => vec![o.to_string()],
        alias => aliases.iter().filter(|(_, a)| *a == alias).map(|(account, _)| account.clone()).collect(),
    }
}

pub fn owner_matches(
    owner: &str,
    account: &str,
    ctx: &Ctx,
    aliases: &std::collections::HashMap<String, String>,
) -> bool {
    match owner {
        "self" => account == ctx.account,
        o if o.len() == 12 && o.bytes().all(|c| c.is_ascii_digit()) => account == o,
        alias => aliases.get(account).is_some_and(|a| a == alias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantee_lists() {
        let mut list = vec![];
        let a = Grantee::Account("111122223333".into());
        apply_grantees(&mut list, &[a.clone(), Grantee::All, a.clone()], &[]);
        assert_eq!(list, vec![a.clone(), Grantee::All]);
        apply_grantees(&mut list, &[], &[Grantee::All]);
        assert_eq!(list, vec![a]);
        assert!(validate_grantees(&[Grantee::Account("12".into())]).is_err());
        assert!(validate_grantees(&[Grantee::Account("111122223333".into()), Grantee::All]).is_ok());
    }
}
