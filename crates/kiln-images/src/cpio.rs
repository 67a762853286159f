//! A writer for the `newc` cpio format, the only archive format the Linux kernel unpacks as an
//! initramfs.
//!
//! Written here rather than by running `cpio` because the host has no `cpio` binary and because
//! every field is then under our control: inode numbers are assigned in order, owners are root
//! and all timestamps are one fixed value, so the same inputs always give the same bytes.

use std::io::{self, Write};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK` and `S_IFCHR` as they appear in a cpio mode field.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Streams a `newc` archive to `W`.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
    mtime: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive whose entries all carry `mtime` (seconds since the epoch).
    pub fn new(out: W, mtime: u32) -> CpioWriter<W> {
        CpioWriter { out, next_ino: 1, written: 0, mtime }
    }

    /// Adds a directory. Parents must be added first: the kernel does not create them.
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data)
    }

    /// Adds a symbolic link; the target is stored as the entry's data.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node, e.g. `/dev/console`, which the kernel opens for PID 1's
    /// stdio before any devtmpfs is mounted.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, 1, (0, 0), 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        // The kernel expects names without a leading slash, like `cpio -o` writes them.
        let name = path.trim_start_matches('/');
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{path}: over 4 GiB")))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, ino, mode, nlink, rdev, size)?;
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad()
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), size: u32) -> io::Result<()> {
        let namesize = name.len() as u32 + 1;
        let fields = [ino, mode, 0, 0, nlink, self.mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.written += 110 + u64::from(namesize);
        self.pad()
    }

    /// Header-plus-name and data are each padded to a multiple of four bytes.
    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4)) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize])?;
        self.written += pad;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(archive: &[u8], offset: usize, index: usize) -> u32 {
        let start = offset + 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&archive[start..start + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn writes_aligned_newc_entries_and_a_trailer() {
        let mut w = CpioWriter::new(Vec::new(), 0);
        w.dir("/bin", 0o755).unwrap();
        w.file("/init", 0o755, b"#!/bin/sh\n").unwrap();
        w.symlink("/bin/sh", "busybox").unwrap();
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        let archive = w.finish().unwrap();

        assert_eq!(archive.len() % 4, 0);
        assert!(archive.starts_with(b"070701"));
        // First entry: a directory named "bin" (namesize 4), no data.
        assert_eq!(field(&archive, 0, 1), 0o040755);
        assert_eq!(field(&archive, 0, 11), 4);
        assert_eq!(&archive[110..114], b"bin\0");
        // 110 + "bin\0" = 114, padded to 116; no data.
        let second = 116;
        assert_eq!(&archive[second..second + 6], b"070701");
        assert_eq!(field(&archive, second, 0), 2, "inodes are assigned in order");
        assert_eq!(field(&archive, second, 6), 10, "file size");
        // 110 + "init\0" = 115, padded to 116; data 10 bytes padded to 12.
        assert_eq!(&archive[second + 116..second + 126], b"#!/bin/sh\n");
        let third = second + 128;
        assert_eq!(field(&archive, third, 1), 0o120777);
        let text = String::from_utf8_lossy(&archive);
        assert!(text.contains("dev/console\0"));
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn device_numbers_are_in_rdev_fields() {
        let mut w = CpioWriter::new(Vec::new(), 7);
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let archive = w.finish().unwrap();
        assert_eq!(field(&archive, 0, 1), 0o020600);
        assert_eq!(field(&archive, 0, 5), 7, "mtime");
        assert_eq!((field(&archive, 0, 9), field(&archive, 0, 10)), (5, 1));
    }

    #[test]
    fn identical_input_gives_identical_bytes() {
        let build = || {
            let mut w = CpioWriter::new(Vec::new(), 0);
            w.file("a", 0o644, b"x").unwrap();
            w.finish().unwrap()
        };
        assert_eq!(build(), build());
    }
}
