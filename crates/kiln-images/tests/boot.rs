//! Builds the minimal image (or reuses the one cached under the target directory) and boots it
//! on microvm under TCG through kiln-vm, waiting for the ready marker on the serial console.
//! Skipped, with the reason printed, where QEMU, apt or mkfs.ext4 is missing.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_images::{build_minimal, READY_MARKER};
use kiln_vm::argv::{Disk, DiskFormat, HostForward, Machine, Nic, VmSpec};
use kiln_vm::{spawn_vm, Accel, VmConfig, VmState};

/// Wall-clock limit from QEMU starting to the marker; a healthy boot takes a few seconds.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A fixed directory, so repeated runs reuse the image instead of rebuilding it.
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kiln-image-cache")
}

/// A loopback port nothing listens on right now, for QEMU's SSH forward.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind a free port").port()
}

/// The SSH identification line the guest's dropbear sends, retried until `deadline` (DHCP and
/// dropbear start in the background, so they may lag the marker a little).
fn ssh_banner(port: u16, deadline: Instant) -> Option<String> {
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 64];
            if let Ok(n @ 1..) = stream.read(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                return Some(text.lines().next().unwrap_or_default().trim().to_owned());
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

fn overlay(base: &Path, dir: &Path) -> PathBuf {
    let overlay = dir.join("root.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(base)
        .arg(&overlay)
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img create failed");
    overlay
}

#[test]
fn minimal_image_boots_to_the_ready_marker() {
    for (program, arg) in [
        (kiln_vm::argv::QEMU_SYSTEM, "--version"),
        ("qemu-img", "--version"),
        ("apt-get", "--version"),
        ("mkfs.ext4", "-V"),
    ] {
        if !runs(program, arg) {
            println!("skipping: {program} is not available");
            return;
        }
    }

    let started = Instant::now();
    let image = build_minimal(&cache_dir(), &|step| eprintln!("kiln-images: {step}")).expect("build the minimal image");
    eprintln!("image {} ready in {:.1?}", image.version, started.elapsed());

    let dir = tempfile::tempdir().expect("temp dir");
    let ssh_port = free_port();
    let disk = overlay(&image.root_disk, dir.path());
    let spec = VmSpec {
        name: "kiln-images-boot-test".into(),
        machine: Machine::Microvm,
        accel: Accel::Tcg,
        vcpus: 1,
        memory_mib: 256,
        kernel: Some(image.kernel.clone()),
        initrd: Some(image.initrd.clone()),
        kernel_cmdline: image.cmdline.clone(),
        disks: vec![Disk { id: "root".into(), path: disk, format: DiskFormat::Qcow2, read_only: false, serial: None }],
        nics: vec![Nic::User {
            host_forwards: vec![HostForward { host_addr: Ipv4Addr::LOCALHOST, host_port: ssh_port, guest_port: 22 }],
        }],
        serial_log: dir.path().join("console.log"),
        qmp_socket: dir.path().join("qmp.sock"),
        pidfile: dir.path().join("qemu.pid"),
        fw_cfg: Vec::new(),
        smbios_type11: Vec::new(),
        start_paused: false,
    };
    let config = VmConfig { stderr_log: Some(dir.path().join("qemu.stderr")), ..VmConfig::default() };
    let booted = Instant::now();
    let vm = spawn_vm(spec, config).expect("spawn the VM");

    let expected = format!("{READY_MARKER} version={}", image.version);
    let mut console = String::new();
    while booted.elapsed() < BOOT_DEADLINE && !console.contains(&expected) {
        std::thread::sleep(Duration::from_millis(100));
        console = std::fs::read_to_string(dir.path().join("console.log")).unwrap_or_default();
    }
    let elapsed = booted.elapsed();
    let banner = ssh_banner(ssh_port, Instant::now() + Duration::from_secs(20));
    let _ = vm.terminate();
    let _ = vm.wait_for(VmState::Terminated, Duration::from_secs(15));

    if !console.contains(&expected) {
        let stderr = std::fs::read_to_string(dir.path().join("qemu.stderr")).unwrap_or_default();
        let tail: String =
            console.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
        panic!("no {expected:?} within {BOOT_DEADLINE:?}\n--- console tail ---\n{tail}\n--- QEMU stderr ---\n{stderr}");
    }
    eprintln!("boot to marker: {elapsed:.1?}; SSH banner: {banner:?}");
    assert!(banner.as_deref().is_some_and(|b| b.starts_with("SSH-2.0-dropbear")), "no SSH banner: {banner:?}");
    assert!(!console.contains("kiln-initramfs: insmod"), "a module failed to load:\n{console}");
    assert!(!console.contains("/sbin/init: line"), "the init script hit an error:\n{console}");
}
