//! `kiln doctor`: what this host offers Kiln, in one screen.

use std::path::Path;
use std::process::Command;

/// First line of `<tool> --version`, or why there is none.
fn tool_version(tool: &str, hint: &str) -> String {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("unknown version").trim().to_string()
        }
        _ => format!("not installed ({hint})"),
    }
}

fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// Free bytes on the filesystem holding `dir` (or its nearest existing parent).
fn disk_free(dir: &Path) -> Option<u64> {
    let mut probe = dir;
    while !probe.exists() {
        probe = probe.parent()?;
    }
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(probe).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()
}

fn gib(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_else(|| "unknown".into())
}

/// The report, as text.
pub fn report(config: &kiln_server::Config) -> String {
    let data_dir = config.data_dir.as_path();
    let accel = kiln_vm::detect_host();
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    let networking = match (config.instances.network.as_str(), kiln_net::probe()) {
        ("none", _) => "none: instances get no NIC ([instances] network = \"none\")".to_string(),
        (_, Ok(())) => format!(
            "tap: a routed TAP per instance, DHCP, security groups in nftables, in network namespace {} \
             (public addresses {})",
            config.netns(),
            config.instances.public_ip_pool
        ),
        (_, Err(e)) => format!("none: {} (instances get no NIC)", e.reason),
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut out = String::new();
    out += &format!("accelerator:        {} ({})\n", accel.accel, accel.reason);
    out += &format!(
        "qemu-system-x86_64: {}\n",
        tool_version("qemu-system-x86_64", "instances need it; on Debian 12 install it from bookworm-backports")
    );
    out +=
        &format!("qemu-img:           {}\n", tool_version("qemu-img", "volumes need it: apt-get install qemu-utils"));
    out +=
        &format!("qemu-nbd:           {}\n", tool_version("qemu-nbd", "snapshots need it: apt-get install qemu-utils"));
    out += &format!("host kernel:        {kernel}\n");
    out += &format!("networking:         {networking}\n");
    out += &format!("cpus:               {cpus}\n");
    out += &format!("memory available:   {} of {}\n", gib(meminfo("MemAvailable:")), gib(meminfo("MemTotal:")));
    let settings = &config.instances;
    let cap = kiln_core::compute::runtime::Capacity::of_host(
        meminfo("MemTotal:").unwrap_or(0) >> 20,
        cpus as u32,
        settings.reserved_memory_mib,
        settings.ram_allocation_ratio,
        settings.cpu_allocation_ratio,
    );
    let vm_cpus = if accel.accel == kiln_vm::Accel::Tcg { 1 } else { 2 };
    out += &format!(
        "instance capacity:  {} VMs of {} MiB and {vm_cpus} vCPU ({} MiB and {} vCPUs for instances: \
         allocation ratios {} for memory, {} for vCPUs; the data directory's server counts the ones running)\n",
        cap.fits(
            kiln_core::compute::runtime::Capacity { memory_mib: 0, vcpus: 0 },
            vm_cpus,
            settings.max_instance_memory_mib
        ),
        settings.max_instance_memory_mib,
        cap.memory_mib,
        cap.vcpus,
        settings.ram_allocation_ratio,
        settings.cpu_allocation_ratio,
    );
    out += &format!("disk free:          {} at {}\n", gib(disk_free(data_dir)), data_dir.display());
    out
}
