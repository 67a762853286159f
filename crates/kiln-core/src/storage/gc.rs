//! Garbage collection of chunks, and resuming work a crash interrupted.
//!
//! A chunk becomes garbage when its reference count (kept in the metadata store, changed in
//! the same transaction as the snapshot that takes or drops it) has been zero for longer than
//! the grace period. The sweep deletes such chunks under the chunk store's exclusive lock,
//! re-checking each count there, then forgets their rows; chunk files that no row knows
//! (uploads that never committed) are removed once older than the grace period.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kiln_chunks::ChunkId;
use kiln_meta::Query;
use kiln_types::{ResourceKind, SnapshotState, VolumeState};

use crate::error::{CoreError, CoreResult};
use crate::records::item::Item;
use crate::records::snapshot::SnapshotData;
use crate::records::volume::VolumeData;
use crate::Kiln;

/// What one collection did in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Chunks deleted because their count stayed zero past the grace period.
    pub deleted: u64,
    /// Chunk files no snapshot ever referenced, deleted.
    pub orphans_deleted: u64,
    /// Candidates that were referenced again before they could be deleted.
    pub kept: u64,
}

impl Kiln {
    /// Collects one region's garbage chunks older than `grace`.
    pub fn collect_garbage(&self, region: &str, grace: Duration) -> CoreResult<GcReport> {
        let cutoff = chrono::Utc::now().timestamp() - grace.as_secs() as i64;
        let store = self.storage.chunks(region)?;
        let candidates: Vec<ChunkId> = {
            let mut txn = self.store.read()?;
            txn.unreferenced_chunks(region, cutoff)?.into_iter().map(ChunkId::from_bytes).collect()
        };
        let still_unreferenced = |id: &ChunkId| -> bool {
            self.store
                .read()
                .and_then(|mut t| t.unreferenced_chunks(region, cutoff))
                .map(|ids| ids.contains(id.as_bytes()))
                .unwrap_or(false)
        };
        let swept = store.sweep(&candidates, still_unreferenced).map_err(|e| CoreError::Storage(e.to_string()))?;
        let mut txn = self.store.begin()?;
        for id in &candidates {
            txn.forget_chunk(region, id.as_bytes(), cutoff)?;
        }
        txn.commit()?;
        let known =
            |id: &ChunkId| self.store.read().and_then(|mut t| t.chunk_known(region, id.as_bytes())).unwrap_or(true);
        let orphans =
            store.sweep_orphans(grace, SystemTime::now(), known).map_err(|e| CoreError::Storage(e.to_string()))?;
        store.remove_stale_temp(grace, SystemTime::now()).map_err(|e| CoreError::Storage(e.to_string()))?;
        Ok(GcReport { deleted: swept.deleted, orphans_deleted: orphans.deleted, kept: swept.still_referenced })
    }

    /// Restarts the background work a stopped server left half done: volumes still
    /// `creating` are built again, snapshots still `pending` are taken again.
    pub fn resume_jobs(self: &Arc<Self>) -> CoreResult<()> {
        self.index_records()?;
        let mut txn = self.store.read()?;
        let volumes = txn.find(&Query { kind: Some(ResourceKind::Volume), ..Default::default() })?;
        let snapshots = txn.find(&Query { kind: Some(ResourceKind::Snapshot), ..Default::default() })?;
        drop(txn);
        for rec in volumes {
            let v = Item::<VolumeData>::from_record(rec)?;
            if v.data.state == VolumeState::Creating {
                tracing::info!(volume = %v.id, "resuming volume creation");
                self.start_volume_build(v);
            }
        }
        for rec in snapshots {
            let s = Item::<SnapshotData>::from_record(rec)?;
            if s.data.state == SnapshotState::Pending && s.data.volume_id != crate::records::snapshot::NO_VOLUME {
                tracing::info!(snapshot = %s.id, "resuming snapshot");
                self.start_snapshot_job(s);
            }
        }
        self.resume_copies()
    }

    /// Storage statistics of a region: `(logical bytes of completed snapshots, distinct chunks,
    /// stored bytes of those chunks)`.
    pub fn storage_stats(&self, region: &str) -> CoreResult<(u64, u64, u64)> {
        let mut txn = self.store.read()?;
        let snaps =
            txn.find(&Query { kind: Some(ResourceKind::Snapshot), region: Some(region), ..Default::default() })?;
        let mut logical = 0;
        for rec in snaps {
            let s = Item::<SnapshotData>::from_record(rec)?;
            logical += s.data.full_size_bytes;
        }
        let (distinct, _) = txn.chunk_stats(region)?;
        drop(txn);
        let stored = self.storage.stored_bytes(region);
        Ok((logical, distinct, stored))
    }
}

/// Set once the records of a database from before indexed states and grants carry them.
const RECORDS_INDEXED: &str = "meta/records-indexed";

impl Kiln {
    /// Writes the indexed state and grant rows of records stored before they existed, once.
    fn index_records(&self) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        if txn.setting(RECORDS_INDEXED)?.is_some() {
            return Ok(());
        }
        for kind in [ResourceKind::Image, ResourceKind::Snapshot, ResourceKind::Volume, ResourceKind::Instance] {
            for rec in txn.find(&Query { kind: Some(kind), ..Default::default() })? {
                crate::records::reindex(txn.as_mut(), rec)?;
            }
        }
        txn.set_setting(RECORDS_INDEXED, "1")?;
        txn.commit()?;
        Ok(())
    }
}
