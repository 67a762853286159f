//! Small file helpers shared by the image recipes, each error naming its path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ImageError;

/// The ext4 creation time, the initramfs timestamps and every file time in a root disk, fixed
/// so rebuilds do not differ by clock. Also the `SOURCE_DATE_EPOCH` of package scripts.
pub(crate) const FIXED_TIME: u32 = 1_700_000_000;

/// Writes `contents` to `path` (creating its parent directories) with permissions `mode`.
pub(crate) fn write(path: &Path, contents: &str, mode: u32) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    }
    fs::write(path, contents).map_err(|e| ImageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ImageError::io(path, e))
}

/// Creates `path` and its parents, and gives `path` permissions `mode`.
pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), ImageError> {
    fs::create_dir_all(path).map_err(|e| ImageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ImageError::io(path, e))
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(path).map_err(|e| ImageError::io(path, e))
}

/// Copies a file, keeping its permissions.
pub(crate) fn copy(from: &Path, to: &Path) -> Result<(), ImageError> {
    fs::copy(from, to).map(drop).map_err(|e| ImageError::io(from, e))
}

/// Total bytes of the regular files under `dir`.
pub(crate) fn tree_size(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))? {
        let entry = entry.map_err(|e| ImageError::io(dir, e))?;
        let kind = entry.file_type().map_err(|e| ImageError::io(&entry.path(), e))?;
        if kind.is_dir() {
            total += tree_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata().map_err(|e| ImageError::io(&entry.path(), e))?.len();
        }
    }
    Ok(total)
}

/// The mount points in `mountinfo` (the format of `/proc/self/mountinfo`) at or below `dir`.
/// Mount points are the fifth field, with space, tab, newline and backslash octal-escaped.
pub(crate) fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .filter(|point| point.starts_with(dir))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], code) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes a build's scratch directory, unless something is still mounted inside it: a chroot
/// build that was killed can leave `/proc`, `/sys` or `/dev` mounted there, and deleting
/// through such a mount would delete the host's files.
pub(crate) fn remove_scratch(dir: &Path) -> Result<(), ImageError> {
    let Ok(canonical) = dir.canonicalize() else { return Ok(()) };
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounted = mounts_under(&mountinfo, &canonical);
    if let Some(point) = mounted.first() {
        return Err(ImageError::Resolve(format!(
            "not removing {}: {} is still mounted inside it",
            dir.display(),
            point.display()
        )));
    }
    fs::remove_dir_all(dir).map_err(|e| ImageError::io(dir, e))
}

/// Syntax-checks a shell script with `sh -n` under each POSIX shell the host has (dash and
/// busybox, the shells the images run scripts with), returning the shells used, or the first
/// complaint. For tests.
#[cfg(test)]
pub(crate) fn check_sh_syntax(script: &str) -> Result<Vec<&'static str>, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut used = Vec::new();
    for (shell, args) in [("dash", &["-n"][..]), ("busybox", &["sh", "-n"][..])] {
        let child = Command::new(shell).args(args).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let Ok(mut child) = child else { continue };
        child.stdin.take().expect("stdin").write_all(script.as_bytes()).map_err(|e| e.to_string())?;
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("{shell}: {}", String::from_utf8_lossy(&output.stderr)));
        }
        used.push(shell);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_inside_a_directory_only() {
        let mountinfo = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                         30 22 0:5 / /tmp/x/.build-1/root/proc rw - proc proc rw\n\
                         31 22 0:6 / /tmp/x/with\\040space/dev rw - devtmpfs udev rw\n\
                         32 22 0:7 / /tmp/x/.build-10 rw - tmpfs tmpfs rw\n";
        assert_eq!(mounts_under(mountinfo, Path::new("/tmp/x/.build-1")), [PathBuf::from("/tmp/x/.build-1/root/proc")]);
        assert_eq!(mounts_under(mountinfo, Path::new("/tmp/x/with space")), [PathBuf::from("/tmp/x/with space/dev")]);
        assert!(mounts_under(mountinfo, Path::new("/srv")).is_empty());
    }
}
