//! Where volume and snapshot bytes live, per region:
//!
//! ```text
//! <data dir>/regions/<region>/chunks/…          content-addressed chunks (kiln-chunks)
//! <data dir>/regions/<region>/bases/<snap>.raw  a snapshot materialised once, read-only, sparse
//! <data dir>/regions/<region>/volumes/<vol>.qcow2  a volume: empty, or an overlay over a base
//! ```
//!
//! Creating a volume from a snapshot copies nothing per volume: the snapshot's base is built
//! once (every chunk verified as it is read) and each volume is a qcow2 copy-on-write layer
//! over it. Snapshotting a volume reads and hashes only the blocks its own layer holds
//! (`qemu-img map`), taking every other block's chunk id from the base snapshot's index, so
//! the cost follows the change, not the volume size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kiln_chunks::{ChunkId, ChunkStore, LocalBackend, SnapshotIndex, BLOCK_SIZE};
use kiln_disk::{BlockReader, Format, RawWriter};

use crate::error::{CoreError, CoreResult};

fn disk(e: kiln_disk::DiskError) -> CoreError {
    CoreError::Storage(e.to_string())
}

fn chunk(e: kiln_chunks::ChunkError) -> CoreError {
    CoreError::Storage(e.to_string())
}

fn io(context: &str, e: std::io::Error) -> CoreError {
    CoreError::Storage(format!("{context}: {e}"))
}

/// Volume files, snapshot bases and chunk stores of every region.
pub struct Storage {
    root: PathBuf,
    chunk_stores: Mutex<HashMap<String, Arc<ChunkStore>>>,
    /// One lock per base file being built, so concurrent volume creations build it once.
    base_locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
}

impl Storage {
    /// Storage under `<data dir>/regions`.
    pub fn new(data_dir: &Path) -> Self {
        Storage {
            root: data_dir.join("regions"),
            chunk_stores: Mutex::new(HashMap::new()),
            base_locks: Mutex::new(HashMap::new()),
        }
    }

    fn region_dir(&self, region: &str) -> PathBuf {
        self.root.join(region)
    }

    /// The chunk store of a region, opened on first use.
    pub fn chunks(&self, region: &str) -> CoreResult<Arc<ChunkStore>> {
        let mut stores = self.chunk_stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stores.get(region) {
            return Ok(Arc::clone(s));
        }
        let backend = LocalBackend::open(&self.region_dir(region).join("chunks")).map_err(chunk)?;
        let store = Arc::new(ChunkStore::new(Arc::new(backend)));
        stores.insert(region.to_string(), Arc::clone(&store));
        Ok(store)
    }

