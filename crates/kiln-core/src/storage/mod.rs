//! Bytes: volume files and the chunk store, volumes, snapshots, the EBS direct API, block
//! public access, the recycle bin, and garbage collection with the restart upkeep.

pub mod ebs;
pub mod files;
pub mod gc;
pub mod public_access;
pub mod recycle_bin;
pub mod snapshots;
pub mod volumes;
