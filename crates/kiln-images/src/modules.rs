//! Kernel module dependencies, read without `kmod`.
//!
//! A kernel package unpacked with `dpkg -x` has no `modules.dep` (its maintainer script runs
//! `depmod`, which never ran), and the host has no `modinfo`. Each `.ko` carries its
//! dependencies in its `.modinfo` section as a NUL-terminated `depends=a,b` string, which is all
//! an ordered `insmod` needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module set whose dependencies cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// A wanted module, or a dependency of one, is not in the kernel tree.
    #[error("kernel module {name:?} (needed by {needed_by}) is not in the kernel package")]
    Missing {
        /// The module's name.
        name: String,
        /// The module that needs it, or `the image` for a directly wanted one.
        needed_by: String,
    },
    /// Modules depend on each other in a cycle, which the kernel could never load.
    #[error("kernel module dependency cycle through {0:?}")]
    Cycle(String),
}

/// The module name of a `.ko` file: the kernel treats `-` and `_` alike and reports `_`.
pub fn module_name(file_name: &str) -> String {
    file_name.strip_suffix(".ko").unwrap_or(file_name).replace('-', "_")
}

/// The modules named by a module's `depends=` modinfo entry; empty when it has none.
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    let found = ko.windows(KEY.len()).enumerate().find(|(at, window)| {
        // A modinfo entry starts a string: it follows a NUL (or the very start of the data).
        *window == KEY && (*at == 0 || ko[at - 1] == 0)
    });
    let Some((at, _)) = found else { return Vec::new() };
    let value = &ko[at + KEY.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(module_name)
        .collect()
}

/// The `insmod` order for `wanted` and everything it depends on: each module after its
/// dependencies, each once, ties broken by the order of `wanted` so the result is stable.
pub fn load_order(wanted: &[&str], depends: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, ModuleError> {
    fn visit(
        name: &str,
        needed_by: &str,
        depends: &BTreeMap<String, Vec<String>>,
        visiting: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), ModuleError> {
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        let deps = depends
            .get(name)
            .ok_or_else(|| ModuleError::Missing { name: name.to_owned(), needed_by: needed_by.to_owned() })?;
        if !visiting.insert(name.to_owned()) {
            return Err(ModuleError::Cycle(name.to_owned()));
        }
        for dep in deps {
            visit(dep, name, depends, visiting, order)?;
        }
        visiting.remove(name);
        order.push(name.to_owned());
        Ok(())
    }

    let mut order = Vec::new();
    let mut visiting = BTreeSet::new();
    for name in wanted {
        visit(&module_name(name), "the image", depends, &mut visiting, &mut order)?;
    }
    Ok(order)
}

/// Every `.ko` under `dir` (recursively), by module name.
pub fn index_modules(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Some(file_name) = path.file_name().and_then(|n| n.to_str()) {
                if file_name.ends_with(".ko") {
                    found.insert(module_name(file_name), path);
                }
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries.iter().map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn reads_depends_from_modinfo_strings() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=virtio_ring,virtio,net-failover\0name=virtio_net\0";
        assert_eq!(modinfo_depends(ko), ["virtio_ring", "virtio", "net_failover"]);
        assert!(modinfo_depends(b"\0depends=\0name=virtio\0").is_empty());
        assert!(modinfo_depends(b"\0name=virtio\0").is_empty());
        // Only a string that starts an entry counts.
        assert!(modinfo_depends(b"\0xdepends=foo\0").is_empty());
    }

    #[test]
    fn module_names_use_underscores() {
        assert_eq!(module_name("virtio-rng.ko"), "virtio_rng");
        assert_eq!(module_name("virtio_blk"), "virtio_blk");
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let deps = table(&[
            ("virtio", &[]),
            ("virtio_ring", &[]),
            ("virtio_blk", &["virtio_ring", "virtio"]),
            ("failover", &[]),
            ("net_failover", &["failover"]),
            ("virtio_net", &["virtio_ring", "virtio", "net_failover"]),
            ("virtio_mmio", &["virtio_ring", "virtio"]),
        ]);
        let order = load_order(&["virtio_mmio", "virtio_blk", "virtio-net"], &deps).unwrap();
        assert_eq!(
            order,
            ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "failover", "net_failover", "virtio_net"]
        );
    }

    #[test]
    fn missing_and_cyclic_dependencies_are_errors() {
        let deps = table(&[("a", &["b"]), ("b", &["a"]), ("c", &["zz"])]);
        assert_eq!(load_order(&["a"], &deps), Err(ModuleError::Cycle("a".into())));
        assert_eq!(load_order(&["c"], &deps), Err(ModuleError::Missing { name: "zz".into(), needed_by: "c".into() }));
    }
}
