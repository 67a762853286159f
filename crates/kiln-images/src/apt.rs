//! Resolving, downloading and unpacking Debian packages with the host's own apt and dpkg.
//!
//! Only `apt-cache`, `apt-get download` and `dpkg -x` are used: nothing is installed on the
//! host, no maintainer script runs, and the packages come from whatever archive (and mirror,
//! proxy, signing setup) the host's apt is already configured for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

/// Runs a program to completion and returns its stdout, or an error carrying its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String, ImageError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let output = command.output().map_err(|source| ImageError::Spawn { program: program.clone(), source })?;
    if !output.status.success() {
        return Err(ImageError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
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
}
