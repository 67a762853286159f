//! The argument vector of every `qemu-img` and `qemu-nbd` invocation, built by pure functions.
//!
//! Nothing here runs a process: the functions only decide the exact words, so the snapshot tests
//! at the bottom show every behaviour change in review. Relative paths are written as `./path`
//! so a file name that begins with `-` is not read as an option and one that contains `:` is not
//! read as a QEMU protocol prefix (`nbd:`, `file:`).

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::Format;

/// qcow2 creation options for Kiln's volumes: 128 KiB clusters split into 32 subclusters of
/// 4 KiB, so a small guest write into an overlay allocates 4 KiB rather than a whole cluster.
pub const QCOW2_VOLUME_OPTIONS: &str = "extended_l2=on,cluster_size=128k";

/// One program and its arguments, ready to run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    /// The program, looked up on `PATH`.
    pub program: &'static str,
    /// The arguments, without the program name.
    pub args: Vec<OsString>,
}

impl ToolCommand {
    fn new(program: &'static str) -> ToolCommand {
        ToolCommand { program, args: Vec::new() }
    }

    fn arg(mut self, arg: impl AsRef<OsStr>) -> ToolCommand {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    fn path(self, path: &Path) -> ToolCommand {
        self.arg(path_arg(path))
    }

    /// The arguments as lossy UTF-8, for logs, errors and tests.
    pub fn args_lossy(&self) -> Vec<String> {
        self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }
}

/// Resource limits a tool runs under. `qemu-img` and `qemu-nbd` parse files users upload, so a
/// crafted image must not be able to spin a core or take the host's memory: each runs under
/// `prlimit` (util-linux, on every Debian system), which sets the limits and then execs the tool,
/// so they hold from its first instruction. Wall-clock deadlines are the caller's (`run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds before the kernel kills the tool (SIGXCPU, then SIGKILL).
    pub cpu_secs: u64,
    /// Address space, bytes: allocations beyond it fail.
    pub address_space_bytes: u64,
}

/// `qemu-img` converts and maps whole images: I/O-bound, with metadata tables of a few hundred
/// MiB at most even for 64 TiB qcow2 files.
pub const QEMU_IMG_LIMITS: Limits = Limits { cpu_secs: 1800, address_space_bytes: 4 << 30 };
/// `qemu-nbd` serves one image for the length of a snapshot or an import.
pub const QEMU_NBD_LIMITS: Limits = Limits { cpu_secs: 7200, address_space_bytes: 4 << 30 };

impl Limits {
    /// The limits of a QEMU tool, `None` for any other program.
    pub fn of(program: &str) -> Option<Limits> {
        match program {
            "qemu-img" => Some(QEMU_IMG_LIMITS),
            "qemu-nbd" => Some(QEMU_NBD_LIMITS),
            _ => None,
        }
    }
}

/// The process to spawn for `cmd`: behind `prlimit` when limits apply.
pub fn bounded(cmd: &ToolCommand, limits: Option<Limits>) -> std::process::Command {
    match limits {
        Some(l) => {
            let mut c = std::process::Command::new("prlimit");
            c.arg(format!("--cpu={}", l.cpu_secs))
                .arg(format!("--as={}", l.address_space_bytes))
                .arg("--")
                .arg(cmd.program)
                .args(&cmd.args);
            c
        }
        None => {
            let mut c = std::process::Command::new(cmd.program);
            c.args(&cmd.args);
            c
        }
    }
}

/// Writes a relative path as `./path` so QEMU reads it as a plain file name.
fn path_arg(path: &Path) -> OsString {
    if path.is_absolute() || path.starts_with(".") || path.starts_with("..") {
        path.as_os_str().to_os_string()
    } else {
        let mut arg = OsString::from("./");
        arg.push(path.as_os_str());
        arg
    }
}

/// `qemu-img create`: a qcow2 overlay whose backing file is `base`. `base` must be absolute,
/// because QEMU stores the string as given and resolves a relative one against the overlay.
pub fn create_overlay(base: &Path, base_format: Format, overlay: &Path, size_bytes: u64) -> ToolCommand {
    ToolCommand::new("qemu-img")
        .arg("create")
        .arg("-q")
        .arg("-f")
        .arg("qcow2")
        .arg("-o")
        .arg(QCOW2_VOLUME_OPTIONS)
        .arg("-b")
        .path(base)
        .arg("-F")
        .arg(base_format.as_str())
        .path(overlay)
        .arg(size_bytes.to_string())
}

/// `qemu-img create`: an empty qcow2 volume with Kiln's volume options.
pub fn create_empty(path: &Path, size_bytes: u64) -> ToolCommand {
    ToolCommand::new("qemu-img")
        .arg("create")
        .arg("-q")
        .arg("-f")
        .arg("qcow2")
        .arg("-o")
        .arg(QCOW2_VOLUME_OPTIONS)
        .path(path)
        .arg(size_bytes.to_string())
}

/// `qemu-img resize` to an absolute size. Never passes `--shrink`, so QEMU itself refuses to
/// shrink a qcow2 image even if a caller's check were wrong.
pub fn resize(path: &Path, format: Format, new_size: u64) -> ToolCommand {
    ToolCommand::new("qemu-img")
        .arg("resize")
        .arg("-q")
        .arg("-f")
        .arg(format.as_str())
        .path(path)
        .arg(new_size.to_string())
}

