//! The EBS direct API: writing a snapshot block by block (`StartSnapshot`,
//! `PutSnapshotBlock`, `CompleteSnapshot`) and reading one (`ListSnapshotBlocks`,
//! `ListChangedBlocks`, `GetSnapshotBlock`).
//!
//! While a direct snapshot is pending, each written block is a blob `upload/<snap>/<index>`
//! holding its chunk id (empty for an all-zero block), and the chunk is referenced at once, in
//! the transaction that records the blob. Completing the snapshot turns the uploads, over the
//! parent's index, into the snapshot's index; blocks the caller did not write keep the
//! parent's chunks, so incremental snapshots share every unchanged block.

use base64::Engine;
use kiln_chunks::{ChunkId, SnapshotIndex, BLOCK_SIZE};
use kiln_types::{ResourceKind, SnapshotState, Tag};

use crate::error::{BlockArgument, CoreError, CoreResult};
use crate::records::item::{self, Item};
use crate::records::snapshot::{index_key, load_index, references, SnapshotData, NO_VOLUME};
use crate::records::volume::GIB;
use crate::records::{idempotency, tags};
use crate::storage::snapshots::visible_snapshot;
use crate::{Ctx, Kiln};

/// Largest volume the EBS direct API accepts, GiB.
pub const MAX_VOLUME_GIB: i64 = 65536;

/// What `StartSnapshot` asks for.
#[derive(Debug, Clone, Default)]
pub struct StartSpec {
    /// Volume size, GiB.
    pub volume_size: i64,
    /// Parent snapshot for an incremental snapshot.
    pub parent_snapshot_id: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// Encrypted flag.
    pub encrypted: bool,
}

/// One block of a listing: its index and the token `GetSnapshotBlock` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    /// Block index.
    pub index: u64,
    /// Token of the block in the (second) snapshot; `None` when it is a hole there.
    pub token: Option<String>,
    /// Token of the block in the first snapshot of a comparison.
    pub first_token: Option<String>,
}

/// A page of blocks.
#[derive(Debug, Clone)]
pub struct BlockPage {
    /// The blocks.
    pub blocks: Vec<BlockRef>,
    /// Volume size, GiB.
    pub volume_size: i64,
    /// Token for the next page.
    pub next: Option<String>,
}

fn upload_prefix(snapshot_id: &str) -> String {
    format!("upload/{snapshot_id}/")
}

fn upload_key(snapshot_id: &str, index: u64) -> String {
    // Zero-padded hex so the keys sort by block index.
    format!("upload/{snapshot_id}/{index:016x}")
}

