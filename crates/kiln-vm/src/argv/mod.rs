//! The `qemu-system-x86_64` argument vector of a VM, built by a pure function from a typed
//! [`VmSpec`].
//!
//! Nothing here starts a process, so the snapshot tests at the bottom show every change to what
//! Kiln asks QEMU for. Choices that are not obvious from the words themselves:
//!
//! - `-nodefaults -no-user-config`: QEMU adds nothing Kiln did not ask for (no default NIC, no
//!   CD-ROM, no monitor on stdio, no site-wide config file), so the guest's hardware is exactly
//!   the spec.
//! - Disks are `-blockdev` (format node over a `file` node) plus a virtio-blk device, not
//!   `-drive`: the format is always explicit, so QEMU never probes a guest-writable raw image and
//!   mistakes it for qcow2 (a guest could otherwise name a host file as its backing file).
//! - QMP and the serial log are `-chardev`s rather than `-qmp unix:PATH,...` and
//!   `-serial file:PATH`: only the `-chardev` form has a `path=` option in which a comma can be
//!   escaped, so any path works.
//! - Values inside QEMU's `key=value,...` options have commas doubled, which is QEMU's escape.
//!   Every path must be absolute: the child's working directory is not part of the spec.
//! - Under TCG the CPU model is `max` (the default `qemu64` lacks x86-64-v2, which current
//!   distributions require); under KVM it is `host`.
//! - microvm under TCG gets `tsc_early_khz=2600000 tsc=reliable` appended to the kernel command
//!   line: without them its boots hang at TSC calibration when the host is loaded.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::accel::Accel;

/// The QEMU system emulator Kiln runs, looked up on `PATH`.
pub const QEMU_SYSTEM: &str = "qemu-system-x86_64";

/// Kernel parameters appended for microvm under TCG (see the module docs).
pub const MICROVM_TCG_KERNEL_PARAMS: [&str; 2] = ["tsc_early_khz=2600000", "tsc=reliable"];

/// The longest unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The longest QEMU block node name (32 bytes with its NUL).
pub const MAX_NODE_NAME: usize = 31;

/// The longest virtio-blk serial a guest sees (`VIRTIO_BLK_ID_BYTES`); QEMU cuts longer ones
/// silently, so two volumes could end up with the same serial.
pub const MAX_DISK_SERIAL: usize = 20;

/// The longest network interface name (`IFNAMSIZ` without its NUL).
pub const MAX_IFNAME: usize = 15;

/// The longest fw_cfg file name (`FW_CFG_MAX_FILE_PATH` without its NUL).
pub const MAX_FW_CFG_NAME: usize = 55;

/// A QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `microvm`: no PCI, virtio-mmio devices, direct kernel boot; the fastest to start.
    Microvm,
    /// `q35`: a PCI(e) PC with firmware, for images that bring their own boot loader.
    Q35,
}

impl Machine {
    /// The name QEMU's `-machine` option takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }

    /// The virtio transport suffix: microvm has only virtio-mmio (`-device`), q35 has PCI.
    fn virtio_suffix(self) -> &'static str {
        match self {
            Machine::Microvm => "device",
            Machine::Q35 => "pci",
        }
    }
}

/// The on-disk format of a disk image, always given to QEMU explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    /// A plain byte-for-byte image.
    Raw,
    /// A qcow2 image, possibly an overlay over a backing file named in its header.
    Qcow2,
}

impl DiskFormat {
    /// The name of QEMU's block driver for this format.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// A disk attached as virtio-blk, in the order the guest should enumerate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The block node name and device id: a letter, then letters, digits, `-`, `.` or `_`, at most
    /// [`MAX_NODE_NAME`] bytes. QMP commands on the disk name it by this.
    pub id: String,
    /// The image file; absolute.
    pub path: PathBuf,
    /// The image format.
    pub format: DiskFormat,
    /// Whether the guest may only read it.
    pub read_only: bool,
    /// The serial the guest sees (`/dev/disk/by-id/virtio-<serial>`), at most [`MAX_DISK_SERIAL`]
    /// bytes, so a guest can find a volume by its id.
    pub serial: Option<String>,
}

