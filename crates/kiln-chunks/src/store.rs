//! [`ChunkStore`]: verified reads, idempotent inserts, quarantine and the GC primitives.

use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use crate::backend::ChunkBackend;
use crate::error::{ChunkError, CorruptReason};
use crate::format::{decode_chunk, encode_chunk};
use crate::id::{chunk_id, is_zero, ChunkId, BLOCK_SIZE};

/// Candidates deleted per hold of the exclusive sweep lock, so inserters wait at most one
/// batch's worth of unlinks.
const SWEEP_BATCH: usize = 128;

/// The chunk store of one region: encodes, verifies and garbage-collects chunks on a
/// [`ChunkBackend`]. Share one instance per backend (behind an `Arc`): the sweep lock only
/// orders operations that go through the same instance.
#[derive(Debug)]
pub struct ChunkStore {
    backend: Arc<dyn ChunkBackend>,
    /// Shared by inserters, exclusive for the sweeper (see the crate docs, "Garbage collection").
    sweep_lock: RwLock<()>,
    /// Serialises quarantining so two readers of one corrupt chunk cannot move a good copy
    /// that an inserter wrote in between.
    quarantine_lock: Mutex<()>,
}

/// Proof that no sweep is deleting chunks. Hold it from "ensure the chunk is present"
/// through "commit the reference to it" (see the crate docs). Hold at most one per thread:
/// a second one can deadlock against a waiting sweeper.
#[must_use = "the guard protects inserted chunks only while it is held"]
#[derive(Debug)]
pub struct InsertGuard<'a> {
    _shared: RwLockReadGuard<'a, ()>,
}

/// What [`ChunkStore::insert_known`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The chunk was new and has been written.
    Written {
        /// Bytes the chunk file occupies.
        stored_size: u64,
    },
    /// The chunk was already stored; nothing was written.
    AlreadyPresent,
}

/// What one [`ChunkStore::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Chunks deleted.
    pub deleted: u64,
    /// Candidates kept because the re-check found them referenced again.
    pub still_referenced: u64,
    /// Candidates that were unreferenced but already absent.
    pub absent: u64,
}

/// What one [`ChunkStore::scrub`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Chunks that verified.
    pub verified: u64,
    /// Chunks that failed verification (now quarantined).
    pub corrupt: Vec<ChunkId>,
    /// Chunks listed but gone before they could be read (swept or quarantined meanwhile).
    pub vanished: u64,
}

impl ChunkStore {
    /// A store over `backend`.
    pub fn new(backend: Arc<dyn ChunkBackend>) -> Self {
        Self { backend, sweep_lock: RwLock::new(()), quarantine_lock: Mutex::new(()) }
    }

    /// The backend this store writes to.
    pub fn backend(&self) -> &Arc<dyn ChunkBackend> {
        &self.backend
    }

