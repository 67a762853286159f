//! Assembling the minimal image's kernel, initramfs and root disk from unpacked packages.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::apt::{extract, run};
use crate::cpio::CpioWriter;
use crate::modules::{index_modules, load_order, modinfo_depends};
use crate::{ImageError, READY_MARKER};

/// Modules the initramfs loads: the virtio transports for microvm (mmio) and q35 (pci), the root
/// disk, the NIC, and the entropy source (so dropbear's first key generation does not stall).
const INITRAMFS_MODULES: [&str; 5] = ["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng"];

/// Modules copied into the root disk for boot scripts to load: config drives (vfat with
/// Debian's default `iocharset` `nls_ascii`, iso9660) and QEMU's fw_cfg files.
const ROOT_EXTRA_MODULES: [&str; 6] = ["vfat", "isofs", "nls_ascii", "nls_cp437", "nls_utf8", "qemu_fw_cfg"];

/// The ext4 creation time and the initramfs timestamps, fixed so rebuilds do not differ by clock.
const FIXED_TIME: u32 = 1_700_000_000;

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

const INITRAMFS_INIT: &str = r#"#!/bin/busybox sh
# Loads the virtio drivers, mounts the root disk and hands over to its /sbin/init.
bb=/bin/busybox
$bb mount -t devtmpfs devtmpfs /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
@INSMOD@
root=/dev/vda
for arg in $($bb cat /proc/cmdline); do
    case "$arg" in root=*) root="${arg#root=}" ;; esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 200 ]; do $bb usleep 50000; i=$((i + 1)); done
if ! $bb mount -t ext4 -o rw "$root" /newroot; then
    echo "kiln-initramfs: cannot mount $root; dropping to a shell"
    exec $bb sh
fi
$bb umount /proc /sys
$bb mount --move /dev /newroot/dev
exec $bb switch_root /newroot /sbin/init
"#;

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

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    }
    fs::write(path, contents).map_err(|e| ImageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ImageError::io(path, e))
}

fn mkdir(path: &Path, mode: u32) -> Result<(), ImageError> {
    fs::create_dir_all(path).map_err(|e| ImageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| ImageError::io(path, e))
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    fs::read(path).map_err(|e| ImageError::io(path, e))
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
    let kernel_tree = scratch.join("kernel");
    let root = scratch.join("root");
    let out = scratch.join("out");
    for dir in [&kernel_tree, &root, &out] {
        mkdir(dir, 0o755)?;
    }
    progress("unpacking packages");
    extract(kernel_deb, &kernel_tree)?;
    for deb in root_debs {
        extract(deb, &root)?;
    }

    let release = kernel_release(&kernel_tree)?;
    let vmlinuz = kernel_tree.join(format!("boot/vmlinuz-{release}"));
    fs::copy(&vmlinuz, out.join("vmlinuz")).map_err(|e| ImageError::io(&vmlinuz, e))?;

    progress("resolving kernel modules");
    let module_dir = kernel_tree.join("lib/modules").join(&release);
    let index = index_modules(&module_dir).map_err(|e| ImageError::io(&module_dir, e))?;
    let mut depends = BTreeMap::new();
    let all_wanted: Vec<&str> = INITRAMFS_MODULES.iter().chain(&ROOT_EXTRA_MODULES).copied().collect();
    let mut pending: Vec<String> = all_wanted.iter().map(|s| s.to_string()).collect();
    while let Some(name) = pending.pop() {
        if depends.contains_key(&name) {
            continue;
        }
        // A module missing from the index is left out of the table; load_order reports it.
        if let Some(path) = index.get(&name) {
            let deps = modinfo_depends(&read(path)?);
            pending.extend(deps.iter().cloned());
            depends.insert(name, deps);
        }
    }
    let initramfs_order = load_order(&INITRAMFS_MODULES, &depends)?;
    let root_order = load_order(&all_wanted, &depends)?;

    progress("writing the initramfs");
    let busybox = read(&root.join("bin/busybox"))?;
    let initrd = write_initramfs(&busybox, &initramfs_order, &index)?;
    fs::write(out.join("initrd.img"), &initrd).map_err(|e| ImageError::io(&out, e))?;

    progress("assembling the root tree");
    populate_root(&root, version, &release, &root_order, &index)?;
    fs::copy(out.join("vmlinuz"), root.join("boot/vmlinuz")).map_err(|e| ImageError::io(&root, e))?;
    fs::write(root.join("boot/initrd.img"), &initrd).map_err(|e| ImageError::io(&root, e))?;

    progress("making the ext4 root disk");
    make_ext4(&root, &out.join("root.ext4"), version)
}

