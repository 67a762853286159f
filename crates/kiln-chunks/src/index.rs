//! The snapshot index: volume size plus one entry per block (see the crate docs for the layout).

use crate::error::IndexError;
use crate::id::{ChunkId, BLOCK_SIZE};

/// First eight bytes of every snapshot index.
pub const INDEX_MAGIC: [u8; 8] = *b"KILNIDX\0";
/// Index format version written by this build.
pub const INDEX_VERSION: u32 = 1;
/// Length of the index header in bytes.
pub const INDEX_HEADER_LEN: usize = 32;
/// Length of one index entry in bytes.
pub const INDEX_ENTRY_LEN: usize = 32;
/// Length of the BLAKE3 trailer in bytes.
pub const INDEX_TRAILER_LEN: usize = 32;
/// Largest volume an index may describe: 64 TiB, the largest EBS volume.
pub const MAX_VOLUME_SIZE: u64 = 64 << 40;

const HOLE: [u8; 32] = [0; 32];

/// A snapshot's block map: the volume size and, per [`BLOCK_SIZE`] block, the chunk holding it
/// or `None` for a hole (all zeros).
///
/// A volume whose size is not a multiple of the block size has a short final block; its chunk
/// holds only the bytes inside the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotIndex {
    volume_size: u64,
    blocks: Vec<Option<ChunkId>>,
}

impl SnapshotIndex {
    /// Number of blocks a volume of `volume_size` bytes has (the last one may be short).
    pub fn block_count(volume_size: u64) -> u64 {
        volume_size.div_ceil(BLOCK_SIZE as u64)
    }

    /// An index of `volume_size` bytes that is all holes.
    pub fn new(volume_size: u64) -> Result<Self, IndexError> {
        if volume_size > MAX_VOLUME_SIZE {
            return Err(IndexError::VolumeTooLarge(volume_size));
        }
        // Fits in usize: MAX_VOLUME_SIZE / BLOCK_SIZE is 2^27.
        Ok(Self { volume_size, blocks: vec![None; Self::block_count(volume_size) as usize] })
    }

    /// An index from its parts; `blocks` must have one entry per block of the volume.
    pub fn from_blocks(volume_size: u64, blocks: Vec<Option<ChunkId>>) -> Result<Self, IndexError> {
        if volume_size > MAX_VOLUME_SIZE {
            return Err(IndexError::VolumeTooLarge(volume_size));
        }
        let expected = Self::block_count(volume_size);
        if blocks.len() as u64 != expected {
            return Err(IndexError::EntryCount { expected, found: blocks.len() as u64 });
        }
        Ok(Self { volume_size, blocks })
    }

    /// Volume size in bytes.
    pub fn volume_size(&self) -> u64 {
        self.volume_size
    }

    /// One entry per block, in order.
    pub fn blocks(&self) -> &[Option<ChunkId>] {
        &self.blocks
    }

    /// The chunk of block `block`: `None` for a hole or a block past the end.
    pub fn get(&self, block: u64) -> Option<ChunkId> {
        usize::try_from(block).ok().and_then(|i| self.blocks.get(i).copied().flatten())
    }

    /// Sets block `block` to `chunk` (`None` = hole). Returns the previous entry, or `None`
    /// without change if `block` is past the end.
    pub fn set(&mut self, block: u64, chunk: Option<ChunkId>) -> Option<Option<ChunkId>> {
        let slot = self.blocks.get_mut(usize::try_from(block).ok()?)?;
        Some(std::mem::replace(slot, chunk))
    }

    /// Length in bytes of block `block` (only the last block can be short; 0 past the end).
    pub fn block_len(&self, block: u64) -> usize {
        let start = block.saturating_mul(BLOCK_SIZE as u64);
        // At most BLOCK_SIZE, so the cast is lossless.
        self.volume_size.saturating_sub(start).min(BLOCK_SIZE as u64) as usize
    }

