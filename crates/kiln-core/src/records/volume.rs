//! A volume's record, its attachment and its modifications.

use kiln_types::{AttachmentState, ResourceKind, VolumeState, VolumeType};
use serde::{Deserialize, Serialize};

use crate::records::item::Body;

/// One GiB.
pub const GIB: u64 = 1 << 30;

/// A volume attachment (instances arrive with the instances feature).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Attachment {
    /// Instance id.
    pub instance_id: String,
    /// Device name.
    pub device: String,
    /// `attaching`, `attached`, `detaching`.
    pub state: AttachmentState,
    /// Attach time.
    pub attach_time: String,
    /// Delete with the instance.
    pub delete_on_termination: bool,
}

/// One `ModifyVolume` request and its outcome.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Modification {
    /// `modifying`, `optimizing`, `completed`, `failed`.
    pub state: String,
    /// Size before, GiB.
    pub original_size: i64,
    /// Size after, GiB.
    pub target_size: i64,
    /// Type before.
    pub original_type: String,
    /// Type after.
    pub target_type: String,
    /// IOPS before.
    pub original_iops: Option<i64>,
    /// IOPS after.
    pub target_iops: Option<i64>,
    /// Throughput before.
    pub original_throughput: Option<i64>,
    /// Throughput after.
    pub target_throughput: Option<i64>,
    /// Multi-attach before.
    pub original_multi_attach: bool,
    /// Multi-attach after.
    pub target_multi_attach: bool,
    /// Progress, percent.
    pub progress: i64,
    /// Start time.
    pub start_time: String,
    /// End time.
    pub end_time: Option<String>,
    /// Failure reason.
    pub status_message: Option<String>,
}

/// A volume's stored fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VolumeData {
    /// Size, GiB.
    pub size: i64,
    /// gp2, gp3, io1, io2, st1, sc1, standard.
    pub volume_type: VolumeType,
    /// IOPS (provisioned, or gp2's baseline).
    pub iops: Option<i64>,
    /// Throughput, MiB/s (gp3).
    pub throughput: Option<i64>,
    /// Zone name.
    pub availability_zone: String,
    /// Zone id.
    pub availability_zone_id: String,
    /// Source snapshot.
    pub snapshot_id: Option<String>,
    /// Encrypted flag (recorded; Kiln does not encrypt at rest yet).
    pub encrypted: bool,
    /// KMS key id (recorded).
    pub kms_key_id: Option<String>,
    /// Multi-attach.
    pub multi_attach_enabled: bool,
    /// `creating`, `available`, `in-use`, `deleting`, `error`.
    pub state: VolumeState,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Modifications, oldest first.
    pub modifications: Vec<Modification>,
    /// Why the volume is in `error`.
    pub state_message: Option<String>,
}

impl Body for VolumeData {
    const KIND: ResourceKind = ResourceKind::Volume;

    fn state(&self) -> &str {
        self.state.as_str()
    }
}
