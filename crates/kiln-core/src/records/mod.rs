//! The ground floor: what is stored and how it is found. One file per kind of record (the
//! fields a resource keeps, its state, and the pure rules over them such as who may launch an
//! image), the generic [`item::Item`] that wraps a record with its id, owner, region and tags,
//! the lookups that enforce account isolation, Describe filters, pagination, idempotency
//! tokens and tagging. Nothing here imports a domain above it.

pub mod filter;
pub mod idempotency;
pub mod image;
pub mod instance;
pub mod item;
pub mod key_pair;
pub mod page;
pub mod security_group;
pub mod snapshot;
pub mod tags;
pub mod volume;
pub mod vpc;

use kiln_meta::{MetaTxn, Record};
use kiln_types::ResourceKind;

use crate::error::CoreResult;

pub use image::ImageData;
pub use instance::{Boot, GroupRef, InstanceData, InstanceDevice, Reason};
pub use item::{Body, Item};
pub use key_pair::KeyPairData;
pub use security_group::{GroupData, Peer, RuleData};
pub use snapshot::SnapshotData;
pub use volume::{Attachment, Modification, VolumeData};
pub use vpc::{SubnetData, VpcData};

/// Rewrites a raw record through its typed view, so its indexed state and grants follow its
/// body (after a restore, or for a database written before they were indexed).
pub fn reindex(txn: &mut dyn MetaTxn, rec: Record) -> CoreResult<()> {
    match rec.kind {
        ResourceKind::Image => Item::<image::ImageData>::from_record(rec)?.save(txn),
        ResourceKind::Snapshot => Item::<snapshot::SnapshotData>::from_record(rec)?.save(txn),
        ResourceKind::Volume => Item::<volume::VolumeData>::from_record(rec)?.save(txn),
        ResourceKind::Instance => Item::<instance::InstanceData>::from_record(rec)?.save(txn),
        _ => Ok(()),
    }
}
