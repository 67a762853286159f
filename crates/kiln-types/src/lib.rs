//! Shared identifiers and value types for Kiln. No I/O lives here.
//!
//! Resource ids follow today's EC2 shape: a kind prefix, a dash and 17 lowercase hex digits
//! (`key-0123456789abcdef0`). The prefix alone tells which kind an id names, so tag and
//! permission code can route an id without a lookup.

mod states;

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};
pub use states::{
    Architecture, AttachmentState, ImageState, InstanceState, RootDeviceType, ShutdownBehavior, SnapshotState,
    UnknownName, VolumeState, VolumeType,
};

/// Every kind of resource Kiln stores, with its EC2 id prefix and tag resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum ResourceKind {
    /// An SSH key pair (`key-`).
    KeyPair,
    /// A VPC (`vpc-`).
    Vpc,
    /// A subnet of a VPC (`subnet-`).
    Subnet,
    /// A security group (`sg-`).
    SecurityGroup,
    /// One rule of a security group (`sgr-`).
    SecurityGroupRule,
    /// An EBS-style volume (`vol-`).
    Volume,
    /// A point-in-time copy of a volume (`snap-`).
    Snapshot,
    /// A machine image (`ami-`).
    Image,
    /// A virtual machine (`i-`).
    Instance,
}

impl ResourceKind {
    /// All kinds, for lookups by prefix or name.
    pub const ALL: [ResourceKind; 9] = [
        ResourceKind::KeyPair,
        ResourceKind::Vpc,
        ResourceKind::Subnet,
        ResourceKind::SecurityGroup,
        ResourceKind::SecurityGroupRule,
        ResourceKind::Volume,
        ResourceKind::Snapshot,
        ResourceKind::Image,
        ResourceKind::Instance,
    ];

    /// The id prefix, without the dash.
    pub fn prefix(self) -> &'static str {
        match self {
            ResourceKind::KeyPair => "key",
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "sg",
            ResourceKind::SecurityGroupRule => "sgr",
            ResourceKind::Volume => "vol",
            ResourceKind::Snapshot => "snap",
            ResourceKind::Image => "ami",
            ResourceKind::Instance => "i",
        }
    }

    /// The `resource-type` string EC2 uses in tags and `TagSpecification`.
    pub fn tag_type(self) -> &'static str {
        match self {
            ResourceKind::KeyPair => "key-pair",
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::SecurityGroupRule => "security-group-rule",
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Image => "image",
            ResourceKind::Instance => "instance",
        }
    }

    /// Stable name used as the storage key for the kind.
    pub fn as_str(self) -> &'static str {
        self.tag_type()
    }

    /// Parses a storage name or tag resource type.
    pub fn from_tag_type(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag_type() == s)
    }

    /// The kind an id names, judged by its prefix alone.
    pub fn of_id(id: &str) -> Option<Self> {
        let (prefix, _) = id.split_once('-')?;
        Self::ALL.into_iter().find(|k| k.prefix() == prefix)
    }

    /// A fresh random id of this kind.
    pub fn new_id(self) -> String {
        let mut rng = rand::thread_rng();
        let hex: String = (0..17).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0')).collect();
        format!("{}-{}", self.prefix(), hex)
    }

    /// True when `id` has this kind's prefix followed by 8 or 17 lowercase hex digits.
    pub fn is_well_formed(self, id: &str) -> bool {
        match id.strip_prefix(self.prefix()).and_then(|r| r.strip_prefix('-')) {
            Some(hex) => {
                (hex.len() == 17 || hex.len() == 8)
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            None => false,
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag_type())
    }
}

/// A 12-digit AWS-style account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

/// An account id that is not exactly 12 ASCII digits.
#[derive(Debug, thiserror::Error)]
#[error("account id {0:?} must be exactly 12 digits")]
pub struct BadAccountId(pub String);