/// A TCP port forwarded from the host into a user-networking guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostForward {
    /// The host address QEMU listens on.
    pub host_addr: Ipv4Addr,
    /// The host port QEMU listens on.
    pub host_port: u16,
    /// The guest port connections are forwarded to.
    pub guest_port: u16,
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A virtio-net NIC and what it is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// QEMU's user-mode network stack: needs no privileges, reachable only through forwards.
    User {
        /// TCP forwards from the host into the guest.
        host_forwards: Vec<HostForward>,
    },
    /// An existing TAP device (created and bridged by the caller; QEMU runs no scripts).
    Tap {
        /// The TAP interface name, at most [`MAX_IFNAME`] bytes.
        ifname: String,
        /// The guest's MAC address.
        mac: MacAddr,
        /// The network namespace the TAP lives in (a file such as `/run/netns/<name>`); QEMU
        /// is started inside it so it can open the TAP. `None`: the caller's namespace.
        netns: Option<PathBuf>,
    },
}

/// A file exposed to the guest through QEMU's fw_cfg interface
/// (`/sys/firmware/qemu_fw_cfg/by_name/<name>/raw` in a Linux guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfgFile {
    /// The fw_cfg name; must start with `opt/` (the rest of the namespace belongs to QEMU and
    /// firmware), at most [`MAX_FW_CFG_NAME`] bytes.
    pub name: String,
    /// The host file whose bytes are exposed; absolute.
    pub file: PathBuf,
}

/// Everything that decides a VM's QEMU command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The guest's name in QEMU (`-name`), e.g. the instance id, so `ps` and logs tell VMs apart.
    pub name: String,
    /// The machine type.
    pub machine: Machine,
    /// The accelerator (see [`crate::accel::detect`]).
    pub accel: Accel,
    /// Virtual CPUs; at least one.
    pub vcpus: u32,
    /// Guest memory in MiB; at least one.
    pub memory_mib: u32,
    /// A kernel to boot directly; absolute. `None` boots the machine's firmware.
    pub kernel: Option<PathBuf>,
    /// An initrd for [`VmSpec::kernel`]; absolute.
    pub initrd: Option<PathBuf>,
    /// The kernel command line; must be empty without a kernel.
    pub kernel_cmdline: String,
    /// Disks, in guest enumeration order.
    pub disks: Vec<Disk>,
    /// NICs, in guest enumeration order.
    pub nics: Vec<Nic>,
    /// The file the first serial port is written to (the console output); absolute.
    pub serial_log: PathBuf,
    /// The QMP unix socket QEMU listens on; absolute, at most [`MAX_SOCKET_PATH`] bytes.
    pub qmp_socket: PathBuf,
    /// The file QEMU writes its process id to; absolute.
    pub pidfile: PathBuf,
    /// Files exposed through fw_cfg.
    pub fw_cfg: Vec<FwCfgFile>,
    /// SMBIOS type 11 (OEM strings), e.g. systemd credentials (`io.systemd.credential:...`).
    pub smbios_type11: Vec<String>,
    /// Start with the CPUs stopped (`-S`) until QMP `cont`, so the owner can connect and watch
    /// events before the guest runs a single instruction.
    pub start_paused: bool,
    /// Empty PCIe root ports for disks hot-plugged later (q35 only), named by
    /// [`hotplug_port`]. On q35 every disk also sits on a root port of its own, so any disk
    /// but the first can be unplugged while the guest runs.
    pub hotplug_slots: u32,
}

/// The id of the `n`th empty root port of a q35 VM, the `bus` a hot-plugged disk goes on.
pub fn hotplug_port(n: u32) -> String {
    format!("hp{n}")
}

