//! Assembling the debian-12 image: a Debian bookworm root file system installed by mmdebstrap
//! from exactly the packages the host's apt resolved (served to it as a local repository), the
//! cloud kernel with its modules, Kiln's initramfs, and the first-boot agent as a systemd unit.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::apt::{extract, run};
use crate::ext4::{derived_uuid, make_ext4};
use crate::files::{copy, mkdir, read, tree_size, write, FIXED_TIME};
use crate::initramfs::{Kernel, INITRAMFS_INIT};
use crate::{ImageError, AGENT_DONE_MARKER, READY_MARKER};

/// The Debian release the image is built from.
pub(crate) const SUITE: &str = "bookworm";

/// Packages on top of what debootstrap's `minbase` has (Essential, Priority: required, apt).
/// `usr-is-merged` stands in for `usrmerge`, which would pull in perl: the merged /usr links
/// are made by mmdebstrap's `merged-usr` hook, as debootstrap makes them.
const PACKAGES: [&str; 12] = [
    "usr-is-merged",
    "systemd-sysv",
    "udev",
    "dbus",
    "systemd-resolved",
    "kmod",
    "iproute2",
    "netbase",
    "openssh-server",
    "curl",
    "ca-certificates",
    "sudo",
];

/// The unprivileged user SSH keys are installed for besides root, as in Debian's cloud images.
pub(crate) const DEFAULT_USER: &str = "admin";

/// The root disk's size: room for the system (~270 MiB) and for what instances install. A
/// sparse file, so unused space costs nothing; a larger volume is grown into at boot.
const ROOT_DISK_MIB: u64 = 2048;

/// dpkg path filters applied while installing (and kept in the image, so later installs stay
/// as lean): no manuals, documentation other than copyright files, or translations.
const DPKG_FILTERS: [&str; 7] = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
];

/// What apt is asked to install into an empty system: minbase's selection (restricted to the
/// release and architecture, as mmdebstrap restricts it) plus [`PACKAGES`].
pub(crate) fn seeds() -> Vec<String> {
    let mut seeds = vec![
        format!("?narrow(?codename(^{SUITE}$),?architecture(amd64),?essential)"),
        format!("?narrow(?codename(^{SUITE}$),?architecture(amd64),?priority(required))"),
        "apt".to_owned(),
    ];
    seeds.extend(PACKAGES.iter().map(|p| p.to_string()));
    seeds
}

/// The first-boot agent (see `agent/debian.sh`) with its markers filled in.
pub(crate) fn agent_script() -> String {
    include_str!("agent/debian.sh").replace("@READY@", READY_MARKER).replace("@DONE@", AGENT_DONE_MARKER)
}

/// Runs the agent once sshd is up. Its own retry loop waits for the network, so boot never
/// waits on `network-online.target`. Output goes to `/dev/console` rather than `/dev/ttyS0`:
/// agetty's `vhangup()` on ttyS0 cuts off every other open file of that tty, but not those
/// opened through /dev/console, which is ttyS0 here (`console=ttyS0`).
const AGENT_UNIT: &str = "[Unit]
Description=Kiln instance agent (instance metadata, SSH keys, user data)
After=ssh.service systemd-networkd.service systemd-resolved.service
Wants=systemd-networkd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kiln-agent
RemainAfterExit=yes
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/console
# User data may run for as long as it likes, as with cloud-init.
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
";

/// Host keys are removed from the image (every instance would share them otherwise) and made
/// at first boot, before sshd starts.
const SSH_KEYGEN_UNIT: &str = "[Unit]
Description=Generate missing SSH host keys
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=ssh.service
";

const NETWORK: &str = "[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
# The agent sets the hostname from the instance metadata.
UseHostname=false
";

const SOURCES: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

const HOSTS: &str = "127.0.0.1\tlocalhost
127.0.1.1\tdebian
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
";

/// Run inside the finished tree: module index, the default user, units, and no host keys.
/// `systemd-firstboot` is masked: on an image's first boot it would prompt on the console for
/// a locale and time zone and wait for an answer that never comes. `e2scrub_reap` is disabled:
/// it only cleans up LVM snapshots, which Kiln's disks never have, and took ~10 s of the one
/// vCPU's time during boot under TCG.
const CHROOT_SCRIPT: &str = "set -e
depmod -a @RELEASE@
useradd --create-home --shell /bin/bash --groups sudo @USER@
systemctl --quiet enable systemd-networkd.service systemd-resolved.service kiln-ssh-keygen.service kiln-agent.service
systemctl --quiet disable e2scrub_reap.service
systemctl --quiet mask systemd-firstboot.service
rm -f /etc/ssh/ssh_host_*
";

