//! What the boot tests share: booting an image on microvm under TCG through kiln-vm with QEMU
//! user networking, watching its serial console, and a fake instance metadata service on the
//! host's loopback that the guest's agent reaches through QEMU's gateway address.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_images::{BuiltImage, IMDS_CMDLINE_PARAM};
use kiln_vm::argv::{Disk, DiskFormat, HostForward, Machine, Nic, VmSpec};
use kiln_vm::{spawn_vm, Accel, VmConfig, VmHandle, VmState};

/// The instance id the fake metadata service hands out.
pub const INSTANCE_ID: &str = "i-0123456789abcdef0";
/// The hostname it hands out.
pub const HOSTNAME: &str = "kiln-test-host";
/// The public key it hands out (never used to log in, only compared).
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKilnKilnKilnKilnKilnKilnKilnKilnKilnKilnKiln kiln-test";
/// The token it issues to `PUT /latest/api/token`.
pub const TOKEN: &str = "kiln-test-token";

/// Whether `program arg` runs and succeeds.
pub fn runs(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The first of `programs` (with the argument that makes each print its version) that does not
/// run, for a test to skip with.
pub fn missing_program(programs: &[(&str, &str)]) -> Option<String> {
    programs.iter().find(|(program, arg)| !runs(program, arg)).map(|(program, _)| program.to_string())
}

/// A fixed directory, so repeated runs reuse images instead of rebuilding them.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kiln-image-cache")
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("bind a free port").port()
}

/// The SSH identification line the guest's SSH server sends, retried until `deadline`.
pub fn ssh_banner(port: u16, deadline: Instant) -> Option<String> {
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

/// A qcow2 overlay over `base`, `size_mib` large when given (else the base's size).
fn overlay(base: &Path, dir: &Path, size_mib: Option<u64>) -> PathBuf {
    let overlay = dir.join("root.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(base)
        .arg(&overlay)
        .args(size_mib.map(|mib| format!("{mib}M")))
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img create failed");
    overlay
}

/// One request the fake metadata service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRequest {
    /// `GET` or `PUT`.
    pub method: String,
    /// The path, e.g. `/latest/meta-data/instance-id`.
    pub path: String,
    /// The `X-aws-ec2-metadata-token` header, if sent.
    pub token: Option<String>,
}

/// A minimal EC2 instance metadata service: fixed answers, IMDSv1 and v2 (a token is only
/// checked when one is sent), every request recorded.
pub struct FakeImds {
    /// The loopback port it listens on.
    pub port: u16,
    requests: Arc<Mutex<Vec<ImdsRequest>>>,
}

impl FakeImds {
    /// Starts serving `user_data` and the constants above on a free loopback port.
    pub fn start(user_data: &str) -> FakeImds {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the metadata service");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let user_data = user_data.to_owned();
        // Detached: it lives as long as the test process and only ever answers loopback.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(request) = serve(stream, &user_data) {
                    log.lock().expect("request log").push(request);
                }
            }
        });
        FakeImds { port, requests }
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.requests.lock().expect("request log").clone()
    }

    /// The kernel command line parameter that points the guest's agent here: QEMU's user
    /// networking maps its gateway, 10.0.2.2, to the host's loopback.
    pub fn cmdline_param(&self) -> String {
        format!("{IMDS_CMDLINE_PARAM}=http://10.0.2.2:{}", self.port)
    }
}

fn serve(mut stream: TcpStream, user_data: &str) -> Option<ImdsRequest> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next()?.split_whitespace();
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let token = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("x-aws-ec2-metadata-token").then(|| value.trim().to_owned())
    });
    let body = match (method.as_str(), path.as_str()) {
        _ if token.as_deref().is_some_and(|t| t != TOKEN) => None,
        ("PUT", "/latest/api/token") => Some(TOKEN),
        ("GET", "/latest/meta-data/instance-id") => Some(INSTANCE_ID),
        ("GET", "/latest/meta-data/hostname") => Some(HOSTNAME),
        ("GET", "/latest/meta-data/public-keys/0/openssh-key") => Some(PUBLIC_KEY),
        ("GET", "/latest/user-data") if !user_data.is_empty() => Some(user_data),
        _ => None,
    };
    let response = match body {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
    };
    let _ = stream.write_all(response.as_bytes());
    Some(ImdsRequest { method, path, token })
}

/// A booted VM and its serial console.
pub struct Boot {
    /// The VM; terminated when the test is done.
    pub vm: VmHandle,
    /// The loopback port forwarded to the guest's port 22.
    pub ssh_port: u16,
    /// When QEMU was started.
    pub started: Instant,
    console: PathBuf,
    dir: tempfile::TempDir,
}

impl Boot {
    /// Boots `image` (on a qcow2 overlay, so the cached image stays pristine, of `disk_mib`
    /// when given) with `memory_mib` of memory, `extra_cmdline` appended to its command line,
    /// and SSH forwarded.
    pub fn start(name: &str, image: &BuiltImage, memory_mib: u32, disk_mib: Option<u64>, extra_cmdline: &str) -> Boot {
        let dir = tempfile::tempdir().expect("temp dir");
        let ssh_port = free_port();
        let disk = overlay(&image.root_disk, dir.path(), disk_mib);
        let spec = VmSpec {
            name: name.into(),
            machine: Machine::Microvm,
            accel: Accel::Tcg,
            vcpus: 1,
            memory_mib,
            kernel: Some(image.kernel.clone()),
            initrd: Some(image.initrd.clone()),
            kernel_cmdline: format!("{} {extra_cmdline}", image.cmdline),
            disks: vec![Disk {
                id: "root".into(),
                path: disk,
                format: DiskFormat::Qcow2,
                read_only: false,
                serial: None,
            }],
            nics: vec![Nic::User {
                host_forwards: vec![HostForward {
                    host_addr: Ipv4Addr::LOCALHOST,
                    host_port: ssh_port,
                    guest_port: 22,
                }],
            }],
            serial_log: dir.path().join("console.log"),
            qmp_socket: dir.path().join("qmp.sock"),
            pidfile: dir.path().join("qemu.pid"),
            fw_cfg: Vec::new(),
            smbios_type11: Vec::new(),
            start_paused: false,
            hotplug_slots: 0,
        };
        let config = VmConfig { stderr_log: Some(dir.path().join("qemu.stderr")), ..VmConfig::default() };
        let started = Instant::now();
        let vm = spawn_vm(spec, config).expect("spawn the VM");
        Boot { vm, ssh_port, started, console: dir.path().join("console.log"), dir }
    }

    /// Everything the guest has written to its serial console so far.
    pub fn console(&self) -> String {
        // Lossy: a console can carry stray bytes (escape sequences cut by a reset).
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// Waits until `needle` has appeared `count` times on the console, for at most `timeout`
    /// from now; returns the time since boot when it did.
    pub fn wait_for(&self, needle: &str, count: usize, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console().matches(needle).count() >= count {
                return Some(self.started.elapsed());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Panics with the end of the console and QEMU's stderr, for a boot that went wrong.
    pub fn fail(&self, what: &str) -> ! {
        let console = self.console();
        let tail: Vec<&str> = console.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let stderr = std::fs::read_to_string(self.dir.path().join("qemu.stderr")).unwrap_or_default();
        panic!("{what}\n--- console tail ---\n{}\n--- QEMU stderr ---\n{stderr}", tail.join("\n"));
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        let _ = self.vm.terminate();
        let _ = self.vm.wait_for(VmState::Terminated, Duration::from_secs(15));
    }
}
