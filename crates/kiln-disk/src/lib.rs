//! Kiln's access to disk image files, through QEMU's own tools (`qemu-img`, `qemu-nbd`) so that
//! every format QEMU can run is a format Kiln can read.
//!
//! # Layout of a volume
//!
//! A snapshot is materialised once as a read-only raw **base** file. A volume cloned from it is a
//! qcow2 **overlay** ([`create_overlay`]) with `extended_l2=on,cluster_size=128k` (4 KiB
//! allocation granularity) whose backing file is the base, named by absolute path. A blank volume
//! is the same qcow2 without a backing file ([`create_empty`]). What an instance wrote is what the
//! overlay's own layer allocates: [`changed_blocks`] turns `qemu-img map` into the sorted list of
//! [`BLOCK_SIZE`] blocks touched, which is all a new snapshot has to store.
//!
//! # Reading and writing blocks
//!
//! - [`BlockReader`] reads the guest-visible bytes of any image, backing chain included, through
//!   a private `qemu-nbd` child, speaking the small NBD subset documented in [`nbd`].
//!   [`NbdClient`] alone connects to any NBD server on a unix socket (a running QEMU's
//!   `nbd-server-start`, `qemu-storage-daemon`).
//! - [`ImageSource`] streams the non-zero blocks of an uploaded raw or qcow2 file for import.
//! - [`RawWriter`] builds a sparse raw file from blocks (temp file, fsync, rename, fsync dir);
//!   [`convert`] turns it into qcow2 for export.
//!
//! # Running the tools
//!
//! Every invocation's argv is built by a pure function in [`argv`] (with snapshot tests) and
//! run without a shell, stdin closed, output captured, under a deadline ([`COMMAND_TIMEOUT`]
//! for metadata commands, a size-scaled one for [`convert`]). A failing tool becomes
//! [`DiskError::ToolFailed`] carrying its stderr; a hung one is killed and becomes
//! [`DiskError::TimedOut`]. `qemu-img` and `qemu-nbd` are looked up on `PATH`.
//!
//! # Format probing is a security decision
//!
//! QEMU guesses a file's format from its contents when none is given, and a guest (or an
//! uploader) controls the contents of a raw image: writing a qcow2 header that names
//! `/etc/shadow` as its backing file turns "read this raw disk" into "read this host file". So
//! the format is always passed explicitly, except in [`info`], which is only for files whose
//! header Kiln itself wrote. [`ImageSource`] decides raw or qcow2 from the header itself and
//! refuses qcow2 files that name a backing or external data file.
//!
//! # Concurrency
//!
//! | operation | may overlap with |
//! |---|---|
//! | reading a base ([`BlockReader`], overlays backed by it) | any other read of it; bases are never written |
//! | [`info`], [`allocated_extents`], [`changed_blocks`] on an overlay | nothing that writes the overlay (QEMU's image lock refuses it while a VM has it open) |
//! | [`resize`] | nothing else on that file |
//! | [`RawWriter`], [`convert`] output | nothing: the result appears only at the final rename |

pub mod argv;
mod block_reader;
mod error;
pub mod nbd;
mod qemu_img;
mod raw_writer;
mod run;
mod source;

use std::fs::File;
use std::path::Path;

pub use block_reader::{BlockReader, NBD_START_TIMEOUT};
pub use error::{DiskError, NbdError, Result};
pub use nbd::NbdClient;
pub use qemu_img::{
    allocated_extents, changed_blocks, convert, create_empty, create_overlay, info, info_with_format, nonzero_blocks,
    resize, top_layer_blocks, Extent, ImageInfo, COMMAND_TIMEOUT, CONVERT_BASE_TIMEOUT, CONVERT_FLOOR_BYTES_PER_SEC,
};
pub use raw_writer::RawWriter;
pub use source::ImageSource;

/// Kiln's block size for snapshots, imports and exports: 512 KiB.
pub const BLOCK_SIZE: u64 = 512 * 1024;

/// An image format this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain bytes: offset N of the file is offset N of the disk.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
}

impl Format {
    /// The name QEMU's tools use for the format.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }

    /// The format for a QEMU format name, if this crate handles it.
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            _ => None,
        }
    }
}

/// True when every byte is zero. Written as a chunked OR so the compiler vectorises it.
pub fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096).all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(error::io_err("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for format in [Format::Raw, Format::Qcow2] {
            assert_eq!(Format::parse(format.as_str()), Some(format));
        }
        assert_eq!(Format::parse("vmdk"), None);
    }

    #[test]
    fn zero_detection_sees_a_single_late_byte() {
        let mut data = vec![0u8; BLOCK_SIZE as usize];
        assert!(is_zero(&data));
        *data.last_mut().unwrap() = 1;
        assert!(!is_zero(&data));
        assert!(is_zero(&[]));
    }
}
