//! Resolving, downloading and unpacking Debian packages with the host's own apt and dpkg.
//!
//! Only `apt-cache`, `apt-get download` and `dpkg -x` are used: nothing is installed on the
//! host, no maintainer script runs, and the packages come from whatever archive (and mirror,
//! proxy, signing setup) the host's apt is already configured for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

/// How much of a failed program's stderr an error keeps: the end, where the reason is, and not
/// the whole log of a chatty tool such as mmdebstrap.
const STDERR_TAIL: usize = 4096;

/// The last `max` bytes of `text` (cut at a character boundary), marked as cut when it was.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Runs a program to completion and returns its stdout, or an error carrying its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String, ImageError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let output = command.output().map_err(|source| ImageError::Spawn { program: program.clone(), source })?;
    if !output.status.success() {
        return Err(ImageError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: tail(String::from_utf8_lossy(&output.stderr).trim(), STDERR_TAIL),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The package a metapackage such as `linux-image-cloud-amd64` depends on whose name starts
/// with `prefix`, from `apt-cache depends` output.
pub fn parse_depends(output: &str, prefix: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let line = line.trim().trim_start_matches('|');
        let name = line.strip_prefix("Depends:")?.trim();
        (name.starts_with(prefix) && !name.starts_with('<')).then(|| name.to_owned())
    })
}

/// The candidate version of each package in `apt-cache policy A B ...` output; a package
/// without a candidate (`(none)`) is left out.
pub fn parse_candidates(output: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut package = None;
    for line in output.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(str::to_owned);
        } else if let (Some(name), Some(version)) = (&package, line.trim().strip_prefix("Candidate:")) {
            let version = version.trim();
            if version != "(none)" && !version.is_empty() {
                found.insert(name.clone(), version.to_owned());
            }
        }
    }
    found
}

/// The versioned kernel image package the metapackage currently points at. Resolved at build
/// time because security updates change it (`linux-image-6.1.0-NN-cloud-amd64`).
pub fn resolve_dependency(metapackage: &str, prefix: &str) -> Result<String, ImageError> {
    let output = run(Command::new("apt-cache").args(["depends", metapackage]))?;
    parse_depends(&output, prefix).ok_or_else(|| {
        ImageError::Resolve(format!(
            "{metapackage} has no dependency named {prefix}*; is the apt index current (apt-get update)?"
        ))
    })
}

/// The versions `apt-get download` would fetch for `packages`, asked of apt in one call (each
/// call loads apt's whole cache, which takes about a second).
pub fn candidate_versions(packages: &[&str]) -> Result<BTreeMap<String, String>, ImageError> {
    let output = run(Command::new("apt-cache").arg("policy").args(packages))?;
    let found = parse_candidates(&output);
    match packages.iter().find(|p| !found.contains_key(**p)) {
        Some(missing) => Err(ImageError::Resolve(format!(
            "no candidate version of {missing}; is the apt index current (apt-get update)?"
        ))),
        None => Ok(found),
    }
}

