//! Builds Kiln's provided machine images from Debian packages.
//!
//! Every image is three files and a kernel command line ([`BuiltImage`]): a kernel, an
//! initramfs and a raw ext4 root disk that also holds the first two as `/boot/vmlinuz` and
//! `/boot/initrd.img`, so the disk alone describes how to boot it. Kiln boots them by direct
//! kernel boot on QEMU's `microvm` with the root disk as the first virtio disk (`/dev/vda`).
//! [`IMAGE_NAMES`] lists them; [`build_named`] builds one by name.
//!
//! # The kernel and initramfs (both images)
//!
//! - **`vmlinuz`**: the kernel from the versioned package `linux-image-cloud-amd64` currently
//!   depends on. The cloud flavour is small and has ext4 and the 8250 serial console built in,
//!   which is all a VM needs before its initramfs runs.
//! - **`initrd.img`**: a `newc` cpio written by [`cpio::CpioWriter`] holding a static busybox,
//!   the virtio modules (the cloud kernel builds virtio, virtio-mmio, virtio-pci, virtio-blk and
//!   virtio-net as modules, so the root disk is invisible without them) with their dependencies
//!   resolved from each module's `depends=` modinfo ([`modules`]), and an `/init` script that
//!   `insmod`s them in order, waits for `root=` (`/dev/vda`), mounts it as ext4 and
//!   `switch_root`s into its `/sbin/init`.
//!
//! # The "minimal" image
//!
//! [`build_minimal`]: packages are unpacked (`apt-get download` + `dpkg -x`, nothing is
//! installed). **`root.ext4`** is made with `mkfs.ext4 -d` from a directory tree, so no loop
//! mount is needed. It holds:
//!
//! - busybox and a link for each of its applets: a shell and the usual tools in ~2 MB;
//! - `/sbin/init`, a shell script that mounts `/proc`, `/sys`, `/dev`, `/dev/pts`, brings up
//!   `lo` and `eth0` (DHCP via busybox `udhcpc`, in the background), starts dropbear, prints
//!   [`READY_MARKER`] on the serial console, runs every executable `/etc/kiln/boot.d/*` in
//!   name order, and then keeps a shell on the console;
//! - `/etc/kiln/boot.d/10-agent`, the first-boot agent (see below) in busybox `sh`, with IMDSv1
//!   requests by busybox `wget` (run under `timeout`: Debian's busybox is built without wget's
//!   `-T` and crashes when given it);
//! - dropbear (an SSH server, from `dropbear-bin`) with the shared libraries it needs, taken
//!   from the same Debian release's packages rather than from the host, so the image does not
//!   depend on what the build host happens to have installed. Host keys are generated on the
//!   first connection (`-R`); root's password is locked, so only keys in
//!   `/root/.ssh/authorized_keys` can log in;
//! - the modules the initramfs loads plus `vfat`, `isofs`, `nls_*` and `qemu_fw_cfg` in
//!   `/lib/modules/<kernel>/`, so boot scripts can read a config drive or fw_cfg;
//! - `/etc/kiln/image-version` and `/etc/os-release`, naming the build.
//!
//! # The "debian-12" image
//!
//! [`build_debian12`]: Debian 12 (bookworm) with systemd, OpenSSH, curl and sudo, like
//! Debian's own cloud images but without cloud-init. The package set is debootstrap's
//! `minbase` (Essential, Priority: required, apt) plus systemd-sysv, udev, dbus,
//! systemd-resolved, kmod, iproute2, netbase, openssh-server, curl, ca-certificates and sudo,
//! ~150 packages. The host's apt resolves the complete set ([`apt::resolve_install_set`], an
//! `apt-get --simulate` against an empty status file), `apt-get download` fetches it, and
//! `mmdebstrap` installs it (maintainer scripts and all, in a chroot: the build runs as root)
//! from a local repository holding exactly those `.deb`s, so the image is the resolved set and
//! nothing newer the archive may have published meanwhile. Then:
//!
//! - the kernel package is unpacked into the root (its whole `/lib/modules/<kernel>`, indexed
//!   with `depmod`, so udev loads what the VM's devices need), but not registered with dpkg:
//!   the kernel an instance boots is the image's `/boot/vmlinuz`, not one apt installs;
//! - networking is systemd-networkd (DHCPv4 on `en*` and `eth*`) with systemd-resolved;
//! - SSH host keys are deleted from the image and made at first boot by
//!   `kiln-ssh-keygen.service`, before sshd starts; password logins are off;
//! - a user `admin` (in group `sudo`, password-less sudo, no password) as in Debian's cloud
//!   images; root's password is locked too;
//! - the first-boot agent is `/usr/local/sbin/kiln-agent`, run by `kiln-agent.service` after
//!   `ssh.service`: it prints [`READY_MARKER`] on the console, then does what the minimal's
//!   agent does with curl and IMDSv2 (a token from `PUT /latest/api/token`, IMDSv1 if that
//!   fails), installs the key for `admin` as well as root, regenerates host keys on a new
//!   instance of an image made from another instance, adds the hostname to `/etc/hosts`
//!   (`127.0.1.1`), prints the host keys between `-----BEGIN SSH HOST KEY KEYS-----` and
//!   `-----END SSH HOST KEY KEYS-----` lines as cloud-init does (clients read them from the
//!   console output for `known_hosts`), and grows the root file system to its volume
//!   (`resize2fs`);
//! - `systemd-firstboot` is masked (it would wait for console input on an image's first
//!   boot), `e2scrub_reap` is disabled (LVM only, and costly under TCG), `/etc/machine-id` is
//!   empty (each instance makes its own), no manuals, translations
//!   or documentation other than copyright files are installed, and apt points at
//!   `deb.debian.org` (bookworm, -updates, -security).
//!
//! The root disk is a 2 GiB sparse ext4 with ~300 MiB of files (~330 MiB allocated on the
//! host). `/sbin/init` is systemd. Under TCG with one vCPU systemd is slow: ~40 s from QEMU's
//! start to the ready marker on a 2-core host busy with other VMs (the minimal image: ~6 s).
//!
//! # The first-boot agent
//!
//! Both images run an agent that does for an instance what cloud-init does on EC2, from the
//! instance metadata service at `http://169.254.169.254/latest/` (`kiln.imds=URL` on the
//! kernel command line overrides the address, see [`IMDS_CMDLINE_PARAM`]):
//!
//! 1. it waits for the network by retrying `meta-data/instance-id` every 0.5 s for up to 60 s
//!    (an answer must look like an instance id, `i-` and hex digits); without one it prints
//!    `kiln-agent: no instance metadata` and exits successfully;
//! 2. it sets the hostname from `meta-data/hostname` (`hostname`, `/etc/hostname`);
//! 3. it adds `meta-data/public-keys/0/openssh-key` to `/root/.ssh/authorized_keys` (directory
//!    0700, file 0600); keys already there stay;
//! 4. once per instance id (kept in `/var/lib/kiln/instance-id`, written to a temporary file,
//!    renamed and synced before the user data runs, so a reboot never runs it twice), it fetches
//!    `user-data` (404: none) and, if it starts with `#!`, saves it as `/var/lib/kiln/user-data`
//!    and runs it with its output on the console, then prints
//!    `kiln-agent: user-data exited <status>`;
//! 5. it prints [`AGENT_DONE_MARKER`]` instance-id=<id>`.
//!
//! # Versions and caching
//!
//! An image's version is the kernel package version plus a digest of its recipe revision
//! ([`RECIPE_REVISION`], [`DEBIAN12_RECIPE_REVISION`]), of the scripts and configuration files
//! the recipe writes into the image, and of every package name and version that went in
//! ([`image_version`]): a rebuild after a Debian update, or after a change to the recipe, is a
//! new version; a rebuild with nothing changed finds `cache_dir/<name>-<version>/`
//! complete and returns it without doing any work. Downloaded `.deb`s are kept in
//! `cache_dir/debs`, shared by all images. Outputs are built in a scratch directory and renamed
//! into place, so an interrupted build never looks complete.
//!
//! Reproducibility: the kernel is the package's file and the initramfs is byte-for-byte a
//! function of the packages (fixed owners, timestamps and entry order). For the root disks,
//! `mkfs.ext4` gets a UUID and hash seed derived from the version, a fixed creation time, and a
//! tree whose file times are all pinned; debian-12's package scripts also see
//! `SOURCE_DATE_EPOCH`. Two builds give identical file trees (contents, modes, owners and
//! times, checked for debian-12 by mounting both); the disk images still differ in a few KiB
//! (minimal) to ~40 KiB (debian-12) of ext4 metadata that mke2fs varies per run.