/// Everything this recipe writes into the image as text, for the image version.
pub(crate) fn scripts() -> String {
    [INITRAMFS_INIT, &agent_script(), AGENT_UNIT, SSH_KEYGEN_UNIT, NETWORK, SOURCES, HOSTS, CHROOT_SCRIPT].concat()
}

/// Builds `scratch/out/{vmlinuz,initrd.img,root.ext4}`. `kernel_deb` and `busybox_deb` are
/// unpacked (the kernel into the root disk too, busybox only into the initramfs); `set` is the
/// complete package set the root file system is installed from.
pub(crate) fn assemble(
    scratch: &Path,
    kernel_deb: &Path,
    busybox_deb: &Path,
    set: &[PathBuf],
    version: &str,
    progress: &dyn Fn(&str),
) -> Result<(), ImageError> {
    let root = scratch.join("root");
    let out = scratch.join("out");
    mkdir(&out, 0o755)?;

    progress("indexing packages");
    let repo = scratch.join("repo");
    write_repository(&repo, set)?;

    progress(&format!("installing {} packages with mmdebstrap", set.len()));
    let names = set.iter().map(|deb| package_name(deb)).collect::<Result<Vec<_>, _>>()?;
    mmdebstrap(&repo, &root, &names)?;

    progress("adding the kernel, initramfs and agent");
    let kernel = Kernel::unpack(kernel_deb, &scratch.join("kernel"))?;
    let busybox_tree = scratch.join("busybox");
    mkdir(&busybox_tree, 0o755)?;
    extract(busybox_deb, &busybox_tree)?;
    let initrd = kernel.initramfs(&read(&busybox_tree.join("bin/busybox"))?)?;
    copy(&kernel.vmlinuz, &out.join("vmlinuz"))?;
    fs::write(out.join("initrd.img"), &initrd).map_err(|e| ImageError::io(&out, e))?;

    // The whole module tree, so udev loads whatever the VM's devices need; /lib is a link to
    // usr/lib in a merged-/usr system, so the real directory is named.
    let modules = root.join("usr/lib/modules").join(&kernel.release);
    mkdir(&root.join("usr/lib/modules"), 0o755)?;
    run(Command::new("cp").arg("-a").arg(&kernel.module_dir).arg(&modules))?;
    copy(&out.join("vmlinuz"), &root.join("boot/vmlinuz"))?;
    fs::write(root.join("boot/initrd.img"), &initrd).map_err(|e| ImageError::io(&root, e))?;
    configure(&root, version)?;
    chroot_script(&root, &kernel.release)?;

    progress("making the ext4 root disk");
    let size_mib = ROOT_DISK_MIB.max(tree_size(&root)? * 2 / (1 << 20));
    make_ext4(&root, &out.join("root.ext4"), size_mib, &derived_uuid(&format!("kiln-debian-12-root {version}")))
}

/// A package's name from its `.deb` file name (`name_version_arch.deb`).
fn package_name(deb: &Path) -> Result<String, ImageError> {
    deb.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('_').next())
        .map(str::to_owned)
        .ok_or_else(|| ImageError::Resolve(format!("not a .deb file name: {}", deb.display())))
}

/// Makes `repo` a flat apt repository holding exactly `debs` (hard links into the download
/// cache) with a `Packages` index, so mmdebstrap can only ever install the resolved versions.
fn write_repository(repo: &Path, debs: &[PathBuf]) -> Result<(), ImageError> {
    mkdir(repo, 0o755)?;
    let mut index = String::new();
    for deb in debs {
        let name = deb.file_name().ok_or_else(|| ImageError::Resolve(format!("bad path {}", deb.display())))?;
        let target = repo.join(name);
        if fs::hard_link(deb, &target).is_err() {
            copy(deb, &target)?;
        }
        let bytes = read(deb)?;
        let control = run(Command::new("dpkg-deb").arg("--field").arg(deb))?;
        index.push_str(control.trim_end());
        let _ = write!(
            index,
            "\nFilename: ./{}\nSize: {}\nSHA256: {}\n\n",
            name.to_string_lossy(),
            bytes.len(),
            hex::encode(Sha256::digest(&bytes))
        );
    }
    write(&repo.join("Packages"), &index, 0o644)
}

/// A `copy://` URI for `path`: apt copies packages from it into the chroot's archive cache,
/// where dpkg inside the chroot can read them (a `file://` source would be read in place).
fn copy_uri(path: &Path) -> String {
    let mut uri = String::from("copy://");
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri
}

