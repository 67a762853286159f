//! Assembling the minimal image's kernel, initramfs and root disk from unpacked packages.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apt::{extract, run};
use crate::ext4::{derived_uuid, make_ext4};
use crate::files::{copy, mkdir, read, tree_size, write};
use crate::initramfs::{Kernel, INITRAMFS_INIT, INITRAMFS_MODULES};
use crate::{ImageError, AGENT_DONE_MARKER, READY_MARKER};

/// Modules copied into the root disk for boot scripts to load: config drives (vfat with
/// Debian's default `iocharset` `nls_ascii`, iso9660) and QEMU's fw_cfg files.
/// `evdev` and `button` carry the ACPI power button to `acpid`, so a stop shuts the guest down
/// cleanly.
const ROOT_EXTRA_MODULES: [&str; 8] =
    ["vfat", "isofs", "nls_ascii", "nls_cp437", "nls_utf8", "qemu_fw_cfg", "evdev", "button"];

/// Package content the image has no use for: documentation, translations, and glibc's charset
/// converters (nothing in the image calls `iconv`).
const PRUNE: [&str; 7] = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/lib/x86_64-linux-gnu/gconv",
];

/// Where the first-boot agent is installed: init runs `/etc/kiln/boot.d/*` in name order.
pub(crate) const AGENT_PATH: &str = "etc/kiln/boot.d/10-agent";

/// The first-boot agent (see `agent/minimal.sh`) with its marker filled in.
pub(crate) fn agent_script() -> String {
    include_str!("agent/minimal.sh").replace("@DONE@", AGENT_DONE_MARKER)
}

const ROOT_INIT: &str = r#"#!/bin/sh
# PID 1 of Kiln's minimal image: mounts the API file systems, starts the network and SSH,
# announces readiness on the console, runs the instance's boot scripts and keeps a shell.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
# Debian's busybox has no `mountpoint`; test for something each file system provides. /dev is
# already there when the initramfs moved its devtmpfs over.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
[ -e /dev/pts/ptmx ] || mount -t devpts -o gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
hostname -F /etc/hostname
# The power button (how a stop asks the guest to shut down): the ACPI button driver reports it
# through evdev, and busybox acpid runs /etc/acpi/PWRF/00000080.
for m in evdev button; do insmod "/lib/modules/$(uname -r)/$m.ko" 2>/dev/null; done
acpid
ip link set lo up
if [ -d /sys/class/net/eth0 ]; then
    ip link set eth0 up
    udhcpc -b -q -i eth0 -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
