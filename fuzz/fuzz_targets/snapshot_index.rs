//! The snapshot index and chunk file decoders: any bytes are decoded or refused, never a panic,
//! and whatever decodes encodes back to the same bytes.
#![no_main]

use kiln_chunks::{chunk_id, decode_chunk, encode_chunk, SnapshotIndex, BLOCK_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = SnapshotIndex::decode(data) {
        assert_eq!(index.encode(), data);
    }
    // With a valid checksum appended, the fuzzer reaches the structure behind it.
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    if let Ok(index) = SnapshotIndex::decode(&sealed) {
        assert_eq!(index.encode(), sealed);
    }
    // A chunk file claimed by an id: refused unless its block hashes to that id.
    let id = chunk_id(data);
    if let Ok(block) = decode_chunk(&id, data) {
        assert_eq!(chunk_id(&block), id);
    }
    if !data.is_empty() && data.len() <= BLOCK_SIZE {
        let file = encode_chunk(data);
        assert_eq!(decode_chunk(&chunk_id(data), &file).expect("own encoding decodes"), data);
    }
});
