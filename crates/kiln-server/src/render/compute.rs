//! Instances and reservations to EC2 XML (element names from botocore's `Instance` shape).

use kiln_core::compute::{AttributeValue, Reservation, StateChangeRow};
use kiln_core::records::instance::{GroupRef, InstanceData};
use kiln_core::records::item::Item;
use kiln_ec2::xml::XmlWriter;
use kiln_types::InstanceState;

use super::tag_set;

fn group_set(w: &mut XmlWriter, groups: &[GroupRef]) {
    w.list("groupSet", groups, |w, g| {
        w.text("groupId", &g.id).text("groupName", &g.name);
    });
}

/// One `Reservation` (also the `RunInstances` response body).
pub fn reservation(w: &mut XmlWriter, r: &Reservation) {
    w.text("reservationId", &r.reservation_id).text("ownerId", &r.owner_id);
    let groups = r.instances.first().map(|i| i.data.groups.clone()).unwrap_or_default();
    group_set(w, &groups);
    w.list("instancesSet", &r.instances, instance);
}

/// One `Instance`.
pub fn instance(w: &mut XmlWriter, i: &Item<InstanceData>) {
    let d = &i.data;
    let terminated = d.state == InstanceState::Terminated;
    let private_dns = if terminated { String::new() } else { d.private_dns_name(&i.region) };
    w.text("instanceId", &i.id).text("imageId", &d.image_id);
    w.start("instanceState").num("code", d.state_code()).text("name", d.state.as_str()).end();
    w.text("privateDnsName", &private_dns).text("dnsName", "").text("reason", &d.transition_reason);
    w.opt("keyName", d.key_name.as_deref());
    w.num("amiLaunchIndex", d.launch_index);
    w.list("productCodes", &[] as &[String], |_, _| {});
    w.text("instanceType", &d.instance_type).text("launchTime", &d.launch_time);
    w.start("placement")
        .text("availabilityZone", &d.availability_zone)
        .text("groupName", "")
        .text("tenancy", "default")
        .end();
    w.start("monitoring").text("state", "disabled").end();
    if !terminated {
        w.text("subnetId", &d.subnet_id).text("vpcId", &d.vpc_id).text("privateIpAddress", &d.private_ip);
        w.opt("ipAddress", d.public_ip.as_deref());
    }
    w.bool("sourceDestCheck", true);
    group_set(w, &d.groups);
    if let Some(r) = &d.state_reason {
        w.start("stateReason").text("code", &r.code).text("message", &r.message).end();
    } else if d.state == InstanceState::Pending {
        w.start("stateReason").text("code", "pending").text("message", "pending").end();
    }
    w.text("architecture", d.architecture.as_str())
        .text("rootDeviceType", d.root_device_type.as_str())
        .text("rootDeviceName", &d.root_device_name);
    w.list("blockDeviceMapping", &d.devices, |w, dev| {
        w.text("deviceName", &dev.device_name);
        w.start("ebs")
            .text("volumeId", &dev.volume_id)
            .text("status", "attached")
            .text("attachTime", &dev.attach_time)
            .bool("deleteOnTermination", dev.delete_on_termination)
            .end();
    });
    w.text("virtualizationType", "hvm");
    w.opt("clientToken", d.client_token.as_deref());
    tag_set(w, &i.tags);
    w.text("hypervisor", "xen");
    if !terminated {
        w.list("networkInterfaceSet", &[()], |w, ()| {
            w.text("networkInterfaceId", &format!("eni-{}", &i.id[2..]))
                .text("subnetId", &d.subnet_id)
                .text("vpcId", &d.vpc_id)
                .text("description", "")
                .text("ownerId", &i.account)
                .text("status", "in-use")
                .text("macAddress", &d.mac)
                .text("privateIpAddress", &d.private_ip)
                .text("privateDnsName", &private_dns)
                .bool("sourceDestCheck", true);
            group_set(w, &d.groups);
            w.start("attachment")
                .text("attachmentId", &format!("eni-attach-{}", &i.id[2..]))
                .num("deviceIndex", 0)
                .text("status", "attached")
                .text("attachTime", &d.launch_time)
                .bool("deleteOnTermination", true)
                .end();
            if let Some(ip) = &d.public_ip {
                w.start("association").text("publicIp", ip).text("publicDnsName", "").text("ipOwnerId", "amazon").end();
            }
            w.list("privateIpAddressesSet", &[()], |w, ()| {
                w.text("privateIpAddress", &d.private_ip).text("privateDnsName", &private_dns).bool("primary", true);
                if let Some(ip) = &d.public_ip {
                    w.start("association")
                        .text("publicIp", ip)
                        .text("publicDnsName", "")
                        .text("ipOwnerId", "amazon")
                        .end();
                }
            });
            w.text("interfaceType", "interface");
        });
    }
    w.bool("ebsOptimized", false).bool("enaSupport", true);
    w.start("cpuOptions").num("coreCount", d.vcpus).num("threadsPerCore", 1).end();
    w.start("metadataOptions")
        .text("state", "applied")
        .text("httpTokens", &d.http_tokens)
        .num("httpPutResponseHopLimit", 1)
        .text("httpEndpoint", "enabled")
        .text("httpProtocolIpv6", "disabled")
        .text("instanceMetadataTags", "disabled")
        .end();
    w.text("platformDetails", "Linux/UNIX").text("usageOperation", "RunInstances");
    w.text("bootMode", "legacy-bios").text("currentInstanceBootMode", "legacy-bios");
    w.start("maintenanceOptions").text("autoRecovery", "default").end();
}

