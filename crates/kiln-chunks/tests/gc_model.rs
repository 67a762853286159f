//! Property test: random snapshot create/delete sequences against a refcount model; sweeps
//! (with stale candidate lists) never delete a referenced chunk.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::random_bytes;
use kiln_chunks::{chunk_id, ChunkId, ChunkStore, MemoryBackend};
use proptest::prelude::*;

/// Pool of block contents; index 0 is a zero block (a hole).
fn pool() -> Vec<Vec<u8>> {
    let mut pool = vec![vec![0u8; 4096]];
    pool.extend((1..8).map(|i| random_bytes(i, 4096)));
    pool
}

#[derive(Debug, Clone)]
enum Op {
    /// A snapshot of these pool blocks.
    Create(Vec<usize>),
    /// Delete the n-th live snapshot (modulo the count).
    Delete(usize),
    /// Write a chunk but crash before committing any reference to it.
    Leak(usize),
    /// Pick sweep candidates now (refcount zero); they may be stale by the next `Sweep`.
    Plan,
    /// Sweep the planned candidates.
    Sweep,
    /// Sweep orphans (chunks the model does not know) with a zero grace period.
    SweepOrphans,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(0..8usize, 1..6).prop_map(Op::Create),
        2 => any::<usize>().prop_map(Op::Delete),
        1 => (1..8usize).prop_map(Op::Leak),
        2 => Just(Op::Plan),
        2 => Just(Op::Sweep),
        1 => Just(Op::SweepOrphans),
    ]
}

/// The caller's metadata: snapshots and per-chunk reference counts.
#[derive(Default)]
struct Model {
    snapshots: Vec<Vec<Option<ChunkId>>>,
    refs: HashMap<ChunkId, u32>,
}

impl Model {
    fn count(&self, id: &ChunkId) -> u32 {
        self.refs.get(id).copied().unwrap_or(0)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sweep_never_deletes_a_referenced_chunk(ops in prop::collection::vec(op(), 1..40)) {
        let pool = pool();
        let by_id: BTreeMap<ChunkId, &Vec<u8>> = pool.iter().map(|b| (chunk_id(b), b)).collect();
        let store = ChunkStore::new(Arc::new(MemoryBackend::new()));
        let mut model = Model::default();
        let mut planned: Vec<ChunkId> = Vec::new();
        let later = SystemTime::now() + Duration::from_secs(1);

        for op in ops {
            match op {
                Op::Create(blocks) => {
                    let _guard = store.insert_guard();
                    let entries: Vec<_> = blocks.iter().map(|&b| store.insert(&pool[b]).unwrap()).collect();
                    for id in entries.iter().flatten() {
                        *model.refs.entry(*id).or_default() += 1;
                    }
                    model.snapshots.push(entries);
                }
                Op::Delete(n) if !model.snapshots.is_empty() => {
                    let entries = model.snapshots.remove(n % model.snapshots.len());
                    for id in entries.iter().flatten() {
                        *model.refs.get_mut(id).unwrap() -= 1;
                    }
                }
                Op::Delete(_) => {}
                Op::Leak(b) => {
                    store.insert(&pool[b]).unwrap();
                }
                Op::Plan => {
                    planned = by_id.keys().filter(|id| model.count(id) == 0).copied().collect();
                }
                Op::Sweep => {
                    let unreferenced: Vec<_> = planned.iter().filter(|id| model.count(id) == 0).copied().collect();
                    let report = store.sweep(&planned, |id| model.count(id) == 0).unwrap();
                    prop_assert_eq!(report.deleted + report.absent, unreferenced.len() as u64);
                    for id in &unreferenced {
                        prop_assert!(!store.contains(id).unwrap());
                    }
                }
                Op::SweepOrphans => {
                    store.sweep_orphans(Duration::ZERO, later, |id| model.count(id) > 0).unwrap();
                }
            }
            // Every chunk a live snapshot references reads back intact.
            for id in model.snapshots.iter().flatten().flatten() {
                prop_assert_eq!(&store.read(id).unwrap(), by_id[id]);
            }
        }
    }
}