impl AccountId {
    /// Validates and wraps a 12-digit id.
    pub fn parse(s: &str) -> Result<Self, BadAccountId> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_string()))
        } else {
            Err(BadAccountId(s.to_string()))
        }
    }

    /// A fresh random id that does not start with 0 (so it survives numeric round trips).
    pub fn random() -> Self {
        let mut rng = rand::thread_rng();
        let first = rng.gen_range(1..10u8);
        let rest: String = (0..11).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect();
        AccountId(format!("{first}{rest}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = BadAccountId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AccountId::parse(&s)
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key/value tag as EC2 stores it: insertion order is kept by the owner's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key (1..=128 characters).
    pub key: String,
    /// Tag value (0..=256 characters).
    pub value: String,
}

/// Formats a timestamp the way EC2 writes `createTime` and friends.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_well_formed_and_routable() {
        for kind in ResourceKind::ALL {
            let id = kind.new_id();
            assert!(kind.is_well_formed(&id), "{id}");
            assert_eq!(ResourceKind::of_id(&id), Some(kind));
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!(!ResourceKind::KeyPair.is_well_formed("key-XYZ"));
        assert!(!ResourceKind::KeyPair.is_well_formed("sg-0123456789abcdef0"));
        assert!(!ResourceKind::SecurityGroup.is_well_formed("sg-0123456789ABCDEF0"));
        assert!(ResourceKind::SecurityGroup.is_well_formed("sg-0123abcd"));
        assert_eq!(ResourceKind::of_id("nope"), None);
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(AccountId::parse("111122223333").is_ok());
        assert!(AccountId::parse("11112222333").is_err());
        assert!(AccountId::parse("11112222333x").is_err());
        let r = AccountId::random();
        assert!(AccountId::parse(r.as_str()).is_ok());
    }

    #[test]
    fn grantee_lists_grant_named_accounts_or_everyone() {
        let a = Grantee::Account("111122223333".into());
        assert!(Grantee::grants(std::slice::from_ref(&a), "111122223333"));
        assert!(!Grantee::grants(&[a], "444455556666"));
        assert!(Grantee::grants(&[Grantee::All], "444455556666"));
        assert!(!Grantee::grants(&[], "111122223333"));
    }

    #[test]
    fn time_format_matches_ec2() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap();
        assert_eq!(format_time(t), "2023-11-14T22:13:20.005Z");
    }
}

/// One `Filter.N` of a Describe call: any value may match (values may use `*` and `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Filter name, e.g. `tag:Name` or `group-name`.
    pub name: String,
    /// Accepted values; any one matching is enough.
    pub values: Vec<String>,
}

/// A `TagSpecification`: tags to apply to a resource created by the same call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpecification {
    /// The resource type the tags are meant for (`key-pair`, `security-group`, …).
    pub resource_type: String,
    /// The tags, in the order given.
    pub tags: Vec<Tag>,
}

/// `MaxResults`/`NextToken` of a paginated Describe call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Page size; `None` means everything.
    pub max_results: Option<usize>,
    /// Opaque token from the previous page.
    pub next_token: Option<String>,
}

/// A security group peer named in an `IpPermission`'s `Groups` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPeer {
    /// Referenced group id.
    pub group_id: Option<String>,
    /// Referenced group name (default VPC only).
    pub group_name: Option<String>,
    /// Owner account of the referenced group.
    pub user_id: Option<String>,
    /// Rule description.
    pub description: Option<String>,
}

/// A CIDR (or prefix list) peer with its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrPeer {
    /// The CIDR block or prefix list id.
    pub cidr: String,
    /// Rule description.
    pub description: Option<String>,
}

/// An `IpPermission` as a client sends it: one protocol/port range and any number of peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpPermission {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` or a protocol number.
    pub ip_protocol: String,
    /// Start of the port range (ICMP type).
    pub from_port: Option<i64>,
    /// End of the port range (ICMP code).
    pub to_port: Option<i64>,
    /// IPv4 CIDR peers.
    pub ip_ranges: Vec<CidrPeer>,
    /// IPv6 CIDR peers.
    pub ipv6_ranges: Vec<CidrPeer>,
    /// Security group peers.
    pub groups: Vec<GroupPeer>,
    /// Prefix list peers.
    pub prefix_list_ids: Vec<CidrPeer>,
}