/// A spec QEMU would reject or misread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `vcpus` or `memory_mib` is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The field that is zero.
        field: &'static str,
    },
    /// A path is relative.
    #[error("{what} must be an absolute path: {path:?}")]
    RelativePath {
        /// Which path.
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// A kernel or initrd path contains a comma, which QEMU would split on (multiboot modules).
    #[error("{what} path must not contain a comma: {path:?}")]
    CommaInPath {
        /// Which path.
        what: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// An initrd or a kernel command line without a kernel.
    #[error("{what} given without a kernel")]
    NoKernel {
        /// `initrd` or `kernel_cmdline`.
        what: &'static str,
    },
    /// A disk id QEMU does not accept as a node name.
    #[error("invalid disk id {id:?}: must start with a letter, use only letters, digits, '-', '.', '_', and be at most {MAX_NODE_NAME} bytes")]
    InvalidDiskId {
        /// The id given.
        id: String,
    },
    /// Two disks share an id.
    #[error("duplicate disk id {id:?}")]
    DuplicateDiskId {
        /// The repeated id.
        id: String,
    },
    /// A value is empty or longer than its limit.
    #[error("{what} {value:?} must be 1 to {max} bytes long")]
    BadLength {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: String,
        /// Its limit in bytes.
        max: usize,
    },
    /// Hot-plug slots on a machine without PCIe (microvm).
    #[error("hot-plug slots need the q35 machine type")]
    NoHotplug,
    /// An fw_cfg name outside the `opt/` namespace.
    #[error("fw_cfg name {name:?} must start with \"opt/\"")]
    FwCfgNamespace {
        /// The name given.
        name: String,
    },
}

/// A program and its arguments, ready to run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    /// The program, looked up on `PATH`.
    pub program: &'static str,
    /// The arguments, without the program name.
    pub args: Vec<OsString>,
    /// The network namespace to start the program in (that of its TAPs), if not the caller's.
    pub netns: Option<PathBuf>,
}

impl QemuCommand {
    /// The arguments as lossy UTF-8, for logs, errors and tests.
    pub fn args_lossy(&self) -> Vec<String> {
        self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    fn opt(&mut self, flag: &str, value: impl AsRef<OsStr>) -> &mut Self {
        self.arg(flag).arg(value)
    }
}

/// Builds one QEMU `key=value,...` option, escaping commas inside values.
struct Opts(OsString);

impl Opts {
    /// Starts with a word that needs no escaping (a driver or backend name, `type=11`).
    fn new(head: &str) -> Opts {
        Opts(OsString::from(head))
    }

    fn kv(mut self, key: &str, value: impl AsRef<OsStr>) -> Opts {
        if !self.0.is_empty() {
            self.0.push(",");
        }
        self.0.push(key);
        self.0.push("=");
        self.0.push(escape_commas(value.as_ref()));
        self
    }

