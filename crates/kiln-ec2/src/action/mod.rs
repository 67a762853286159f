//! Parse, then dispatch: every request becomes one [`Ec2Action`] before any domain code runs.

use base64::Engine;
use kiln_types::{
    CidrPeer, CopyImageSpec, CreateImageSpec, CreateSnapshotsSpec, CreateVolumeSpec, Filter, GroupPeer, InstanceChange,
    IpPermission, Page, RegisterImageSpec, ResourceTypeRequest, RunInstancesSpec, Tag, TagSpecification, VolumeChange,
};

pub mod compute;
mod lifecycle;
mod recycle;
pub mod storage;

use crate::params::Params;
use crate::{known_actions, ProtocolError};
pub use storage::{ModifyImageAttributeInput, OwnedDescribe, PermissionChange};

/// A parsed request: the action and the flags every action shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Request {
    /// The typed action.
    pub action: Ec2Action,
    /// `DryRun=true`: check permissions, change nothing.
    pub dry_run: bool,
}

/// Every EC2 action Kiln implements, named after the AWS action.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Ec2Action {
    DescribeRegions {
        region_names: Vec<String>,
        all_regions: bool,
        filters: Vec<Filter>,
    },
    DescribeAvailabilityZones {
        zone_names: Vec<String>,
        zone_ids: Vec<String>,
        all_zones: bool,
        filters: Vec<Filter>,
    },
    DescribeAccountAttributes {
        attribute_names: Vec<String>,
    },
    DescribeInstanceTypes {
        instance_types: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    DescribeInstanceTypeOfferings {
        location_type: String,
        filters: Vec<Filter>,
        page: Page,
    },
    CreateKeyPair {
        key_name: String,
        key_type: Option<String>,
        key_format: Option<String>,
        tag_specs: Vec<TagSpecification>,
    },
    ImportKeyPair {
        key_name: String,
        public_key_material: Vec<u8>,
        tag_specs: Vec<TagSpecification>,
    },
    DescribeKeyPairs {
        key_names: Vec<String>,
        key_pair_ids: Vec<String>,
        filters: Vec<Filter>,
        include_public_key: bool,
    },
    DeleteKeyPair {
        key_name: Option<String>,
        key_pair_id: Option<String>,
    },
    DescribeVpcs {
        vpc_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    DescribeSubnets {
        subnet_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    CreateSecurityGroup {
        group_name: String,
        description: String,
        vpc_id: Option<String>,
        tag_specs: Vec<TagSpecification>,
    },
    DeleteSecurityGroup {
        group_id: Option<String>,
        group_name: Option<String>,
    },
    DescribeSecurityGroups {
        group_ids: Vec<String>,
        group_names: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    AuthorizeSecurityGroupIngress(RuleChange),
    AuthorizeSecurityGroupEgress(RuleChange),
    RevokeSecurityGroupIngress(RuleChange),
    RevokeSecurityGroupEgress(RuleChange),
    DescribeSecurityGroupRules {
        rule_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    CreateTags {
        resources: Vec<String>,
        tags: Vec<Tag>,
    },
    DeleteTags {
        resources: Vec<String>,
        tags: Vec<(String, Option<String>)>,
    },
    DescribeTags {
        filters: Vec<Filter>,
        page: Page,
    },
    CreateVolume(CreateVolumeSpec),
    DescribeVolumes {
        volume_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    DeleteVolume {
        volume_id: String,
    },
    ModifyVolume {
        volume_id: String,
        change: VolumeChange,
    },
    DescribeVolumesModifications {
        volume_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    AttachVolume {
        volume_id: String,
        instance_id: String,
        device: String,
    },
    DetachVolume {
        volume_id: String,
        instance_id: Option<String>,
        device: Option<String>,
        force: bool,
    },
    CreateSnapshot {
        volume_id: String,
        description: Option<String>,
        tag_specs: Vec<TagSpecification>,
    },
    CreateSnapshots(CreateSnapshotsSpec),
    DescribeSnapshots(OwnedDescribe),
    DeleteSnapshot {
        snapshot_id: String,
    },
    CopySnapshot {
        source_region: String,
        source_snapshot_id: String,
        description: Option<String>,
        encrypted: Option<bool>,
        destination_region: Option<String>,
        tag_specs: Vec<TagSpecification>,
    },
    DescribeSnapshotAttribute {
        snapshot_id: String,
        attribute: String,
    },
    ModifySnapshotAttribute {
        snapshot_id: String,
        attribute: Option<String>,
        change: PermissionChange,
    },
    ResetSnapshotAttribute {
        snapshot_id: String,
        attribute: String,
    },
    RegisterImage(RegisterImageSpec),
    DescribeImages {
        describe: OwnedDescribe,
        include_deprecated: bool,
        include_disabled: bool,
    },
    DeregisterImage {
        image_id: String,
        delete_associated_snapshots: bool,
    },
    ListImagesInRecycleBin {
        image_ids: Vec<String>,
        page: Page,
    },
    ListSnapshotsInRecycleBin {
        snapshot_ids: Vec<String>,
        page: Page,
    },
    RestoreImageFromRecycleBin {
        image_id: String,
    },
    RestoreSnapshotFromRecycleBin {
        snapshot_id: String,
    },
    DescribeImageAttribute {
        image_id: String,
        attribute: String,
    },
    ModifyImageAttribute(ModifyImageAttributeInput),
    ResetImageAttribute {
        image_id: String,
        attribute: String,
    },
    CancelImageLaunchPermission {
        image_id: String,
    },
    DescribeImageReferences {
        image_ids: Vec<String>,
        include_all_resource_types: bool,
        resource_types: Vec<ResourceTypeRequest>,
        page: Page,
    },
    EnableImageBlockPublicAccess {
        state: String,
    },
    DisableImageBlockPublicAccess,
    GetImageBlockPublicAccessState,
    EnableSnapshotBlockPublicAccess {
        state: String,
    },
    DisableSnapshotBlockPublicAccess,
    GetSnapshotBlockPublicAccessState,
    EnableImageDeprecation {
        image_id: String,
        deprecate_at: chrono::DateTime<chrono::Utc>,
    },
    DisableImageDeprecation {
        image_id: String,
    },
    DisableImage {
        image_id: String,
    },
    EnableImage {
        image_id: String,
    },
    EnableImageDeregistrationProtection {
        image_id: String,
        with_cooldown: bool,
    },
    DisableImageDeregistrationProtection {
        image_id: String,
    },
    RunInstances(RunInstancesSpec),
    DescribeInstances {
        instance_ids: Vec<String>,
        filters: Vec<Filter>,
        page: Page,
    },
    DescribeInstanceStatus {
        instance_ids: Vec<String>,
        include_all: bool,
        filters: Vec<Filter>,
        page: Page,
    },
    StartInstances {
        instance_ids: Vec<String>,
    },
    StopInstances {
        instance_ids: Vec<String>,
        force: bool,
    },
    RebootInstances {
        instance_ids: Vec<String>,
    },
    TerminateInstances {
        instance_ids: Vec<String>,
    },
    GetConsoleOutput {
        instance_id: String,
        latest: bool,
    },
    DescribeInstanceAttribute {
        instance_id: String,
        attribute: String,
    },
    ModifyInstanceAttribute {
        instance_id: String,
        change: InstanceChange,
    },
    CreateImage(CreateImageSpec),
    CopyImage(CopyImageSpec),
    GetImageAncestry {
        image_id: String,
    },
}

/// The input shared by Authorize/Revoke SecurityGroup Ingress/Egress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleChange {
    /// Target group by id.
    pub group_id: Option<String>,
    /// Target group by name (default VPC, ingress only).
    pub group_name: Option<String>,
    /// Permissions, including the legacy top-level form folded into one entry.
    pub permissions: Vec<IpPermission>,
    /// Revoke by rule id.
    pub rule_ids: Vec<String>,
    /// Tags for created rules.
    pub tag_specs: Vec<TagSpecification>,
}

impl Ec2Action {
    /// The AWS action name.
    pub fn name(&self) -> &'static str {
        match self {
            Ec2Action::DescribeRegions { .. } => "DescribeRegions",
            Ec2Action::DescribeAvailabilityZones { .. } => "DescribeAvailabilityZones",
            Ec2Action::DescribeAccountAttributes { .. } => "DescribeAccountAttributes",
            Ec2Action::DescribeInstanceTypes { .. } => "DescribeInstanceTypes",
            Ec2Action::DescribeInstanceTypeOfferings { .. } => "DescribeInstanceTypeOfferings",
            Ec2Action::CreateKeyPair { .. } => "CreateKeyPair",
            Ec2Action::ImportKeyPair { .. } => "ImportKeyPair",
            Ec2Action::DescribeKeyPairs { .. } => "DescribeKeyPairs",
            Ec2Action::DeleteKeyPair { .. } => "DeleteKeyPair",
            Ec2Action::DescribeVpcs { .. } => "DescribeVpcs",
            Ec2Action::DescribeSubnets { .. } => "DescribeSubnets",
            Ec2Action::CreateSecurityGroup { .. } => "CreateSecurityGroup",
            Ec2Action::DeleteSecurityGroup { .. } => "DeleteSecurityGroup",
            Ec2Action::DescribeSecurityGroups { .. } => "DescribeSecurityGroups",
            Ec2Action::AuthorizeSecurityGroupIngress(_) => "AuthorizeSecurityGroupIngress",
            Ec2Action::AuthorizeSecurityGroupEgress(_) => "AuthorizeSecurityGroupEgress",
            Ec2Action::RevokeSecurityGroupIngress(_) => "RevokeSecurityGroupIngress",
            Ec2Action::RevokeSecurityGroupEgress(_) => "RevokeSecurityGroupEgress",
            Ec2Action::DescribeSecurityGroupRules { .. } => "DescribeSecurityGroupRules",
            Ec2Action::CreateTags { .. } => "CreateTags",
            Ec2Action::DeleteTags { .. } => "DeleteTags",
            Ec2Action::DescribeTags { .. } => "DescribeTags",
            Ec2Action::CreateVolume(_) => "CreateVolume",
            Ec2Action::DescribeVolumes { .. } => "DescribeVolumes",
            Ec2Action::DeleteVolume { .. } => "DeleteVolume",
            Ec2Action::ModifyVolume { .. } => "ModifyVolume",
            Ec2Action::DescribeVolumesModifications { .. } => "DescribeVolumesModifications",
            Ec2Action::AttachVolume { .. } => "AttachVolume",
            Ec2Action::DetachVolume { .. } => "DetachVolume",
            Ec2Action::CreateSnapshot { .. } => "CreateSnapshot",
            Ec2Action::CreateSnapshots(_) => "CreateSnapshots",
            Ec2Action::DescribeSnapshots(_) => "DescribeSnapshots",
            Ec2Action::DeleteSnapshot { .. } => "DeleteSnapshot",
            Ec2Action::CopySnapshot { .. } => "CopySnapshot",
            Ec2Action::DescribeSnapshotAttribute { .. } => "DescribeSnapshotAttribute",
            Ec2Action::ModifySnapshotAttribute { .. } => "ModifySnapshotAttribute",
            Ec2Action::ResetSnapshotAttribute { .. } => "ResetSnapshotAttribute",
            Ec2Action::RegisterImage(_) => "RegisterImage",
            Ec2Action::DescribeImages { .. } => "DescribeImages",
            Ec2Action::DeregisterImage { .. } => "DeregisterImage",
            Ec2Action::ListImagesInRecycleBin { .. } => "ListImagesInRecycleBin",
            Ec2Action::ListSnapshotsInRecycleBin { .. } => "ListSnapshotsInRecycleBin",
            Ec2Action::RestoreImageFromRecycleBin { .. } => "RestoreImageFromRecycleBin",
            Ec2Action::RestoreSnapshotFromRecycleBin { .. } => "RestoreSnapshotFromRecycleBin",
            Ec2Action::DescribeImageAttribute { .. } => "DescribeImageAttribute",
            Ec2Action::ModifyImageAttribute(_) => "ModifyImageAttribute",
            Ec2Action::ResetImageAttribute { .. } => "ResetImageAttribute",
            Ec2Action::CancelImageLaunchPermission { .. } => "CancelImageLaunchPermission",
            Ec2Action::DescribeImageReferences { .. } => "DescribeImageReferences",
            Ec2Action::EnableImageBlockPublicAccess { .. } => "EnableImageBlockPublicAccess",
            Ec2Action::DisableImageBlockPublicAccess => "DisableImageBlockPublicAccess",
            Ec2Action::GetImageBlockPublicAccessState => "GetImageBlockPublicAccessState",
            Ec2Action::EnableSnapshotBlockPublicAccess { .. } => "EnableSnapshotBlockPublicAccess",
            Ec2Action::DisableSnapshotBlockPublicAccess => "DisableSnapshotBlockPublicAccess",
            Ec2Action::GetSnapshotBlockPublicAccessState => "GetSnapshotBlockPublicAccessState",
            Ec2Action::EnableImageDeprecation { .. } => "EnableImageDeprecation",
            Ec2Action::DisableImageDeprecation { .. } => "DisableImageDeprecation",
            Ec2Action::DisableImage { .. } => "DisableImage",
            Ec2Action::EnableImage { .. } => "EnableImage",
            Ec2Action::EnableImageDeregistrationProtection { .. } => "EnableImageDeregistrationProtection",
            Ec2Action::DisableImageDeregistrationProtection { .. } => "DisableImageDeregistrationProtection",
            Ec2Action::RunInstances(_) => "RunInstances",
            Ec2Action::DescribeInstances { .. } => "DescribeInstances",
            Ec2Action::DescribeInstanceStatus { .. } => "DescribeInstanceStatus",
            Ec2Action::StartInstances { .. } => "StartInstances",
            Ec2Action::StopInstances { .. } => "StopInstances",
            Ec2Action::RebootInstances { .. } => "RebootInstances",
            Ec2Action::TerminateInstances { .. } => "TerminateInstances",
            Ec2Action::GetConsoleOutput { .. } => "GetConsoleOutput",
            Ec2Action::DescribeInstanceAttribute { .. } => "DescribeInstanceAttribute",
            Ec2Action::ModifyInstanceAttribute { .. } => "ModifyInstanceAttribute",
            Ec2Action::CreateImage(_) => "CreateImage",
            Ec2Action::CopyImage(_) => "CopyImage",
            Ec2Action::GetImageAncestry { .. } => "GetImageAncestry",
        }
    }
}

/// Names of the actions Kiln implements, for docs and `UnsupportedOperation` checks.
pub const IMPLEMENTED: &[&str] = &[
    "AttachVolume",
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "CancelImageLaunchPermission",
    "CopyImage",
    "CopySnapshot",
    "CreateImage",
    "CreateKeyPair",
    "CreateSecurityGroup",
    "CreateSnapshot",
    "CreateSnapshots",
    "CreateTags",
    "CreateVolume",
    "DeleteKeyPair",
    "DeleteSecurityGroup",
    "DeleteSnapshot",
    "DeleteTags",
    "DeleteVolume",
    "DeregisterImage",
    "DescribeAccountAttributes",
    "DescribeAvailabilityZones",
    "DescribeImageAttribute",
    "DescribeImageReferences",
    "DescribeImages",
    "DescribeInstanceAttribute",
    "DescribeInstanceStatus",
    "DescribeInstanceTypeOfferings",
    "DescribeInstanceTypes",
    "DescribeInstances",
    "DescribeKeyPairs",
    "DescribeRegions",
    "DescribeSecurityGroupRules",
    "DescribeSecurityGroups",
    "DescribeSnapshotAttribute",
    "DescribeSnapshots",
    "DescribeSubnets",
    "DescribeTags",
    "DescribeVolumes",
    "DescribeVolumesModifications",
    "DescribeVpcs",
    "DetachVolume",
    "DisableImage",
    "DisableImageBlockPublicAccess",
    "DisableImageDeprecation",
    "DisableImageDeregistrationProtection",
    "DisableSnapshotBlockPublicAccess",
    "EnableImage",
    "EnableImageBlockPublicAccess",
    "EnableImageDeprecation",
    "EnableImageDeregistrationProtection",
    "EnableSnapshotBlockPublicAccess",
    "GetConsoleOutput",
    "GetImageAncestry",
    "GetImageBlockPublicAccessState",
    "GetSnapshotBlockPublicAccessState",
    "ImportKeyPair",
    "ListImagesInRecycleBin",
    "ListSnapshotsInRecycleBin",
    "ModifyImageAttribute",
    "ModifyInstanceAttribute",
    "ModifySnapshotAttribute",
    "ModifyVolume",
    "RebootInstances",
    "RegisterImage",
    "ResetImageAttribute",
    "ResetSnapshotAttribute",
    "RestoreImageFromRecycleBin",
    "RestoreSnapshotFromRecycleBin",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RunInstances",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
];

/// The API version this server speaks.
pub const API_VERSION: &str = "2016-11-15";

fn instance_ids(p: &Params) -> Result<Vec<String>, ProtocolError> {
    let ids = p.strings("InstanceId")?;
    if ids.is_empty() {
        return Err(ProtocolError::MissingParameter("InstanceId".into()));
    }
    Ok(ids)
}

fn page(p: &Params, min: i64, max: i64) -> Result<Page, ProtocolError> {
    Ok(Page { max_results: p.max_results(min, max)?, next_token: p.string("NextToken").filter(|t| !t.is_empty()) })
}

fn tags(p: &Params, prefix: &str) -> Result<Vec<Tag>, ProtocolError> {
    p.structs(prefix)?
        .into_iter()
        .map(|t| {
            Ok(Tag {
                key: t
                    .get("Key")
                    .ok_or_else(|| ProtocolError::MissingParameter(format!("{prefix}.N.Key")))?
                    .to_string(),
                value: t.get("Value").unwrap_or("").to_string(),
            })
        })
        .collect()
}

fn tag_specs(p: &Params) -> Result<Vec<TagSpecification>, ProtocolError> {
    p.structs("TagSpecification")?
        .into_iter()
        .map(|s| {
            Ok(TagSpecification {
                resource_type: s
                    .get("ResourceType")
                    .ok_or_else(|| ProtocolError::MissingParameter("TagSpecification.N.ResourceType".into()))?
                    .to_string(),
                tags: tags(&s, "Tag")?,
            })
        })
        .collect()
}

fn cidr_peers(p: &Params, list: &str, field: &str) -> Result<Vec<CidrPeer>, ProtocolError> {
    p.structs(list)?
        .into_iter()
        .map(|r| {
            Ok(CidrPeer {
                cidr: r
                    .required(field)
                    .map_err(|_| ProtocolError::MissingParameter(format!("{list}.N.{field}")))?
                    .to_string(),
                description: r.string("Description"),
            })
        })
        .collect()
}

fn permission(p: &Params) -> Result<IpPermission, ProtocolError> {
    Ok(IpPermission {
        ip_protocol: p
            .required("IpProtocol")
            .map_err(|_| ProtocolError::MissingParameter("IpPermissions.N.IpProtocol".into()))?
            .to_string(),
        from_port: p.int("FromPort")?,
        to_port: p.int("ToPort")?,
        ip_ranges: cidr_peers(p, "IpRanges", "CidrIp")?,
        ipv6_ranges: cidr_peers(p, "Ipv6Ranges", "CidrIpv6")?,
        prefix_list_ids: cidr_peers(p, "PrefixListIds", "PrefixListId")?,
        groups: p
            .structs("Groups")?
            .into_iter()
            .map(|g| GroupPeer {
                group_id: g.string("GroupId"),
                group_name: g.string("GroupName"),
                user_id: g.string("UserId"),
                description: g.string("Description"),
            })
            .collect(),
    })
}

fn rule_change(p: &Params) -> Result<RuleChange, ProtocolError> {
    let mut permissions = p.structs("IpPermissions")?.iter().map(permission).collect::<Result<Vec<_>, _>>()?;
    // The legacy flat form (IpProtocol, CidrIp, SourceSecurityGroupName, ...) describes one permission.
    let legacy_keys =
        ["IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId"];
    if legacy_keys.iter().any(|k| p.get(k).is_some()) {
        if !permissions.is_empty() {
            return Err(ProtocolError::InvalidCombination(
                "The parameter 'ipPermissions' may not be used in combination with 'ipProtocol', 'cidrIp', 'fromPort', 'toPort' or 'sourceSecurityGroupName'".into(),
            ));
        }
        let mut perm = IpPermission {
            ip_protocol: p.get("IpProtocol").unwrap_or("-1").to_string(),
            from_port: p.int("FromPort")?,
            to_port: p.int("ToPort")?,
            ..Default::default()
        };
        if let Some(cidr) = p.get("CidrIp") {
            perm.ip_ranges.push(CidrPeer { cidr: cidr.to_string(), description: None });
        }
        if p.get("SourceSecurityGroupName").is_some() || p.get("SourceSecurityGroupOwnerId").is_some() {
            perm.groups.push(GroupPeer {
                group_name: p.string("SourceSecurityGroupName"),
                user_id: p.string("SourceSecurityGroupOwnerId"),
                ..Default::default()
            });
        }
        permissions.push(perm);
    }
    Ok(RuleChange {
        group_id: p.string("GroupId").filter(|s| !s.is_empty()),
        group_name: p.string("GroupName").filter(|s| !s.is_empty()),
        permissions,
        rule_ids: p.strings("SecurityGroupRuleId")?,
        tag_specs: tag_specs(p)?,
    })
}

impl Ec2Request {
    /// Turns decoded parameters into a typed request.
    ///
    /// Unknown actions are `InvalidAction`; actions EC2 has but Kiln does not build yet are
    /// `Unsupported`, so a client learns which of the two it hit.
    pub fn parse(p: &Params) -> Result<Ec2Request, ProtocolError> {
        let name = p.get("Action").filter(|a| !a.is_empty()).ok_or(ProtocolError::MissingAction)?;
        if let Some(v) = p.get("Version") {
            if v != API_VERSION {
                return Err(ProtocolError::UnsupportedVersion(v.to_string()));
            }
        }
        let action = match name {
            "DescribeRegions" => Ec2Action::DescribeRegions {
                region_names: p.strings("RegionName")?,
                all_regions: p.bool("AllRegions")?.unwrap_or(false),
                filters: p.filters()?,
            },
            "DescribeAvailabilityZones" => Ec2Action::DescribeAvailabilityZones {
                zone_names: p.strings("ZoneName")?,
                zone_ids: p.strings("ZoneId")?,
                all_zones: p.bool("AllAvailabilityZones")?.unwrap_or(false),
                filters: p.filters()?,
            },
            "DescribeAccountAttributes" => {
                Ec2Action::DescribeAccountAttributes { attribute_names: p.strings("AttributeName")? }
            }
            "DescribeInstanceTypes" => Ec2Action::DescribeInstanceTypes {
                instance_types: p.strings("InstanceType")?,
                filters: p.filters()?,
                page: page(p, 5, 100)?,
            },
            "DescribeInstanceTypeOfferings" => Ec2Action::DescribeInstanceTypeOfferings {
                location_type: p.get("LocationType").unwrap_or("region").to_string(),
                filters: p.filters()?,
                page: page(p, 5, 1000)?,
            },
            "CreateKeyPair" => Ec2Action::CreateKeyPair {
                key_name: p.required("KeyName")?.to_string(),
                key_type: p.string("KeyType"),
                key_format: p.string("KeyFormat"),
                tag_specs: tag_specs(p)?,
            },
            "ImportKeyPair" => {
                let raw = p.required("PublicKeyMaterial")?;
                // The model types this as a blob, so SDKs base64 it; accept plain text from
                // hand-written clients too.
                let material = base64::engine::general_purpose::STANDARD
                    .decode(raw.trim())
                    .unwrap_or_else(|_| raw.as_bytes().to_vec());
                Ec2Action::ImportKeyPair {
                    key_name: p.required("KeyName")?.to_string(),
                    public_key_material: material,
                    tag_specs: tag_specs(p)?,
                }
            }
            "DescribeKeyPairs" => Ec2Action::DescribeKeyPairs {
                key_names: p.strings("KeyName")?,
                key_pair_ids: p.strings("KeyPairId")?,
                filters: p.filters()?,
                include_public_key: p.bool("IncludePublicKey")?.unwrap_or(false),
            },
            "DeleteKeyPair" => {
                let key_name = p.string("KeyName").filter(|s| !s.is_empty());
                let key_pair_id = p.string("KeyPairId").filter(|s| !s.is_empty());
                if key_name.is_none() && key_pair_id.is_none() {
                    return Err(ProtocolError::MissingParameter("KeyName or KeyPairId".into()));
                }
                Ec2Action::DeleteKeyPair { key_name, key_pair_id }
            }
            "DescribeVpcs" => {
                Ec2Action::DescribeVpcs { vpc_ids: p.strings("VpcId")?, filters: p.filters()?, page: page(p, 5, 1000)? }
            }
            "DescribeSubnets" => Ec2Action::DescribeSubnets {
                subnet_ids: p.strings("SubnetId")?,
                filters: p.filters()?,
                page: page(p, 5, 1000)?,
            },
            "CreateSecurityGroup" => Ec2Action::CreateSecurityGroup {
                group_name: p.required("GroupName")?.to_string(),
                description: p.required("GroupDescription")?.to_string(),
                vpc_id: p.string("VpcId").filter(|s| !s.is_empty()),
                tag_specs: tag_specs(p)?,
            },
            "DeleteSecurityGroup" => {
                let group_id = p.string("GroupId").filter(|s| !s.is_empty());
                let group_name = p.string("GroupName").filter(|s| !s.is_empty());
                if group_id.is_none() && group_name.is_none() {
                    return Err(ProtocolError::MissingParameter("GroupId or GroupName".into()));
                }
                Ec2Action::DeleteSecurityGroup { group_id, group_name }
            }
            "DescribeSecurityGroups" => {
                let group_ids = p.strings("GroupId")?;
                let page = page(p, 5, 1000)?;
                if page.max_results.is_some() && !group_ids.is_empty() {
                    return Err(ProtocolError::InvalidCombination(
                        "The parameter groupIdSet cannot be used with the parameter maxResults".into(),
                    ));
                }
                Ec2Action::DescribeSecurityGroups {
                    group_ids,
                    group_names: p.strings("GroupName")?,
                    filters: p.filters()?,
                    page,
                }
            }
            "AuthorizeSecurityGroupIngress" => Ec2Action::AuthorizeSecurityGroupIngress(rule_change(p)?),
            "AuthorizeSecurityGroupEgress" => Ec2Action::AuthorizeSecurityGroupEgress(rule_change(p)?),
            "RevokeSecurityGroupIngress" => Ec2Action::RevokeSecurityGroupIngress(rule_change(p)?),
            "RevokeSecurityGroupEgress" => Ec2Action::RevokeSecurityGroupEgress(rule_change(p)?),
            "DescribeSecurityGroupRules" => Ec2Action::DescribeSecurityGroupRules {
                rule_ids: p.strings("SecurityGroupRuleId")?,
                filters: p.filters()?,
                page: page(p, 5, 1000)?,
            },
            "CreateTags" => {
                let resources = p.strings("ResourceId")?;
                if resources.is_empty() {
                    return Err(ProtocolError::MissingParameter("resourceIdSet".into()));
                }
                let tags = tags(p, "Tag")?;
                if tags.is_empty() {
                    return Err(ProtocolError::MissingParameter("Tag".into()));
                }
                Ec2Action::CreateTags { resources, tags }
            }
            "DeleteTags" => {
                let resources = p.strings("ResourceId")?;
                if resources.is_empty() {
                    return Err(ProtocolError::MissingParameter("resourceIdSet".into()));
                }
                let tags = p
                    .structs("Tag")?
                    .into_iter()
                    .map(|t| {
                        Ok((
                            t.get("Key")
                                .ok_or_else(|| ProtocolError::MissingParameter("Tag.N.Key".into()))?
                                .to_string(),
                            t.string("Value"),
                        ))
                    })
                    .collect::<Result<Vec<_>, ProtocolError>>()?;
                Ec2Action::DeleteTags { resources, tags }
            }
            "DescribeTags" => Ec2Action::DescribeTags { filters: p.filters()?, page: page(p, 5, 1000)? },
            "CreateVolume" => Ec2Action::CreateVolume(storage::create_volume(p)?),
            "DescribeVolumes" => {
                let volume_ids = p.strings("VolumeId")?;
                let page = page(p, 5, 500)?;
                if page.max_results.is_some() && !volume_ids.is_empty() {
                    return Err(ProtocolError::InvalidCombination(
                        "The parameter volumeSet cannot be used with the parameter maxResults".into(),
                    ));
                }
                Ec2Action::DescribeVolumes { volume_ids, filters: p.filters()?, page }
            }
            "DeleteVolume" => Ec2Action::DeleteVolume { volume_id: p.required("VolumeId")?.to_string() },
            "ModifyVolume" => {
                let (volume_id, change) = storage::modify_volume(p)?;
                Ec2Action::ModifyVolume { volume_id, change }
            }
            "DescribeVolumesModifications" => Ec2Action::DescribeVolumesModifications {
                volume_ids: p.strings("VolumeId")?,
                filters: p.filters()?,
                page: page(p, 5, 500)?,
            },
            "AttachVolume" => Ec2Action::AttachVolume {
                volume_id: p.required("VolumeId")?.to_string(),
                instance_id: p.required("InstanceId")?.to_string(),
                device: p.required("Device")?.to_string(),
            },
            "DetachVolume" => Ec2Action::DetachVolume {
                volume_id: p.required("VolumeId")?.to_string(),
                instance_id: p.string("InstanceId").filter(|s| !s.is_empty()),
                device: p.string("Device").filter(|s| !s.is_empty()),
                force: p.bool("Force")?.unwrap_or(false),
            },
            "CreateSnapshot" => Ec2Action::CreateSnapshot {
                volume_id: p.required("VolumeId")?.to_string(),
                description: p.string("Description"),
                tag_specs: tag_specs(p)?,
            },
            "CreateSnapshots" => Ec2Action::CreateSnapshots(CreateSnapshotsSpec {
                instance_id: p.required("InstanceSpecification.InstanceId")?.to_string(),
                exclude_boot_volume: p.bool("InstanceSpecification.ExcludeBootVolume")?.unwrap_or(false),
                exclude_data_volume_ids: p.strings("InstanceSpecification.ExcludeDataVolumeId")?,
                description: p.string("Description"),
                copy_tags: match p.get("CopyTagsFromSource") {
                    None => false,
                    Some("volume") => true,
                    Some(other) => {
                        return Err(ProtocolError::InvalidValue {
                            param: "CopyTagsFromSource".into(),
                            value: other.to_string(),
                            reason: "the only valid value is volume".into(),
                        })
                    }
                },
                tag_specs: tag_specs(p)?,
            }),
            "DescribeSnapshots" => {
                Ec2Action::DescribeSnapshots(storage::owned_describe(p, "SnapshotId", "RestorableBy", 5, 1000)?)
            }
            "DeleteSnapshot" => Ec2Action::DeleteSnapshot { snapshot_id: p.required("SnapshotId")?.to_string() },
            "CopySnapshot" => Ec2Action::CopySnapshot {
                source_region: p.required("SourceRegion")?.to_string(),
                source_snapshot_id: p.required("SourceSnapshotId")?.to_string(),
                description: p.string("Description"),
                encrypted: p.bool("Encrypted")?,
                destination_region: p.string("DestinationRegion").filter(|s| !s.is_empty()),
                tag_specs: tag_specs(p)?,
            },
            "DescribeSnapshotAttribute" => Ec2Action::DescribeSnapshotAttribute {
                snapshot_id: p.required("SnapshotId")?.to_string(),
                attribute: p.required("Attribute")?.to_string(),
            },
            "ModifySnapshotAttribute" => Ec2Action::ModifySnapshotAttribute {
                snapshot_id: p.required("SnapshotId")?.to_string(),
                attribute: p.string("Attribute").filter(|s| !s.is_empty()),
                change: storage::snapshot_permission_change(p)?,
            },
            "ResetSnapshotAttribute" => Ec2Action::ResetSnapshotAttribute {
                snapshot_id: p.required("SnapshotId")?.to_string(),
                attribute: p.required("Attribute")?.to_string(),
            },
            "RegisterImage" => Ec2Action::RegisterImage(storage::register_image(p)?),
            "RunInstances" => Ec2Action::RunInstances(compute::run_instances(p)?),
            "DescribeInstances" => {
                let instance_ids = p.strings("InstanceId")?;
                let page = page(p, 5, 1000)?;
                if page.max_results.is_some() && !instance_ids.is_empty() {
                    return Err(ProtocolError::InvalidCombination(
                        "The parameter instancesSet cannot be used with the parameter maxResults".into(),
                    ));
                }
                Ec2Action::DescribeInstances { instance_ids, filters: p.filters()?, page }
            }
            "DescribeInstanceStatus" => Ec2Action::DescribeInstanceStatus {
                instance_ids: p.strings("InstanceId")?,
                include_all: p.bool("IncludeAllInstances")?.unwrap_or(false),
                filters: p.filters()?,
                page: page(p, 5, 1000)?,
            },
            "StartInstances" => Ec2Action::StartInstances { instance_ids: instance_ids(p)? },
            "StopInstances" => {
                Ec2Action::StopInstances { instance_ids: instance_ids(p)?, force: p.bool("Force")?.unwrap_or(false) }
            }
            "RebootInstances" => Ec2Action::RebootInstances { instance_ids: instance_ids(p)? },
            "TerminateInstances" => Ec2Action::TerminateInstances { instance_ids: instance_ids(p)? },
            "GetConsoleOutput" => Ec2Action::GetConsoleOutput {
                instance_id: p.required("InstanceId")?.to_string(),
                latest: p.bool("Latest")?.unwrap_or(false),
            },
            "DescribeInstanceAttribute" => Ec2Action::DescribeInstanceAttribute {
                instance_id: p.required("InstanceId")?.to_string(),
                attribute: p.required("Attribute")?.to_string(),
            },
            "ModifyInstanceAttribute" => Ec2Action::ModifyInstanceAttribute {
                instance_id: p.required("InstanceId")?.to_string(),
                change: compute::instance_change(p)?,
            },
            "CreateImage" => Ec2Action::CreateImage(compute::create_image(p)?),
            "CopyImage" => Ec2Action::CopyImage(CopyImageSpec {
                source_region: p.required("SourceRegion")?.to_string(),
                source_image_id: p.required("SourceImageId")?.to_string(),
                name: p.required("Name")?.to_string(),
                description: p.string("Description"),
                copy_image_tags: p.bool("CopyImageTags")?.unwrap_or(false),
                tag_specs: tag_specs(p)?,
                client_token: p.string("ClientToken").filter(|t| !t.is_empty()),
            }),
            "GetImageAncestry" => Ec2Action::GetImageAncestry { image_id: p.required("ImageId")?.to_string() },
            "DescribeImages" => Ec2Action::DescribeImages {
                describe: storage::owned_describe(p, "ImageId", "ExecutableBy", 5, 1000)?,
                include_deprecated: p.bool("IncludeDeprecated")?.unwrap_or(false),
                include_disabled: p.bool("IncludeDisabled")?.unwrap_or(false),
            },
            "DeregisterImage" => Ec2Action::DeregisterImage {
                image_id: p.required("ImageId")?.to_string(),
                delete_associated_snapshots: p.bool("DeleteAssociatedSnapshots")?.unwrap_or(false),
            },
            "DescribeImageAttribute" => Ec2Action::DescribeImageAttribute {
                image_id: p.required("ImageId")?.to_string(),
                attribute: p.required("Attribute")?.to_string(),
            },
            "ModifyImageAttribute" => Ec2Action::ModifyImageAttribute(storage::modify_image_attribute(p)?),
            "ResetImageAttribute" => Ec2Action::ResetImageAttribute {
                image_id: p.required("ImageId")?.to_string(),
                attribute: p.required("Attribute")?.to_string(),
            },
            name if lifecycle::ACTIONS.contains(&name) => lifecycle::parse(name, p)?,
            name if recycle::ACTIONS.contains(&name) => recycle::parse(name, p)?,
            other if known_actions::is_known(other) => return Err(ProtocolError::Unsupported(other.to_string())),
            other => return Err(ProtocolError::InvalidAction(other.to_string())),
        };
        Ok(Ec2Request { action, dry_run: p.dry_run()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Ec2Request, ProtocolError> {
        let mut p = Params::default();
        p.merge_urlencoded(q.as_bytes())?;
        Ec2Request::parse(&p)
    }

    #[test]
    fn every_implemented_action_is_known_to_ec2() {
        for name in IMPLEMENTED {
            assert!(known_actions::is_known(name), "{name}");
        }
    }

    #[test]
    fn unknown_unbuilt_and_missing_actions_differ() {
        assert_eq!(parse("Action=Frobnicate"), Err(ProtocolError::InvalidAction("Frobnicate".into())));
        assert_eq!(
            parse("Action=CreateVpnGateway&Type=ipsec.1"),
            Err(ProtocolError::Unsupported("CreateVpnGateway".into()))
        );
        assert_eq!(parse("Version=2016-11-15"), Err(ProtocolError::MissingAction));
        assert!(matches!(
            parse("Action=DescribeRegions&Version=2010-01-01"),
            Err(ProtocolError::UnsupportedVersion(_))
        ));
    }

    #[test]
    fn legacy_and_structured_permissions_decode_alike() {
        let legacy = parse(
            "Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&IpProtocol=tcp&FromPort=22&ToPort=22&CidrIp=0.0.0.0/0",
        )
        .unwrap();
        let structured = parse("Action=AuthorizeSecurityGroupIngress&GroupId=sg-1&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=0.0.0.0/0").unwrap();
        assert_eq!(legacy, structured);
    }

    #[test]
    fn dry_run_and_tag_specifications() {
        let r = parse("Action=CreateKeyPair&KeyName=k&DryRun=true&TagSpecification.1.ResourceType=key-pair&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=b").unwrap();
        assert!(r.dry_run);
        match r.action {
            Ec2Action::CreateKeyPair { tag_specs, .. } => {
                assert_eq!(tag_specs[0].tags, vec![Tag { key: "a".into(), value: "b".into() }]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_required_parameters() {
        assert_eq!(parse("Action=CreateKeyPair"), Err(ProtocolError::MissingParameter("KeyName".into())));
        assert_eq!(parse("Action=CreateTags&ResourceId.1=sg-1"), Err(ProtocolError::MissingParameter("Tag".into())));
        // EC2 names the wire list, as its own error says.
        assert_eq!(
            parse("Action=CreateTags&Tag.1.Key=a&Tag.1.Value=b"),
            Err(ProtocolError::MissingParameter("resourceIdSet".into()))
        );
        assert_eq!(
            parse("Action=DeleteTags&Tag.1.Key=a"),
            Err(ProtocolError::MissingParameter("resourceIdSet".into()))
        );
        assert!(matches!(
            parse("Action=DescribeSecurityGroups&GroupId.1=sg-1&MaxResults=5"),
            Err(ProtocolError::InvalidCombination(_))
        ));
    }

    #[test]
    fn import_accepts_base64_and_plain_material() {
        let plain = "ssh-ed25519 AAAAC3Nza";
        let b64 = base64::engine::general_purpose::STANDARD.encode(plain);
        for m in [b64.as_str(), plain] {
            let q = format!(
                "Action=ImportKeyPair&KeyName=k&PublicKeyMaterial={}",
                form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>()
            );
            match parse(&q).unwrap().action {
                Ec2Action::ImportKeyPair { public_key_material, .. } => {
                    assert_eq!(public_key_material, plain.as_bytes())
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