pub mod apt;
pub mod cpio;
mod debian;
mod ext4;
mod files;
#[cfg(test)]
#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;
mod initramfs;
mod minimal;
pub mod modules;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The line an image prints on the serial console once the system is up (in debian-12: once
/// sshd is up). Followed by ` version=<image version>`.
pub const READY_MARKER: &str = "KILN-GUEST-READY";

/// The line the first-boot agent prints on the serial console when it has applied the
/// instance metadata and run any user data. Followed by ` instance-id=<id>`.
pub const AGENT_DONE_MARKER: &str = "KILN-AGENT-DONE";

/// The kernel command line parameter (`kiln.imds=http://host:port`) that points the first-boot
/// agent at another metadata service than `http://169.254.169.254`. For tests and debugging:
/// QEMU's user networking has no metadata service and would send 169.254.169.254 to the
/// host's own network.
pub const IMDS_CMDLINE_PARAM: &str = "kiln.imds";

/// The names [`build_named`] accepts.
pub const IMAGE_NAMES: [&str; 2] = ["minimal", "debian-12"];

/// Bumped whenever the minimal image's recipe changes what it builds, so the change produces a
/// new image version instead of reusing a cached image built the old way.
pub const RECIPE_REVISION: u32 = 4;

/// [`RECIPE_REVISION`] for the debian-12 image.
pub const DEBIAN12_RECIPE_REVISION: u32 = 1;

/// The kernel command line of the minimal image, without the TSC parameters microvm needs under
/// TCG (`kiln_vm::argv` appends those itself).
pub const MINIMAL_CMDLINE: &str = "console=ttyS0 root=/dev/vda rw panic=-1";

/// The kernel command line of the debian-12 image (the same as the minimal's).
pub const DEBIAN12_CMDLINE: &str = MINIMAL_CMDLINE;

/// The Debian metapackage whose dependency names the current cloud kernel.
const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// The busybox that runs Kiln's initramfs (and the minimal image).
const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Packages unpacked into the minimal root disk: busybox, and dropbear with its libraries.
const ROOT_PACKAGES: [&str; 8] =
    [BUSYBOX_PACKAGE, "dropbear-bin", "libc6", "libcrypt1", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g"];

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
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

/// A built minimal image (the name [`BuiltImage`] had when there was only one image).
pub type MinimalImage = BuiltImage;

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
        /// The end of what it wrote to stderr.
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
    /// Packages, files or tools are not what the recipe expects.
    #[error("{0}")]
    Resolve(String),
    /// The kernel modules the image needs cannot be loaded in any order.
    #[error(transparent)]
    Module(#[from] modules::ModuleError),
    /// [`build_named`] was given a name not in [`IMAGE_NAMES`].
    #[error("no provided image is called {0:?} (known: {names})", names = IMAGE_NAMES.join(", "))]
    UnknownImage(String),
}

impl ImageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io { path: path.to_path_buf(), source }
    }
}

