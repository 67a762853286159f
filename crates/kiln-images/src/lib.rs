//! Builds Kiln's provided machine images from Debian packages.
//!
//! # The "minimal" image
//!
//! [`build_minimal`] produces three files and a kernel command line:
//!
//! - **`vmlinuz`**: the kernel from the versioned package `linux-image-cloud-amd64` currently
//!   depends on. The cloud flavour is small and has ext4 and the 8250 serial console built in,
//!   which is all a VM needs before its initramfs runs.
//! - **`initrd.img`**: a `newc` cpio written by [`cpio::CpioWriter`] holding a static busybox,
//!   the virtio modules (the cloud kernel builds virtio, virtio-mmio, virtio-pci, virtio-blk and
//!   virtio-net as modules, so the root disk is invisible without them) with their dependencies
//!   resolved from each module's `depends=` modinfo ([`modules`]), and an `/init` script that
//!   `insmod`s them in order, waits for `root=` (`/dev/vda`), mounts it as ext4 and
//!   `switch_root`s into it.
//! - **`root.ext4`**: a raw ext4 image made with `mkfs.ext4 -d` from a directory tree, so no
//!   loop mount and no root privileges on the host are needed. It holds:
//!   - busybox and a link for each of its applets: a shell and the usual tools in ~2 MB;
//!   - `/sbin/init`, a shell script that mounts `/proc`, `/sys`, `/dev`, `/dev/pts`, brings up
//!     `lo` and `eth0` (DHCP via busybox `udhcpc`, in the background), starts dropbear, prints
//!     [`READY_MARKER`] on the serial console, runs every executable `/etc/kiln/boot.d/*` in
//!     name order (the hook through which instance configuration, e.g. SSH keys, is applied),
//!     and then keeps a shell on the console;
//!   - dropbear (an SSH server, from `dropbear-bin`) with the shared libraries it needs, taken
//!     from the same Debian release's packages rather than from the host, so the image does not
//!     depend on what the build host happens to have installed. Host keys are generated on the
//!     first connection (`-R`); root's password is locked, so only keys in
//!     `/root/.ssh/authorized_keys` can log in;
//!   - the modules the initramfs loads plus `vfat`, `isofs`, `nls_*` and `qemu_fw_cfg` in
//!     `/lib/modules/<kernel>/`, so boot scripts can read a config drive or fw_cfg;
//!   - `/boot/vmlinuz` and `/boot/initrd.img`, so the disk alone describes how to boot it;
//!   - `/etc/kiln/image-version` and `/etc/os-release`, naming the build.
//!
//! # Versions and caching
//!
//! The image's version ([`image_version`]) is the kernel package version plus a digest of every
//! package name and version that went in and of [`RECIPE_REVISION`]: a rebuild after a Debian
//! update, or after a change to this recipe, is a new version; a rebuild with nothing changed
//! finds `cache_dir/minimal-<version>/` complete and returns it without doing any work.
//! Downloaded `.deb`s are kept in `cache_dir/debs`. Outputs are built in a scratch directory and
//! renamed into place, so an interrupted build never looks complete.
//!
//! Reproducibility: the kernel is the package's file and the initramfs is byte-for-byte a
//! function of the packages (fixed owners, timestamps and entry order). For the root disk,
//! `mkfs.ext4` gets a UUID and hash seed derived from the version, a fixed creation time, and a
//! tree whose file times are all pinned, so two builds have the same superblock and the same
//! files; they still differ in about 2 KiB of inode-table bytes that mke2fs varies per run, and
//! file owners are those of the build user (root in practice).

pub mod apt;
pub mod cpio;
pub mod modules;
mod rootfs;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The line the image's init prints on the serial console once the system is up, before it
/// runs the boot scripts. Followed by ` version=<image version>`.
pub const READY_MARKER: &str = "KILN-GUEST-READY";

/// Bumped whenever the recipe in this crate changes what it builds, so the change produces a
/// new image version instead of reusing a cached image built the old way.
pub const RECIPE_REVISION: u32 = 3;

/// The kernel command line of the minimal image, without the TSC parameters microvm needs under
/// TCG (`kiln_vm::argv` appends those itself).
pub const MINIMAL_CMDLINE: &str = "console=ttyS0 root=/dev/vda rw panic=-1";

/// The Debian metapackage whose dependency names the current cloud kernel.
const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// Packages unpacked into the root disk: busybox, and dropbear with its libraries.
const ROOT_PACKAGES: [&str; 8] =
    ["busybox-static", "dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g"];

