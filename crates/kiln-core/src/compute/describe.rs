//! `DescribeInstances`, `DescribeInstanceStatus`, `GetConsoleOutput`,
//! `Describe/ModifyInstanceAttribute`, and the lookups the metadata service needs.

use std::net::Ipv4Addr;

use base64::Engine;
use kiln_types::{Filter, InstanceChange, InstanceState, Page};

use crate::compute::launch::{all_instances, AttributeValue, Reservation};

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{apply, b, s};
use crate::records::instance::{GroupRef, InstanceData};
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::security_group::GroupData;
use crate::records::volume::VolumeData;
use crate::{Ctx, Kiln};

impl Kiln {
    /// `DescribeInstances`: the caller's instances in the region, grouped by reservation.
    pub fn describe_instances(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Reservation>, Option<String>)> {
        let mut txn = self.store.read()?;
        let items = item::list_or_fetch::<InstanceData>(txn.as_mut(), ctx, ids)?;
        let items = apply(items, filters, instance_filter)?;
        let (items, next) = paginate(items, page, |i| i.seq)?;
        let mut reservations: Vec<Reservation> = Vec::new();
        for inst in items {
            match reservations.iter_mut().find(|r| r.reservation_id == inst.data.reservation_id) {
                Some(r) => r.instances.push(inst),
                None => reservations.push(Reservation {
                    reservation_id: inst.data.reservation_id.clone(),
                    owner_id: inst.account.clone(),
                    instances: vec![inst],
                }),
            }
        }
        Ok((reservations, next))
    }

    /// `DescribeInstanceStatus`: running instances, or all with `include_all`.
    pub fn describe_instance_status(
        &self,
        ctx: &Ctx,
        ids: &[String],
        include_all: bool,
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Item<InstanceData>>, Option<String>)> {
        let mut txn = self.store.read()?;
        let items = item::list_or_fetch::<InstanceData>(txn.as_mut(), ctx, ids)?
            .into_iter()
            .filter(|i| include_all || i.data.state == InstanceState::Running)
            .collect();
        let items = crate::records::filter::apply_by(items, filters, |i: &Item<InstanceData>, name| {
            Some(match name {
                "availability-zone" => s(&i.data.availability_zone),
                "instance-state-name" => s(i.data.state),
                "instance-state-code" => s(i.data.state_code().to_string()),
                "instance-status.status" | "system-status.status" => s(status_of(&i.data)),
                "instance-status.reachability" | "system-status.reachability" => s(status_of(&i.data)),
                _ => return None,
            })
        })?;
        paginate(items, page, |i| i.seq)
    }

    /// One of the caller's instances.
    pub fn instance(&self, ctx: &Ctx, id: &str) -> CoreResult<Item<InstanceData>> {
        item::get::<InstanceData>(self.store.read()?.as_mut(), ctx, id)
    }

    /// `GetConsoleOutput`: the serial console log as written so far (the last 64 KiB, as EC2
    /// returns), and the time it was read.
    pub fn console_output(&self, ctx: &Ctx, id: &str) -> CoreResult<(Vec<u8>, String)> {
        let inst = self.instance(ctx, id)?;
        let path = self.compute.runtime()?.console_path(&inst.id);
        let data = std::fs::read(&path).unwrap_or_default();
        let start = data.len().saturating_sub(64 * 1024);
        Ok((data[start..].to_vec(), crate::now()))
    }