/// The version of a minimal image built from `packages` (name, Debian version) with kernel
/// package version `kernel_version`: the kernel version made file-name safe, a dot, and the
/// first 12 hex digits of a SHA-256 over the recipe revision, the scripts the recipe puts into
/// the image (so editing one is a new version even without a revision bump) and the sorted
/// package list.
pub fn image_version(kernel_version: &str, packages: &[(String, String)]) -> String {
    let recipe = format!("kiln-minimal recipe {RECIPE_REVISION}\n{}", minimal::scripts());
    recipe_version(&recipe, kernel_version, packages)
}

/// [`image_version`] for the recipe described by `recipe` (its name, revision and scripts).
fn recipe_version(recipe: &str, kernel_version: &str, packages: &[(String, String)]) -> String {
    let mut sorted = packages.to_vec();
    sorted.sort();
    let mut hasher = Sha256::new();
    hasher.update(format!("{recipe}\n"));
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

/// Builds (or finds in `cache_dir`) the image called `name`, one of [`IMAGE_NAMES`].
pub fn build_named(name: &str, cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<BuiltImage, ImageError> {
    match name {
        "minimal" => build_minimal(cache_dir, progress),
        "debian-12" => build_debian12(cache_dir, progress),
        other => Err(ImageError::UnknownImage(other.to_owned())),
    }
}

/// Builds (or finds in `cache_dir`) the minimal image for the packages apt currently resolves.
///
/// Needs `apt-cache`, `apt-get`, `dpkg` and `mkfs.ext4` on the host and a current apt index;
/// `progress` is told about each step, for a CLI to show.
pub fn build_minimal(cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<BuiltImage, ImageError> {
    progress("resolving package versions");
    let kernel_package = apt::resolve_dependency(KERNEL_METAPACKAGE, "linux-image-")?;
    let names: Vec<&str> = std::iter::once(kernel_package.as_str()).chain(ROOT_PACKAGES).collect();
    let versions = apt::candidate_versions(&names)?;
    // The kernel first: assembly treats the first package as the kernel.
    let packages: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), versions[*n].clone())).collect();
    let version = image_version(&packages[0].1, &packages);

    build_cached(cache_dir, "minimal", &version, MINIMAL_CMDLINE, progress, |scratch| {
        let downloaded = fetch(cache_dir, &packages, progress)?;
        minimal::assemble(scratch, &downloaded, &version, progress)
    })
}