/// Who a launch or create-volume permission names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// One account, by 12-digit id.
    Account(String),
    /// Everyone (`Group=all`): public.
    All,
}

impl Grantee {
    /// True when a permission list lets `account` in: it names the account or everyone.
    pub fn grants(list: &[Grantee], account: &str) -> bool {
        list.iter().any(|g| match g {
            Grantee::All => true,
            Grantee::Account(a) => a == account,
        })
    }
}

/// The EBS part of a block device mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EbsSpec {
    /// Snapshot the volume starts from.
    pub snapshot_id: Option<String>,
    /// Size, GiB.
    pub volume_size: Option<i64>,
    /// gp2, gp3, io1, io2, st1, sc1, standard.
    pub volume_type: Option<String>,
    /// Provisioned IOPS.
    pub iops: Option<i64>,
    /// Throughput, MiB/s (gp3).
    pub throughput: Option<i64>,
    /// Delete the volume when the instance terminates.
    pub delete_on_termination: Option<bool>,
    /// Encryption flag (recorded).
    pub encrypted: Option<bool>,
    /// KMS key id (recorded).
    pub kms_key_id: Option<String>,
}

/// One block device mapping entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockDeviceMapping {
    /// Device name, e.g. `/dev/xvda`.
    pub device_name: String,
    /// `ephemeralN` for instance-store volumes.
    pub virtual_name: Option<String>,
    /// Suppress a device the image would otherwise map.
    pub no_device: bool,
    /// EBS volume.
    pub ebs: Option<EbsSpec>,
}

/// What `CreateVolume` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateVolumeSpec {
    /// Zone name.
    pub availability_zone: Option<String>,
    /// Zone id (alternative to the name).
    pub availability_zone_id: Option<String>,
    /// Size, GiB.
    pub size: Option<i64>,
    /// Source snapshot.
    pub snapshot_id: Option<String>,
    /// Volume type; default gp2.
    pub volume_type: Option<String>,
    /// Provisioned IOPS.
    pub iops: Option<i64>,
    /// Throughput (gp3), MiB/s.
    pub throughput: Option<i64>,
    /// Encryption flag.
    pub encrypted: Option<bool>,
    /// KMS key id.
    pub kms_key_id: Option<String>,
    /// Multi-attach.
    pub multi_attach_enabled: bool,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// Tags.
    pub tag_specs: Vec<TagSpecification>,
}

/// What `ModifyVolume` asks to change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeChange {
    /// New size, GiB.
    pub size: Option<i64>,
    /// New type.
    pub volume_type: Option<String>,
    /// New IOPS.
    pub iops: Option<i64>,
    /// New throughput.
    pub throughput: Option<i64>,
    /// New multi-attach setting.
    pub multi_attach: Option<bool>,
}

/// What `RunInstances` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunInstancesSpec {
    /// The image to launch.
    pub image_id: String,
    /// Instance type; `m1.small` in EC2 when absent, `t3.micro` here (see the catalogue).
    pub instance_type: Option<String>,
    /// Launch at least this many, or none.
    pub min_count: i64,
    /// Launch at most this many.
    pub max_count: i64,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Security group names (default VPC).
    pub security_groups: Vec<String>,
    /// Subnet.
    pub subnet_id: Option<String>,
    /// `Placement.AvailabilityZone`.
    pub availability_zone: Option<String>,
    /// Decoded user data.
    pub user_data: Option<Vec<u8>>,
    /// Block device mapping overrides and additions.
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    /// Tags for the instance and its volumes.
    pub tag_specs: Vec<TagSpecification>,
    /// `stop` or `terminate`.
    pub shutdown_behavior: Option<String>,
    /// Termination protection.
    pub disable_api_termination: Option<bool>,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// `PrivateIpAddress`: a fixed private address (only with one instance).
    pub private_ip_address: Option<String>,
}

