//! The filesystem backend: one root directory per region (layout in the crate docs).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ChunkBackend, ChunkMeta};
use crate::error::ChunkError;
use crate::id::ChunkId;

/// Prefix of temp files; never the start of a final chunk name (which is all hex).
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Chunk files in a directory tree on a local filesystem.
///
/// One process owns a root at a time: [`LocalBackend::open`] deletes every temp file under
/// it, which would break a write in flight from another process.
#[derive(Debug)]
pub struct LocalBackend {
    root: PathBuf,
    chunks: PathBuf,
    quarantine: PathBuf,
    temp_seq: AtomicU64,
}

impl LocalBackend {
    /// Opens (creating if needed) the store under `root` and removes temp files that an
    /// interrupted earlier run left behind.
    pub fn open(root: &Path) -> Result<Self, ChunkError> {
        let backend = Self {
            root: root.to_path_buf(),
            chunks: root.join("chunks"),
            quarantine: root.join("quarantine"),
            temp_seq: AtomicU64::new(0),
        };
        for dir in [&backend.root, &backend.chunks, &backend.quarantine] {
            create_dir_durably(dir)?;
        }
        let removed = backend.remove_temp_files(None)?;
        if removed > 0 {
            tracing::info!(root = %root.display(), removed, "removed temp files of interrupted chunk writes");
        }
        Ok(backend)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file of `id` lives: `<root>/chunks/<hex 0..2>/<hex 2..4>/<hex>`.
    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.chunks.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

    /// The quarantine directory, `<root>/quarantine`.
    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    fn temp_path(&self, dir: &Path, id: &ChunkId) -> PathBuf {
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("{TEMP_PREFIX}{id}-{}-{seq}", std::process::id()))
    }

    /// Calls `visit` with every leaf directory (`chunks/xx/yy`).
    fn for_each_leaf(&self, visit: &mut dyn FnMut(&Path) -> Result<(), ChunkError>) -> Result<(), ChunkError> {
        for first in read_dir_names(&self.chunks)? {
            if !is_hex_pair(&first) {
                continue;
            }
            let first = self.chunks.join(first);
            for second in read_dir_names(&first)? {
                if is_hex_pair(&second) {
                    visit(&first.join(second))?;
                }
            }
        }
        Ok(())
    }

    /// Removes temp files, all of them or those written before `cutoff`.
    fn remove_temp_files(&self, cutoff: Option<SystemTime>) -> Result<u64, ChunkError> {
        let mut removed = 0;
        self.for_each_leaf(&mut |leaf| {
            for name in read_dir_names(leaf)? {
                if !name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let path = leaf.join(&name);
                if let Some(cutoff) = cutoff {
                    match fs::symlink_metadata(&path).and_then(|m| m.modified()) {
                        Ok(written) if written < cutoff => {}
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(ChunkError::io(path, e)),
                    }
                }
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ChunkError::io(path, e)),
                }
            }
            Ok(())
        })?;
        Ok(removed)
    }
}

impl ChunkBackend for LocalBackend {
    fn put(&self, id: &ChunkId, data: &[u8]) -> Result<(), ChunkError> {
        let path = self.chunk_path(id);
        let dir = path.parent().expect("chunk path has a parent");
        let temp = self.temp_path(dir, id);
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // First chunk in this leaf: create it, then retry once.
                create_dir_durably(dir)?;
                OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| ChunkError::io(&temp, e))?
            }
            Err(e) => return Err(ChunkError::io(&temp, e)),
        };
        let written = file.write_all(data).and_then(|()| file.sync_data());
        drop(file);
        if let Err(e) = written.and_then(|()| fs::rename(&temp, &path)) {
            let _ = fs::remove_file(&temp);
            return Err(ChunkError::io(&path, e));
        }
        sync_dir(dir)
    }

    fn get(&self, id: &ChunkId) -> Result<Option<Vec<u8>>, ChunkError> {
        let path = self.chunk_path(id);
        match fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChunkError::io(path, e)),
        }
    }

    fn stat(&self, id: &ChunkId) -> Result<Option<ChunkMeta>, ChunkError> {
        let path = self.chunk_path(id);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                let written = meta.modified().map_err(|e| ChunkError::io(&path, e))?;
                Ok(Some(ChunkMeta { id: *id, size: meta.len(), written }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChunkError::io(path, e)),
        }
    }

    fn delete(&self, id: &ChunkId) -> Result<bool, ChunkError> {
        // No directory fsync: a delete undone by power loss leaves an orphan, which the
        // orphan sweep removes again.
        let path = self.chunk_path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ChunkError::io(path, e)),
        }
    }

    fn list(&self, visit: &mut dyn FnMut(ChunkMeta)) -> Result<(), ChunkError> {
        self.for_each_leaf(&mut |leaf| {
            for name in read_dir_names(leaf)? {
                let Ok(id) = name.parse::<ChunkId>() else { continue };
                let path = leaf.join(&name);
                match fs::symlink_metadata(&path) {
                    Ok(meta) => {
                        let written = meta.modified().map_err(|e| ChunkError::io(&path, e))?;
                        visit(ChunkMeta { id, size: meta.len(), written });
                    }
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ChunkError::io(path, e)),
                }
            }
            Ok(())
        })
    }

    fn quarantine(&self, id: &ChunkId) -> Result<bool, ChunkError> {
        let path = self.chunk_path(id);
        // A timestamp keeps every corrupt copy if the same id goes bad twice.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let target = self.quarantine.join(format!("{id}.{nanos}"));
        match fs::rename(&path, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(ChunkError::io(path, e)),
        }
        sync_dir(&self.quarantine)?;
        sync_dir(path.parent().expect("chunk path has a parent"))?;
        Ok(true)
    }

    fn remove_stale_temp(&self, cutoff: SystemTime) -> Result<u64, ChunkError> {
        self.remove_temp_files(Some(cutoff))
    }
}

fn is_hex_pair(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Names in `dir` (non-UTF-8 names skipped); an absent directory has none.
fn read_dir_names(dir: &Path) -> Result<Vec<String>, ChunkError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ChunkError::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ChunkError::io(dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn sync_dir(dir: &Path) -> Result<(), ChunkError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| ChunkError::io(dir, e))
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entries changed so that
/// the new directory survives power loss.
fn create_dir_durably(dir: &Path) -> Result<(), ChunkError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        // Another thread may have created it first but not yet made it durable: fsync anyway.
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ChunkError::io(dir, e)),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}
