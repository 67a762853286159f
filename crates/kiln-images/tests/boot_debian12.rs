//! Builds the debian-12 image (or reuses the one cached under the target directory) and boots
//! it on microvm under TCG through kiln-vm: the ready marker appears once sshd is up, OpenSSH
//! answers, the agent fetches the instance metadata with an IMDSv2 token and applies hostname,
//! keys (root and admin) and user data, and after a reboot the user data does not run again.
//! Skipped, with the reason printed, where QEMU, mmdebstrap, root privileges or the Debian
//! archive are missing.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{missing_program, ssh_banner, Boot, FakeImds, HOSTNAME, INSTANCE_ID, PUBLIC_KEY, TOKEN};
use kiln_images::{build_debian12, ImageError, AGENT_DONE_MARKER, READY_MARKER};

/// Wall-clock limit from QEMU starting to the marker; systemd under TCG takes 10-20 s, more
/// when the host is busy.
const BOOT_DEADLINE: Duration = Duration::from_secs(180);

/// Limit from the ready marker to the agent's.
const AGENT_DEADLINE: Duration = Duration::from_secs(90);

const USER_DATA: &str = "#!/bin/sh
k=/home/admin/.ssh/authorized_keys
echo \"USERDATA-RAN host=$(hostname) admin=$(stat -c %U:%a $k) keys=$(cat $k)\"
echo \"ROOT-MIB=$(df -m / | awk 'NR == 2 { print $2 }')\"
exit 3
";

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn debian12_image_boots_and_applies_instance_metadata() {
    let tools = [
        (kiln_vm::argv::QEMU_SYSTEM, "--version"),
        ("qemu-img", "--version"),
        ("apt-get", "--version"),
        ("mkfs.ext4", "-V"),
        ("mmdebstrap", "--version"),
    ];
    if let Some(program) = missing_program(&tools) {
        host_tools::cannot_run(&format!("{program} is not available"));
        return;
    }
    if !is_root() {
        host_tools::cannot_run("building debian-12 installs packages in a chroot, which needs root");
        return;
    }

    let started = Instant::now();
    let image = match build_debian12(&common::cache_dir(), &|step| eprintln!("kiln-images: {step}")) {
        Ok(image) => image,
        Err(ImageError::Command { command, stderr, .. }) if command.starts_with("apt-get download") => {
            host_tools::cannot_run(&format!("cannot fetch packages from the Debian archive: {stderr}"));
            return;
        }
        Err(e) => panic!("build the debian-12 image: {e}"),
    };
    eprintln!("image {} ready in {:.1?}", image.version, started.elapsed());

    let imds = FakeImds::start(USER_DATA);
    // A volume larger than the image, as instances usually get: the agent grows the root into it.
    let boot = Boot::start("kiln-images-debian12-test", &image, 512, Some(3072), &imds.cmdline_param());
    let ready = format!("{READY_MARKER} version={}", image.version);
    let Some(to_ready) = boot.wait_for(&ready, 1, BOOT_DEADLINE) else {
        boot.fail(&format!("no {ready:?} within {BOOT_DEADLINE:?}"))
    };
    // The marker follows sshd's start, so the banner is there at once.
    let banner = ssh_banner(boot.ssh_port, Instant::now() + Duration::from_secs(10));
    let done = format!("{AGENT_DONE_MARKER} instance-id={INSTANCE_ID}");
    let Some(to_done) = boot.wait_for(&done, 1, AGENT_DEADLINE) else {
        boot.fail(&format!("no {done:?} within {AGENT_DEADLINE:?} of the ready marker"))
    };
    eprintln!("boot to ready marker: {to_ready:.1?}; to agent done: {to_done:.1?}; SSH banner: {banner:?}");

    let console = boot.console();
    assert!(banner.as_deref().is_some_and(|b| b.starts_with("SSH-2.0-OpenSSH")), "no SSH banner: {banner:?}");
    assert!(!console.contains("kiln-initramfs:"), "the initramfs failed:\n{console}");
    assert!(!console.contains("[FAILED]"), "a unit failed:\n{console}");
    let ran = format!("USERDATA-RAN host={HOSTNAME} admin=admin:600 keys={PUBLIC_KEY}");
    assert!(console.contains(&ran), "user data did not see the hostname and admin's key:\n{console}");
    assert!(console.contains("kiln-agent: user-data exited 3"), "no user data status:\n{console}");
    let root_mib = console.lines().find_map(|l| l.trim().strip_prefix("ROOT-MIB=")?.parse::<u64>().ok());
    assert!(root_mib.is_some_and(|mib| mib > 2800), "the root file system was not grown: {root_mib:?} MiB");
    // The console is shared: getty's "debian login: " may land at the start of the marker line.
    let mut lines =
        console.lines().map(str::trim).skip_while(|l| !l.ends_with("-----BEGIN SSH HOST KEY KEYS-----")).skip(1);
    assert!(lines.next().is_some_and(|key| key.contains(" AAAA")), "no host keys:\n{console}");

    // IMDSv2: a token first, then every request carries it.
    let requests = imds.requests();
    assert_eq!(requests.first().map(|r| (r.method.as_str(), r.path.as_str())), Some(("PUT", "/latest/api/token")));
    let gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    assert!(gets.iter().any(|r| r.path == "/latest/user-data"), "{requests:?}");
    assert!(gets.iter().all(|r| r.token.as_deref() == Some(TOKEN)), "a request without the token: {requests:?}");

    // A reboot is the same instance: the agent runs again but the user data does not.
    boot.vm.reboot().expect("reboot");
    let Some(rebooted) = boot.wait_for(&done, 2, BOOT_DEADLINE + AGENT_DEADLINE) else {
        boot.fail("no second agent marker after the reboot")
    };
    eprintln!("reboot to agent done: {:.1?}", rebooted - to_done);
    let console = boot.console();
    assert_eq!(console.matches(&ready).count(), 2, "the reboot did not boot again:\n{console}");
    assert_eq!(console.matches("kiln-agent: running user data").count(), 1, "user data ran twice:\n{console}");
}