/// One `InstanceStateChange`.
pub fn state_change(w: &mut XmlWriter, c: &StateChangeRow) {
    w.text("instanceId", &c.instance_id);
    w.start("currentState").num("code", c.current.0).text("name", c.current.1.as_str()).end();
    w.start("previousState").num("code", c.previous.0).text("name", c.previous.1.as_str()).end();
}

/// One `InstanceStatus`.
pub fn instance_status(w: &mut XmlWriter, i: &Item<InstanceData>) {
    let d = &i.data;
    w.text("instanceId", &i.id).text("availabilityZone", &d.availability_zone);
    w.start("instanceState").num("code", d.state_code()).text("name", d.state.as_str()).end();
    let status = match d.state {
        InstanceState::Running => "ok",
        InstanceState::Pending => "initializing",
        _ => "not-applicable",
    };
    for name in ["systemStatus", "instanceStatus"] {
        w.start(name).text("status", status);
        w.list("details", &[()], |w, ()| {
            w.text("name", "reachability").text("status", if status == "ok" { "passed" } else { status });
        });
        w.end();
    }
}

/// `DescribeInstanceAttribute`'s value element.
pub fn instance_attribute(w: &mut XmlWriter, attribute: &str, value: &AttributeValue) {
    match value {
        AttributeValue::Text(v) => {
            w.start(element(attribute));
            if let Some(v) = v {
                w.text("value", v);
            }
            w.end();
        }
        AttributeValue::Flag(v) => {
            w.start(element(attribute)).bool("value", *v).end();
        }
        AttributeValue::Groups(groups) => {
            w.list("groupSet", groups, |w, g| {
                w.text("groupId", &g.id).text("groupName", &g.name);
            });
        }
        AttributeValue::Devices(devices) => {
            w.list("blockDeviceMapping", devices, |w, dev| {
                w.text("deviceName", &dev.device_name);
                w.start("ebs")
                    .text("volumeId", &dev.volume_id)
                    .text("status", "attached")
                    .text("attachTime", &dev.attach_time)
                    .bool("deleteOnTermination", dev.delete_on_termination)
                    .end();
            });
        }
    }
}

/// The response element of each attribute (botocore's `InstanceAttribute` members).
fn element(attribute: &str) -> &'static str {
    match attribute {
        "instanceType" => "instanceType",
        "userData" => "userData",
        "disableApiTermination" => "disableApiTermination",
        "instanceInitiatedShutdownBehavior" => "instanceInitiatedShutdownBehavior",
        "rootDeviceName" => "rootDeviceName",
        "kernel" => "kernel",
        "ramdisk" => "ramdisk",
        "sourceDestCheck" => "sourceDestCheck",
        "ebsOptimized" => "ebsOptimized",
        "enaSupport" => "enaSupport",
        "disableApiStop" => "disableApiStop",
        _ => "value",
    }
}
