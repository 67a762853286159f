//! The kernel and Kiln's own initramfs, shared by every image: the cloud kernel package
//! unpacked, its modules indexed and ordered, and a busybox initramfs that loads the virtio
//! drivers, mounts `root=` and switches to the root disk's `/sbin/init` (a shell script in the
//! minimal image, systemd in debian-12).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::apt::extract;
use crate::cpio::CpioWriter;
use crate::files::{read, FIXED_TIME};
use crate::modules::{index_modules, load_order, modinfo_depends};
use crate::ImageError;

/// Modules the initramfs loads: the virtio transports for microvm (mmio) and q35 (pci), the root
/// disk, the NIC, and the entropy source (so first-boot SSH key generation does not stall).
pub(crate) const INITRAMFS_MODULES: [&str; 5] = ["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_rng"];

pub(crate) const INITRAMFS_INIT: &str = r#"#!/bin/busybox sh
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

/// An unpacked kernel package.
pub(crate) struct Kernel {
    /// The release, e.g. `6.1.0-56-cloud-amd64` (the `lib/modules` directory name).
    pub release: String,
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub module_dir: PathBuf,
    /// Every module of the package by name.
    pub index: BTreeMap<String, PathBuf>,
}

impl Kernel {
    /// Unpacks the kernel package into `dir` and indexes its modules.
    pub fn unpack(deb: &Path, dir: &Path) -> Result<Kernel, ImageError> {
        fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))?;
        extract(deb, dir)?;
        let release = kernel_release(dir)?;
        let vmlinuz = dir.join(format!("boot/vmlinuz-{release}"));
        let module_dir = dir.join("lib/modules").join(&release);
        let index = index_modules(&module_dir).map_err(|e| ImageError::io(&module_dir, e))?;
        Ok(Kernel { release, vmlinuz, module_dir, index })
    }

    /// The `insmod` order of `wanted` and everything they need.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<String>, ImageError> {
        let mut depends = BTreeMap::new();
        let mut pending: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        while let Some(name) = pending.pop() {
            if depends.contains_key(&name) {
                continue;
            }
            // A module missing from the index is left out of the table; load_order reports it.
            if let Some(path) = self.index.get(&name) {
                let deps = modinfo_depends(&read(path)?);
                pending.extend(deps.iter().cloned());
                depends.insert(name, deps);
            }
        }
        Ok(load_order(wanted, &depends)?)
    }

    /// Kiln's initramfs for this kernel: `busybox` (a static binary) and the virtio modules.
    pub fn initramfs(&self, busybox: &[u8]) -> Result<Vec<u8>, ImageError> {
        let order = self.load_order(&INITRAMFS_MODULES)?;
        write_initramfs(busybox, &order, &self.index)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_has_its_placeholder() {
        assert!(INITRAMFS_INIT.contains("@INSMOD@"));
        assert!(INITRAMFS_INIT.contains("switch_root /newroot /sbin/init"));
    }
}
