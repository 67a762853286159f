//! An in-memory backend for tests of callers.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{ChunkBackend, ChunkMeta};
use crate::error::ChunkError;
use crate::id::ChunkId;

/// A backend that keeps chunk files in memory. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    live: BTreeMap<ChunkId, (Vec<u8>, SystemTime)>,
    quarantine: Vec<(ChunkId, Vec<u8>)>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overwrites the stored bytes of `id` in place, bypassing `put`: a stand-in for bit rot
    /// in tests. Returns whether `id` existed.
    pub fn tamper(&self, id: &ChunkId, bytes: Vec<u8>) -> bool {
        match self.state().live.get_mut(id) {
            Some(entry) => {
                entry.0 = bytes;
                true
            }
            None => false,
        }
    }

    /// Ids currently in quarantine, in the order they arrived.
    pub fn quarantined(&self) -> Vec<ChunkId> {
        self.state().quarantine.iter().map(|(id, _)| *id).collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ChunkBackend for MemoryBackend {
    fn put(&self, id: &ChunkId, data: &[u8]) -> Result<(), ChunkError> {
        self.state().live.insert(*id, (data.to_vec(), SystemTime::now()));
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, ChunkError> {
        Ok(self.state().live.get(id).map(|(data, _)| data.clone()))
    }

    fn stat(&self, id: &ChunkId) -> Result<Option<ChunkMeta>, ChunkError> {
        Ok(self.state().live.get(id).map(|(data, written)| ChunkMeta {
            id: *id,
            size: data.len() as u64,
            written: *written,
        }))
    }

    fn delete(&self, id: &ChunkId) -> Result<bool, ChunkError> {
        Ok(self.state().live.remove(id).is_some())
    }

    fn list(&self, visit: &mut dyn FnMut(ChunkMeta)) -> Result<(), ChunkError> {
        // Copy out first so `visit` may call back into the backend.
        let metas: Vec<ChunkMeta> = self
            .state()
            .live
            .iter()
            .map(|(id, (data, written))| ChunkMeta { id: *id, size: data.len() as u64, written: *written })
            .collect();
        metas.into_iter().for_each(visit);
        Ok(())
    }

    fn quarantine(&self, id: &ChunkId) -> Result<bool, ChunkError> {
        let mut state = self.state();
        match state.live.remove(id) {
            Some((data, _)) => {
                state.quarantine.push((*id, data));
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