/// The (package, version) pairs of `apt-get --simulate` output's `Inst` lines, in install order.
pub fn parse_simulated_installs(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let name = rest.split_whitespace().next()?;
            // `Inst name [old version] (new version archive [arch])`: the version opens the parens.
            let version = rest.split_once('(')?.1.split_whitespace().next()?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// Every package (with its version) that installing `seeds` into an empty system takes, as the
/// host's apt resolves it without recommends: the complete package set of a root file system,
/// computed from the host's apt index without touching the host's own installation (the status
/// file apt reads is empty). `seeds` may be names or apt patterns (`?essential`).
pub fn resolve_install_set(seeds: &[&str]) -> Result<Vec<(String, String)>, ImageError> {
    let output = run(Command::new("apt-get")
        .args(["--simulate", "--quiet", "-o", "Dir::State::status=/dev/null", "-o", "APT::Install-Recommends=false"])
        .args(["-o", "APT::Install-Suggests=false", "-o", "Debug::NoLocking=true", "install"])
        .args(seeds))?;
    let set = parse_simulated_installs(&output);
    if set.is_empty() {
        return Err(ImageError::Resolve(format!("apt resolved nothing to install for {}", seeds.join(" "))));
    }
    Ok(set)
}

/// The file name prefix `apt-get download` gives a package version (an epoch's `:` is escaped
/// as `%3a`); the architecture follows it.
fn deb_prefix(package: &str, version: &str) -> String {
    format!("{package}_{}_", version.replace(':', "%3a"))
}

/// The `.deb` in `debs` for `package` at `version`, if it was downloaded before.
fn find_deb(debs: &Path, package: &str, version: &str) -> Result<Option<PathBuf>, ImageError> {
    let prefix = deb_prefix(package, version);
    for entry in std::fs::read_dir(debs).map_err(|e| ImageError::io(debs, e))? {
        let entry = entry.map_err(|e| ImageError::io(debs, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Downloads each (package, exact version) not already in `debs` into it, and returns the
/// `.deb` paths in the order given. One `apt-get download` call for all missing packages,
/// because apt's start-up, not the transfer, dominates for small packages.
pub fn download(debs: &Path, packages: &[(String, String)]) -> Result<Vec<PathBuf>, ImageError> {
    let mut missing = Vec::new();
    for (name, version) in packages {
        if find_deb(debs, name, version)?.is_none() {
            missing.push(format!("{name}={version}"));
        }
    }
    if !missing.is_empty() {
        run(Command::new("apt-get").arg("download").args(&missing).current_dir(debs))?;
    }
    packages
        .iter()
        .map(|(name, version)| {
            find_deb(debs, name, version)?.ok_or_else(|| {
                ImageError::Resolve(format!("apt-get download left no {name} {version} in {}", debs.display()))
            })
        })
        .collect()
}

/// Unpacks a `.deb`'s files (not its scripts) into `into`.
pub fn extract(deb: &Path, into: &Path) -> Result<(), ImageError> {
    run(Command::new("dpkg").arg("-x").arg(deb).arg(into)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_versioned_kernel_package() {
        let output = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(parse_depends(output, "linux-image-").as_deref(), Some("linux-image-6.1.0-56-cloud-amd64"));
        assert_eq!(parse_depends("x\n  Depends: <virtual>\n", "linux-image-"), None);
        assert_eq!(parse_depends(" |Depends: linux-image-a\n", "linux-image-").as_deref(), Some("linux-image-a"));
    }

    #[test]
    fn reads_candidate_versions_per_package() {
        let output = "busybox-static:\n  Installed: (none)\n  Candidate: 1:1.35.0-4+deb12u1+b1\n  Version table:\n     \
                      1:1.35.0-4+deb12u1+b1 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n\
                      zlib1g:\n  Installed: 1:1.2.13.dfsg-1\n  Candidate: 1:1.2.13.dfsg-1\n\
                      gone:\n  Installed: (none)\n  Candidate: (none)\n";
        let found = parse_candidates(output);
        assert_eq!(found.get("busybox-static").map(String::as_str), Some("1:1.35.0-4+deb12u1+b1"));
        assert_eq!(found.get("zlib1g").map(String::as_str), Some("1:1.2.13.dfsg-1"));
        assert_eq!(found.len(), 2);
        assert!(parse_candidates("").is_empty());
    }

    #[test]
    fn deb_names_escape_the_epoch() {
        assert_eq!(deb_prefix("busybox-static", "1:1.35.0-4"), "busybox-static_1%3a1.35.0-4_");
    }

    #[test]
    fn reads_simulated_installs() {
        let output = "Reading package lists...\nThe following NEW packages will be installed:\n  libc6 curl\n\
                      Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [amd64])\n\
                      Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []\n\
                      Inst perl-base [5.36.0-7] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64])\n\
                      Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])\n";
        assert_eq!(
            parse_simulated_installs(output),
            [
                ("gcc-12-base".to_owned(), "12.2.0-14+deb12u1".to_owned()),
                ("libc6".to_owned(), "2.36-9+deb12u14".to_owned()),
                ("perl-base".to_owned(), "5.36.0-7+deb12u4".to_owned()),
            ]
        );
        assert!(parse_simulated_installs("").is_empty());
    }

    #[test]
    fn long_stderr_keeps_its_end() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("0123456789abc", 3), "...abc");
        assert_eq!(tail("ééé", 3), "...é", "never splits a character");
    }
}
