//! Typed inputs of the volume, snapshot and image actions.

use kiln_types::{
    BlockDeviceMapping, CreateVolumeSpec, EbsSpec, Filter, Grantee, Page, RegisterImageSpec, VolumeChange,
};

use super::{page, tag_specs};
use crate::params::Params;
use crate::ProtocolError;

/// Additions and removals of a permission list, from either the structured or legacy form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionChange {
    /// Grantees to add.
    pub add: Vec<Grantee>,
    /// Grantees to remove.
    pub remove: Vec<Grantee>,
}

impl PermissionChange {
    /// True when nothing is added or removed.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// `ModifyImageAttribute`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModifyImageAttributeInput {
    /// Target image.
    pub image_id: String,
    /// The `Attribute` parameter, when given.
    pub attribute: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Launch permission changes.
    pub launch_permission: PermissionChange,
    /// New IMDS support (`v2.0`).
    pub imds_support: Option<String>,
}

fn grantee(p: &Params, field: &str) -> Result<Grantee, ProtocolError> {
    match (p.get("UserId"), p.get("Group")) {
        (Some(u), None) => Ok(Grantee::Account(u.to_string())),
        (None, Some(g)) => group(g),
        _ => Err(ProtocolError::InvalidValue {
            param: field.to_string(),
            value: String::new(),
            reason: "each permission names exactly one of UserId or Group".into(),
        }),
    }
}

fn group(g: &str) -> Result<Grantee, ProtocolError> {
    if g == "all" {
        Ok(Grantee::All)
    } else {
        Err(ProtocolError::InvalidValue {
            param: "Group".into(),
            value: g.to_string(),
            reason: "the only group is 'all'".into(),
        })
    }
}

/// Reads `<Structured>.Add.N` / `.Remove.N` and the legacy `OperationType` + `UserId.N` +
/// `UserGroup.N` form into one change.
fn permission_change(p: &Params, structured: &str) -> Result<PermissionChange, ProtocolError> {
    let sub = p.sub(structured);
    let mut change = PermissionChange {
        add: sub.structs("Add")?.iter().map(|g| grantee(g, structured)).collect::<Result<_, _>>()?,
        remove: sub.structs("Remove")?.iter().map(|g| grantee(g, structured)).collect::<Result<_, _>>()?,
    };
    let users = p.strings("UserId")?;
    let groups = p.strings("UserGroup")?;
    if !users.is_empty() || !groups.is_empty() {
        let mut legacy: Vec<Grantee> = users.into_iter().map(Grantee::Account).collect();
        for g in groups {
            legacy.push(group(&g)?);
        }
        match p.get("OperationType") {
            Some("add") => change.add.extend(legacy),
            Some("remove") => change.remove.extend(legacy),
            Some(other) => {
                return Err(ProtocolError::InvalidValue {
                    param: "OperationType".into(),
                    value: other.to_string(),
                    reason: "expected add or remove".into(),
                })
            }
            None => return Err(ProtocolError::MissingParameter("OperationType".into())),
        }
    }
    Ok(change)
}

pub(super) fn block_device_mappings(p: &Params) -> Result<Vec<BlockDeviceMapping>, ProtocolError> {
    p.structs("BlockDeviceMapping")?
        .into_iter()
        .map(|m| {
            let ebs_params = m.sub("Ebs");
            let ebs = if ebs_params.is_empty() {
                None
            } else {
                Some(EbsSpec {
                    snapshot_id: ebs_params.string("SnapshotId").filter(|s| !s.is_empty()),
                    volume_size: ebs_params.int("VolumeSize")?,
                    volume_type: ebs_params.string("VolumeType"),
                    iops: ebs_params.int("Iops")?,
                    throughput: ebs_params.int("Throughput")?,
                    delete_on_termination: ebs_params.bool("DeleteOnTermination")?,
                    encrypted: ebs_params.bool("Encrypted")?,
                    kms_key_id: ebs_params.string("KmsKeyId"),
                })
            };
            Ok(BlockDeviceMapping {
                device_name: m
                    .required("DeviceName")
                    .map_err(|_| ProtocolError::MissingParameter("BlockDeviceMapping.N.DeviceName".into()))?
                    .to_string(),
                virtual_name: m.string("VirtualName").filter(|s| !s.is_empty()),
                no_device: m.get("NoDevice").is_some(),
                ebs,
            })
        })
        .collect()
}