/// A block token: the block's index and chunk id, so a stale token is detected.
pub fn block_token(index: u64, id: &ChunkId) -> String {
    let mut raw = index.to_le_bytes().to_vec();
    raw.extend_from_slice(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes a client-supplied block token; `None` when it is not one of ours.
pub fn parse_block_token(token: &str) -> Option<(u64, ChunkId)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    if raw.len() != 40 {
        return None;
    }
    let index = u64::from_le_bytes(raw[..8].try_into().ok()?);
    let id: [u8; 32] = raw[8..].try_into().ok()?;
    Some((index, ChunkId::from_bytes(id)))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Kiln {
    /// `StartSnapshot`.
    pub fn ebs_start_snapshot(&self, ctx: &Ctx, spec: &StartSpec) -> CoreResult<Item<SnapshotData>> {
        if spec.volume_size < 1 || spec.volume_size > MAX_VOLUME_GIB {
            return Err(CoreError::InvalidBlockArgument {
                argument: BlockArgument::VolumeSize,
                message: format!("VolumeSize must be between 1 and {MAX_VOLUME_GIB} GiB; got {}", spec.volume_size),
            });
        }
        for t in &spec.tags {
            tags::validate_tag(t)?;
        }
        let fingerprint = idempotency::fingerprint(&[
            &spec.volume_size.to_string(),
            spec.parent_snapshot_id.as_deref().unwrap_or(""),
            spec.description.as_deref().unwrap_or(""),
        ]);
        let mut txn = self.store.begin()?;
        if let Some(token) = &spec.client_token {
            if let Some(existing) = idempotency::lookup(txn.as_mut(), ctx, "StartSnapshot", token, &fingerprint)? {
                return item::get::<SnapshotData>(txn.as_mut(), ctx, &existing);
            }
        }
        let mut encrypted = spec.encrypted;
        if let Some(parent) = &spec.parent_snapshot_id {
            let p = visible_snapshot(txn.as_mut(), ctx, parent)?;
            if p.data.state != SnapshotState::Completed {
                return Err(CoreError::IncorrectState(format!("The parent snapshot {parent} is not completed.")));
            }
            if p.data.volume_size > spec.volume_size {
                return Err(CoreError::InvalidBlockArgument {
                    argument: BlockArgument::VolumeSize,
                    message: format!(
                        "VolumeSize ({} GiB) is smaller than the parent snapshot's ({} GiB).",
                        spec.volume_size, p.data.volume_size
                    ),
                });
            }
            encrypted |= p.data.encrypted;
        }
        let mut snap = Item::new(
            ctx,
            None,
            String::new(),
            spec.tags.clone(),
            SnapshotData {
                volume_id: NO_VOLUME.into(),
                volume_size: spec.volume_size,
                description: spec.description.clone().unwrap_or_default(),
                state: SnapshotState::Pending,
                start_time: crate::now(),
                encrypted,
                parent_snapshot_id: spec.parent_snapshot_id.clone(),
                direct: true,
                ..Default::default()
            },
        );
        snap.insert(txn.as_mut())?;
        if let Some(token) = &spec.client_token {
            idempotency::record(txn.as_mut(), ctx, "StartSnapshot", token, &fingerprint, &snap.id)?;
        }
        txn.commit()?;
        Ok(snap)
    }

    fn pending_direct(&self, txn: &mut dyn kiln_meta::MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
        let snap = item::get::<SnapshotData>(txn, ctx, id)?;
        if !snap.data.direct || snap.data.state != SnapshotState::Pending {
            return Err(CoreError::IncorrectState(format!(
                "Snapshot {id} does not accept blocks: it is {} and {} written through the EBS direct API.",
                snap.data.state,
                if snap.data.direct { "was" } else { "was not" }
            )));
        }
        Ok(snap)
    }

    /// `PutSnapshotBlock`: `data` is one whole 512 KiB block whose checksum the HTTP layer has
    /// already verified.
    pub fn ebs_put_block(&self, ctx: &Ctx, snapshot_id: &str, index: u64, data: &[u8]) -> CoreResult<()> {
        if data.len() != BLOCK_SIZE {
            return Err(CoreError::InvalidParameterValue(format!(
                "Block data must be exactly {BLOCK_SIZE} bytes; got {}",
                data.len()
            )));
        }
        let snap = {
            let mut txn = self.store.read()?;
            self.pending_direct(txn.as_mut(), ctx, snapshot_id)?
        };
        let blocks = SnapshotIndex::block_count(snap.data.volume_size as u64 * GIB);
        if index >= blocks {
            return Err(CoreError::InvalidBlockArgument {
                argument: BlockArgument::Index,
                message: format!(
                    "Block index {index} is beyond the end of the {} GiB volume (last block {}).",
                    snap.data.volume_size,
                    blocks - 1
                ),
            });
        }
        let store = self.storage.chunks(&snap.region)?;
        let _guard = store.insert_guard();
        let id = store.insert(data).map_err(|e| CoreError::Storage(e.to_string()))?;
        let mut txn = self.store.begin()?;
        // Re-check under the write transaction: the snapshot may have completed meanwhile.
        self.pending_direct(txn.as_mut(), ctx, snapshot_id)?;
        let key = upload_key(snapshot_id, index);
        if let Some(prev) = txn.blob(&key)? {
            if let Ok(prev) = <[u8; 32]>::try_from(prev.as_slice()) {
                txn.add_chunk_refs(&snap.region, &[prev], -1, unix_now())?;
            }
        }
        match id {
            Some(id) => {
                txn.add_chunk_refs(&snap.region, &[*id.as_bytes()], 1, unix_now())?;
                txn.put_blob(&key, id.as_bytes())?;
            }
            None => txn.put_blob(&key, &[])?,
        }
        txn.commit()?;
        Ok(())
    }

    /// `CompleteSnapshot`: `changed_blocks` must equal the number of blocks written.
    pub fn ebs_complete(&self, ctx: &Ctx, snapshot_id: &str, changed_blocks: i64) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let mut snap = self.pending_direct(txn.as_mut(), ctx, snapshot_id)?;
        let uploads = txn.blobs_with_prefix(&upload_prefix(snapshot_id))?;
        if changed_blocks != uploads.len() as i64 {
            return Err(CoreError::InvalidBlockArgument {
                argument: BlockArgument::ChangedBlocksCount,
                message: format!("ChangedBlocksCount is {changed_blocks} but {} blocks were written.", uploads.len()),
            });
        }
        let size = snap.data.volume_size as u64 * GIB;
        let mut blocks: Vec<Option<ChunkId>> = match &snap.data.parent_snapshot_id {
            Some(p) => load_index(txn.as_mut(), p)?.blocks().to_vec(),
            None => vec![],
        };
        blocks.resize(SnapshotIndex::block_count(size) as usize, None);
        let mut written = vec![false; blocks.len()];
        for (key, value) in &uploads {
            let index = u64::from_str_radix(key.rsplit('/').next().unwrap_or(""), 16)
                .map_err(|_| CoreError::Internal(format!("bad upload key {key}")))? as usize;
            blocks[index] = <[u8; 32]>::try_from(value.as_slice()).ok().map(ChunkId::from_bytes);
            written[index] = true;
            txn.delete_blob(key)?;
        }
        // Written blocks were referenced as they arrived; inherited ones are referenced now.
        let inherited: Vec<[u8; 32]> =
            blocks.iter().zip(&written).filter(|(_, w)| !**w).filter_map(|(b, _)| b.map(|c| *c.as_bytes())).collect();
        txn.add_chunk_refs(&snap.region, &inherited, 1, unix_now())?;
        let index = SnapshotIndex::from_blocks(size, blocks).map_err(|e| CoreError::Internal(e.to_string()))?;
        txn.put_blob(&index_key(snapshot_id), &index.encode())?;
        snap.data.state = SnapshotState::Completed;
        snap.data.progress = 100;
        snap.data.completion_time = Some(crate::now());
        snap.data.full_size_bytes = index.blocks().iter().filter(|b| b.is_some()).count() as u64 * BLOCK_SIZE as u64;
        snap.save(txn.as_mut())?;
        debug_assert_eq!(references(&index).len(), index.blocks().iter().flatten().count());
        txn.commit()?;
        Ok(())
    }

    fn completed_index(&self, ctx: &Ctx, id: &str) -> CoreResult<(Item<SnapshotData>, SnapshotIndex)> {
        let mut txn = self.store.read()?;
        let snap = visible_snapshot(txn.as_mut(), ctx, id)?;
        if snap.data.state != SnapshotState::Completed {
            return Err(CoreError::IncorrectState(format!("Snapshot {id} is not completed.")));
        }
        Ok((snap, load_index(txn.as_mut(), id)?))
    }

    /// `ListSnapshotBlocks`: the blocks holding data, from `start`.
    pub fn ebs_list_blocks(
        &self,
        ctx: &Ctx,
        id: &str,
        start: u64,
        max: usize,
        page_token: Option<&str>,
    ) -> CoreResult<BlockPage> {
        let (snap, index) = self.completed_index(ctx, id)?;
        let from = resume_point(start, page_token)?;
        let mut blocks = Vec::new();
        let mut next = None;
        for (i, b) in index.blocks().iter().enumerate().skip(from as usize) {
            if let Some(c) = b {
                if blocks.len() == max {
                    next = Some(encode_page_token(i as u64));
                    break;
                }
                blocks.push(BlockRef { index: i as u64, token: Some(block_token(i as u64, c)), first_token: None });
            }
        }
        Ok(BlockPage { blocks, volume_size: snap.data.volume_size, next })
    }

    /// `ListChangedBlocks`: blocks that differ between `first` (or nothing) and `second`.
    pub fn ebs_changed_blocks(
        &self,
        ctx: &Ctx,
        first: Option<&str>,
        second: &str,
        start: u64,
        max: usize,
        page_token: Option<&str>,
    ) -> CoreResult<BlockPage> {
        let (snap, second_index) = self.completed_index(ctx, second)?;
        let first_index = match first {
            Some(f) => Some(self.completed_index(ctx, f)?.1),
            None => None,
        };
        let from = resume_point(start, page_token)?;
        let total = second_index.blocks().len().max(first_index.as_ref().map_or(0, |f| f.blocks().len()));
        let mut blocks = Vec::new();
        let mut next = None;
        for i in (from as usize)..total {
            let b = second_index.blocks().get(i).copied().flatten();
            let a = first_index.as_ref().and_then(|f| f.blocks().get(i).copied().flatten());
            if a == b || (first_index.is_none() && b.is_none()) {
                continue;
            }
            if blocks.len() == max {
                next = Some(encode_page_token(i as u64));
                break;
            }
            blocks.push(BlockRef {
                index: i as u64,
                token: b.map(|c| block_token(i as u64, &c)),
                first_token: a.map(|c| block_token(i as u64, &c)),
            });
        }
        Ok(BlockPage { blocks, volume_size: snap.data.volume_size, next })
    }

    /// `GetSnapshotBlock`: the block's bytes, verified against their chunk id.
    pub fn ebs_get_block(&self, ctx: &Ctx, id: &str, index: u64, token: &str) -> CoreResult<Vec<u8>> {
        let (snap, snapshot_index) = self.completed_index(ctx, id)?;
        let (token_index, chunk) = parse_block_token(token).ok_or_else(|| CoreError::InvalidBlockArgument {
            argument: BlockArgument::Token,
            message: "The block token is invalid.".into(),
        })?;
        if token_index != index || snapshot_index.get(index) != Some(chunk) {
            return Err(CoreError::InvalidBlockArgument {
                argument: BlockArgument::Token,
                message: format!("The block token does not belong to block {index} of snapshot {id}."),
            });
        }
        self.storage.chunks(&snap.region)?.read(&chunk).map_err(|e| CoreError::Storage(e.to_string()))
    }
}

fn encode_page_token(next_index: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("b:{next_index}"))
}

/// Where a listing resumes: `start`, or the index a client-supplied page token names.
pub fn resume_point(start: u64, page_token: Option<&str>) -> CoreResult<u64> {
    match page_token {
        None => Ok(start),
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| s.strip_prefix("b:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| CoreError::InvalidNextToken(t.to_string())),
    }
}

/// Checks a snapshot id before anything else, as the EBS service does.
pub fn check_id(id: &str) -> CoreResult<()> {
    if ResourceKind::Snapshot.is_well_formed(id) {
        Ok(())
    } else {
        Err(CoreError::Malformed { kind: ResourceKind::Snapshot, id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let id = kiln_chunks::chunk_id(&[7u8; 16]);
        let t = block_token(42, &id);
        assert_eq!(parse_block_token(&t), Some((42, id)));
        assert_eq!(parse_block_token("nope"), None);
        assert_eq!(resume_point(5, None).unwrap(), 5);
        assert_eq!(resume_point(0, Some(&encode_page_token(9))).unwrap(), 9);
        assert!(resume_point(0, Some("zz")).is_err());
    }
}
