//! A snapshot's record and its chunk index, stored beside it in the metadata store.

use kiln_chunks::SnapshotIndex;
use kiln_meta::MetaTxn;
use kiln_types::{Grantee, ResourceKind, SnapshotState};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::records::item::{Body, Item};
use crate::Ctx;

/// A snapshot's stored fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SnapshotData {
    /// Source volume (`vol-ffffffff` for imported or uploaded data, as EC2 writes it).
    pub volume_id: String,
    /// Size of the source volume, GiB.
    pub volume_size: i64,
    /// Description.
    pub description: String,
    /// `pending`, `completed`, `error`.
    pub state: SnapshotState,
    /// Progress, percent.
    pub progress: u8,
    /// When it started.
    pub start_time: String,
    /// When it completed.
    pub completion_time: Option<String>,
    /// Encrypted flag (inherited).
    pub encrypted: bool,
    /// Who may create volumes from it besides the owner.
    pub create_volume_permissions: Vec<Grantee>,
    /// Why it is in `error`.
    pub state_message: Option<String>,
    /// Bytes of the volume that hold data (non-hole blocks).
    pub full_size_bytes: u64,
    /// Source snapshot of a copy.
    pub source_snapshot_id: Option<String>,
    /// Parent of a snapshot written through the EBS direct API (unwritten blocks come from it).
    #[serde(default)]
    pub parent_snapshot_id: Option<String>,
    /// Written through the EBS direct API: blocks arrive by `PutSnapshotBlock`.
    #[serde(default)]
    pub direct: bool,
}

impl Body for SnapshotData {
    const KIND: ResourceKind = ResourceKind::Snapshot;

    fn state(&self) -> &str {
        self.state.as_str()
    }

    fn grantees(&self) -> Option<Vec<String>> {
        Some(super::item::grant_tokens(&self.create_volume_permissions))
    }
}

/// Metadata key of a snapshot's index blob.
pub fn index_key(snapshot_id: &str) -> String {
    format!("index/{snapshot_id}")
}

/// A completed snapshot's encoded index. Every completed snapshot has one, so its absence is
/// an internal error.
pub fn index_bytes(txn: &mut dyn MetaTxn, snapshot_id: &str) -> CoreResult<Vec<u8>> {
    txn.blob(&index_key(snapshot_id))?
        .ok_or_else(|| CoreError::Internal(format!("snapshot {snapshot_id} has no index")))
}

/// A completed snapshot's index, decoded.
pub fn load_index(txn: &mut dyn MetaTxn, snapshot_id: &str) -> CoreResult<SnapshotIndex> {
    SnapshotIndex::decode(&index_bytes(txn, snapshot_id)?).map_err(|e| CoreError::Internal(e.to_string()))
}

/// The volume id EC2 reports for snapshots not taken from a volume.
pub const NO_VOLUME: &str = "vol-ffffffff";

/// True when `ctx` may create volumes from the snapshot.
pub fn may_restore(ctx: &Ctx, snap: &Item<SnapshotData>) -> bool {
    snap.account == ctx.account || Grantee::grants(&snap.data.create_volume_permissions, &ctx.account)
}

/// Chunk ids referenced by an index, one per non-hole block (duplicates count).
pub fn references(index: &SnapshotIndex) -> Vec<[u8; 32]> {
    index.blocks().iter().flatten().map(|c| *c.as_bytes()).collect()
}
