//! Insert and read throughput of the chunk store on 256 MiB of mixed data.
//!
//! `cargo run --release -p kiln-chunks --example chunk_bench [ROOT]`
//!
//! The volume is a mix that resembles a used root disk: 25% zero blocks (holes), 35%
//! incompressible blocks, 30% compressible text-like blocks and 10% repeats of earlier blocks
//! (deduplicated). ROOT defaults to a temp directory; reads come from the page cache.

use std::sync::Arc;
use std::time::Instant;

use kiln_chunks::{ChunkStore, LocalBackend, SnapshotIndex, BLOCK_SIZE};

const VOLUME: usize = 256 << 20;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Text-like data: words from a small vocabulary with numbers, compressing about 3-5x.
fn text_block(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&str] =
        &["kernel", "volume", "snapshot", "the", "of", "instance", "config", "0x", "error", "info", "=", "\n"];
    let mut out = Vec::with_capacity(BLOCK_SIZE + 32);
    while out.len() < BLOCK_SIZE {
        let r = rng.next();
        out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
        if r & 3 == 0 {
            out.extend_from_slice(format!("{}", r >> 48).as_bytes());
        }
        out.push(b' ');
    }
    out.truncate(BLOCK_SIZE);
    out
}

fn main() {
    let temp = tempfile::tempdir().expect("temp dir");
    let root = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);
    let store = ChunkStore::new(Arc::new(LocalBackend::open(&root).expect("open store")));

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let count = VOLUME / BLOCK_SIZE;
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(count);
    for _ in 0..count {
        let pick = rng.next() % 100;
        let block = match pick {
            0..=24 => vec![0; BLOCK_SIZE],
            25..=59 => {
                let mut b = vec![0; BLOCK_SIZE];
                rng.fill(&mut b);
                b
            }
            60..=89 => text_block(&mut rng),
            _ if !blocks.is_empty() => blocks[(rng.next() % blocks.len() as u64) as usize].clone(),
            _ => text_block(&mut rng),
        };
        blocks.push(block);
    }

    let mut index = SnapshotIndex::new(VOLUME as u64).expect("index");
    let start = Instant::now();
    for (i, block) in blocks.iter().enumerate() {
        let _guard = store.insert_guard();
        index.set(i as u64, store.insert(block).expect("insert"));
    }
    let insert_secs = start.elapsed().as_secs_f64();

    let chunks = index.distinct_chunks();
    let stored: u64 = chunks.iter().map(|id| store.stored_size(id).expect("stat").unwrap_or(0)).sum();
    let data_blocks = index.blocks().iter().flatten().count();

    let start = Instant::now();
    let mut read_bytes = 0usize;
    for (i, entry) in index.blocks().iter().enumerate() {
        if let Some(id) = entry {
            let block = store.read(id).expect("read");
            assert_eq!(block, blocks[i]);
            read_bytes += block.len();
        }
    }
    let read_secs = start.elapsed().as_secs_f64();

    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    println!(
        "volume:        {:.0} MiB in {count} blocks ({data_blocks} data, {} holes)",
        mib(VOLUME),
        count - data_blocks
    );
    println!("chunks:        {} distinct, {:.1} MiB on disk", chunks.len(), mib(stored as usize));
    println!("insert:        {:.1} MiB/s of volume ({:.2} s)", mib(VOLUME) / insert_secs, insert_secs);
    println!("insert (data): {:.1} MiB/s of non-hole blocks", mib(data_blocks * BLOCK_SIZE) / insert_secs);
    println!(
        "read:          {:.1} MiB/s of non-hole blocks ({:.2} s, verified)",
        mib(read_bytes) / read_secs,
        read_secs
    );
}