    fn on_off(self, key: &str, on: bool) -> Opts {
        self.kv(key, if on { "on" } else { "off" })
    }
}

/// QEMU's option parser ends a value at a comma unless it is doubled.
fn escape_commas(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// Builds the command line for `spec`, or says why QEMU would not accept it as meant.
pub fn build(spec: &VmSpec) -> Result<QemuCommand, SpecError> {
    validate(spec)?;
    let netns = spec.nics.iter().find_map(|nic| match nic {
        Nic::Tap { netns, .. } => netns.clone(),
        Nic::User { .. } => None,
    });
    let mut cmd = QemuCommand { program: QEMU_SYSTEM, args: Vec::new(), netns };
    let virtio = spec.machine.virtio_suffix();

    cmd.opt("-name", Opts::new("").kv("guest", &spec.name).0)
        .opt("-machine", spec.machine.as_str())
        .opt("-accel", spec.accel.as_str())
        .opt(
            "-cpu",
            match spec.accel {
                Accel::Kvm => "host",
                Accel::Tcg => "max",
            },
        )
        .opt("-smp", spec.vcpus.to_string())
        .opt("-m", format!("{}M", spec.memory_mib))
        .arg("-nodefaults")
        .arg("-no-user-config")
        .arg("-nographic")
        .opt("-pidfile", &spec.pidfile)
        .opt("-chardev", Opts::new("socket,id=qmp").kv("path", &spec.qmp_socket).kv("server", "on").kv("wait", "off").0)
        .opt("-mon", "chardev=qmp,mode=control")
        // append: the console log of an instance spans its stops and starts, as on EC2.
        .opt("-chardev", Opts::new("file,id=serial0").kv("path", &spec.serial_log).kv("append", "on").0)
        .opt("-serial", "chardev:serial0");

    if let Some(kernel) = &spec.kernel {
        cmd.opt("-kernel", kernel);
        if let Some(initrd) = &spec.initrd {
            cmd.opt("-initrd", initrd);
        }
        let cmdline = kernel_cmdline(spec);
        if !cmdline.is_empty() {
            cmd.opt("-append", cmdline);
        }
    }

    for (index, disk) in spec.disks.iter().enumerate() {
        let blockdev = Opts::new("")
            .kv("driver", disk.format.as_str())
            .kv("node-name", &disk.id)
            .on_off("read-only", disk.read_only)
            .kv("file.driver", "file")
            .kv("file.filename", &disk.path);
        cmd.opt("-blockdev", blockdev.0);
        let mut device = Opts::new(&format!("virtio-blk-{virtio}")).kv("drive", &disk.id).kv("id", &disk.id);
        if spec.machine == Machine::Q35 {
            let port = format!("disk-port{index}");
            cmd.opt("-device", Opts::new("pcie-root-port").kv("id", &port).kv("chassis", (index + 1).to_string()).0);
            device = device.kv("bus", &port);
        }
        if let Some(serial) = &disk.serial {
            device = device.kv("serial", serial);
        }
        cmd.opt("-device", device.0);
    }

    for (index, nic) in spec.nics.iter().enumerate() {
        let id = format!("net{index}");
        let (netdev, mac) = match nic {
            Nic::User { host_forwards } => {
                let mut netdev = Opts::new("user").kv("id", &id);
                for fwd in host_forwards {
                    let rule = format!("tcp:{}:{}-:{}", fwd.host_addr, fwd.host_port, fwd.guest_port);
                    netdev = netdev.kv("hostfwd", rule);
                }
                (netdev, None)
            }
            Nic::Tap { ifname, mac, .. } => {
                // script=no: QEMU must not run /etc/qemu-ifup as root; the caller owns the TAP.
                let netdev =
                    Opts::new("tap").kv("id", &id).kv("ifname", ifname).kv("script", "no").kv("downscript", "no");
                (netdev, Some(mac))
            }
        };
        cmd.opt("-netdev", netdev.0);
        let mut device = Opts::new(&format!("virtio-net-{virtio}")).kv("netdev", &id).kv("id", &id);
        if let Some(mac) = mac {
            device = device.kv("mac", mac.to_string());
        }
        cmd.opt("-device", device.0);
    }

    for n in 0..spec.hotplug_slots {
        let chassis = (spec.disks.len() as u32 + 1 + n).to_string();
        cmd.opt("-device", Opts::new("pcie-root-port").kv("id", hotplug_port(n)).kv("chassis", chassis).0);
    }

    for entry in &spec.fw_cfg {
        cmd.opt("-fw_cfg", Opts::new("").kv("name", &entry.name).kv("file", &entry.file).0);
    }
    for value in &spec.smbios_type11 {
        cmd.opt("-smbios", Opts::new("type=11").kv("value", value).0);
    }
    if spec.start_paused {
        cmd.arg("-S");
    }
    Ok(cmd)
}

/// The command line as given, plus the microvm-under-TCG parameters it does not already have.
fn kernel_cmdline(spec: &VmSpec) -> String {
    let mut cmdline = spec.kernel_cmdline.trim().to_owned();
    if spec.machine == Machine::Microvm && spec.accel == Accel::Tcg {
        for param in MICROVM_TCG_KERNEL_PARAMS {
            let key = param.split('=').next().unwrap_or(param);
            let present = cmdline.split_whitespace().any(|word| word.split('=').next() == Some(key));
            if !present {
                if !cmdline.is_empty() {
                    cmdline.push(' ');
                }
                cmdline.push_str(param);
            }
        }
    }
    cmdline
}

fn validate(spec: &VmSpec) -> Result<(), SpecError> {
    if spec.vcpus == 0 {
        return Err(SpecError::Zero { field: "vcpus" });
    }
    if spec.memory_mib == 0 {
        return Err(SpecError::Zero { field: "memory_mib" });
    }
    check_len("name", &spec.name, usize::MAX)?;
    absolute("serial_log", &spec.serial_log)?;
    absolute("qmp_socket", &spec.qmp_socket)?;
    absolute("pidfile", &spec.pidfile)?;
    let socket_len = spec.qmp_socket.as_os_str().len();
    if socket_len > MAX_SOCKET_PATH {
        return Err(SpecError::BadLength {
            what: "qmp_socket",
            value: spec.qmp_socket.to_string_lossy().into_owned(),
            max: MAX_SOCKET_PATH,
        });
    }
    match &spec.kernel {
        Some(kernel) => {
            absolute("kernel", kernel)?;
            no_comma("kernel", kernel)?;
            if let Some(initrd) = &spec.initrd {
                absolute("initrd", initrd)?;
                no_comma("initrd", initrd)?;
            }
        }
        None if spec.initrd.is_some() => return Err(SpecError::NoKernel { what: "initrd" }),
        None if !spec.kernel_cmdline.trim().is_empty() => return Err(SpecError::NoKernel { what: "kernel_cmdline" }),
        None => {}
    }
    let mut ids = HashSet::new();
    for disk in &spec.disks {
        if !is_qemu_id(&disk.id) || disk.id.len() > MAX_NODE_NAME {
            return Err(SpecError::InvalidDiskId { id: disk.id.clone() });
        }
        if !ids.insert(disk.id.as_str()) {
            return Err(SpecError::DuplicateDiskId { id: disk.id.clone() });
        }
        absolute("disk path", &disk.path)?;
        if let Some(serial) = &disk.serial {
            check_len("disk serial", serial, MAX_DISK_SERIAL)?;
        }
    }
    for nic in &spec.nics {
        if let Nic::Tap { ifname, .. } = nic {
            check_len("tap ifname", ifname, MAX_IFNAME)?;
        }
    }
    for entry in &spec.fw_cfg {
        check_len("fw_cfg name", &entry.name, MAX_FW_CFG_NAME)?;
        if !entry.name.starts_with("opt/") {
            return Err(SpecError::FwCfgNamespace { name: entry.name.clone() });
        }
        absolute("fw_cfg file", &entry.file)?;
    }
    for value in &spec.smbios_type11 {
        check_len("smbios type 11 string", value, usize::MAX)?;
    }
    if spec.hotplug_slots > 0 && spec.machine != Machine::Q35 {
        return Err(SpecError::NoHotplug);
    }
    Ok(())
}

fn absolute(what: &'static str, path: &Path) -> Result<(), SpecError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(SpecError::RelativePath { what, path: path.to_path_buf() })
    }
}

fn no_comma(what: &'static str, path: &Path) -> Result<(), SpecError> {
    if path.as_os_str().as_bytes().contains(&b',') {
        Err(SpecError::CommaInPath { what, path: path.to_path_buf() })
    } else {
        Ok(())
    }
}

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), SpecError> {
    if value.is_empty() || value.len() > max {
        Err(SpecError::BadLength { what, value: value.to_owned(), max })
    } else {
        Ok(())
    }
}

/// QEMU's rule for ids and node names (`id_wellformed`).
fn is_qemu_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

#[cfg(test)]
mod tests;
