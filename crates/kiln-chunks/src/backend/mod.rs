//! Where encoded chunk files live: the [`ChunkBackend`] trait and its implementations.
//!
//! A backend moves opaque bytes by chunk id. It knows nothing of headers, compression or
//! verification; [`crate::ChunkStore`] does all of that, so a new backend (an S3-compatible
//! object store) only needs these few operations and passes the shared conformance suite.

mod local;
mod memory;

#[cfg(test)]
mod conformance;

pub use local::LocalBackend;
pub use memory::MemoryBackend;

use std::fmt;
use std::time::SystemTime;

use crate::error::ChunkError;
use crate::id::ChunkId;

/// What a backend knows about one stored chunk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// The chunk.
    pub id: ChunkId,
    /// Bytes the encoded file occupies (header plus payload).
    pub size: u64,
    /// When the file was written (file mtime, object last-modified).
    pub written: SystemTime,
}

/// Storage for encoded chunk files, addressed by chunk id.
///
/// Every method is safe to call from many threads at once. The backend does not order
/// operations on the same id; [`crate::ChunkStore`] does that with its sweep lock.
pub trait ChunkBackend: Send + Sync + fmt::Debug {
    /// Stores `data` under `id`, atomically: a reader (or a crash) sees either no object or
    /// the whole of `data`, never a part. Storing the same id again replaces the object.
    fn put(&self, id: &ChunkId, data: &[u8]) -> Result<(), ChunkError>;

    /// The stored bytes of `id`, or `None` if there is no such object.
    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, ChunkError>;

    /// Whether `id` exists, and if so its size and write time.
    fn stat(&self, id: &ChunkId) -> Result<Option<ChunkMeta>, ChunkError>;

    /// Removes `id`. Returns whether it existed.
    fn delete(&self, id: &ChunkId) -> Result<bool, ChunkError>;

    /// Calls `visit` once per stored chunk, in no particular order. Objects added or removed
    /// during the walk may or may not be visited. Quarantined chunks and temp files are not.
    fn list(&self, visit: &mut dyn FnMut(ChunkMeta)) -> Result<(), ChunkError>;

    /// Moves `id` out of the live area into quarantine, keeping its bytes for inspection.
    /// Returns whether it existed.
    fn quarantine(&self, id: &ChunkId) -> Result<bool, ChunkError>;

    /// Removes temp files of interrupted writes written before `cutoff`. Returns how many.
    /// Backends whose writes leave no temp objects keep this default.
    fn remove_stale_temp(&self, cutoff: SystemTime) -> Result<u64, ChunkError> {
        let _ = cutoff;
        Ok(0)
    }
}
