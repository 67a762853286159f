//! Errors of the chunk store.

use std::path::PathBuf;

use crate::id::ChunkId;

/// Errors of the chunk store, its backends and the snapshot index codec.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// A filesystem operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A non-filesystem backend (object store) failed.
    #[error("chunk backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No chunk with this id is stored.
    #[error("chunk {id} not found")]
    NotFound {
        /// The missing chunk.
        id: ChunkId,
    },
    /// A stored chunk failed verification. It has been moved to quarantine (if `quarantined`)
    /// and was not served.
    #[error("chunk {id} is corrupt ({reason}); quarantined: {quarantined}")]
    Corrupt {
        /// The corrupt chunk.
        id: ChunkId,
        /// What was wrong with it.
        reason: CorruptReason,
        /// Whether the corrupt file is out of the live chunk area (moved by this read or a
        /// concurrent one). `false` only if moving it failed; the failure is logged.
        quarantined: bool,
    },
    /// A snapshot index failed to decode.
    #[error("invalid snapshot index: {0}")]
    BadIndex(#[from] IndexError),
    /// A block longer than [`crate::BLOCK_SIZE`] was offered.
    #[error("block of {len} bytes exceeds the {max}-byte block size")]
    TooLarge {
        /// Length offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An all-zero block was offered to [`crate::ChunkStore::insert_known`]: zero blocks are
    /// holes and never become chunks.
    #[error("an all-zero block is a hole and cannot be stored as a chunk")]
    ZeroBlock,
}

impl ChunkError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// Why a stored chunk failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// Shorter than the header.
    #[error("file shorter than its header")]
    Truncated,
    /// The magic bytes are wrong.
    #[error("bad magic bytes")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported chunk format version {0}")]
    UnsupportedVersion(u8),
    /// An unknown compression flag.
    #[error("unknown compression flag {0}")]
    UnknownCompression(u8),
    /// Reserved bytes set, or a declared length of zero or above the block size.
    #[error("malformed header")]
    BadHeader,
    /// The zstd payload did not decompress within the declared length.
    #[error("payload does not decompress")]
    Undecodable,
    /// The payload's length differs from the header's.
    #[error("payload length differs from the header")]
    LengthMismatch,
    /// The block's BLAKE3 is not its id.
    #[error("digest mismatch")]
    DigestMismatch,
}

/// Why a snapshot index failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Shorter than header plus trailer.
    #[error("index truncated ({0} bytes)")]
    Truncated(usize),
    /// The magic bytes are wrong.
    #[error("bad magic bytes")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported index version {0}")]
    UnsupportedVersion(u32),
    /// Reserved header bytes are not zero.
    #[error("reserved header bytes are set")]
    ReservedBitsSet,
    /// The BLAKE3 trailer does not match the bytes before it.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// The volume size exceeds [`crate::MAX_VOLUME_SIZE`].
    #[error("volume size {0} exceeds the maximum")]
    VolumeTooLarge(u64),
    /// The entry count does not fit the volume size.
    #[error("entry count {found} does not match the volume size ({expected} blocks)")]
    EntryCount {
        /// Blocks the volume size implies.
        expected: u64,
        /// Entries the header declares.
        found: u64,
    },
    /// The byte length does not fit the entry count.
    #[error("index is {found} bytes, expected {expected}")]
    Length {
        /// Length the header implies.
        expected: u64,
        /// Actual length.
        found: u64,
    },
}
