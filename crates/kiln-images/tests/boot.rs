//! Builds the minimal image (or reuses the one cached under the target directory) and boots it
//! on microvm under TCG through kiln-vm: the ready marker and SSH banner appear, the first-boot
//! agent applies a fake metadata service's hostname, key and user data, and after a reboot the
//! user data does not run again. Skipped, with the reason printed, where QEMU, apt or
//! mkfs.ext4 is missing.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

mod common;

use std::time::{Duration, Instant};

use common::{missing_program, ssh_banner, Boot, FakeImds, HOSTNAME, INSTANCE_ID, PUBLIC_KEY};
use kiln_images::{build_minimal, AGENT_DONE_MARKER, READY_MARKER};

/// Wall-clock limit from QEMU starting to the marker; a healthy boot takes a few seconds.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// Limit from the ready marker to the agent's; it waits for DHCP, then makes a few requests.
const AGENT_DEADLINE: Duration = Duration::from_secs(60);

const USER_DATA: &str = "#!/bin/sh
echo \"USERDATA-RAN host=$(hostname) mode=$(stat -c %a /root/.ssh/authorized_keys) keys=$(cat /root/.ssh/authorized_keys)\"
exit 3
";

#[test]
fn minimal_image_boots_and_applies_instance_metadata() {
    let tools = [
        (kiln_vm::argv::QEMU_SYSTEM, "--version"),
        ("qemu-img", "--version"),
        ("apt-get", "--version"),
        ("mkfs.ext4", "-V"),
    ];
    if let Some(program) = missing_program(&tools) {
        host_tools::cannot_run(&format!("{program} is not available"));
        return;
    }

    let started = Instant::now();
    let image =
        build_minimal(&common::cache_dir(), &|step| eprintln!("kiln-images: {step}")).expect("build the minimal image");
    eprintln!("image {} ready in {:.1?}", image.version, started.elapsed());

    let imds = FakeImds::start(USER_DATA);
    let boot = Boot::start("kiln-images-boot-test", &image, 256, None, &imds.cmdline_param());
    let ready = format!("{READY_MARKER} version={}", image.version);
    let Some(to_ready) = boot.wait_for(&ready, 1, BOOT_DEADLINE) else {
        boot.fail(&format!("no {ready:?} within {BOOT_DEADLINE:?}"))
    };
    let banner = ssh_banner(boot.ssh_port, Instant::now() + Duration::from_secs(20));
    let done = format!("{AGENT_DONE_MARKER} instance-id={INSTANCE_ID}");
    let Some(to_done) = boot.wait_for(&done, 1, AGENT_DEADLINE) else {
        boot.fail(&format!("no {done:?} within {AGENT_DEADLINE:?} of the ready marker"))
    };
    eprintln!("boot to ready marker: {to_ready:.1?}; to agent done: {to_done:.1?}; SSH banner: {banner:?}");

    let console = boot.console();
    assert!(banner.as_deref().is_some_and(|b| b.starts_with("SSH-2.0-dropbear")), "no SSH banner: {banner:?}");
    assert!(!console.contains("kiln-initramfs: insmod"), "a module failed to load:\n{console}");
    assert!(!console.contains("/sbin/init: line"), "the init script hit an error:\n{console}");
    assert!(!console.contains("10-agent: line"), "the agent hit an error:\n{console}");
    let ran = format!("USERDATA-RAN host={HOSTNAME} mode=600 keys={PUBLIC_KEY}");
    assert!(console.contains(&ran), "user data did not see the hostname and key:\n{console}");
    assert!(console.contains("kiln-agent: user-data exited 3"), "no user data status:\n{console}");
    let requests = imds.requests();
    assert!(requests.iter().any(|r| r.path == "/latest/user-data"), "{requests:?}");

    // A reboot is the same instance: the agent runs again but the user data does not.
    boot.vm.reboot().expect("reboot");
    if boot.wait_for(&done, 2, BOOT_DEADLINE + AGENT_DEADLINE).is_none() {
        boot.fail("no second agent marker after the reboot");
    }
    let console = boot.console();
    assert_eq!(console.matches(&ready).count(), 2, "the reboot did not boot again:\n{console}");
    assert_eq!(console.matches("kiln-agent: running user data").count(), 1, "user data ran twice:\n{console}");
}