    /// Each chunk this index references, once, sorted.
    pub fn distinct_chunks(&self) -> Vec<ChunkId> {
        let mut ids: Vec<ChunkId> = self.blocks.iter().flatten().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Block numbers whose content differs between `self` and `other`, ascending (the shape of
    /// EBS `ListChangedBlocks`). Blocks past the end of the shorter index count as holes.
    pub fn changed_blocks(&self, other: &SnapshotIndex) -> Vec<u64> {
        let n = self.blocks.len().max(other.blocks.len());
        (0..n as u64).filter(|&i| self.get(i) != other.get(i)).collect()
    }

    /// Encodes the index (layout in the crate docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(INDEX_HEADER_LEN + self.blocks.len() * INDEX_ENTRY_LEN + INDEX_TRAILER_LEN);
        out.extend_from_slice(&INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.volume_size.to_le_bytes());
        out.extend_from_slice(&(self.blocks.len() as u64).to_le_bytes());
        for entry in &self.blocks {
            out.extend_from_slice(entry.as_ref().map_or(&HOLE, |id| id.as_bytes()));
        }
        let trailer = blake3::hash(&out);
        out.extend_from_slice(trailer.as_bytes());
        out
    }

    /// Decodes an index, rejecting any truncation, extension or corruption.
    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() < INDEX_HEADER_LEN + INDEX_TRAILER_LEN {
            return Err(IndexError::Truncated(bytes.len()));
        }
        // The checksum goes first: any flipped bit anywhere is reported as such, not as
        // whatever field it happens to land in.
        let (body, trailer) = bytes.split_at(bytes.len() - INDEX_TRAILER_LEN);
        if blake3::hash(body).as_bytes() != trailer {
            return Err(IndexError::ChecksumMismatch);
        }
        let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        if body[0..8] != INDEX_MAGIC {
            return Err(IndexError::BadMagic);
        }
        let version = u32_at(8);
        if version != INDEX_VERSION {
            return Err(IndexError::UnsupportedVersion(version));
        }
        if u32_at(12) != 0 {
            return Err(IndexError::ReservedBitsSet);
        }
        let volume_size = u64_at(16);
        if volume_size > MAX_VOLUME_SIZE {
            return Err(IndexError::VolumeTooLarge(volume_size));
        }
        let count = u64_at(24);
        let expected_count = Self::block_count(volume_size);
        if count != expected_count {
            return Err(IndexError::EntryCount { expected: expected_count, found: count });
        }
        let expected_len = (INDEX_HEADER_LEN + INDEX_TRAILER_LEN) as u64 + count * INDEX_ENTRY_LEN as u64;
        if bytes.len() as u64 != expected_len {
            return Err(IndexError::Length { expected: expected_len, found: bytes.len() as u64 });
        }
        let blocks = body[INDEX_HEADER_LEN..]
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(|e| {
                let raw: [u8; 32] = e.try_into().expect("entry length");
                (raw != HOLE).then(|| ChunkId::from_bytes(raw))
            })
            .collect();
        Ok(Self { volume_size, blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::chunk_id;

    fn sample() -> SnapshotIndex {
        let a = chunk_id(b"a");
        let b = chunk_id(b"b");
        SnapshotIndex::from_blocks(3 * BLOCK_SIZE as u64 + 10, vec![Some(a), None, Some(b), Some(a)]).unwrap()
    }

    #[test]
    fn block_count_rounds_up_for_a_short_final_block() {
        assert_eq!(SnapshotIndex::block_count(0), 0);
        assert_eq!(SnapshotIndex::block_count(1), 1);
        assert_eq!(SnapshotIndex::block_count(BLOCK_SIZE as u64), 1);
        assert_eq!(SnapshotIndex::block_count(BLOCK_SIZE as u64 + 1), 2);
        assert_eq!(SnapshotIndex::block_count(1 << 30), 2048);
        let idx = sample();
        assert_eq!(idx.block_len(0), BLOCK_SIZE);
        assert_eq!(idx.block_len(3), 10);
        assert_eq!(idx.block_len(4), 0);
    }

    #[test]
    fn from_blocks_rejects_a_wrong_entry_count_and_oversized_volumes() {
        assert_eq!(
            SnapshotIndex::from_blocks(BLOCK_SIZE as u64, vec![]),
            Err(IndexError::EntryCount { expected: 1, found: 0 })
        );
        assert!(matches!(SnapshotIndex::new(MAX_VOLUME_SIZE + 1), Err(IndexError::VolumeTooLarge(_))));
    }

    #[test]
    fn encode_decode_round_trips() {
        let idx = sample();
        assert_eq!(SnapshotIndex::decode(&idx.encode()).unwrap(), idx);
        let empty = SnapshotIndex::new(0).unwrap();
        assert_eq!(SnapshotIndex::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn changed_blocks_and_distinct_chunks() {
        let idx = sample();
        let mut other = idx.clone();
        assert!(idx.changed_blocks(&other).is_empty());
        other.set(1, Some(chunk_id(b"c")));
        other.set(3, None);
        assert_eq!(idx.changed_blocks(&other), vec![1, 3]);
        let bigger = SnapshotIndex::from_blocks(
            5 * BLOCK_SIZE as u64,
            vec![idx.get(0), None, idx.get(2), idx.get(3), Some(chunk_id(b"d"))],
        )
        .unwrap();
        assert_eq!(idx.changed_blocks(&bigger), vec![4]);
        assert_eq!(idx.distinct_chunks().len(), 2);
        assert_eq!(other.set(99, None), None);
    }

    #[test]
    fn decode_rejects_header_defects_even_with_a_valid_trailer() {
        let good = sample().encode();
        let reseal = |mut b: Vec<u8>| {
            let n = b.len() - INDEX_TRAILER_LEN;
            let sum = blake3::hash(&b[..n]);
            b[n..].copy_from_slice(sum.as_bytes());
            b
        };
        let patched = |at: usize, val: &[u8]| {
            let mut b = good.clone();
            b[at..at + val.len()].copy_from_slice(val);
            SnapshotIndex::decode(&reseal(b)).unwrap_err()
        };
        assert_eq!(patched(0, b"X"), IndexError::BadMagic);
        assert_eq!(patched(8, &2u32.to_le_bytes()), IndexError::UnsupportedVersion(2));
        assert_eq!(patched(12, &1u32.to_le_bytes()), IndexError::ReservedBitsSet);
        assert_eq!(patched(16, &(MAX_VOLUME_SIZE + 1).to_le_bytes()), IndexError::VolumeTooLarge(MAX_VOLUME_SIZE + 1));
        assert_eq!(patched(24, &5u64.to_le_bytes()), IndexError::EntryCount { expected: 4, found: 5 });
        let mut longer = good[..good.len() - INDEX_TRAILER_LEN].to_vec();
        longer.extend_from_slice(&[0; INDEX_ENTRY_LEN + INDEX_TRAILER_LEN]);
        assert_eq!(
            SnapshotIndex::decode(&reseal(longer)).unwrap_err(),
            IndexError::Length { expected: good.len() as u64, found: (good.len() + INDEX_ENTRY_LEN) as u64 }
        );
    }
}
