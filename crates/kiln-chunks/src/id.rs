//! Chunk ids, block constants and the zero-block test.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Size of one block in bytes: 512 KiB, the block size of the EBS direct APIs.
pub const BLOCK_SIZE: usize = 512 * 1024;

/// The name of a chunk: BLAKE3 of the block's uncompressed bytes.
///
/// Shown, parsed and serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId([u8; 32]);

impl ChunkId {
    /// Wraps a raw 32-byte digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32-byte digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        // Cannot fail: the buffer is exactly twice the digest length.
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunk id {0:?}: expected 64 hex digits")]
pub struct BadChunkId(pub String);

impl FromStr for ChunkId {
    type Err = BadChunkId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 {
            return Err(BadChunkId(s.to_owned()));
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|_| BadChunkId(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for ChunkId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The id of a block: BLAKE3 of its bytes.
pub fn chunk_id(block: &[u8]) -> ChunkId {
    ChunkId(*blake3::hash(block).as_bytes())
}

/// Whether every byte of `block` is zero. Such blocks are holes and are never stored.
///
/// Reads in 4 KiB strides whose inner OR-fold the compiler vectorises, and stops at the first
/// stride that holds a non-zero byte (data blocks usually fail on the first stride).
pub fn is_zero(block: &[u8]) -> bool {
    const STRIDE: usize = 4096;
    let mut strides = block.chunks_exact(STRIDE);
    for stride in &mut strides {
        if stride.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    strides.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_through_display_and_from_str() {
        let id = chunk_id(b"abc");
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, id.to_hex());
        assert_eq!(text.parse::<ChunkId>().unwrap(), id);
    }

    #[test]
    fn from_str_rejects_wrong_length_and_non_hex() {
        assert!("abc".parse::<ChunkId>().is_err());
        assert!("g".repeat(64).parse::<ChunkId>().is_err());
        assert!("0".repeat(66).parse::<ChunkId>().is_err());
    }

    #[test]
    fn serializes_as_a_hex_string() {
        let id = chunk_id(b"abc");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ChunkId>("\"nothex\"").is_err());
    }

    #[test]
    fn is_zero_finds_a_single_set_byte_anywhere() {
        let mut block = vec![0u8; BLOCK_SIZE + 7];
        assert!(is_zero(&block));
        assert!(is_zero(&[]));
        for pos in [0, 1, 4095, 4096, BLOCK_SIZE - 1, BLOCK_SIZE + 6] {
            block[pos] = 1;
            assert!(!is_zero(&block), "byte {pos}");
            block[pos] = 0;
        }
    }
}
