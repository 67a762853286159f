//! [`ImageSource`]: streams the non-zero blocks of an uploaded raw or qcow2 image.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::block_reader::BlockReader;
use crate::error::{io_err, DiskError, Result};
use crate::qemu_img::{allocated_extents, info_with_format, nonzero_blocks};
use crate::{is_zero, Format, BLOCK_SIZE};

const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// qcow2 version 3 incompatible feature bit: guest data lives in an external file.
const QCOW2_EXTERNAL_DATA_FILE: u64 = 1 << 2;

/// Reads an image to import block by block, in order, with no temporary copy.
///
/// Yields `(index, bytes)` for exactly the [`BLOCK_SIZE`] blocks that hold a non-zero byte, in
/// ascending order; every block not yielded is all zeros. The last block of an image whose
/// size is not a multiple of the block size is yielded short. Regions the image records as
/// holes or zeroes (`qemu-img map`) are skipped without being read. A raw image is read
/// directly; a qcow2 image through a private `qemu-nbd` ([`BlockReader`]).
///
/// The file is treated as untrusted: its format is decided from its first bytes here, never by
/// QEMU's probing, and a qcow2 image that names a backing file or an external data file, or is
/// encrypted, is refused, because opening it would read other host files.
#[derive(Debug)]
pub struct ImageSource {
    format: Format,
    size: u64,
    candidates: std::vec::IntoIter<u64>,
    reader: Reader,
    path: PathBuf,
}

#[derive(Debug)]
enum Reader {
    Raw(File),
    Nbd(BlockReader),
}

impl ImageSource {
    /// Opens `path`, deciding between raw and qcow2 from its header.
    pub fn open(path: &Path) -> Result<ImageSource> {
        let mut header = Vec::with_capacity(104);
        File::open(path).and_then(|f| f.take(104).read_to_end(&mut header)).map_err(io_err("read header of", path))?;
        let format = sniff(&header).map_err(|reason| DiskError::UnsafeImage { path: path.to_path_buf(), reason })?;
        let info = info_with_format(path, format)?;
        if let Some(backing) = &info.backing_file {
            let reason = format!("names backing file {}", backing.display());
            return Err(DiskError::UnsafeImage { path: path.to_path_buf(), reason });
        }
        if let Some(data_file) = &info.data_file {
            let reason = format!("names external data file {data_file}");
            return Err(DiskError::UnsafeImage { path: path.to_path_buf(), reason });
        }
        let candidates = nonzero_blocks(&allocated_extents(path, format)?, BLOCK_SIZE);
        let (reader, size) = match format {
            Format::Raw => {
                let file = File::open(path).map_err(io_err("open", path))?;
                // qemu-img rounds a raw file's virtual size up to 512 bytes; the file's own
                // length is the image, byte for byte.
                let len = file.metadata().map_err(io_err("stat", path))?.len();
                (Reader::Raw(file), len)
            }
            Format::Qcow2 => (Reader::Nbd(BlockReader::open(path, format)?), info.virtual_size),
        };
        Ok(ImageSource { format, size, candidates: candidates.into_iter(), reader, path: path.to_path_buf() })
    }

    /// The format found in the header.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Size of the disk the image describes, in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, index: u64) -> Result<Vec<u8>> {
        let offset = index * BLOCK_SIZE;
        match &mut self.reader {
            Reader::Nbd(reader) => reader.read_block(index, BLOCK_SIZE),
            Reader::Raw(file) => {
                let mut buf = vec![0u8; BLOCK_SIZE.min(self.size - offset) as usize];
                file.read_exact_at(&mut buf, offset).map_err(io_err("read", &self.path))?;
                Ok(buf)
            }
        }
    }
}

impl Iterator for ImageSource {
    type Item = Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(index) = self.candidates.next() {
            if index * BLOCK_SIZE >= self.size {
                break;
            }
            match self.read(index) {
                Ok(block) if is_zero(&block) => continue,
                Ok(block) => return Some(Ok((index, block))),
                Err(e) => {
                    // Stop after the first failure rather than yield one error per block.
                    self.candidates = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// Decides the format of an untrusted image from its first bytes (at most 104 are looked at).
/// Anything that is not a qcow2 header is raw: QEMU's other formats are never probed.
fn sniff(header: &[u8]) -> Result<Format, String> {
    if header.len() < 4 || header[0..4] != QCOW2_MAGIC {
        return Ok(Format::Raw);
    }
    let be32 = |at: usize| header.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let be64 = |at: usize| header.get(at..at + 8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
    let short = || "truncated qcow2 header".to_string();
    let version = be32(4).ok_or_else(short)?;
    if version != 2 && version != 3 {
        return Err(format!("qcow2 version {version} is not supported"));
    }
    if be64(8).ok_or_else(short)? != 0 {
        return Err("qcow2 image names a backing file".into());
    }
    if be32(32).ok_or_else(short)? != 0 {
        return Err("qcow2 image is encrypted".into());
    }
    if version == 3 && be64(72).ok_or_else(short)? & QCOW2_EXTERNAL_DATA_FILE != 0 {
        return Err("qcow2 image uses an external data file".into());
    }
    Ok(Format::Qcow2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_header(version: u32, backing_offset: u64, crypt: u32, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 104];
        h[0..4].copy_from_slice(&QCOW2_MAGIC);
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing_offset.to_be_bytes());
        h[32..36].copy_from_slice(&crypt.to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h
    }

    #[test]
    fn anything_without_qcow2_magic_is_raw() {
        assert_eq!(sniff(b""), Ok(Format::Raw));
        assert_eq!(sniff(b"KDMV\x01\x00\x00\x00"), Ok(Format::Raw)); // a vmdk header stays raw bytes
        assert_eq!(sniff(&[0u8; 512]), Ok(Format::Raw));
    }

    #[test]
    fn plain_qcow2_is_accepted() {
        assert_eq!(sniff(&qcow2_header(3, 0, 0, 1 << 4)), Ok(Format::Qcow2));
        assert_eq!(sniff(&qcow2_header(2, 0, 0, 0)[..72]), Ok(Format::Qcow2));
    }

    #[test]
    fn qcow2_reaching_other_files_or_encrypted_is_refused() {
        assert!(sniff(&qcow2_header(3, 0x200, 0, 0)).unwrap_err().contains("backing"));
        assert!(sniff(&qcow2_header(3, 0, 0, QCOW2_EXTERNAL_DATA_FILE)).unwrap_err().contains("external"));
        assert!(sniff(&qcow2_header(3, 0, 2, 0)).unwrap_err().contains("encrypted"));
        assert!(sniff(&qcow2_header(4, 0, 0, 0)).is_err());
        assert!(sniff(&qcow2_header(3, 0, 0, 0)[..40]).is_err());
    }
}