fn mmdebstrap(repo: &Path, root: &Path, packages: &[String]) -> Result<(), ImageError> {
    let mut command = Command::new("mmdebstrap");
    command
        .env("SOURCE_DATE_EPOCH", FIXED_TIME.to_string())
        .args(["--mode=root", "--variant=essential", "--quiet"])
        .arg(format!("--include={}", packages.join(",")))
        .arg("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr");
    for filter in DPKG_FILTERS {
        command.arg(format!("--dpkgopt={filter}"));
    }
    // An empty suite: the repository has no release file, so every package in it is a
    // candidate for the essential set.
    command.arg("").arg(root).arg(format!("deb [trusted=yes] {} ./", copy_uri(repo)));
    match run(&mut command) {
        Err(ImageError::Spawn { program, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(ImageError::Resolve(format!("{program} is not installed (apt-get install mmdebstrap)")))
        }
        other => other.map(drop),
    }
}

/// Kiln's files in the installed tree: agent and units, networking, users, apt sources.
fn configure(root: &Path, version: &str) -> Result<(), ImageError> {
    let etc = root.join("etc");
    write(&root.join("usr/local/sbin/kiln-agent"), &agent_script(), 0o755)?;
    write(&etc.join("systemd/system/kiln-agent.service"), AGENT_UNIT, 0o644)?;
    write(&etc.join("systemd/system/kiln-ssh-keygen.service"), SSH_KEYGEN_UNIT, 0o644)?;
    write(&etc.join("systemd/network/80-kiln-dhcp.network"), NETWORK, 0o644)?;
    write(&etc.join("kiln/image-version"), &format!("{version}\n"), 0o644)?;
    write(&etc.join("fstab"), "/dev/vda / ext4 rw,errors=remount-ro 0 1\n", 0o644)?;
    // mmdebstrap copies the build host's names in; an instance gets its own from the agent.
    write(&etc.join("hostname"), "debian\n", 0o644)?;
    write(&etc.join("hosts"), HOSTS, 0o644)?;
    write(&etc.join("default/locale"), "LANG=C.UTF-8\n", 0o644)?;
    write(&etc.join("ssh/sshd_config.d/50-kiln.conf"), "PasswordAuthentication no\n", 0o644)?;
    write(&etc.join("sudoers.d/90-kiln-default-user"), &format!("{DEFAULT_USER} ALL=(ALL) NOPASSWD:ALL\n"), 0o440)?;
    // The build's local repository means nothing in an instance: point apt at Debian.
    let list = etc.join("apt/sources.list");
    fs::remove_file(&list).map_err(|e| ImageError::io(&list, e))?;
    write(&etc.join("apt/sources.list.d/debian.sources"), SOURCES, 0o644)
}

fn chroot_script(root: &Path, release: &str) -> Result<(), ImageError> {
    let script = CHROOT_SCRIPT.replace("@RELEASE@", release).replace("@USER@", DEFAULT_USER);
    run(Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        // useradd stamps the password-change date from this rather than the clock.
        .env("SOURCE_DATE_EPOCH", FIXED_TIME.to_string()))
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_is_valid_posix_sh() {
        match crate::files::check_sh_syntax(&agent_script()) {
            Ok(shells) if shells.is_empty() => crate::host_tools::cannot_run("neither dash nor busybox is installed"),
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(agent_script().starts_with("#!/bin/sh\n"));
    }

    #[test]
    fn agent_has_its_markers_filled() {
        let agent = agent_script();
        assert!(!agent.contains("@READY@") && !agent.contains("@DONE@"));
        assert!(agent.contains("\"KILN-GUEST-READY version=$(cat /etc/kiln/image-version)\""));
        assert!(agent.contains("echo \"KILN-AGENT-DONE instance-id=$id\""));
    }

    #[test]
    fn seeds_are_minbase_plus_the_packages() {
        let seeds = seeds();
        assert!(seeds[0].contains("?essential") && seeds[0].contains("bookworm"));
        assert!(seeds[1].contains("?priority(required)"));
        assert!(seeds.iter().any(|s| s == "openssh-server"));
        assert!(seeds.iter().any(|s| s == "apt"));
    }

    #[test]
    fn copy_uris_escape_what_a_sources_line_cannot_hold() {
        assert_eq!(copy_uri(Path::new("/var/cache/kiln/.build-1/repo")), "copy:///var/cache/kiln/.build-1/repo");
        assert_eq!(copy_uri(Path::new("/a b/c,d")), "copy:///a%20b/c%2Cd");
    }

    #[test]
    fn package_names_come_from_deb_file_names() {
        let deb = Path::new("/c/debs/libc6_2.36-9+deb12u14_amd64.deb");
        assert_eq!(package_name(deb).unwrap(), "libc6");
    }

    #[test]
    fn units_order_the_agent_after_sshd_and_keys_before_it() {
        assert!(AGENT_UNIT.contains("After=ssh.service"));
        assert!(AGENT_UNIT.contains("ExecStart=/usr/local/sbin/kiln-agent"));
        assert!(SSH_KEYGEN_UNIT.contains("Before=ssh.service"));
        assert!(CHROOT_SCRIPT.contains("kiln-agent.service"));
    }
}
