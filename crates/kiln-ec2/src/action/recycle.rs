//! Decoding of the Recycle Bin actions: listing and restoring binned images and snapshots.

use super::{page, Ec2Action};
use crate::params::Params;
use crate::ProtocolError;

/// The actions this module decodes.
pub(super) const ACTIONS: &[&str] = &[
    "ListImagesInRecycleBin",
    "ListSnapshotsInRecycleBin",
    "RestoreImageFromRecycleBin",
    "RestoreSnapshotFromRecycleBin",
];

/// Decodes one of [`ACTIONS`].
pub(super) fn parse(name: &str, p: &Params) -> Result<Ec2Action, ProtocolError> {
    Ok(match name {
        "ListImagesInRecycleBin" => {
            Ec2Action::ListImagesInRecycleBin { image_ids: p.strings("ImageId")?, page: page(p, 1, 1000)? }
        }
        "ListSnapshotsInRecycleBin" => {
            Ec2Action::ListSnapshotsInRecycleBin { snapshot_ids: p.strings("SnapshotId")?, page: page(p, 5, 1000)? }
        }
        "RestoreImageFromRecycleBin" => {
            Ec2Action::RestoreImageFromRecycleBin { image_id: p.required("ImageId")?.to_string() }
        }
        "RestoreSnapshotFromRecycleBin" => {
            Ec2Action::RestoreSnapshotFromRecycleBin { snapshot_id: p.required("SnapshotId")?.to_string() }
        }
        other => return Err(ProtocolError::InvalidAction(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let p = Params::from_pairs([("ImageId.1", "ami-0123456789abcdef0"), ("MaxResults", "5")]);
        match parse("ListImagesInRecycleBin", &p).unwrap() {
            Ec2Action::ListImagesInRecycleBin { image_ids, page } => {
                assert_eq!(image_ids, vec!["ami-0123456789abcdef0".to_string()]);
                assert_eq!(page.max_results, Some(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("RestoreSnapshotFromRecycleBin", &Params::default()).is_err());
    }
}
