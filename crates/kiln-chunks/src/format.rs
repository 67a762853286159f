//! The chunk file format: a 12-byte header followed by the payload (see the crate docs).

use crate::error::CorruptReason;
use crate::id::{chunk_id, ChunkId, BLOCK_SIZE};

/// First four bytes of every chunk file.
pub const CHUNK_MAGIC: [u8; 4] = *b"KLNC";
/// Chunk file format version written by this build.
pub const CHUNK_VERSION: u8 = 1;
/// Length of the chunk file header in bytes.
pub const CHUNK_HEADER_LEN: usize = 12;

/// zstd level used for new chunks. Level 1 keeps a 2-core host's write path well above disk
/// speed; higher levels gain a few percent of space for half the throughput.
const ZSTD_LEVEL: i32 = 1;

/// How a chunk's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    /// Payload is the block itself (zstd did not make it smaller).
    None = 0,
    /// Payload is one zstd frame.
    Zstd = 1,
}

/// Encodes `block` (1..=[`BLOCK_SIZE`] bytes) into chunk file bytes.
pub fn encode_chunk(block: &[u8]) -> Vec<u8> {
    debug_assert!(!block.is_empty() && block.len() <= BLOCK_SIZE);
    let compressed = zstd::bulk::compress(block, ZSTD_LEVEL).ok().filter(|c| c.len() < block.len());
    let (compression, payload) = match &compressed {
        Some(c) => (Compression::Zstd, c.as_slice()),
        None => (Compression::None, block),
    };
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + payload.len());
    out.extend_from_slice(&CHUNK_MAGIC);
    out.push(CHUNK_VERSION);
    out.push(compression as u8);
    out.extend_from_slice(&[0, 0]);
    // Fits: blocks are at most BLOCK_SIZE bytes.
    out.extend_from_slice(&(block.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Decodes chunk file bytes and checks that the block hashes to `id`.
pub fn decode_chunk(id: &ChunkId, file: &[u8]) -> Result<Vec<u8>, CorruptReason> {
    if file.len() < CHUNK_HEADER_LEN {
        return Err(CorruptReason::Truncated);
    }
    if file[0..4] != CHUNK_MAGIC {
        return Err(CorruptReason::BadMagic);
    }
    if file[4] != CHUNK_VERSION {
        return Err(CorruptReason::UnsupportedVersion(file[4]));
    }
    if file[6..8] != [0, 0] {
        return Err(CorruptReason::BadHeader);
    }
    let len = u32::from_le_bytes([file[8], file[9], file[10], file[11]]) as usize;
    if len == 0 || len > BLOCK_SIZE {
        return Err(CorruptReason::BadHeader);
    }
    let payload = &file[CHUNK_HEADER_LEN..];
    let block = match file[5] {
        0 => payload.to_vec(),
        1 => {
            // The declared length bounds the allocation, so a hostile frame cannot inflate past it.
            let mut out = Vec::with_capacity(len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(payload, &mut out))
                .map_err(|_| CorruptReason::Undecodable)?;
            out
        }
        other => return Err(CorruptReason::UnknownCompression(other)),
    };
    if block.len() != len {
        return Err(CorruptReason::LengthMismatch);
    }
    if chunk_id(&block) != *id {
        return Err(CorruptReason::DigestMismatch);
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompressible_block_is_stored_raw_and_compressible_one_as_zstd() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let encoded = encode_chunk(&random);
        assert_eq!(encoded[5], Compression::None as u8);
        assert_eq!(&encoded[CHUNK_HEADER_LEN..], random.as_slice());

        let text = b"kiln ".repeat(1000);
        let encoded = encode_chunk(&text);
        assert_eq!(encoded[5], Compression::Zstd as u8);
        assert!(encoded.len() < text.len() / 10);
        assert_eq!(decode_chunk(&chunk_id(&text), &encoded).unwrap(), text);
    }

    #[test]
    fn decode_rejects_every_header_defect() {
        let block = b"some block".repeat(10);
        let id = chunk_id(&block);
        let good = encode_chunk(&block);
        let with = |pos: usize, val: u8| {
            let mut f = good.clone();
            f[pos] = val;
            decode_chunk(&id, &f).unwrap_err()
        };
        assert_eq!(decode_chunk(&id, &good[..5]).unwrap_err(), CorruptReason::Truncated);
        assert_eq!(with(0, b'X'), CorruptReason::BadMagic);
        assert_eq!(with(4, 9), CorruptReason::UnsupportedVersion(9));
        assert_eq!(with(5, 7), CorruptReason::UnknownCompression(7));
        assert_eq!(with(6, 1), CorruptReason::BadHeader);
        assert_eq!(with(11, 0xff), CorruptReason::BadHeader);
        assert_eq!(decode_chunk(&chunk_id(b"other"), &good).unwrap_err(), CorruptReason::DigestMismatch);
    }
}