/// `qemu-img info --output=json`. With no format QEMU probes the file's contents; see the
/// crate docs for when that is unsafe.
pub fn info(path: &Path, format: Option<Format>) -> ToolCommand {
    let cmd = ToolCommand::new("qemu-img").arg("info").arg("--output=json");
    let cmd = match format {
        Some(format) => cmd.arg("-f").arg(format.as_str()),
        None => cmd,
    };
    cmd.path(path)
}

/// `qemu-img map --output=json`: the allocation status of every extent of the image.
///
/// `-U` (force share) lets it read an image a running VM has open: Kiln only snapshots such a
/// disk while the VM's CPUs are paused and its I/O drained (see `kiln_vm::VmHandle::frozen`), so
/// the bytes are a consistent point in time, and QEMU's lock would otherwise refuse the open.
pub fn map(path: &Path, format: Format) -> ToolCommand {
    ToolCommand::new("qemu-img").arg("map").arg("-U").arg("--output=json").arg("-f").arg(format.as_str()).path(path)
}

/// `qemu-img convert`, sparse output, default options for the target format.
pub fn convert(src: &Path, src_format: Format, dst: &Path, dst_format: Format) -> ToolCommand {
    ToolCommand::new("qemu-img")
        .arg("convert")
        .arg("-q")
        .arg("-f")
        .arg(src_format.as_str())
        .arg("-O")
        .arg(dst_format.as_str())
        .path(src)
        .path(dst)
}

/// `qemu-nbd`: export `path` read-only on a unix socket to one client at a time, staying in
/// the foreground (so the caller owns the process) and surviving the client's disconnects.
///
/// The image is opened with file locking off, for the same reason as `map`'s `-U` (qemu-nbd
/// has no `-U`): the image may be open in a paused VM.
pub fn nbd_serve(path: &Path, format: Format, socket: &Path) -> ToolCommand {
    let mut socket_arg = OsString::from("--socket=");
    socket_arg.push(socket.as_os_str());
    let mut image =
        OsString::from(format!("driver={},file.driver=file,file.locking=off,file.filename=", format.as_str()));
    // In an option string a comma ends the value unless doubled.
    image.push(path_arg(path).to_string_lossy().replace(',', ",,"));
    ToolCommand::new("qemu-nbd")
        .arg("--read-only")
        .arg("--persistent")
        .arg("--shared=1")
        .arg(socket_arg)
        .arg("--image-opts")
        .arg(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cmd: &ToolCommand) -> String {
        let mut words = vec![cmd.program.to_string()];
        words.extend(cmd.args_lossy());
        words.join(" ")
    }

    #[test]
    fn overlay_argv_names_absolute_backing_file_and_volume_options() {
        let cmd =
            create_overlay(Path::new("/d/base/snap-1.raw"), Format::Raw, Path::new("/d/vol/vol-1.qcow2"), 8 << 30);
        assert_eq!(
            argv(&cmd),
            "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k -b /d/base/snap-1.raw -F raw \
             /d/vol/vol-1.qcow2 8589934592"
        );
    }

    #[test]
    fn empty_volume_argv() {
        let cmd = create_empty(Path::new("/d/vol/vol-2.qcow2"), 1 << 30);
        assert_eq!(
            argv(&cmd),
            "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k /d/vol/vol-2.qcow2 1073741824"
        );
    }

    #[test]
    fn resize_argv_never_shrinks() {
        let cmd = resize(Path::new("/d/v.qcow2"), Format::Qcow2, 2 << 30);
        assert_eq!(argv(&cmd), "qemu-img resize -q -f qcow2 /d/v.qcow2 2147483648");
    }

    #[test]
    fn info_argv_probes_only_without_format() {
        assert_eq!(argv(&info(Path::new("/d/x"), None)), "qemu-img info --output=json /d/x");
        assert_eq!(argv(&info(Path::new("/d/x"), Some(Format::Raw))), "qemu-img info --output=json -f raw /d/x");
    }

    #[test]
    fn map_argv() {
        assert_eq!(
            argv(&map(Path::new("/d/v.qcow2"), Format::Qcow2)),
            "qemu-img map -U --output=json -f qcow2 /d/v.qcow2"
        );
    }

    #[test]
    fn convert_argv() {
        let cmd = convert(Path::new("/d/a.raw"), Format::Raw, Path::new("/d/.a.qcow2.tmp"), Format::Qcow2);
        assert_eq!(argv(&cmd), "qemu-img convert -q -f raw -O qcow2 /d/a.raw /d/.a.qcow2.tmp");
    }

    #[test]
    fn nbd_argv_is_read_only_foreground_and_persistent() {
        let cmd = nbd_serve(Path::new("/d/v.qcow2"), Format::Qcow2, Path::new("/tmp/k/nbd.sock"));
        assert_eq!(
            argv(&cmd),
            "qemu-nbd --read-only --persistent --shared=1 --socket=/tmp/k/nbd.sock --image-opts \
             driver=qcow2,file.driver=file,file.locking=off,file.filename=/d/v.qcow2"
        );
    }

    #[test]
    fn relative_paths_cannot_read_as_options_or_protocols() {
        assert_eq!(argv(&info(Path::new("-h"), None)), "qemu-img info --output=json ./-h");
        assert_eq!(argv(&info(Path::new("nbd:host:1"), None)), "qemu-img info --output=json ./nbd:host:1");
        assert_eq!(argv(&info(Path::new("./a"), None)), "qemu-img info --output=json ./a");
        assert_eq!(argv(&info(Path::new("../a"), None)), "qemu-img info --output=json ../a");
    }
}
