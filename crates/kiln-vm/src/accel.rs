//! Which accelerator QEMU should use on this host.
//!
//! The decision is a pure function ([`detect`]) over a [`HostView`], so every case is unit-tested
//! without the host having to be that case; [`detect_host`] is the thin wrapper over the real
//! filesystem.
//!
//! KVM is chosen only when all three hold:
//! - `/dev/kvm` exists;
//! - `/sys/module/kvm_pvm` does not exist: PVM is a paravirtual KVM that runs without VT-x, and a
//!   stock kernel under it crawls and then dies with an emulation failure while QEMU stays up;
//! - `/proc/cpuinfo` lists `vmx` (Intel) or `svm` (AMD): without hardware virtualisation a
//!   `/dev/kvm` is either PVM or something equally unable to run ordinary guests.
//!
//! Everything else gets TCG, which is slow but boots anything.

use std::fmt;
use std::path::Path;

/// `/dev/kvm`: the KVM device node.
pub const DEV_KVM: &str = "/dev/kvm";
/// Present when the PVM (paravirtual KVM) module is loaded.
pub const PVM_MODULE: &str = "/sys/module/kvm_pvm";
/// Where the CPU flags are listed.
pub const CPUINFO: &str = "/proc/cpuinfo";

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware-assisted virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's portable binary translator.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` option takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chosen accelerator and a sentence saying why, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// The accelerator to use.
    pub accel: Accel,
    /// Why it was chosen, readable by an operator.
    pub reason: String,
}

/// The few facts about the host that [`detect`] reads. A trait so tests can describe any host.
pub trait HostView {
    /// Whether `path` exists (a file, a directory or a device node).
    fn exists(&self, path: &Path) -> bool;
    /// The contents of `path`, or `None` when it cannot be read.
    fn read_to_string(&self, path: &Path) -> Option<String>;
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

impl HostView for RealHost {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read_to_string(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// Decides the accelerator for the host `host` describes.
pub fn detect(host: &impl HostView) -> AccelChoice {
    let tcg = |reason: String| AccelChoice { accel: Accel::Tcg, reason };
    if !host.exists(Path::new(DEV_KVM)) {
        return tcg(format!("{DEV_KVM} does not exist; using TCG"));
    }
    // PVM is checked before the CPU flags because its reason is the more useful one: a PVM host
    // also lacks vmx/svm, and "PVM" tells the operator why /dev/kvm is there but unusable.
    if host.exists(Path::new(PVM_MODULE)) {
        return tcg(format!("PVM paravirtual KVM detected ({PVM_MODULE}): it cannot boot stock kernels; using TCG"));
    }
    let Some(cpuinfo) = host.read_to_string(Path::new(CPUINFO)) else {
        return tcg(format!("{CPUINFO} is unreadable, so hardware virtualisation cannot be confirmed; using TCG"));
    };
    match hardware_virtualisation(&cpuinfo) {
        Some(flag) => AccelChoice {
            accel: Accel::Kvm,
            reason: format!("{DEV_KVM} exists and the CPU has hardware virtualisation ({flag}); using KVM"),
        },
        None => tcg(format!("{DEV_KVM} exists but the CPU has no vmx/svm flag; using TCG")),
    }
}

/// [`detect`] on the real host.
pub fn detect_host() -> AccelChoice {
    detect(&RealHost)
}

/// The hardware virtualisation flag of the first CPU that has one. Only the `flags` lines are
/// read: newer kernels also print a `vmx flags` line, whose words are VMX features, not CPU flags.
fn hardware_virtualisation(cpuinfo: &str) -> Option<&'static str> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .flat_map(|(_, flags)| flags.split_whitespace())
        .find_map(|flag| match flag {
            "vmx" => Some("vmx"),
            "svm" => Some("svm"),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// A host made of a few paths: a path with `Some` contents is a readable file, one with
    /// `None` exists but cannot be read (a device node, a directory).
    #[derive(Default)]
    struct FakeHost(HashMap<PathBuf, Option<String>>);

    impl FakeHost {
        fn with(mut self, path: &str, contents: Option<&str>) -> FakeHost {
            self.0.insert(PathBuf::from(path), contents.map(str::to_owned));
            self
        }
    }

    impl HostView for FakeHost {
        fn exists(&self, path: &Path) -> bool {
            self.0.contains_key(path)
        }
        fn read_to_string(&self, path: &Path) -> Option<String> {
            self.0.get(path).cloned().flatten()
        }
    }

    const INTEL: &str = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\nvmx flags\t: vnmi ept\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm sse2\n";
    const NO_VIRT: &str = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\nvmx flags\t: vnmi\n";

    #[test]
    fn no_dev_kvm_is_tcg() {
        let host = FakeHost::default().with(CPUINFO, Some(INTEL));
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.contains("/dev/kvm does not exist"), "{}", choice.reason);
    }

    #[test]
    fn pvm_is_tcg_even_with_vmx() {
        let host = FakeHost::default().with(DEV_KVM, None).with(PVM_MODULE, None).with(CPUINFO, Some(INTEL));
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Tcg);
        assert_eq!(
            choice.reason,
            "PVM paravirtual KVM detected (/sys/module/kvm_pvm): it cannot boot stock kernels; using TCG"
        );
    }

    #[test]
    fn pvm_without_vmx_names_pvm_as_the_reason() {
        let host = FakeHost::default().with(DEV_KVM, None).with(PVM_MODULE, None).with(CPUINFO, Some(NO_VIRT));
        assert!(detect(&host).reason.starts_with("PVM"));
    }

    #[test]
    fn dev_kvm_with_vmx_is_kvm() {
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, Some(INTEL));
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Kvm);
        assert!(choice.reason.contains("(vmx)"), "{}", choice.reason);
    }

    #[test]
    fn dev_kvm_with_svm_is_kvm() {
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, Some(AMD));
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Kvm);
        assert!(choice.reason.contains("(svm)"), "{}", choice.reason);
    }

    #[test]
    fn dev_kvm_without_cpu_flag_is_tcg() {
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, Some(NO_VIRT));
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.contains("no vmx/svm"), "{}", choice.reason);
    }

    #[test]
    fn vmx_features_line_is_not_a_cpu_flag() {
        // "vmx flags" lists VMX sub-features; a word "vmx" there must not count.
        let cpuinfo = "flags\t\t: fpu sse2\nvmx flags\t: vmx ept\n";
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, Some(cpuinfo));
        assert_eq!(detect(&host).accel, Accel::Tcg);
    }

    #[test]
    fn flag_must_be_a_whole_word() {
        let cpuinfo = "flags\t\t: fpu vmxfoo svm_lock\n";
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, Some(cpuinfo));
        assert_eq!(detect(&host).accel, Accel::Tcg);
    }

    #[test]
    fn unreadable_cpuinfo_is_tcg() {
        let host = FakeHost::default().with(DEV_KVM, None).with(CPUINFO, None);
        let choice = detect(&host);
        assert_eq!(choice.accel, Accel::Tcg);
        assert!(choice.reason.contains("unreadable"), "{}", choice.reason);
    }

    #[test]
    fn real_host_detection_does_not_panic() {
        let choice = detect_host();
        assert!(!choice.reason.is_empty());
    }
}