/// Parses `CreateVolume`.
pub fn create_volume(p: &Params) -> Result<CreateVolumeSpec, ProtocolError> {
    Ok(CreateVolumeSpec {
        availability_zone: p.string("AvailabilityZone").filter(|s| !s.is_empty()),
        availability_zone_id: p.string("AvailabilityZoneId").filter(|s| !s.is_empty()),
        size: p.int("Size")?,
        snapshot_id: p.string("SnapshotId").filter(|s| !s.is_empty()),
        volume_type: p.string("VolumeType").filter(|s| !s.is_empty()),
        iops: p.int("Iops")?,
        throughput: p.int("Throughput")?,
        encrypted: p.bool("Encrypted")?,
        kms_key_id: p.string("KmsKeyId").filter(|s| !s.is_empty()),
        multi_attach_enabled: p.bool("MultiAttachEnabled")?.unwrap_or(false),
        client_token: p.string("ClientToken").filter(|s| !s.is_empty()),
        tag_specs: tag_specs(p)?,
    })
}

/// Parses `ModifyVolume`.
pub fn modify_volume(p: &Params) -> Result<(String, VolumeChange), ProtocolError> {
    Ok((
        p.required("VolumeId")?.to_string(),
        VolumeChange {
            size: p.int("Size")?,
            volume_type: p.string("VolumeType").filter(|s| !s.is_empty()),
            iops: p.int("Iops")?,
            throughput: p.int("Throughput")?,
            multi_attach: p.bool("MultiAttachEnabled")?,
        },
    ))
}

/// Parses `RegisterImage`.
pub fn register_image(p: &Params) -> Result<RegisterImageSpec, ProtocolError> {
    Ok(RegisterImageSpec {
        name: p.required("Name")?.to_string(),
        description: p.string("Description"),
        architecture: p.string("Architecture").filter(|s| !s.is_empty()),
        root_device_name: p.string("RootDeviceName").filter(|s| !s.is_empty()),
        block_device_mappings: block_device_mappings(p)?,
        virtualization_type: p.string("VirtualizationType").filter(|s| !s.is_empty()),
        boot_mode: p.string("BootMode").filter(|s| !s.is_empty()),
        ena_support: p.bool("EnaSupport")?,
        sriov_net_support: p.string("SriovNetSupport").filter(|s| !s.is_empty()),
        imds_support: p.string("ImdsSupport").filter(|s| !s.is_empty()),
        tpm_support: p.string("TpmSupport").filter(|s| !s.is_empty()),
        kernel_id: p.string("KernelId").filter(|s| !s.is_empty()),
        ramdisk_id: p.string("RamdiskId").filter(|s| !s.is_empty()),
        image_location: p.string("ImageLocation").filter(|s| !s.is_empty()),
        tag_specs: tag_specs(p)?,
    })
}

/// Parses `ModifyImageAttribute` in both its structured and legacy forms.
pub fn modify_image_attribute(p: &Params) -> Result<ModifyImageAttributeInput, ProtocolError> {
    let attribute = p.string("Attribute").filter(|s| !s.is_empty());
    let mut description = p.string("Description.Value");
    // Legacy: Attribute=description&Value=...
    if description.is_none() && attribute.as_deref() == Some("description") {
        description = p.string("Value");
    }
    Ok(ModifyImageAttributeInput {
        image_id: p.required("ImageId")?.to_string(),
        attribute,
        description,
        launch_permission: permission_change(p, "LaunchPermission")?,
        imds_support: p.string("ImdsSupport.Value"),
    })
}

