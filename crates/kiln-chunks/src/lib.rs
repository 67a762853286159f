//! Kiln's content-addressed chunk store: the bytes of volumes and snapshots.
//!
//! A volume is cut into fixed [`BLOCK_SIZE`] (512 KiB) blocks, the block size of the EBS direct
//! APIs. A block of all zeros is a *hole* and is never stored. Any other block is stored once
//! as a *chunk* named by the BLAKE3 digest of its uncompressed bytes ([`ChunkId`]), so equal
//! blocks in any volume or snapshot of a region share one chunk. A snapshot is a
//! [`SnapshotIndex`]: the volume size and one entry (chunk id or hole) per block.
//!
//! Reference counts are not kept here: they live in the caller's metadata database, committed
//! in the same transaction as the record (snapshot, image) that owns the references. This
//! crate provides the pieces that make deleting safe (see [Garbage collection](#garbage-collection)).
//!
//! Chunk files live on a [`ChunkBackend`]: [`LocalBackend`] (a directory per region) is the
//! embedded default, [`MemoryBackend`] serves tests, and an S3-compatible object store can be
//! added behind the same trait without touching callers of [`ChunkStore`].
//!
//! # On-disk layout ([`LocalBackend`])
//!
//! ```text
//! <root>/                       one root per region, chosen by the caller
//!   chunks/<h0h1>/<h2h3>/<h…>   a chunk file; <h…> is the id as 64 lowercase hex digits,
//!                               <h0h1> and <h2h3> its first and second byte (65,536 leaf dirs
//!                               at most, created on first use)
//!   chunks/<h0h1>/<h2h3>/.tmp-<id>-<pid>-<seq>
//!                               a chunk being written; never read, removed at open and by
//!                               ChunkStore::remove_stale_temp
//!   quarantine/<id>.<unix nanos> a chunk that failed verification, kept for inspection
//! ```
//!
//! An insert writes the temp file, fsyncs it, renames it onto the final name, and fsyncs the
//! leaf directory (new directories are fsynced into their parents too). A crash at any point
//! leaves either no file or the whole file under the final name, plus at worst a temp file.
//! Temp names start with `.`, final names are pure hex, so the two cannot be confused.
//!
//! # Chunk file format
//!
//! ```text
//! offset  size  field
//!      0     4  magic "KLNC" (4b 4c 4e 43)
//!      4     1  format version, 1
//!      5     1  compression: 0 = none (payload is the block), 1 = zstd (payload is one frame)
//!      6     2  reserved, zero
//!      8     4  uncompressed length, u32 little-endian, 1..=524288
//!     12     …  payload (the rest of the file)
//! ```
//!
//! New chunks are compressed with zstd level 1 and stored uncompressed when that does not make
//! them smaller. Every read checks the header, decompresses into a buffer bounded by the
//! declared length, and compares the BLAKE3 of the result with the id. Any mismatch moves the
//! file to quarantine and yields [`ChunkError::Corrupt`]; corrupt bytes are never returned. A
//! later insert of the same block writes a fresh copy.
//!
//! # Snapshot index format
//!
//! All integers little-endian. `n = ceil(volume_size / 524288)`; a short final block holds only
//! the bytes inside the volume.
//!
//! ```text
//! offset    size  field
//!      0       8  magic "KILNIDX\0" (4b 49 4c 4e 49 44 58 00)
//!      8       4  format version, u32, 1
//!     12       4  reserved, u32, zero
//!     16       8  volume size in bytes, u64, at most 64 TiB
//!     24       8  entry count n, u64
//!     32    32·n  entry i: the 32-byte chunk id of block i, or 32 zero bytes for a hole
//! 32+32n      32  BLAKE3 of bytes [0, 32+32n)
//! ```
//!
//! Entries are fixed-size so block `i` sits at offset `32 + 32·i`. The all-zero hole marker
//! cannot collide with a real id (it would need a BLAKE3 preimage). Decoding checks the trailer
//! first, then magic, version, reserved bytes, the size limit, `n` against the volume size and
//! the total length; any failure is an [`IndexError`].
//!
//! # Garbage collection
//!
//! 1. **Reference counting in metadata.** The caller counts, per chunk, the records that
//!    reference it, and changes the counts in the same transaction as the records. When a count
//!    drops to zero the caller notes the time.
//! 2. **Grace period.** Only chunks whose count has been zero for longer than a grace period
//!    become sweep candidates. The caller picks the candidates; the grace covers readers that
//!    looked up an index just before its snapshot was deleted.
//! 3. **Sweep lock.** An inserter takes [`ChunkStore::insert_guard`] (shared) and holds it
//!    across "ensure the chunk is present" ([`ChunkStore::insert`], which skips the write when
//!    the chunk exists) and "commit the reference". [`ChunkStore::sweep`] takes the lock
//!    exclusively per batch and, under it, asks the caller again whether each candidate is
//!    still unreferenced before unlinking it. So either the sweep deletes first and the
//!    inserter then finds the chunk missing and writes it, or the reference is committed first
//!    and the re-check keeps the chunk. A chunk re-referenced during a sweep is never deleted.
//!    Within the guard, write the chunk before committing the reference: a crash in between
//!    then leaves an orphan file, never a reference to a missing chunk.
//! 4. **Orphan sweep.** Chunks written by uploads that never committed have no count at all.
//!    [`ChunkStore::orphans`] lists stored chunks the caller does not know whose file is older
//!    than the grace period (by write time, never access time); [`ChunkStore::sweep_orphans`]
//!    deletes them with the same locked re-check.
//! 5. **Temp files.** [`LocalBackend::open`] removes every temp file (one process owns a root);
//!    [`ChunkStore::remove_stale_temp`] removes those older than a grace period at run time.
//!
//! # Concurrency
//!
//! All [`ChunkStore`] methods take `&self` and may be called from any number of threads. The
//! sweep lock orders only operations on the same `ChunkStore` instance, so share one per root.
//!
//! | operations                     | may overlap | why it is safe                                                   |
//! |--------------------------------|-------------|------------------------------------------------------------------|
//! | insert / insert (any ids)      | yes         | unique temp names, atomic rename; one id always has one content  |
//! | insert / read                  | yes         | a reader sees no file (`NotFound`) or the whole file             |
//! | read / read                    | yes         | reads do not modify                                              |
//! | read / sweep                   | yes         | a reader sees the whole file or `NotFound`; referenced chunks are never swept |
//! | insert guard held / sweep batch| no          | shared vs exclusive sweep lock                                   |
//! | sweep / sweep                  | batches serialise | exclusive lock per batch; deleting an absent chunk is counted, not an error |
//! | quarantine / quarantine        | no          | a mutex, and re-verification under it                            |
//! | quarantine / insert            | yes         | re-verification under the mutex serves a fresh good copy instead of moving it |
//! | orphans listing / insert       | yes         | new files are younger than the grace; `is_known` is re-checked under the lock |
//! | remove_stale_temp / insert     | yes         | only temp files older than the grace (longer than any insert) go |
//! | `LocalBackend::open` / another process on the same root | no | open deletes all temp files |
//!
//! # Decisions
//!
//! - **512 KiB blocks** match the EBS direct APIs (`GetSnapshotBlock`, `PutSnapshotBlock`,
//!   `ListChangedBlocks`), so those calls map to one chunk each with no re-blocking.
//! - **BLAKE3** is collision resistant and several times faster than SHA-256 in software.
//! - **zstd level 1 per chunk** keeps writes fast; each chunk decodes on its own.
//! - **Holes are not chunks**, so sparse and freshly created volumes cost index entries only.

#![warn(missing_docs)]

mod backend;
mod error;
mod format;
mod id;
mod index;
mod store;

pub use backend::{ChunkBackend, ChunkMeta, LocalBackend, MemoryBackend};
pub use error::{ChunkError, CorruptReason, IndexError};
pub use format::{decode_chunk, encode_chunk, Compression, CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_VERSION};
pub use id::{chunk_id, is_zero, BadChunkId, ChunkId, BLOCK_SIZE};
pub use index::{
    SnapshotIndex, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, INDEX_MAGIC, INDEX_TRAILER_LEN, INDEX_VERSION, MAX_VOLUME_SIZE,
};
pub use store::{ChunkStore, InsertGuard, Inserted, ScrubReport, SweepReport};