    /// `DescribeInstanceAttribute`.
    pub fn instance_attribute(&self, ctx: &Ctx, id: &str, attribute: &str) -> CoreResult<AttributeValue> {
        let inst = self.instance(ctx, id)?;
        let d = &inst.data;
        Ok(match attribute {
            "instanceType" => AttributeValue::Text(Some(d.instance_type.clone())),
            "userData" => AttributeValue::Text(d.user_data.clone()),
            "disableApiTermination" => AttributeValue::Flag(d.disable_api_termination),
            "instanceInitiatedShutdownBehavior" => AttributeValue::Text(Some(d.shutdown_behavior.as_str().to_string())),
            "rootDeviceName" => AttributeValue::Text(Some(d.root_device_name.clone())),
            "groupSet" => AttributeValue::Groups(d.groups.clone()),
            "blockDeviceMapping" => AttributeValue::Devices(d.devices.clone()),
            "kernel" | "ramdisk" => AttributeValue::Text(None),
            "sourceDestCheck" => AttributeValue::Flag(true),
            "ebsOptimized" | "enaSupport" | "disableApiStop" => AttributeValue::Flag(attribute == "enaSupport"),
            other => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Value ({other}) for parameter attribute is invalid. Unknown attribute."
                )))
            }
        })
    }

    /// `ModifyInstanceAttribute`.
    pub fn modify_instance_attribute(&self, ctx: &Ctx, id: &str, change: &InstanceChange) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let mut inst = item::get::<InstanceData>(txn.as_mut(), ctx, id)?;
        let stopped_only = |what: &str, inst: &Item<InstanceData>| {
            if inst.data.state != InstanceState::Stopped {
                Err(CoreError::IncorrectInstanceState(format!(
                    "The instance '{}' is not in the 'stopped' state; {what} can only be changed while it is stopped.",
                    inst.id
                )))
            } else {
                Ok(())
            }
        };
        let mut groups_changed = false;
        match change {
            InstanceChange::InstanceType(t) => {
                stopped_only("its instance type", &inst)?;
                let itype = self.catalogue.get(t).ok_or_else(|| {
                    CoreError::InvalidParameterValue(format!("Invalid value '{t}' for InstanceType."))
                })?;
                if itype.arch != inst.data.architecture.as_str() {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "The architecture '{}' of instance type {t} does not match the instance's '{}'.",
                        itype.arch, inst.data.architecture
                    )));
                }
                let (vcpus, memory_mib) = self.compute.runtime()?.sizing(itype);
                inst.data.instance_type = t.clone();
                inst.data.vcpus = vcpus;
                inst.data.memory_mib = memory_mib;
            }
            InstanceChange::UserData(bytes) => {
                stopped_only("its user data", &inst)?;
                inst.data.user_data = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            InstanceChange::DisableApiTermination(v) => inst.data.disable_api_termination = *v,
            InstanceChange::ShutdownBehavior(v) => {
                inst.data.shutdown_behavior = v.parse().map_err(|_| {
                    CoreError::InvalidParameterValue(format!(
                        "Value ({v}) for parameter instanceInitiatedShutdownBehavior is invalid."
                    ))
                })?;
            }
            InstanceChange::Groups(ids) => {
                let mut groups = Vec::new();
                for gid in ids {
                    let g = item::get::<GroupData>(txn.as_mut(), ctx, gid)?;
                    if g.data.vpc_id != inst.data.vpc_id {
                        return Err(CoreError::InvalidParameterValue(format!(
                            "Security group {gid} is not in the instance's VPC {}.",
                            inst.data.vpc_id
                        )));
                    }
                    groups.push(GroupRef { id: g.id.clone(), name: g.name.clone().unwrap_or_default() });
                }
                inst.data.groups = groups;
                groups_changed = true;
            }
            InstanceChange::BlockDevices(changes) => {
                for change in changes {
                    let device =
                        inst.data.devices.iter_mut().find(|d| d.device_name == change.device_name).ok_or_else(
                            || {
                                CoreError::InvalidParameterValue(format!(
                                    "The device '{}' is not attached to instance '{id}'.",
                                    change.device_name
                                ))
                            },
                        )?;
                    if change.volume_id.as_ref().is_some_and(|v| *v != device.volume_id) {
                        return Err(CoreError::InvalidParameterValue(format!(
                            "Volume '{}' is not attached to instance '{id}' at {}.",
                            change.volume_id.as_deref().unwrap_or_default(),
                            change.device_name
                        )));
                    }
                    let Some(delete) = change.delete_on_termination else { continue };
                    device.delete_on_termination = delete;
                    // The volume's attachment says the same as the instance's mapping.
                    let mut vol = item::get::<VolumeData>(txn.as_mut(), ctx, &device.volume_id)?;
                    for a in vol.data.attachments.iter_mut().filter(|a| a.instance_id == inst.id) {
                        a.delete_on_termination = delete;
                    }
                    vol.save(txn.as_mut())?;
                }
            }
        }
        if inst.data.state == InstanceState::Terminated {
            return Err(CoreError::IncorrectInstanceState(format!("The instance '{id}' is terminated.")));
        }
        inst.save(txn.as_mut())?;
        txn.commit()?;
        if groups_changed {
            self.refresh_network();
        }
        Ok(())
    }

    /// The instance a guest address belongs to (for the metadata service), in any account.
    pub fn instance_by_private_ip(&self, ip: Ipv4Addr) -> CoreResult<Option<Item<InstanceData>>> {
        let mut txn = self.store.read()?;
        Ok(all_instances(txn.as_mut())?
            .into_iter()
            .find(|i| i.data.state != InstanceState::Terminated && i.data.private_ip == ip.to_string()))
    }

    /// The names of an instance's security groups (for the metadata service).
    pub fn security_group_names(&self, inst: &Item<InstanceData>) -> Vec<String> {
        inst.data.groups.iter().map(|g| g.name.clone()).collect()
    }
}