/// Builds (or finds in `cache_dir`) the debian-12 image for the packages apt currently
/// resolves.
///
/// Needs, besides what [`build_minimal`] needs, `mmdebstrap` and root privileges (packages
/// are installed in a chroot, running their maintainer scripts). Takes about a minute and
/// ~50 MB of downloads when nothing is cached.
pub fn build_debian12(cache_dir: &Path, progress: &dyn Fn(&str)) -> Result<BuiltImage, ImageError> {
    progress("resolving package versions");
    let kernel_package = apt::resolve_dependency(KERNEL_METAPACKAGE, "linux-image-")?;
    let boot = apt::candidate_versions(&[kernel_package.as_str(), BUSYBOX_PACKAGE])?;
    let seeds = debian::seeds();
    let set = apt::resolve_install_set(&seeds.iter().map(String::as_str).collect::<Vec<_>>())?;
    // The kernel and busybox first, then the root file system's set, as assembly expects.
    let mut packages = vec![
        (kernel_package.clone(), boot[&kernel_package].clone()),
        (BUSYBOX_PACKAGE.to_owned(), boot[BUSYBOX_PACKAGE].clone()),
    ];
    packages.extend(set);
    let recipe = format!("kiln-debian-12 recipe {DEBIAN12_RECIPE_REVISION}\n{}", debian::scripts());
    let version = recipe_version(&recipe, &packages[0].1, &packages);

    build_cached(cache_dir, "debian-12", &version, DEBIAN12_CMDLINE, progress, |scratch| {
        let downloaded = fetch(cache_dir, &packages, progress)?;
        debian::assemble(scratch, &downloaded[0], &downloaded[1], &downloaded[2..], &version, progress)
    })
}

/// Downloads `packages` into the shared `cache_dir/debs` (those not already there).
fn fetch(cache_dir: &Path, packages: &[(String, String)], progress: &dyn Fn(&str)) -> Result<Vec<PathBuf>, ImageError> {
    let debs = cache_dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| ImageError::io(&debs, e))?;
    if packages.len() <= 12 {
        let list: Vec<String> = packages.iter().map(|(name, version)| format!("{name} {version}")).collect();
        progress(&format!("fetching {}", list.join(", ")));
    } else {
        progress(&format!("fetching {} packages (those not cached)", packages.len()));
    }
    apt::download(&debs, packages)
}

/// Returns the image `name` at `version` from `cache_dir`, or builds it: `build` writes
/// `vmlinuz`, `initrd.img` and `root.ext4` into `<scratch>/out`, which is then renamed to
/// `cache_dir/<name>-<version>`.
fn build_cached(
    cache_dir: &Path,
    name: &str,
    version: &str,
    cmdline: &str,
    progress: &dyn Fn(&str),
    build: impl FnOnce(&Path) -> Result<(), ImageError>,
) -> Result<BuiltImage, ImageError> {
    let out = cache_dir.join(format!("{name}-{version}"));
    let image = BuiltImage {
        kernel: out.join("vmlinuz"),
        initrd: out.join("initrd.img"),
        root_disk: out.join("root.ext4"),
        version: version.to_owned(),
        cmdline: cmdline.to_owned(),
    };
    if [&image.kernel, &image.initrd, &image.root_disk].iter().all(|p| p.is_file()) {
        progress(&format!("{name} image {version} is cached"));
        return Ok(image);
    }

    // Scratch space next to the output, so the final rename never crosses file systems.
    let scratch = cache_dir.join(format!(".build-{name}-{version}-{}", std::process::id()));
    if scratch.exists() {
        files::remove_scratch(&scratch)?;
    }
    files::mkdir(&scratch, 0o755)?;
    let result = build(&scratch).and_then(|()| {
        if out.exists() {
            std::fs::remove_dir_all(&out).map_err(|e| ImageError::io(&out, e))?;
        }
        let built = scratch.join("out");
        std::fs::rename(&built, &out).map_err(|e| ImageError::io(&out, e))
    });
    if let Err(e) = files::remove_scratch(&scratch) {
        progress(&format!("warning: {e}"));
    }
    result?;
    progress(&format!("built {name} image {version}"));
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

    #[test]
    fn recipes_with_the_same_packages_have_different_versions() {
        let base = pkgs(&[("libc6", "2.36")]);
        assert_ne!(recipe_version("kiln-debian-12 recipe 1", "6.1", &base), image_version("6.1", &base));
    }

    #[test]
    fn versions_cover_the_scripts_put_into_images() {
        assert!(minimal::scripts().contains(&minimal::agent_script()));
        assert!(minimal::scripts().contains(initramfs::INITRAMFS_INIT));
        assert!(debian::scripts().contains(&debian::agent_script()));
        assert!(debian::scripts().contains(initramfs::INITRAMFS_INIT));
    }

    #[test]
    fn unknown_image_names_are_refused() {
        let dir = Path::new("/nonexistent");
        assert!(
            matches!(build_named("windows", dir, &|_| ()), Err(ImageError::UnknownImage(name)) if name == "windows")
        );
        assert_eq!(IMAGE_NAMES, ["minimal", "debian-12"]);
    }
}
