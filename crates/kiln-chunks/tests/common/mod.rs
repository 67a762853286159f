//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use kiln_chunks::{ChunkStore, LocalBackend, BLOCK_SIZE};

/// Deterministic incompressible bytes (xorshift64).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A full block of incompressible bytes.
pub fn random_block(seed: u64) -> Vec<u8> {
    random_bytes(seed, BLOCK_SIZE)
}

/// A full block that compresses well (repeated text with a seed-dependent prefix).
pub fn text_block(seed: u64) -> Vec<u8> {
    let line = format!("{seed:016x} the quick brown fox jumps over the lazy dog\n");
    line.bytes().cycle().take(BLOCK_SIZE).collect()
}

/// A store on a fresh `LocalBackend` at `root`.
pub fn local_store(root: &Path) -> (Arc<LocalBackend>, ChunkStore) {
    let backend = Arc::new(LocalBackend::open(root).unwrap());
    let store = ChunkStore::new(backend.clone());
    (backend, store)
}

/// Every file name under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cond()
}