/// What `CreateImage` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateImageSpec {
    /// The instance to image.
    pub instance_id: String,
    /// Unique image name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Snapshot the running disks without stopping the guest.
    pub no_reboot: bool,
    /// Block device mapping overrides.
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    /// Tags for the image and its snapshots.
    pub tag_specs: Vec<TagSpecification>,
}

/// What `CopyImage` asks for (sent to the destination region).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyImageSpec {
    /// Region of the source image.
    pub source_region: String,
    /// The source image.
    pub source_image_id: String,
    /// Name of the copy.
    pub name: String,
    /// Description of the copy.
    pub description: Option<String>,
    /// Copy the source image's tags to the copy.
    pub copy_image_tags: bool,
    /// Tags for the copy (and its snapshots).
    pub tag_specs: Vec<TagSpecification>,
    /// Idempotency token.
    pub client_token: Option<String>,
}

/// One `ResourceType.N` of `DescribeImageReferences`: a resource type to check and the
/// options that narrow it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceTypeRequest {
    /// `ec2:Instance`, `ec2:LaunchTemplate`, `ssm:Parameter`, `imagebuilder:ImageRecipe` or
    /// `imagebuilder:ContainerRecipe`.
    pub resource_type: String,
    /// `ResourceTypeOption.N`: an option name (`state-name`, `version-depth`) and its values.
    pub options: Vec<(String, Vec<String>)>,
}

/// What `ModifyInstanceAttribute` changes; exactly one field is set.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceChange {
    /// A new instance type (stopped instances only).
    InstanceType(String),
    /// New user data (stopped instances only).
    UserData(Vec<u8>),
    /// Termination protection.
    DisableApiTermination(bool),
    /// `stop` or `terminate`.
    ShutdownBehavior(String),
    /// The instance's security groups.
    Groups(Vec<String>),
    /// Changes to attached volumes' mappings (`DeleteOnTermination`).
    BlockDevices(Vec<DeviceChange>),
}

/// What `CreateSnapshots` asks for: crash-consistent snapshots of an instance's volumes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateSnapshotsSpec {
    /// The instance.
    pub instance_id: String,
    /// Leave the root volume out.
    pub exclude_boot_volume: bool,
    /// Data volumes to leave out.
    pub exclude_data_volume_ids: Vec<String>,
    /// Description of every snapshot.
    pub description: Option<String>,
    /// Copy each volume's tags to its snapshot (`CopyTagsFromSource=volume`).
    pub copy_tags: bool,
    /// Tags for the snapshots.
    pub tag_specs: Vec<TagSpecification>,
}

/// One `BlockDeviceMapping.N` of `ModifyInstanceAttribute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    /// The device the volume is attached at.
    pub device_name: String,
    /// The volume expected there, when named.
    pub volume_id: Option<String>,
    /// Delete the volume when the instance terminates.
    pub delete_on_termination: Option<bool>,
}

/// What `RegisterImage` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegisterImageSpec {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// x86_64, arm64, i386, …
    pub architecture: Option<String>,
    /// Root device name, e.g. `/dev/xvda`.
    pub root_device_name: Option<String>,
    /// Block device mappings.
    pub block_device_mappings: Vec<BlockDeviceMapping>,
    /// `hvm` or `paravirtual`.
    pub virtualization_type: Option<String>,
    /// `legacy-bios`, `uefi`, `uefi-preferred`.
    pub boot_mode: Option<String>,
    /// ENA flag.
    pub ena_support: Option<bool>,
    /// SR-IOV flag (`simple`).
    pub sriov_net_support: Option<String>,
    /// `v2.0` requires IMDSv2.
    pub imds_support: Option<String>,
    /// `v2.0` for NitroTPM.
    pub tpm_support: Option<String>,
    /// Kernel image id (paravirtual).
    pub kernel_id: Option<String>,
    /// Ramdisk image id (paravirtual).
    pub ramdisk_id: Option<String>,
    /// Image location (instance-store images).
    pub image_location: Option<String>,
    /// Tags.
    pub tag_specs: Vec<TagSpecification>,
}