/// Parses a snapshot's `createVolumePermission` change (structured or legacy).
pub fn snapshot_permission_change(p: &Params) -> Result<PermissionChange, ProtocolError> {
    permission_change(p, "CreateVolumePermission")
}

/// Describe parameters shared by images and snapshots: ids, owners, executable/restorable users.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedDescribe {
    /// Explicit ids.
    pub ids: Vec<String>,
    /// `Owner.N`: account ids, `self`, aliases.
    pub owners: Vec<String>,
    /// `ExecutableBy.N` / `RestorableBy.N`: account ids, `self`, `all`.
    pub users: Vec<String>,
    /// Filters.
    pub filters: Vec<Filter>,
    /// Pagination.
    pub page: Page,
}

/// Parses a `DescribeImages`/`DescribeSnapshots` request.
pub fn owned_describe(
    p: &Params,
    id_list: &str,
    users_list: &str,
    min: i64,
    max: i64,
) -> Result<OwnedDescribe, ProtocolError> {
    Ok(OwnedDescribe {
        ids: p.strings(id_list)?,
        owners: p.strings("Owner")?,
        users: p.strings(users_list)?,
        filters: p.filters()?,
        page: page(p, min, max)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        let mut p = Params::default();
        p.merge_urlencoded(q.as_bytes()).unwrap();
        p
    }

    #[test]
    fn launch_permission_forms_agree() {
        let structured = modify_image_attribute(&p(
            "ImageId=ami-1&LaunchPermission.Add.1.UserId=111122223333&LaunchPermission.Add.2.Group=all&LaunchPermission.Remove.1.UserId=444455556666",
        ))
        .unwrap();
        assert_eq!(structured.launch_permission.add, vec![Grantee::Account("111122223333".into()), Grantee::All]);
        assert_eq!(structured.launch_permission.remove, vec![Grantee::Account("444455556666".into())]);
        let legacy = modify_image_attribute(&p(
            "ImageId=ami-1&Attribute=launchPermission&OperationType=add&UserId.1=111122223333&UserGroup.1=all",
        ))
        .unwrap();
        assert_eq!(legacy.launch_permission.add, structured.launch_permission.add);
        assert!(modify_image_attribute(&p("ImageId=ami-1&UserId.1=111122223333")).is_err());
        assert!(modify_image_attribute(&p("ImageId=ami-1&LaunchPermission.Add.1.Group=everyone")).is_err());
    }

    #[test]
    fn description_forms() {
        assert_eq!(
            modify_image_attribute(&p("ImageId=ami-1&Description.Value=x")).unwrap().description.as_deref(),
            Some("x")
        );
        assert_eq!(
            modify_image_attribute(&p("ImageId=ami-1&Attribute=description&Value=y")).unwrap().description.as_deref(),
            Some("y")
        );
    }

    #[test]
    fn block_device_mappings_decode() {
        let r = register_image(&p(
            "Name=n&RootDeviceName=/dev/xvda&BlockDeviceMapping.1.DeviceName=/dev/xvda&BlockDeviceMapping.1.Ebs.SnapshotId=snap-1&BlockDeviceMapping.1.Ebs.VolumeSize=8&BlockDeviceMapping.1.Ebs.DeleteOnTermination=true&BlockDeviceMapping.2.DeviceName=/dev/sdb&BlockDeviceMapping.2.VirtualName=ephemeral0&BlockDeviceMapping.3.DeviceName=/dev/sdc&BlockDeviceMapping.3.NoDevice=",
        ))
        .unwrap();
        let m = &r.block_device_mappings;
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].ebs.as_ref().unwrap().snapshot_id.as_deref(), Some("snap-1"));
        assert_eq!(m[0].ebs.as_ref().unwrap().volume_size, Some(8));
        assert_eq!(m[1].virtual_name.as_deref(), Some("ephemeral0"));
        assert!(m[2].no_device && m[2].ebs.is_none());
    }
}