    /// Bytes of the region's chunk files, counted by walking the directory without opening
    /// the store (opening it clears temp files, which only the serving process may do).
    pub fn stored_bytes(&self, region: &str) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        walk(&self.region_dir(region).join("chunks").join("chunks"))
    }

    /// Path of a volume's qcow2 file.
    pub fn volume_path(&self, region: &str, volume_id: &str) -> PathBuf {
        self.region_dir(region).join("volumes").join(format!("{volume_id}.qcow2"))
    }

    /// Path of a snapshot's materialised base.
    pub fn base_path(&self, region: &str, snapshot_id: &str) -> PathBuf {
        self.region_dir(region).join("bases").join(format!("{snapshot_id}.raw"))
    }

    /// Whether the snapshot's base is already materialised on this host.
    pub fn has_base(&self, region: &str, snapshot_id: &str) -> bool {
        self.base_path(region, snapshot_id).exists()
    }

    fn ensure_dir(path: &Path) -> CoreResult<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating a storage directory", e))?;
        }
        Ok(())
    }

    /// Creates an empty volume of `size` bytes.
    pub fn create_empty(&self, region: &str, volume_id: &str, size: u64) -> CoreResult<()> {
        let path = self.volume_path(region, volume_id);
        Self::ensure_dir(&path)?;
        // A crash between creating the file and recording the volume as available leaves the
        // file; building again must start from scratch, not fail on it.
        let _ = std::fs::remove_file(&path);
        kiln_disk::create_empty(&path, size).map_err(disk)
    }

    /// Creates a volume of `size` bytes as a copy-on-write layer over the snapshot's base.
    pub fn create_from_snapshot(
        &self,
        region: &str,
        volume_id: &str,
        snapshot_id: &str,
        index: &[u8],
        size: u64,
    ) -> CoreResult<()> {
        let base = self.ensure_base(region, snapshot_id, index)?;
        let path = self.volume_path(region, volume_id);
        Self::ensure_dir(&path)?;
        let _ = std::fs::remove_file(&path);
        kiln_disk::create_overlay(&base, Format::Raw, &path, size).map_err(disk)
    }

    /// Builds the snapshot's base file once: a sparse raw image of its blocks, every chunk
    /// verified on read, renamed into place only when complete and then made read-only.
    pub fn ensure_base(&self, region: &str, snapshot_id: &str, index: &[u8]) -> CoreResult<PathBuf> {
        let path = self.base_path(region, snapshot_id);
        let lock = {
            let mut locks = self.base_locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(path.clone()).or_default())
        };
        let _building = lock.lock().unwrap_or_else(|e| e.into_inner());
        if path.exists() {
            return Ok(path);
        }
        Self::ensure_dir(&path)?;
        let index = SnapshotIndex::decode(index).map_err(|e| CoreError::Storage(e.to_string()))?;
        let store = self.chunks(region)?;
        let mut writer = RawWriter::create(&path, index.volume_size()).map_err(disk)?;
        for (i, entry) in index.blocks().iter().enumerate() {
            if let Some(id) = entry {
                let block = store.read(id).map_err(chunk)?;
                writer.write_block(i as u64, &block).map_err(disk)?;
            }
        }
        writer.finish().map_err(disk)?;
        let mut perms = std::fs::metadata(&path).map_err(|e| io("reading base permissions", e))?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&path, perms).map_err(|e| io("making the base read-only", e))?;
        Ok(path)
    }

    /// Removes a snapshot's base file (when no volume uses it any more).
    pub fn drop_base(&self, region: &str, snapshot_id: &str) {
        let _ = std::fs::remove_file(self.base_path(region, snapshot_id));
    }

    /// Removes a volume's file.
    pub fn delete_volume(&self, region: &str, volume_id: &str) -> CoreResult<()> {
        match std::fs::remove_file(self.volume_path(region, volume_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("deleting a volume file", e)),
        }
    }

    /// Grows a volume's file to `size` bytes.
    pub fn grow(&self, region: &str, volume_id: &str, size: u64) -> CoreResult<()> {
        kiln_disk::resize(&self.volume_path(region, volume_id), size).map_err(disk)
    }

    /// Snapshots a volume: reads the blocks its own layer holds, stores them as chunks, and
    /// takes every other block from `base` (the index of the snapshot it was created from).
    /// `commit` runs with the chunk store's insert guard held, after every chunk is durable, so
    /// it can record the references without racing the garbage collector.
    pub fn snapshot_volume(
        &self,
        region: &str,
        volume_id: &str,
        size: u64,
        base: Option<&SnapshotIndex>,
        progress: &dyn Fn(u8),
        commit: &mut dyn FnMut(&SnapshotIndex) -> CoreResult<()>,
    ) -> CoreResult<()> {
        let path = self.volume_path(region, volume_id);
        let changed = kiln_disk::changed_blocks(&path, BLOCK_SIZE as u64).map_err(disk)?;
        let mut blocks: Vec<Option<ChunkId>> = match base {
            Some(b) => b.blocks().to_vec(),
            None => Vec::new(),
        };
        blocks.resize(SnapshotIndex::block_count(size) as usize, None);
        let store = self.chunks(region)?;
        let guard = store.insert_guard();
        if !changed.is_empty() {
            let mut reader = BlockReader::open(&path, Format::Qcow2).map_err(disk)?;
            let total = changed.len();
            for (n, b) in changed.into_iter().enumerate() {
                if b as usize >= blocks.len() {
                    continue;
                }
                let data = reader.read_block(b, BLOCK_SIZE as u64).map_err(disk)?;
                blocks[b as usize] = store.insert(&data).map_err(chunk)?;
                if n % 64 == 63 {
                    progress(((n + 1) * 100 / total) as u8);
                }
            }
        }
        let index = SnapshotIndex::from_blocks(size, blocks).map_err(|e| CoreError::Storage(e.to_string()))?;
        let result = commit(&index);
        drop(guard);
        result
    }
}
