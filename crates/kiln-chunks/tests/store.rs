//! Round trips, quarantine, GC primitives and insert/sweep concurrency on a real directory.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{files_under, local_store, random_block, random_bytes, text_block};
use kiln_chunks::{
    chunk_id, ChunkBackend, ChunkError, ChunkStore, CorruptReason, Inserted, MemoryBackend, SnapshotIndex, BLOCK_SIZE,
    CHUNK_HEADER_LEN,
};

const FAR_FUTURE: Duration = Duration::from_secs(1 << 30);

#[test]
fn random_and_compressible_blocks_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    for block in [random_block(1), random_block(2), text_block(3)] {
        let _guard = store.insert_guard();
        let id = store.insert(&block).unwrap().unwrap();
        assert_eq!(id, chunk_id(&block));
        assert_eq!(store.read(&id).unwrap(), block);
        assert!(store.contains(&id).unwrap());
    }
}

#[test]
fn compressible_blocks_are_stored_smaller_and_random_ones_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    let text = store.insert(&text_block(1)).unwrap().unwrap();
    let random = store.insert(&random_block(1)).unwrap().unwrap();
    assert!(store.stored_size(&text).unwrap().unwrap() < (BLOCK_SIZE / 50) as u64);
    assert_eq!(store.stored_size(&random).unwrap(), Some((BLOCK_SIZE + CHUNK_HEADER_LEN) as u64));
    assert_eq!(store.stored_size(&chunk_id(b"absent")).unwrap(), None);
}

#[test]
fn zero_blocks_are_holes_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    assert_eq!(store.insert(&vec![0; BLOCK_SIZE]).unwrap(), None);
    assert_eq!(store.insert(&[0; 100]).unwrap(), None);
    assert_eq!(store.insert(&[]).unwrap(), None);
    let zeros = vec![0; BLOCK_SIZE];
    assert!(matches!(store.insert_known(&chunk_id(&zeros), &zeros), Err(ChunkError::ZeroBlock)));
    assert!(files_under(&dir.path().join("chunks")).is_empty());
}

#[test]
fn short_final_block_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    let volume = random_bytes(7, 2 * BLOCK_SIZE + 1000);
    let mut index = SnapshotIndex::new(volume.len() as u64).unwrap();
    for (i, block) in volume.chunks(BLOCK_SIZE).enumerate() {
        index.set(i as u64, store.insert(block).unwrap());
    }
    let index = SnapshotIndex::decode(&index.encode()).unwrap();
    let mut restored = Vec::new();
    for i in 0..SnapshotIndex::block_count(index.volume_size()) {
        match index.get(i) {
            Some(id) => restored.extend(store.read(&id).unwrap()),
            None => restored.resize(restored.len() + index.block_len(i), 0),
        }
    }
    assert_eq!(restored, volume);
}

#[test]
fn oversized_blocks_are_refused() {
    let store = ChunkStore::new(Arc::new(MemoryBackend::new()));
    let err = store.insert(&vec![1; BLOCK_SIZE + 1]).unwrap_err();
    assert!(matches!(err, ChunkError::TooLarge { len, max: BLOCK_SIZE } if len == BLOCK_SIZE + 1));
}

#[test]
fn insert_is_idempotent_and_insert_known_reports_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    let block = random_block(9);
    let id = chunk_id(&block);
    let Inserted::Written { stored_size } = store.insert_known(&id, &block).unwrap() else {
        panic!("first insert must write");
    };
    assert_eq!(store.stored_size(&id).unwrap(), Some(stored_size));
    assert_eq!(store.insert_known(&id, &block).unwrap(), Inserted::AlreadyPresent);
    assert_eq!(store.insert(&block).unwrap(), Some(id));
    assert_eq!(files_under(&dir.path().join("chunks")).len(), 1);
}