    /// Takes the shared side of the sweep lock; blocks while a sweep batch is deleting.
    pub fn insert_guard(&self) -> InsertGuard<'_> {
        InsertGuard { _shared: self.sweep_lock.read().unwrap_or_else(PoisonError::into_inner) }
    }

    /// Stores `block` (at most [`BLOCK_SIZE`] bytes) and returns its id, or `None` if it is all
    /// zeros (a hole; nothing is stored). Idempotent. Call with an [`InsertGuard`] held.
    pub fn insert(&self, block: &[u8]) -> Result<Option<ChunkId>, ChunkError> {
        check_len(block)?;
        if is_zero(block) {
            return Ok(None);
        }
        let id = chunk_id(block);
        self.write_unless_present(&id, block)?;
        Ok(Some(id))
    }

    /// Stores `block` under `id`, which the caller has already computed with
    /// [`crate::chunk_id`]. A wrong id is not detected here; the first read of it reports
    /// the chunk corrupt. All-zero blocks are refused ([`ChunkError::ZeroBlock`]).
    /// Call with an [`InsertGuard`] held.
    pub fn insert_known(&self, id: &ChunkId, block: &[u8]) -> Result<Inserted, ChunkError> {
        check_len(block)?;
        if is_zero(block) {
            return Err(ChunkError::ZeroBlock);
        }
        debug_assert_eq!(chunk_id(block), *id, "insert_known called with a wrong id");
        self.write_unless_present(id, block)
    }

    fn write_unless_present(&self, id: &ChunkId, block: &[u8]) -> Result<Inserted, ChunkError> {
        if self.backend.stat(id)?.is_some() {
            return Ok(Inserted::AlreadyPresent);
        }
        let file = encode_chunk(block);
        self.backend.put(id, &file)?;
        Ok(Inserted::Written { stored_size: file.len() as u64 })
    }

    /// Copies chunk `id` from `source` (another region's store) unless this store has it,
    /// returning the bytes written (0 when present). The source file is verified (decoded and
    /// hashed, a corrupt one quarantined) and then stored as it is: copies between regions skip
    /// re-compressing, which is most of the cost of writing a chunk. Call with an
    /// [`InsertGuard`] held.
    pub fn copy_from(&self, source: &ChunkStore, id: &ChunkId) -> Result<u64, ChunkError> {
        if self.backend.stat(id)?.is_some() {
            return Ok(0);
        }
        let file = source.backend.get(id)?.ok_or(ChunkError::NotFound { id: *id })?;
        if decode_chunk(id, &file).is_ok() {
            self.backend.put(id, &file)?;
            return Ok(file.len() as u64);
        }
        // A corrupt source file: `read` quarantines it, or finds a good copy written since.
        let block = source.read(id)?;
        match self.insert_known(id, &block)? {
            Inserted::Written { stored_size } => Ok(stored_size),
            Inserted::AlreadyPresent => Ok(0),
        }
    }

    /// The block stored under `id`, verified against its id. A chunk that fails verification
    /// is moved to quarantine and reported as [`ChunkError::Corrupt`]; it is never returned.
    pub fn read(&self, id: &ChunkId) -> Result<Vec<u8>, ChunkError> {
        let file = self.backend.get(id)?.ok_or(ChunkError::NotFound { id: *id })?;
        match decode_chunk(id, &file) {
            Ok(block) => Ok(block),
            Err(reason) => self.quarantine_corrupt(id, reason),
        }
    }

    fn quarantine_corrupt(&self, id: &ChunkId, reason: CorruptReason) -> Result<Vec<u8>, ChunkError> {
        let _serial = self.quarantine_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Look again under the lock: a concurrent reader may have quarantined it already, and
        // an inserter may have written a good copy since.
        let Some(file) = self.backend.get(id)? else {
            return Err(ChunkError::Corrupt { id: *id, reason, quarantined: true });
        };
        let reason = match decode_chunk(id, &file) {
            Ok(block) => return Ok(block),
            Err(reason) => reason,
        };
        let quarantined = match self.backend.quarantine(id) {
            Ok(_) => {
                tracing::warn!(chunk = %id, %reason, "corrupt chunk moved to quarantine");
                true
            }
            Err(error) => {
                tracing::error!(chunk = %id, %reason, %error, "corrupt chunk could not be quarantined");
                false
            }
        };
        Err(ChunkError::Corrupt { id: *id, reason, quarantined })
    }

    /// Whether `id` is stored (unverified; see [`ChunkStore::scrub`]).
    pub fn contains(&self, id: &ChunkId) -> Result<bool, ChunkError> {
        Ok(self.backend.stat(id)?.is_some())
    }

    /// Bytes the chunk file of `id` occupies, or `None` if it is not stored.
    pub fn stored_size(&self, id: &ChunkId) -> Result<Option<u64>, ChunkError> {
        Ok(self.backend.stat(id)?.map(|m| m.size))
    }

    /// Deletes each of `candidates` for which `still_unreferenced` returns true, asked under
    /// the exclusive sweep lock so no inserter can reference the chunk between the check and
    /// the unlink.
    ///
    /// `still_unreferenced` must read the caller's committed reference counts and must not
    /// take an [`InsertGuard`] or call back into this store.
    pub fn sweep(
        &self,
        candidates: &[ChunkId],
        still_unreferenced: impl Fn(&ChunkId) -> bool,
    ) -> Result<SweepReport, ChunkError> {
        let mut report = SweepReport::default();
        for batch in candidates.chunks(SWEEP_BATCH) {
            let _exclusive = self.sweep_lock.write().unwrap_or_else(PoisonError::into_inner);
            for id in batch {
                if !still_unreferenced(id) {
                    report.still_referenced += 1;
                } else if self.backend.delete(id)? {
                    report.deleted += 1;
                } else {
                    report.absent += 1;
                }
            }
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                still_referenced = report.still_referenced,
                absent = report.absent,
                "chunk sweep"
            );
        }
        Ok(report)
    }

    /// Chunks stored but unknown to the caller (`is_known` false) whose file was written at
    /// least `grace` before `now`: leftovers of uploads that never committed. Sorted. Pass
    /// them to [`ChunkStore::sweep`] with the negation of `is_known`, or use
    /// [`ChunkStore::sweep_orphans`].
    pub fn orphans(
        &self,
        grace: Duration,
        now: SystemTime,
        is_known: impl Fn(&ChunkId) -> bool,
    ) -> Result<Vec<ChunkId>, ChunkError> {
        let mut old = Vec::new();
        self.backend.list(&mut |meta| {
            if older_than(meta.written, grace, now) {
                old.push(meta.id);
            }
        })?;
        old.retain(|id| !is_known(id));
        old.sort_unstable();
        Ok(old)
    }

    /// [`ChunkStore::orphans`] followed by [`ChunkStore::sweep`] with `is_known` re-checked
    /// under the lock.
    pub fn sweep_orphans(
        &self,
        grace: Duration,
        now: SystemTime,
        is_known: impl Fn(&ChunkId) -> bool,
    ) -> Result<SweepReport, ChunkError> {
        let orphans = self.orphans(grace, now, &is_known)?;
        self.sweep(&orphans, |id| !is_known(id))
    }

    /// Removes temp files of interrupted inserts written at least `grace` before `now`.
    /// `grace` must exceed the longest single insert. Returns how many were removed.
    pub fn remove_stale_temp(&self, grace: Duration, now: SystemTime) -> Result<u64, ChunkError> {
        let cutoff = now.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        self.backend.remove_stale_temp(cutoff)
    }

    /// Reads and verifies every stored chunk, quarantining the corrupt ones.
    pub fn scrub(&self) -> Result<ScrubReport, ChunkError> {
        let mut ids = Vec::new();
        self.backend.list(&mut |meta| ids.push(meta.id))?;
        let mut report = ScrubReport::default();
        for id in ids {
            match self.read(&id) {
                Ok(_) => report.verified += 1,
                Err(ChunkError::NotFound { .. }) => report.vanished += 1,
                Err(ChunkError::Corrupt { id, .. }) => report.corrupt.push(id),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}

fn check_len(block: &[u8]) -> Result<(), ChunkError> {
    if block.len() > BLOCK_SIZE {
        return Err(ChunkError::TooLarge { len: block.len(), max: BLOCK_SIZE });
    }
    Ok(())
}

/// Whether `written` lies at least `grace` before `now` (a future time never does).
fn older_than(written: SystemTime, grace: Duration, now: SystemTime) -> bool {
    now.duration_since(written).is_ok_and(|age| age >= grace)
}
