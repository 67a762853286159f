//! The behaviour every [`ChunkBackend`] must show; each implementation runs this suite.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::{ChunkBackend, LocalBackend, MemoryBackend};
use crate::id::chunk_id;

fn run_suite(backend: &dyn ChunkBackend) {
    let a = chunk_id(b"a");
    let b = chunk_id(b"b");
    let before = SystemTime::now() - Duration::from_secs(5);

    // Absent ids.
    assert_eq!(backend.get(&a).unwrap(), None);
    assert_eq!(backend.stat(&a).unwrap(), None);
    assert!(!backend.delete(&a).unwrap());
    assert!(!backend.quarantine(&a).unwrap());

    // Put, get, stat, replace.
    backend.put(&a, b"first").unwrap();
    assert_eq!(backend.get(&a).unwrap().as_deref(), Some(&b"first"[..]));
    let meta = backend.stat(&a).unwrap().unwrap();
    assert_eq!((meta.id, meta.size), (a, 5));
    assert!(meta.written >= before);
    backend.put(&a, b"second!").unwrap();
    assert_eq!(backend.get(&a).unwrap().as_deref(), Some(&b"second!"[..]));
    assert_eq!(backend.stat(&a).unwrap().unwrap().size, 7);

    // List sees every live chunk once.
    backend.put(&b, b"bee").unwrap();
    let mut seen = Vec::new();
    backend.list(&mut |m| seen.push(m.id)).unwrap();
    seen.sort();
    assert_eq!(seen, BTreeSet::from([a, b]).into_iter().collect::<Vec<_>>());

    // Quarantine removes from the live area and from listings.
    assert!(backend.quarantine(&b).unwrap());
    assert_eq!(backend.get(&b).unwrap(), None);
    let mut seen = Vec::new();
    backend.list(&mut |m| seen.push(m.id)).unwrap();
    assert_eq!(seen, vec![a]);

    // Delete.
    assert!(backend.delete(&a).unwrap());
    assert_eq!(backend.stat(&a).unwrap(), None);
    let mut count = 0;
    backend.list(&mut |_| count += 1).unwrap();
    assert_eq!(count, 0);

    // Nothing to clean on a quiet backend.
    assert_eq!(backend.remove_stale_temp(SystemTime::now() + Duration::from_secs(60)).unwrap(), 0);
}

#[test]
fn memory_backend_conforms() {
    run_suite(&MemoryBackend::new());
}

#[test]
fn local_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    run_suite(&LocalBackend::open(dir.path()).unwrap());
}

#[test]
fn local_backend_lays_files_out_by_id_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let id = chunk_id(b"a");
    backend.put(&id, b"x").unwrap();
    let hex = id.to_hex();
    let expected = dir.path().join("chunks").join(&hex[0..2]).join(&hex[2..4]).join(&hex);
    assert_eq!(backend.chunk_path(&id), expected);
    assert!(expected.is_file());

    backend.quarantine(&id).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with(&format!("{hex}.")), "{names:?}");
}

#[test]
fn local_backend_removes_only_stale_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path()).unwrap();
    let id = chunk_id(b"a");
    backend.put(&id, b"x").unwrap();
    let leaf = backend.chunk_path(&id).parent().unwrap().to_path_buf();
    std::fs::write(leaf.join(format!("{}leftover", super::local::TEMP_PREFIX)), b"half").unwrap();

    let past = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(backend.remove_stale_temp(past).unwrap(), 0);
    assert_eq!(backend.remove_stale_temp(SystemTime::now() + Duration::from_secs(1)).unwrap(), 1);
    assert_eq!(backend.get(&id).unwrap().as_deref(), Some(&b"x"[..]));
}
