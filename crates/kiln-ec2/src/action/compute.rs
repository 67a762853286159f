//! Typed inputs of the instance actions.

use base64::Engine;
use kiln_types::{CreateImageSpec, DeviceChange, InstanceChange, RunInstancesSpec};

use super::storage::block_device_mappings;
use super::tag_specs;
use crate::params::Params;
use crate::ProtocolError;

/// User data travels base64-encoded; anything else is refused as EC2 does.
fn user_data(param: &str, value: &str) -> Result<Vec<u8>, ProtocolError> {
    let cleaned: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()).map_err(|_| ProtocolError::InvalidValue {
        param: param.to_string(),
        value: "(user data)".into(),
        reason: "Invalid BASE64 encoding of user data.".into(),
    })
}

fn count(p: &Params, name: &str) -> Result<i64, ProtocolError> {
    let n = p.int(name)?.ok_or_else(|| ProtocolError::MissingParameter(name.to_string()))?;
    if n < 1 {
        return Err(ProtocolError::InvalidValue {
            param: name.to_string(),
            value: n.to_string(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(n)
}

/// Parses `RunInstances`.
pub fn run_instances(p: &Params) -> Result<RunInstancesSpec, ProtocolError> {
    let min_count = count(p, "MinCount")?;
    let max_count = count(p, "MaxCount")?;
    if min_count > max_count {
        return Err(ProtocolError::InvalidValue {
            param: "MinCount".into(),
            value: min_count.to_string(),
            reason: format!("MinCount ({min_count}) must not exceed MaxCount ({max_count})"),
        });
    }
    let placement = p.sub("Placement");
    Ok(RunInstancesSpec {
        image_id: p.required("ImageId")?.to_string(),
        instance_type: p.string("InstanceType").filter(|t| !t.is_empty()),
        min_count,
        max_count,
        key_name: p.string("KeyName").filter(|k| !k.is_empty()),
        security_group_ids: p.strings("SecurityGroupId")?,
        security_groups: p.strings("SecurityGroup")?,
        subnet_id: p.string("SubnetId").filter(|s| !s.is_empty()),
        availability_zone: placement.string("AvailabilityZone").filter(|z| !z.is_empty()),
        user_data: p.get("UserData").map(|u| user_data("UserData", u)).transpose()?,
        block_device_mappings: block_device_mappings(p)?,
        tag_specs: tag_specs(p)?,
        shutdown_behavior: p.string("InstanceInitiatedShutdownBehavior"),
        disable_api_termination: p.bool("DisableApiTermination")?,
        client_token: p.string("ClientToken").filter(|t| !t.is_empty()),
        private_ip_address: p.string("PrivateIpAddress").filter(|a| !a.is_empty()),
    })
}

/// Parses `CreateImage`.
pub fn create_image(p: &Params) -> Result<CreateImageSpec, ProtocolError> {
    Ok(CreateImageSpec {
        instance_id: p.required("InstanceId")?.to_string(),
        name: p.required("Name")?.to_string(),
        description: p.string("Description"),
        no_reboot: p.bool("NoReboot")?.unwrap_or(false),
        block_device_mappings: block_device_mappings(p)?,
        tag_specs: tag_specs(p)?,
    })
}

/// Parses `ModifyInstanceAttribute`'s change: either `Attribute` + `Value`, or one of the
/// structured `<Name>.Value` forms, or `GroupId.N`.
pub fn instance_change(p: &Params) -> Result<InstanceChange, ProtocolError> {
    let mut changes = Vec::new();
    if let Some(attribute) = p.get("Attribute") {
        let value = p.required("Value")?;
        changes.push(named_change(attribute, value)?);
    }
    for (name, attribute) in [
        ("InstanceType", "instanceType"),
        ("UserData", "userData"),
        ("DisableApiTermination", "disableApiTermination"),
        ("InstanceInitiatedShutdownBehavior", "instanceInitiatedShutdownBehavior"),
    ] {
        if let Some(value) = p.sub(name).get("Value") {
            changes.push(named_change(attribute, value)?);
        }
    }
    let groups = p.strings("GroupId")?;
    if !groups.is_empty() {
        changes.push(InstanceChange::Groups(groups));
    }
    let devices = p
        .structs("BlockDeviceMapping")?
        .iter()
        .map(|d| {
            Ok(DeviceChange {
                device_name: d.required("DeviceName")?.to_string(),
                volume_id: d.string("Ebs.VolumeId"),
                delete_on_termination: d.bool("Ebs.DeleteOnTermination")?,
            })
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    if !devices.is_empty() {
        changes.push(InstanceChange::BlockDevices(devices));
    }
    match changes.len() {
        1 => Ok(changes.remove(0)),
        0 => Err(ProtocolError::MissingParameter("Attribute".into())),
        _ => Err(ProtocolError::InvalidCombination(
            "Only one attribute can be modified per ModifyInstanceAttribute call.".into(),
        )),
    }
}

fn named_change(attribute: &str, value: &str) -> Result<InstanceChange, ProtocolError> {
    let flag = |v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ProtocolError::InvalidValue {
            param: "Value".into(),
            value: v.to_string(),
            reason: "expected true or false".into(),
        }),
    };
    Ok(match attribute {
        "instanceType" => InstanceChange::InstanceType(value.to_string()),
        "userData" => InstanceChange::UserData(user_data("UserData.Value", value)?),
        "disableApiTermination" => InstanceChange::DisableApiTermination(flag(value)?),
        "instanceInitiatedShutdownBehavior" => InstanceChange::ShutdownBehavior(value.to_string()),
        other => {
            return Err(ProtocolError::InvalidValue {
                param: "Attribute".into(),
                value: other.to_string(),
                reason: "not a modifiable instance attribute".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        let mut params = Params::default();
        params.merge_urlencoded(q.as_bytes()).unwrap();
        params
    }

    #[test]
    fn run_instances_decodes() {
        let spec = run_instances(&p("ImageId=ami-1&MinCount=1&MaxCount=3&InstanceType=t3.micro&KeyName=k\
             &SecurityGroupId.1=sg-1&UserData=aGVsbG8%3D&Placement.AvailabilityZone=us-east-1a\
             &BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda&BlockDeviceMapping.1.Ebs.VolumeSize=4\
             &InstanceInitiatedShutdownBehavior=terminate&DisableApiTermination=true"))
        .unwrap();
        assert_eq!(spec.max_count, 3);
        assert_eq!(spec.user_data.as_deref(), Some(&b"hello"[..]));
        assert_eq!(spec.availability_zone.as_deref(), Some("us-east-1a"));
        assert_eq!(spec.block_device_mappings[0].ebs.as_ref().unwrap().volume_size, Some(4));
        assert_eq!(spec.disable_api_termination, Some(true));
        assert!(run_instances(&p("ImageId=ami-1&MinCount=2&MaxCount=1")).is_err());
        assert!(run_instances(&p("ImageId=ami-1&MinCount=0&MaxCount=1")).is_err());
        assert!(run_instances(&p("ImageId=ami-1&MinCount=1&MaxCount=1&UserData=%25%25")).is_err());
    }

    #[test]
    fn attribute_forms_agree() {
        assert_eq!(
            instance_change(&p("Attribute=instanceType&Value=t3.small")).unwrap(),
            InstanceChange::InstanceType("t3.small".into())
        );
        assert_eq!(
            instance_change(&p("InstanceType.Value=t3.small")).unwrap(),
            InstanceChange::InstanceType("t3.small".into())
        );
        assert_eq!(
            instance_change(&p("DisableApiTermination.Value=true")).unwrap(),
            InstanceChange::DisableApiTermination(true)
        );
        assert!(instance_change(&p("InstanceType.Value=a&DisableApiTermination.Value=true")).is_err());
        assert!(instance_change(&p("")).is_err());
        assert_eq!(
            instance_change(&p(
                "BlockDeviceMapping.1.DeviceName=/dev/sdf&BlockDeviceMapping.1.Ebs.DeleteOnTermination=true\
                 &BlockDeviceMapping.1.Ebs.VolumeId=vol-1"
            ))
            .unwrap(),
            InstanceChange::BlockDevices(vec![DeviceChange {
                device_name: "/dev/sdf".into(),
                volume_id: Some("vol-1".into()),
                delete_on_termination: Some(true),
            }])
        );
        assert!(instance_change(&p("BlockDeviceMapping.1.Ebs.DeleteOnTermination=true")).is_err());
    }
}
