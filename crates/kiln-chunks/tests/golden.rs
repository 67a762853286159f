//! Golden vectors: these fail when an encoding changes. A failure here means stores written by
//! earlier builds may no longer read; change a vector only together with a format version bump
//! (or, for the zstd payload hash alone, after checking that the old vectors still decode).

use std::sync::Arc;

use kiln_chunks::{chunk_id, ChunkBackend, ChunkId, ChunkStore, MemoryBackend, SnapshotIndex, BLOCK_SIZE};

/// Bytes `i % 251` for a full block: compressible, with no zero runs.
fn pattern_block() -> Vec<u8> {
    (0..BLOCK_SIZE).map(|i| (i % 251) as u8).collect()
}

/// A full block of xorshift64 output: incompressible, so stored raw.
fn noise_block() -> Vec<u8> {
    let mut x = 0x0123_4567_89ab_cdefu64;
    let mut out = Vec::with_capacity(BLOCK_SIZE);
    while out.len() < BLOCK_SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

const PATTERN_ID: &str = "b467afa334cd7dedd76e3a9a4b0e8a5ed278713f2f4e220a682aa30c7fcd140b";

fn stored_file(block: &[u8]) -> (ChunkId, Vec<u8>) {
    let backend = Arc::new(MemoryBackend::new());
    let store = ChunkStore::new(backend.clone());
    let id = store.insert(block).unwrap().unwrap();
    (id, backend.get(&id).unwrap().unwrap())
}

#[test]
fn chunk_ids_are_plain_blake3() {
    // The published BLAKE3 test vector for the empty input.
    assert_eq!(chunk_id(b"").to_string(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    assert_eq!(chunk_id(&pattern_block()).to_string(), PATTERN_ID);
}

#[test]
fn compressed_chunk_file_is_byte_exact() {
    let (id, file) = stored_file(&pattern_block());
    assert_eq!(id.to_string(), PATTERN_ID);
    // Header: "KLNC", version 1, zstd, reserved, length 0x00080000.
    assert_eq!(hex::encode(&file[..12]), "4b4c4e430101000000000800");
    assert_eq!(file.len(), 321);
    assert_eq!(
        blake3::hash(&file).to_hex().as_str(),
        "153697d03f3a81e457cd57e1dd90541efa67b0141e5f96f3b77bb99c1e9953cf"
    );
}

#[test]
fn incompressible_chunk_file_is_header_plus_block() {
    let block = noise_block();
    let (_, file) = stored_file(&block);
    assert_eq!(hex::encode(&file[..12]), "4b4c4e430100000000000800");
    assert_eq!(&file[12..], block.as_slice());
}

#[test]
fn a_chunk_file_written_by_an_earlier_build_still_reads() {
    let block = b"kiln kiln kiln kiln kiln kiln kiln kiln kiln kiln kiln kiln kiln".to_vec();
    let id: ChunkId = "e42ccadde365cf9a789c0dcb5b83bf4972ae1bcb3d70db2afcd45e4f644b351a".parse().unwrap();
    let file = hex::decode("4b4c4e43010100004000000028b52ffd20405d0000286b696c6e2001008054b4").unwrap();
    let backend = Arc::new(MemoryBackend::new());
    backend.put(&id, &file).unwrap();
    assert_eq!(ChunkStore::new(backend).read(&id).unwrap(), block);
}

#[test]
fn snapshot_index_encoding_is_byte_exact() {
    let pattern: ChunkId = PATTERN_ID.parse().unwrap();
    let index =
        SnapshotIndex::from_blocks(2 * BLOCK_SIZE as u64 + 1, vec![Some(pattern), None, Some(chunk_id(b"kiln"))])
            .unwrap();
    let expected = concat!(
        "4b494c4e49445800",                                                 // magic "KILNIDX\0"
        "01000000",                                                         // version 1
        "00000000",                                                         // reserved
        "0100100000000000",                                                 // volume size 2 * 524288 + 1
        "0300000000000000",                                                 // 3 entries
        "b467afa334cd7dedd76e3a9a4b0e8a5ed278713f2f4e220a682aa30c7fcd140b", // block 0
        "0000000000000000000000000000000000000000000000000000000000000000", // block 1: hole
        "455816dc5d9cf99e3f5c6172128265eb41b0603f1c7f24f24efa80130ef7baae", // block 2 (short)
        "9b4598f4a1de0444fe6b0338f1fa8a37fc0fc9797e0f3ea48900e0b0e9eef561", // BLAKE3 trailer
    );
    assert_eq!(hex::encode(index.encode()), expected);
    assert_eq!(SnapshotIndex::decode(&hex::decode(expected).unwrap()).unwrap(), index);
}