fn status_of(d: &InstanceData) -> &'static str {
    match d.state {
        InstanceState::Running => "ok",
        InstanceState::Pending => "initializing",
        _ => "not-applicable",
    }
}

fn instance_filter(i: &Item<InstanceData>, name: &str) -> Option<Vec<String>> {
    let d = &i.data;
    Some(match name {
        "instance-id" => s(&i.id),
        "image-id" => s(&d.image_id),
        "instance-type" => s(&d.instance_type),
        "instance-state-name" => s(d.state),
        "instance-state-code" => s(d.state_code().to_string()),
        "availability-zone" | "placement.availability-zone" => s(&d.availability_zone),
        "key-name" => d.key_name.iter().cloned().collect(),
        "private-ip-address" | "network-interface.addresses.private-ip-address" => s(&d.private_ip),
        "ip-address" => d.public_ip.iter().cloned().collect(),
        "private-dns-name" => s(d.private_dns_name(&i.region)),
        "reservation-id" => s(&d.reservation_id),
        "owner-id" => s(&i.account),
        "subnet-id" => s(&d.subnet_id),
        "vpc-id" => s(&d.vpc_id),
        "architecture" => s(d.architecture),
        "root-device-type" => s(d.root_device_type),
        "root-device-name" => s(&d.root_device_name),
        "launch-index" | "ami-launch-index" => s(d.launch_index.to_string()),
        "launch-time" => s(&d.launch_time),
        "instance.group-id" | "group-id" => d.groups.iter().map(|g| g.id.clone()).collect(),
        "instance.group-name" | "group-name" => d.groups.iter().map(|g| g.name.clone()).collect(),
        "block-device-mapping.volume-id" => d.devices.iter().map(|v| v.volume_id.clone()).collect(),
        "block-device-mapping.device-name" => d.devices.iter().map(|v| v.device_name.clone()).collect(),
        "block-device-mapping.delete-on-termination" => {
            d.devices.iter().flat_map(|v| b(v.delete_on_termination)).collect()
        }
        "client-token" => d.client_token.iter().cloned().collect(),
        "state-reason-code" => d.state_reason.iter().map(|r| r.code.clone()).collect(),
        "instance-lifecycle" => vec![],
        "platform-details" => s("Linux/UNIX"),
        "tenancy" | "placement.tenancy" => s("default"),
        "hypervisor" => s("xen"),
        "virtualization-type" => s("hvm"),
        "network-interface.mac-address" => s(&d.mac),
        "metadata-options.http-tokens" => s(&d.http_tokens),
        "disable-api-termination" => b(d.disable_api_termination),
        _ => return None,
    })
}
