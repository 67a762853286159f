//! ARCHITECTURE.md's map of the crates is checked against the manifests: the list of each
//! crate's Kiln dependencies must be exactly what its `Cargo.toml` says, and every dependency
//! must sit on a lower floor of the drawing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).expect("workspace root")
}

/// Each workspace crate's `kiln-*` entries under `[dependencies]`.
fn manifests() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let mut deps = BTreeSet::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if section == "[dependencies]" && line.starts_with("kiln-") {
                deps.insert(line.split(['.', ' ', '=']).next().unwrap().to_string());
            }
        }
        out.insert(dir.file_name().unwrap().to_string_lossy().into_owned(), deps);
    }
    out
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap()
}

/// The list between the `crate-deps` markers: "- `a`, `b` → x, y" or "→ none".
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = architecture();
    let start = doc.find("<!-- crate-deps -->").expect("crate-deps marker");
    let end = doc.find("<!-- /crate-deps -->").expect("closing crate-deps marker");
    let mut out = BTreeMap::new();
    for line in doc[start..end].lines().filter_map(|l| l.strip_prefix("- ")) {
        let (crates, deps) = line.split_once('→').expect("a → in every entry");
        let deps: BTreeSet<String> = match deps.trim() {
            "none" => BTreeSet::new(),
            list => list.split(',').map(|d| d.trim().to_string()).collect(),
        };
        for name in crates.split(',') {
            out.insert(name.trim().trim_matches('`').to_string(), deps.clone());
        }
    }
    out
}

/// Crate → floor, from the drawing's "floor N" lines.
fn floors() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in architecture().lines() {
        let Some(rest) = line.strip_prefix("floor ") else { continue };
        let mut words = rest.split_whitespace();
        let floor: u32 = words.next().unwrap().parse().unwrap();
        for word in words.filter(|w| w.starts_with("kiln-")) {
            out.insert(word.to_string(), floor);
        }
    }
    out
}

#[test]
fn the_documented_crate_dependencies_are_the_manifests() {
    assert_eq!(documented(), manifests(), "ARCHITECTURE.md's crate-deps list and the Cargo.toml files differ");
}

#[test]
fn every_dependency_points_down_a_floor() {
    let floors = floors();
    for (krate, deps) in manifests() {
        let floor = *floors.get(&krate).unwrap_or_else(|| panic!("{krate} is on no floor of ARCHITECTURE.md"));
        for dep in deps {
            assert!(floors[&dep] < floor, "{krate} (floor {floor}) uses {dep} (floor {})", floors[&dep]);
        }
    }
}