#[test]
fn a_flipped_byte_is_reported_corrupt_quarantined_and_then_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store) = local_store(dir.path());
    let block = random_block(4);
    let id = store.insert(&block).unwrap().unwrap();
    let path = backend.chunk_path(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[CHUNK_HEADER_LEN + 1000] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    match store.read(&id) {
        Err(ChunkError::Corrupt { id: bad, reason: CorruptReason::DigestMismatch, quarantined: true }) => {
            assert_eq!(bad, id)
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(!path.exists());
    let quarantined = files_under(&dir.path().join("quarantine"));
    assert_eq!(quarantined.len(), 1);
    assert_eq!(std::fs::read(&quarantined[0]).unwrap(), bytes);
    assert!(matches!(store.read(&id), Err(ChunkError::NotFound { .. })));

    // Inserting the block again heals the store.
    assert_eq!(store.insert_known(&id, &block).unwrap(), Inserted::Written { stored_size: bytes.len() as u64 });
    assert_eq!(store.read(&id).unwrap(), block);
}

#[test]
fn corrupt_compressed_chunk_and_bad_header_are_quarantined_too() {
    let backend = Arc::new(MemoryBackend::new());
    let store = ChunkStore::new(backend.clone());
    let a = store.insert(&text_block(1)).unwrap().unwrap();
    let b = store.insert(&text_block(2)).unwrap().unwrap();
    let mut bytes = backend.get(&a).unwrap().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    backend.tamper(&a, bytes);
    backend.tamper(&b, b"KLNC".to_vec());
    assert!(matches!(store.read(&a), Err(ChunkError::Corrupt { quarantined: true, .. })));
    assert!(matches!(store.read(&b), Err(ChunkError::Corrupt { reason: CorruptReason::Truncated, .. })));
    assert_eq!(backend.quarantined(), vec![a, b]);
}

#[test]
fn scrub_verifies_everything_and_quarantines_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store) = local_store(dir.path());
    let ids: Vec<_> = (0..5).map(|i| store.insert(&random_bytes(i, 4096)).unwrap().unwrap()).collect();
    std::fs::write(backend.chunk_path(&ids[2]), b"garbage").unwrap();
    let report = store.scrub().unwrap();
    assert_eq!(report.verified, 4);
    assert_eq!(report.corrupt, vec![ids[2]]);
    assert_eq!(store.scrub().unwrap().verified, 4);
}

#[test]
fn sweep_deletes_only_candidates_that_are_still_unreferenced() {
    let store = ChunkStore::new(Arc::new(MemoryBackend::new()));
    let ids: Vec<_> = (0..4).map(|i| store.insert(&random_bytes(i, 1024)).unwrap().unwrap()).collect();
    let absent = chunk_id(b"never stored");
    let rereferenced = ids[1];
    let report = store.sweep(&[ids[0], ids[1], absent], |id| *id != rereferenced).unwrap();
    assert_eq!((report.deleted, report.still_referenced, report.absent), (1, 1, 1));
    assert!(!store.contains(&ids[0]).unwrap());
    assert!(store.contains(&ids[1]).unwrap());
    assert!(store.contains(&ids[2]).unwrap());
}

#[test]
fn orphans_are_unknown_chunks_older_than_the_grace_period() {
    let store = ChunkStore::new(Arc::new(MemoryBackend::new()));
    let known = store.insert(&random_bytes(1, 1024)).unwrap().unwrap();
    let unknown = store.insert(&random_bytes(2, 1024)).unwrap().unwrap();
    let is_known = |id: &kiln_chunks::ChunkId| *id == known;
    let grace = Duration::from_secs(3600);
    let now = SystemTime::now();

    assert!(store.orphans(grace, now, is_known).unwrap().is_empty(), "fresh files are within the grace");
    let later = now + grace + Duration::from_secs(1);
    assert_eq!(store.orphans(grace, later, is_known).unwrap(), vec![unknown]);
    let report = store.sweep_orphans(grace, later, is_known).unwrap();
    assert_eq!(report.deleted, 1);
    assert!(store.contains(&known).unwrap());
    assert!(!store.contains(&unknown).unwrap());
}

