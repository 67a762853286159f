//! Property tests of the snapshot index codec: round trips, and rejection of every truncation,
//! extension and single-bit flip.

use kiln_chunks::{ChunkId, SnapshotIndex, BLOCK_SIZE};
use proptest::prelude::*;

fn index() -> impl Strategy<Value = SnapshotIndex> {
    (0u64..(40 * BLOCK_SIZE as u64)).prop_flat_map(|size| {
        let n = SnapshotIndex::block_count(size) as usize;
        prop::collection::vec(prop::option::of(any::<[u8; 32]>().prop_map(ChunkId::from_bytes)), n)
            .prop_map(move |blocks| SnapshotIndex::from_blocks(size, blocks).unwrap())
    })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(idx in index()) {
        prop_assert_eq!(SnapshotIndex::decode(&idx.encode()).unwrap(), idx);
    }

    #[test]
    fn any_truncation_is_rejected(idx in index(), cut in any::<prop::sample::Index>()) {
        let bytes = idx.encode();
        let len = cut.index(bytes.len());
        prop_assert!(SnapshotIndex::decode(&bytes[..len]).is_err());
    }

    #[test]
    fn appended_bytes_are_rejected(idx in index(), extra in prop::collection::vec(any::<u8>(), 1..64)) {
        let mut bytes = idx.encode();
        bytes.extend(extra);
        prop_assert!(SnapshotIndex::decode(&bytes).is_err());
    }

    #[test]
    fn any_bit_flip_is_rejected(idx in index(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
        let mut bytes = idx.encode();
        let pos = at.index(bytes.len());
        bytes[pos] ^= 1 << bit;
        prop_assert!(SnapshotIndex::decode(&bytes).is_err());
    }
}