/// The single `lib/modules/<release>` directory of the unpacked kernel package.
fn kernel_release(kernel_tree: &Path) -> Result<String, ImageError> {
    let dir = kernel_tree.join("lib/modules");
    let mut releases: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| ImageError::io(&dir, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    match releases.len() {
        1 => Ok(releases.remove(0)),
        n => Err(ImageError::Resolve(format!("expected one kernel release in {}, found {n}", dir.display()))),
    }
}

fn write_initramfs(busybox: &[u8], order: &[String], index: &BTreeMap<String, PathBuf>) -> Result<Vec<u8>, ImageError> {
    let cpio_err = |e| ImageError::io(Path::new("initrd.img"), e);
    let mut insmod = String::new();
    let mut w = CpioWriter::new(Vec::new(), FIXED_TIME);
    for dir in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        w.dir(dir, 0o755).map_err(cpio_err)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1).map_err(cpio_err)?;
    w.file("bin/busybox", 0o755, busybox).map_err(cpio_err)?;
    w.symlink("bin/sh", "busybox").map_err(cpio_err)?;
    for name in order {
        w.file(&format!("lib/modules/{name}.ko"), 0o644, &read(&index[name])?).map_err(cpio_err)?;
        insmod
            .push_str(&format!("$bb insmod /lib/modules/{name}.ko || echo \"kiln-initramfs: insmod {name} failed\"\n"));
    }
    w.file("init", 0o755, INITRAMFS_INIT.replace("@INSMOD@", insmod.trim_end()).as_bytes()).map_err(cpio_err)?;
    w.finish().map_err(cpio_err)
}

fn populate_root(
    root: &Path,
    version: &str,
    release: &str,
    modules: &[String],
    index: &BTreeMap<String, PathBuf>,
) -> Result<(), ImageError> {
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
    write(&etc.join("passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)?;
    // A locked password: logins are by SSH key (or on the console, which needs none).
    write(&etc.join("shadow"), "root:*:19000:0:99999:7:::\n", 0o600)?;
    write(&etc.join("group"), "root:x:0:\ntty:x:5:\n", 0o644)?;
    write(&etc.join("shells"), "/bin/sh\n", 0o644)?;
    write(&etc.join("nsswitch.conf"), "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n", 0o644)?;
    write(&etc.join("hosts"), "127.0.0.1 localhost\n", 0o644)?;
    write(&etc.join("hostname"), "kiln\n", 0o644)?;
    write(&etc.join("profile"), "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\h:\\w\\$ '\n", 0o644)?;
    write(&etc.join("kiln/image-version"), &format!("{version}\n"), 0o644)?;
    write(
        &etc.join("os-release"),
        &format!(
            "NAME=\"Kiln minimal\"\nID=kiln-minimal\nVERSION_ID={version}\nPRETTY_NAME=\"Kiln minimal {version}\"\n"
        ),
        0o644,
    )?;

    let module_dir = root.join("lib/modules").join(release);
    mkdir(&module_dir, 0o755)?;
    let mut order = String::new();
    for name in modules {
        let target = module_dir.join(format!("{name}.ko"));
        fs::copy(&index[name], &target).map_err(|e| ImageError::io(&target, e))?;
        order.push_str(&format!("{name}.ko\n"));
    }
    // The dependency order, so a boot script can `insmod` a module after everything before it.
    write(&module_dir.join("load-order"), &order, 0o644)
}

/// Total bytes of the regular files under `dir`.
fn tree_size(dir: &Path) -> Result<u64, ImageError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))? {
        let entry = entry.map_err(|e| ImageError::io(dir, e))?;
        let kind = entry.file_type().map_err(|e| ImageError::io(&entry.path(), e))?;
        if kind.is_dir() {
            total += tree_size(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata().map_err(|e| ImageError::io(&entry.path(), e))?.len();
        }
    }
    Ok(total)
}

/// A UUID-shaped value derived from the version, for the file system UUID and hash seed.
fn derived_uuid(version: &str) -> String {
    let digest = Sha256::digest(format!("kiln-minimal-root {version}"));
    let mut b: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout, as random UUIDs have
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn make_ext4(tree: &Path, image: &Path, version: &str) -> Result<(), ImageError> {
    // Room for the files, their metadata, the journal, and what boot scripts and users write.
    let size_mib = (tree_size(tree)? * 3 / 2 / (1 << 20) + 64).max(128);
    let uuid = derived_uuid(version);
    // mkfs copies each file's times; pin them (links and directories too, which std cannot).
    run(Command::new("find").arg(tree).args(["-exec", "touch", "-h", "-d", &format!("@{FIXED_TIME}"), "{}", "+"]))?;
    run(Command::new("mkfs.ext4")
        .env("E2FSPROGS_FAKE_TIME", FIXED_TIME.to_string())
        // 4 KiB blocks even though the file system is small (mke2fs would pick 1 KiB), so it
        // can be grown to a large volume later and matches what distribution images use.
        .args(["-q", "-F", "-b", "4096", "-L", "kiln-root", "-U", &uuid])
        .arg(format!("-Ehash_seed={uuid},root_owner=0:0"))
        .arg("-d")
        .arg(tree)
        .arg(image)
        .arg(format!("{size_mib}M")))
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuid_is_stable_and_well_formed() {
        let a = derived_uuid("6.1.192-2.abc");
        assert_eq!(a, derived_uuid("6.1.192-2.abc"));
        assert_ne!(a, derived_uuid("6.1.192-2.abd"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn scripts_have_their_placeholders_filled() {
        assert!(ROOT_INIT.contains("@MARKER@"));
        assert!(INITRAMFS_INIT.contains("@INSMOD@"));
        assert!(ROOT_INIT.replace("@MARKER@", READY_MARKER).contains("echo \"KILN-GUEST-READY version="));
    }
}
