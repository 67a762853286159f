//! Starts a real, paused QEMU from the argv builder and drives it over QMP. Nothing boots: the
//! CPUs never run, so this needs neither a kernel nor KVM. Skipped where QEMU is not installed.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_vm::argv::{self, Disk, DiskFormat, FwCfgFile, HostForward, Machine, Nic, VmSpec};
use kiln_vm::qmp::{QmpClient, RunState};
use kiln_vm::Accel;

const DEADLINE: Duration = Duration::from_secs(30);

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `check` until it returns `Some` or `timeout` passes.
fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child if the test fails before reaping it.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

fn spec(dir: &Path, disks: Vec<Disk>) -> VmSpec {
    VmSpec {
        name: "i-0123456789abcdef0".into(),
        machine: Machine::Microvm,
        accel: Accel::Tcg,
        vcpus: 1,
        memory_mib: 64,
        kernel: None,
        initrd: None,
        kernel_cmdline: String::new(),
        disks,
        nics: vec![Nic::User {
            host_forwards: vec![HostForward { host_addr: Ipv4Addr::LOCALHOST, host_port: free_port(), guest_port: 22 }],
        }],
        serial_log: dir.join("console.log"),
        qmp_socket: dir.join("qmp.sock"),
        pidfile: dir.join("qemu.pid"),
        fw_cfg: vec![FwCfgFile { name: "opt/kiln/user-data".into(), file: dir.join("user-data") }],
        smbios_type11: vec!["io.systemd.credential:hostname=kiln-test".into()],
        start_paused: true,
        hotplug_slots: 0,
    }
}

#[test]
fn paused_microvm_answers_qmp_and_quits() {
    if !installed(argv::QEMU_SYSTEM) {
        host_tools::cannot_run("qemu-system-x86_64 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user-data"), b"#cloud-config\n").unwrap();

    // A real disk too, when qemu-img is there to make one, so the -blockdev/-device words are
    // checked by QEMU itself and not only by the snapshot tests.
    let mut disks = Vec::new();
    let image = dir.path().join("vol,1.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("16M")
        .status()
        .is_ok_and(|s| s.success());
    if made {
        disks.push(Disk {
            id: "vol-0123456789abcdef0".into(),
            path: image,
            format: DiskFormat::Qcow2,
            read_only: false,
            serial: Some("vol0123456789abcdef0".into()),
        });
    }
    let spec = spec(dir.path(), disks);
    let cmd = argv::build(&spec).unwrap();

    let child = Command::new(cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu");
    let mut child = Reaper(child);

    let socket = spec.qmp_socket.clone();
    let mut qmp = wait_until(DEADLINE, || {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut stderr = String::new();
            use std::io::Read;
            child.0.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
            panic!("qemu exited early ({status}): {stderr}\nargv: {:?}", cmd.args_lossy());
        }
        QmpClient::connect(&socket, Duration::from_secs(5)).ok()
    })
    .expect("QMP socket answers");

    let status = qmp.query_status().unwrap();
    assert!(matches!(status.state, RunState::Prelaunch | RunState::Paused), "{status:?}");
    assert!(!status.running);
    assert!(qmp.version().qemu.major >= 7, "{:?}", qmp.version());

    if !spec.disks.is_empty() {
        let blocks = qmp.execute("query-block", None).unwrap();
        assert!(blocks.to_string().contains("vol,1.qcow2"), "{blocks}");
    }
    let pid: u32 = std::fs::read_to_string(&spec.pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(pid, child.0.id());

    qmp.quit().unwrap();
    let exit = wait_until(DEADLINE, || child.0.try_wait().unwrap()).expect("qemu exits after quit");
    assert!(exit.success(), "{exit}");
}