/// A built minimal image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalImage {
    /// The kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs (`initrd.img`, an uncompressed newc cpio).
    pub initrd: PathBuf,
    /// The root disk, a raw ext4 image; attach it as the first virtio disk (`/dev/vda`).
    pub root_disk: PathBuf,
    /// The image version, e.g. `6.1.192-2.1a2b3c4d5e6f` (see [`image_version`]).
    pub version: String,
    /// The kernel command line to boot it with (see [`MINIMAL_CMDLINE`]).
    pub cmdline: String,
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A program could not be started (not installed?).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error from exec.
        #[source]
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Packages or files are not what the recipe expects.
    #[error("{0}")]
    Resolve(String),
    /// The kernel modules the image needs cannot be loaded in any order.
    #[error(transparent)]
    Module(#[from] modules::ModuleError),
}

impl ImageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io { path: path.to_path_buf(), source }
    }
}

/// The version of an image built from `packages` (name, Debian version) with kernel package
/// version `kernel_version`: the kernel version made file-name safe, a dot, and the first 12 hex
/// digits of a SHA-256 over the recipe revision and the sorted package list.
pub fn image_version(kernel_version: &str, packages: &[(String, String)]) -> String {
    let mut sorted = packages.to_vec();
    sorted.sort();
    let mut hasher = Sha256::new();
    hasher.update(format!("kiln-minimal recipe {RECIPE_REVISION}\n"));
    for (name, version) in &sorted {
        hasher.update(format!("{name}={version}\n"));
    }
    let digest = hex::encode(hasher.finalize());
    let safe: String = kernel_version
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') { c } else { '_' })
        .collect();
    format!("{safe}.{}", &digest[..12])
}

/// Builds (or finds in `cache_dir`) the minimal image for the packages apt currently resolves.
///
/// Needs `apt-cache`, `apt-get`, `dpkg` and `mkfs.ext4` on the host and a current apt index;
/// `progress` is told about each step, for a CLI to show.
pub fn build_minimal(cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<MinimalImage, ImageError> {
    progress("resolving package versions");
    let kernel_package = apt::resolve_dependency(KERNEL_METAPACKAGE, "linux-image-")?;
    let names: Vec<&str> = std::iter::once(kernel_package.as_str()).chain(ROOT_PACKAGES).collect();
    let versions = apt::candidate_versions(&names)?;
    // The kernel first: assembly treats the first package as the kernel.
    let packages: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), versions[*n].clone())).collect();
    let version = image_version(&packages[0].1, &packages);

    let out = cache_dir.join(format!("minimal-{version}"));
    let image = MinimalImage {
        kernel: out.join("vmlinuz"),
        initrd: out.join("initrd.img"),
        root_disk: out.join("root.ext4"),
        version: version.clone(),
        cmdline: MINIMAL_CMDLINE.to_owned(),
    };
    if [&image.kernel, &image.initrd, &image.root_disk].iter().all(|p| p.is_file()) {
        progress(&format!("minimal image {version} is cached"));
        return Ok(image);
    }

    let debs = cache_dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| ImageError::io(&debs, e))?;
    let list: Vec<String> = packages.iter().map(|(name, version)| format!("{name} {version}")).collect();
    progress(&format!("fetching {}", list.join(", ")));
    let downloaded = apt::download(&debs, &packages)?;

    // Scratch space next to the output, so the final rename never crosses file systems.
    let scratch = cache_dir.join(format!(".build-{version}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = rootfs::assemble(&scratch, &downloaded, &version, progress).and_then(|()| {
        let _ = std::fs::remove_dir_all(&out);
        let built = scratch.join("out");
        std::fs::rename(&built, &out).map_err(|e| ImageError::io(&out, e))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result?;
    progress(&format!("built minimal image {version}"));
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkgs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn version_names_the_kernel_and_changes_with_any_package() {
        let base = pkgs(&[("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2"), ("busybox-static", "1:1.35.0-4")]);
        let version = image_version("6.1.192-2", &base);
        assert!(version.starts_with("6.1.192-2."), "{version}");
        assert_eq!(version.len(), "6.1.192-2.".len() + 12);

        let mut reordered = base.clone();
        reordered.reverse();
        assert_eq!(image_version("6.1.192-2", &reordered), version, "order does not matter");

        let updated = pkgs(&[("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2"), ("busybox-static", "1:1.35.0-5")]);
        assert_ne!(image_version("6.1.192-2", &updated), version);
    }

    #[test]
    fn version_is_file_name_safe() {
        let version = image_version("1:2.0~rc1", &[]);
        assert!(version.starts_with("1_2.0_rc1."), "{version}");
    }
}
