//! Drives the per-VM owner against a real QEMU. The VM has no kernel and no disk: microvm's
//! firmware finds nothing to boot and idles, which is enough for QEMU to report `running`, and
//! which can never honour the power button, so every graceful stop ends in the forced path.
//! Skipped where QEMU is not installed.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_vm::argv::{self, Machine, VmSpec};
use kiln_vm::{spawn_vm, Accel, GuestShutdownBehavior, VmCommand, VmConfig, VmError, VmHandle, VmState};
use rustix::process::{Pid, Signal};

/// Generous for a loaded 2-core machine; QEMU normally reports running in well under a second.
const UP: Duration = Duration::from_secs(15);

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! require_qemu {
    () => {
        if !installed(argv::QEMU_SYSTEM) {
            host_tools::cannot_run(&format!("{} is not installed", argv::QEMU_SYSTEM));
            return;
        }
    };
}

fn spec(dir: &Path) -> VmSpec {
    VmSpec { name: "i-0123456789abcdef0".into(), machine: Machine::Microvm, ..q35_spec(dir) }
}

/// q35 boots SeaBIOS, which sets up ACPI power management before finding nothing to boot: a
/// write to its PM1a control register is then a real guest-initiated power-off.
fn q35_spec(dir: &Path) -> VmSpec {
    VmSpec {
        name: "i-0123456789abcdef1".into(),
        machine: Machine::Q35,
        accel: Accel::Tcg,
        vcpus: 1,
        memory_mib: 64,
        kernel: None,
        initrd: None,
        kernel_cmdline: String::new(),
        disks: Vec::new(),
        nics: Vec::new(),
        serial_log: dir.join("console.log"),
        qmp_socket: dir.join("qmp.sock"),
        pidfile: dir.join("qemu.pid"),
        fw_cfg: Vec::new(),
        smbios_type11: Vec::new(),
        start_paused: false,
        hotplug_slots: 0,
    }
}

fn config(dir: &Path) -> VmConfig {
    VmConfig {
        stop_timeout: Duration::from_secs(2),
        qmp_timeout: Duration::from_secs(1),
        watchdog_interval: Duration::from_millis(200),
        stderr_log: Some(dir.join("qemu.stderr")),
        ..VmConfig::default()
    }
}

fn running_vm(dir: &Path, config: VmConfig) -> (VmHandle, u32) {
    let vm = spawn_vm(spec(dir), config).expect("spawn the owner");
    let status = vm.wait_for(VmState::Running, UP).unwrap_or_else(|e| {
        let stderr = std::fs::read_to_string(dir.join("qemu.stderr")).unwrap_or_default();
        panic!("{e}; status {:?}; QEMU stderr: {stderr}", vm.status())
    });
    let pid = status.qemu_pid.expect("a running VM has a QEMU pid");
    (vm, pid)
}

/// Whether `pid` still exists at all: a zombie counts, since it means nobody reaped it.
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn signal(pid: u32, signal: Signal) {
    let target = Pid::from_raw(pid as i32).expect("a real pid");
    rustix::process::kill_process(target, signal).unwrap_or_else(|e| panic!("kill {signal:?} {pid}: {e}"));
}

fn assert_refused(result: Result<kiln_vm::StateChange, VmError>, state: VmState, command: VmCommand) {
    match result {
        Err(VmError::IncorrectState { current, requested }) => {
            assert_eq!((current, requested), (state, command));
        }
        other => panic!("expected IncorrectState for {command:?} in {state}, got {other:?}"),
    }
}

#[test]
fn lifecycle_runs_stops_restarts_reboots_and_terminates() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let (vm, first_pid) = running_vm(dir.path(), config(dir.path()));
    assert_eq!(vm.state().1, None, "a fresh running instance has no reason");

    let status = vm.qmp("query-status", None).unwrap();
    assert_eq!(status["status"], "running", "{status}");
    assert!(matches!(vm.qmp("quit", None), Err(VmError::ReservedQmpCommand(_))));

    let change = vm.reboot().unwrap();
    assert_eq!((change.previous, change.current), (VmState::Running, VmState::Running));
    assert_eq!(vm.start().unwrap().current, VmState::Running, "starting a running instance is a no-op");

    // The firmware cannot act on the power button, so the stop timeout has to force it.
    let started = Instant::now();
    let change = vm.stop(false).unwrap();
    assert_eq!((change.previous, change.current), (VmState::Running, VmState::Stopping));
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(10)).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2), "stopped before the stop timeout: {:?}", started.elapsed());
    assert_eq!(stopped.reason.unwrap().code, "Client.UserInitiatedShutdown");
    assert_eq!(stopped.qemu_pid, None);
    assert!(!process_exists(first_pid), "QEMU {first_pid} is still there (or unreaped)");
    assert!(!dir.path().join("qmp.sock").exists(), "stale QMP socket left behind");

    assert_refused(vm.reboot(), VmState::Stopped, VmCommand::Reboot);
    assert!(matches!(vm.qmp("query-status", None), Err(VmError::NotRunning { current: VmState::Stopped, .. })));
    assert_eq!(vm.stop(true).unwrap().current, VmState::Stopped, "stopping a stopped instance is a no-op");

    let change = vm.start().unwrap();
    assert_eq!((change.previous, change.current), (VmState::Stopped, VmState::Pending));
    let running = vm.wait_for(VmState::Running, UP).unwrap();
    let second_pid = running.qemu_pid.unwrap();
    assert_ne!(second_pid, first_pid);

    let change = vm.terminate().unwrap();
    assert_eq!((change.previous, change.current), (VmState::Running, VmState::ShuttingDown));
    let terminated = vm.wait_for(VmState::Terminated, Duration::from_secs(5)).unwrap();
    assert_eq!(terminated.reason.unwrap().code, "Client.UserInitiatedShutdown");
    assert!(!process_exists(second_pid), "QEMU {second_pid} is still there (or unreaped)");
    assert!(!dir.path().join("qmp.sock").exists(), "stale QMP socket left behind");

    for command in [VmCommand::Start, VmCommand::Stop { force: true }, VmCommand::Reboot, VmCommand::Terminate] {
        let result = match command {
            VmCommand::Start => vm.start(),
            VmCommand::Stop { force } => vm.stop(force),
            VmCommand::Reboot => vm.reboot(),
            VmCommand::Terminate => vm.terminate(),
        };
        assert_refused(result, VmState::Terminated, command);
    }
}