#[test]
fn stale_temp_files_are_removed_by_open_and_by_the_grace_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, store) = local_store(dir.path());
    let id = store.insert(&random_block(1)).unwrap().unwrap();
    let leaf = backend.chunk_path(&id).parent().unwrap().to_path_buf();
    let temp = leaf.join(format!(".tmp-{id}-1-0"));
    std::fs::write(&temp, b"half a chunk").unwrap();

    // Listing and orphan detection ignore temp files.
    assert_eq!(store.orphans(Duration::ZERO, SystemTime::now() + FAR_FUTURE, |_| false).unwrap(), vec![id]);
    assert_eq!(store.remove_stale_temp(Duration::from_secs(3600), SystemTime::now()).unwrap(), 0);
    assert_eq!(store.remove_stale_temp(Duration::from_secs(3600), SystemTime::now() + FAR_FUTURE).unwrap(), 1);
    assert!(!temp.exists());

    std::fs::write(&temp, b"half a chunk").unwrap();
    drop(store);
    let (_, store) = local_store(dir.path());
    assert!(!temp.exists());
    assert_eq!(store.read(&id).unwrap(), random_block(1));
}

/// Inserters reference pool chunks under the guard while a sweeper keeps deleting every chunk
/// whose count it sees at zero. A chunk an inserter holds a reference to must always read back.
#[test]
fn concurrent_sweeps_never_delete_a_chunk_referenced_under_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = local_store(dir.path());
    let store = Arc::new(store);
    let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..6).map(|i| random_bytes(i, 8192)).collect());
    let refs: Arc<Mutex<HashMap<kiln_chunks::ChunkId, u32>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    let sweeper = {
        let (store, refs, stop, pool) = (store.clone(), refs.clone(), stop.clone(), pool.clone());
        std::thread::spawn(move || {
            let mut deleted = 0;
            while !stop.load(Ordering::Relaxed) {
                // Candidates are picked without the lock, as the caller's GC job would.
                let candidates: Vec<_> = pool
                    .iter()
                    .map(|b| chunk_id(b))
                    .filter(|id| refs.lock().unwrap().get(id).copied().unwrap_or(0) == 0)
                    .collect();
                let report =
                    store.sweep(&candidates, |id| refs.lock().unwrap().get(id).copied().unwrap_or(0) == 0).unwrap();
                deleted += report.deleted;
            }
            deleted
        })
    };

    let inserters: Vec<_> = (0..2)
        .map(|t| {
            let (store, refs, pool) = (store.clone(), refs.clone(), pool.clone());
            std::thread::spawn(move || {
                for i in 0..300 {
                    let block = &pool[(i * 7 + t) % pool.len()];
                    let id = {
                        let _guard = store.insert_guard();
                        let id = store.insert(block).unwrap().unwrap();
                        *refs.lock().unwrap().entry(id).or_default() += 1;
                        id
                    };
                    assert_eq!(&store.read(&id).unwrap(), block, "referenced chunk vanished");
                    *refs.lock().unwrap().get_mut(&id).unwrap() -= 1;
                }
            })
        })
        .collect();
    for inserter in inserters {
        inserter.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let deleted = sweeper.join().unwrap();
    assert!(deleted > 0, "the sweeper should have had work to do");
}

#[test]
fn copies_between_stores_move_the_stored_file_once_and_never_a_corrupt_one() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, source) = local_store(a_dir.path());
    let (_, dest) = local_store(b_dir.path());
    let text = source.insert(&text_block(7)).unwrap().unwrap();
    let size = source.stored_size(&text).unwrap().unwrap();
    let _guard = dest.insert_guard();
    assert_eq!(dest.copy_from(&source, &text).unwrap(), size, "the compressed file moves as it is");
    assert_eq!(dest.read(&text).unwrap(), text_block(7));
    assert_eq!(dest.copy_from(&source, &text).unwrap(), 0, "a chunk already there moves nothing");

    // A corrupt source chunk is quarantined and never copied.
    let random = source.insert(&random_block(8)).unwrap().unwrap();
    let path = files_under(a_dir.path()).into_iter().find(|p| p.ends_with(random.to_string())).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(dest.copy_from(&source, &random), Err(ChunkError::Corrupt { .. })));
    assert!(!dest.contains(&random).unwrap());
}
