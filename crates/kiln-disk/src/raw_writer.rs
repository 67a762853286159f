//! [`RawWriter`]: builds a sparse raw image from blocks, crash-safely.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::block_reader::block_offset;
use crate::error::{io_err, DiskError, Result};
use crate::qemu_img::parent_dir;
use crate::{is_zero, sync_dir, BLOCK_SIZE};

/// Writes a raw image of a fixed size from [`BLOCK_SIZE`] blocks, in any order.
///
/// The image is built under a temporary name in the destination's directory, starts as one
/// hole, and all-zero blocks are not written, so they cost no disk. [`RawWriter::finish`] syncs
/// the file, renames it over `path` and syncs the directory; dropping the writer without
/// finishing removes the temporary file and leaves `path` untouched.
#[derive(Debug)]
pub struct RawWriter {
    temp: NamedTempFile,
    path: PathBuf,
    size: u64,
    /// One bit per block: set once non-zero bytes were written there, so that a later all-zero
    /// write to the same block is really written instead of skipped.
    written: Vec<u64>,
}

impl RawWriter {
    /// Starts a raw image of `size_bytes` that will appear at `path` when finished.
    pub fn create(path: &Path, size_bytes: u64) -> Result<RawWriter> {
        let dir = parent_dir(path);
        let temp = tempfile::Builder::new()
            .prefix(".kiln-raw-")
            .tempfile_in(dir)
            .map_err(io_err("create temporary file in", dir))?;
        temp.as_file().set_len(size_bytes).map_err(io_err("set length of", temp.path()))?;
        let blocks = size_bytes.div_ceil(BLOCK_SIZE);
        Ok(RawWriter {
            temp,
            path: path.to_path_buf(),
            size: size_bytes,
            written: vec![0; blocks.div_ceil(64) as usize],
        })
    }

    /// Size of the image in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes block `index`. `data` is [`BLOCK_SIZE`] bytes, or the remainder for the last block
    /// of an image whose size is not a multiple of it.
    pub fn write_block(&mut self, index: u64, data: &[u8]) -> Result<()> {
        let offset = block_offset(index, BLOCK_SIZE, self.size)?;
        let expected = BLOCK_SIZE.min(self.size - offset);
        if data.len() as u64 != expected {
            return Err(DiskError::Invalid(format!("block {index} must be {expected} bytes, got {}", data.len())));
        }
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        if is_zero(data) {
            if self.written[word] & bit == 0 {
                return Ok(());
            }
            self.written[word] &= !bit;
        } else {
            self.written[word] |= bit;
        }
        self.temp.as_file().write_all_at(data, offset).map_err(io_err("write", self.temp.path()))
    }

    /// Syncs the image, renames it into place (replacing any file at the path) and syncs the
    /// directory.
    pub fn finish(self) -> Result<()> {
        self.temp.as_file().sync_all().map_err(io_err("sync", self.temp.path()))?;
        self.temp.persist(&self.path).map_err(|e| DiskError::Io {
            op: "rename into place",
            path: self.path.clone(),
            source: e.error,
        })?;
        sync_dir(parent_dir(&self.path))
    }
}