#[test]
fn a_forced_stop_does_not_wait_for_the_guest() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let config = VmConfig { stop_timeout: Duration::from_secs(60), ..config(dir.path()) };
    let (vm, pid) = running_vm(dir.path(), config);
    let started = Instant::now();
    assert_eq!(vm.stop(true).unwrap().current, VmState::Stopping);
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_refused(vm.reboot(), VmState::Stopped, VmCommand::Reboot);
    assert_eq!(stopped.reason.unwrap().code, "Client.UserInitiatedShutdown");
    assert!(!process_exists(pid));
}

#[test]
fn an_externally_killed_qemu_is_reported_stopped_with_a_server_reason() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let (vm, pid) = running_vm(dir.path(), config(dir.path()));

    signal(pid, Signal::KILL);
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(3)).expect("the watchdog notices");
    let reason = stopped.reason.unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert!(reason.message.starts_with("Server.InternalError: "), "{}", reason.message);
    assert!(!process_exists(pid), "QEMU {pid} left unreaped");
    assert!(!dir.path().join("qmp.sock").exists(), "stale QMP socket left behind");

    // A crash is not the end: the instance starts again.
    vm.start().unwrap();
    vm.wait_for(VmState::Running, UP).unwrap();
}

#[test]
fn a_guest_power_off_is_reported_as_instance_initiated() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let vm = spawn_vm(q35_spec(dir.path()), config(dir.path())).unwrap();
    let pid = vm.wait_for(VmState::Running, UP).unwrap().qemu_pid.unwrap();

    // SLP_EN with sleep type 0 (S5) at SeaBIOS's PM base: what a guest's `poweroff` writes.
    // The firmware needs a moment to enable ACPI, so retry until QEMU reacts.
    let deadline = Instant::now() + UP;
    while vm.state().0 == VmState::Running && Instant::now() < deadline {
        let _ = vm.qmp("human-monitor-command", Some(serde_json::json!({ "command-line": "o /w 0x604 0x2000" })));
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(3)).unwrap();
    assert_eq!(stopped.reason.unwrap().code, "Client.InstanceInitiatedShutdown");
    assert!(!process_exists(pid), "QEMU {pid} left unreaped");
    assert!(!dir.path().join("qmp.sock").exists(), "stale QMP socket left behind");
}

#[test]
fn a_wedged_qemu_is_killed_and_reported_stopped() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let (vm, pid) = running_vm(dir.path(), config(dir.path()));

    // SIGSTOP freezes QEMU without ending it: QMP goes unanswered, as with a wedged emulator.
    signal(pid, Signal::STOP);
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(5)).expect("the watchdog gives up on QMP");
    let reason = stopped.reason.unwrap();
    assert_eq!(reason.code, "Server.InternalError");
    assert!(!process_exists(pid), "the wedged QEMU {pid} was not killed and reaped");
}

#[test]
fn a_crash_terminates_when_so_configured() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let config = VmConfig { on_guest_shutdown: GuestShutdownBehavior::Terminate, ..config(dir.path()) };
    let (vm, pid) = running_vm(dir.path(), config);
    signal(pid, Signal::KILL);
    let terminated = vm.wait_for(VmState::Terminated, Duration::from_secs(3)).unwrap();
    assert_eq!(terminated.reason.unwrap().code, "Server.InternalError");
    assert_refused(vm.start(), VmState::Terminated, VmCommand::Start);
}

#[test]
fn dropping_the_last_handle_terminates_the_vm() {
    require_qemu!();
    let dir = tempfile::tempdir().unwrap();
    let (vm, pid) = running_vm(dir.path(), config(dir.path()));
    let observer = vm.clone();
    drop(vm);
    assert!(process_exists(pid), "a remaining handle keeps the VM alive");
    drop(observer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_exists(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!process_exists(pid), "QEMU {pid} outlived every handle");
}

#[test]
fn a_missing_qemu_binary_leaves_the_instance_stopped_with_a_server_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = VmConfig { qemu_binary: dir.path().join("no-such-qemu"), ..config(dir.path()) };
    let vm = spawn_vm(spec(dir.path()), config).unwrap();
    let stopped = vm.wait_for(VmState::Stopped, Duration::from_secs(5)).unwrap();
    assert_eq!(stopped.reason.unwrap().code, "Server.InternalError");
    assert_refused(vm.reboot(), VmState::Stopped, VmCommand::Reboot);
}