fi
[ -x /usr/sbin/dropbear ] && /usr/sbin/dropbear -R -s -p 22
echo "@MARKER@ version=$(cat /etc/kiln/image-version)"
for script in /etc/kiln/boot.d/*; do
    [ -f "$script" ] && [ -x "$script" ] || continue
    echo "kiln: running $script"
    "$script" || echo "kiln: $script failed with status $?"
done
while :; do
    setsid cttyhack sh -l
    sleep 1
done
"#;

const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# Applies a DHCP lease from busybox udhcpc.
case "$1" in
    deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
        if [ -n "$router" ]; then
            while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
            for gw in $router; do route add default gw "$gw" dev "$interface"; break; done
        fi
        : > /etc/resolv.conf
        for ns in $dns; do echo "nameserver $ns" >> /etc/resolv.conf; done
        ;;
esac
exit 0
"#;

const POWER_BUTTON: &str = r#"#!/bin/sh
# Run by acpid when the power button is pressed: a clean shutdown. PID 1 is a shell, which
# cannot be asked to halt, so this does its part: stop processes, flush, power off.
echo "kiln: power button pressed; shutting down"
kill -TERM -1 2>/dev/null
sleep 1
sync
mount -o remount,ro / 2>/dev/null
poweroff -f
"#;

/// Everything this recipe writes into the image as text, for the image version.
pub(crate) fn scripts() -> String {
    [INITRAMFS_INIT, ROOT_INIT, UDHCPC_SCRIPT, POWER_BUTTON, &agent_script()].concat()
}

/// Builds `scratch/out/{vmlinuz,initrd.img,root.ext4}` from the downloaded packages; the first
/// is the kernel, the rest are unpacked into the root disk.
pub(crate) fn assemble(
    scratch: &Path,
    debs: &[PathBuf],
    version: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    let (kernel_deb, root_debs) = debs.split_first().ok_or_else(|| ImageError::Resolve("no packages".into()))?;
    let root = scratch.join("root");
    let out = scratch.join("out");
    for dir in [&root, &out] {
        mkdir(dir, 0o755)?;
    }
    progress("unpacking packages");
    let kernel = Kernel::unpack(kernel_deb, &scratch.join("kernel"))?;
    for deb in root_debs {
        extract(deb, &root)?;
    }
    copy(&kernel.vmlinuz, &out.join("vmlinuz"))?;

    progress("resolving kernel modules");
    let all_wanted: Vec<&str> = INITRAMFS_MODULES.iter().chain(&ROOT_EXTRA_MODULES).copied().collect();
    let root_order = kernel.load_order(&all_wanted)?;

    progress("writing the initramfs");
    let initrd = kernel.initramfs(&read(&root.join("bin/busybox"))?)?;
    fs::write(out.join("initrd.img"), &initrd).map_err(|e| ImageError::io(&out, e))?;

    progress("assembling the root tree");
    populate_root(&root, version, &kernel, &root_order)?;
    copy(&out.join("vmlinuz"), &root.join("boot/vmlinuz"))?;
    fs::write(root.join("boot/initrd.img"), &initrd).map_err(|e| ImageError::io(&root, e))?;

    progress("making the ext4 root disk");
    // Room for the files, their metadata, the journal, and what boot scripts and users write.
    let size_mib = (tree_size(&root)? * 3 / 2 / (1 << 20) + 64).max(128);
    make_ext4(&root, &out.join("root.ext4"), size_mib, &derived_uuid(&format!("kiln-minimal-root {version}")))
}

fn populate_root(root: &Path, version: &str, kernel: &Kernel, modules: &[String]) -> Result<(), ImageError> {
    for prune in PRUNE {
        let path = root.join(prune);
        if path.exists() {
            fs::remove_dir_all(&path).map_err(|e| ImageError::io(&path, e))?;
        }
    }
    for (dir, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("run", 0o755),
        ("mnt", 0o755),
        ("boot", 0o755),
        ("root", 0o700),
        ("root/.ssh", 0o700),
        ("etc/dropbear", 0o700),
        ("etc/kiln/boot.d", 0o755),
        ("var/log", 0o755),
        ("usr/sbin", 0o755),
    ] {
        mkdir(&root.join(dir), mode)?;
    }

    // One link per busybox applet, except init: /sbin/init is the image's own script.
    let applets = run(Command::new(root.join("bin/busybox")).arg("--list-full"))?;
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "sbin/init" && *a != "linuxrc") {
        let link = root.join(applet);
        if link.symlink_metadata().is_ok() {
            continue; // A real program from a package wins over the applet.
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
        }
        symlink("/bin/busybox", &link).map_err(|e| ImageError::io(&link, e))?;
    }

    let etc = root.join("etc");
    write(&root.join("sbin/init"), &ROOT_INIT.replace("@MARKER@", READY_MARKER), 0o755)?;
    write(&root.join("usr/share/udhcpc/default.script"), UDHCPC_SCRIPT, 0o755)?;
    write(&root.join("etc/acpi/PWRF/00000080"), POWER_BUTTON, 0o755)?;
    write(&etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    // A locked password: logins are by SSH key (or on the console, which needs none).
    write(&etc.join("shadow"), "root:*:19000:0:99999:7:::\n", 0o600)?;
    write(&etc.join("group"), "root:x:0:\ntty:x:5:\n", 0o644)?;
    write(&etc.join("shells"), "/bin/sh\n", 0o644)?;
    write(&etc.join("nsswitch.conf"), "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644)?;
    write(&etc.join("hosts"), "127.0.0.1 localhost\n", 0o644)?;
    write(&etc.join("hostname"), "kiln\n", 0o644)?;
    write(&root.join(AGENT_PATH), &agent_script(), 0o755)?;
    write(&etc.join("profile"), "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\h:\\w\\$ '\n", 0o644)?;
    write(&etc.join("kiln/image-version"), &format!("{version}\n"), 0o644)?;
    write(
        &etc.join("os-release"),
        &format!(
            "NAME=\"Kiln minimal\"\nID=kiln-minimal\nVERSION_ID={version}\nPRETTY_NAME=\"Kiln minimal {version}\"\n"
        ),
        0o644,
    )?;

    let module_dir = root.join("lib/modules").join(&kernel.release);
    mkdir(&module_dir, 0o755)?;
    let mut order = String::new();
    for name in modules {
        let target = module_dir.join(format!("{name}.ko"));
        copy(&kernel.index[name], &target)?;
        order.push_str(&format!("{name}.ko\n"));
    }
    // The dependency order, so a boot script can `insmod` a module after everything before it.
    write(&module_dir.join("load-order"), &order, 0o644)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::files::check_sh_syntax;

    #[test]
    fn agent_is_valid_posix_sh() {
        match check_sh_syntax(&agent_script()) {
            Ok(shells) if shells.is_empty() => crate::host_tools::cannot_run("neither dash nor busybox is installed"),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_root_tree_has_the_agent_as_an_executable_boot_script() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A stand-in busybox that knows one applet.
        write(&root.join("bin/busybox"), "#!/bin/sh\necho bin/true\n", 0o755).unwrap();
        let kernel = Kernel {
            release: "6.1.0-0-cloud-amd64".into(),
            vmlinuz: root.join("vmlinuz"),
            module_dir: root.join("modules"),
            index: BTreeMap::new(),
        };
        populate_root(root, "1.2.3", &kernel, &[]).unwrap();
        let agent = root.join(AGENT_PATH);
        assert_eq!(fs::read_to_string(&agent).unwrap(), agent_script());
        assert_eq!(fs::metadata(&agent).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(AGENT_PATH.starts_with("etc/kiln/boot.d/"), "init runs only boot.d scripts");
        assert!(ROOT_INIT.contains("for script in /etc/kiln/boot.d/*"));
    }

    #[test]
    fn scripts_have_their_placeholders_filled() {
        assert!(ROOT_INIT.contains("@MARKER@"));
        assert!(ROOT_INIT.replace("@MARKER@", READY_MARKER).contains("echo \"KILN-GUEST-READY version="));
        let agent = agent_script();
        assert!(!agent.contains('@'), "an unfilled placeholder");
        assert!(agent.contains("echo \"KILN-AGENT-DONE instance-id=$id\""));
    }
}
