//! Domain objects to EC2 XML, element names and presence as in botocore's model.

use kiln_core::compute::instance_types::{InstanceType, Offering};
use kiln_core::network::regions::{RegionInfo, ZoneInfo};
use kiln_core::network::security_groups::{group_arn, rule_arn, SecurityGroup};
use kiln_core::network::vpcs::{subnet_arn, SubnetView};
use kiln_core::records::item::Item;
use kiln_core::records::key_pair::KeyPairData;
use kiln_core::records::security_group::{Peer, RuleData};
use kiln_core::records::tags::TagDescription;
use kiln_core::records::vpc::VpcData;
use kiln_ec2::xml::XmlWriter;
use kiln_types::{IpPermission, Tag};

/// `tagSet`, omitted when empty (EC2 leaves it out for untagged resources).
pub fn tag_set(w: &mut XmlWriter, tags: &[Tag]) {
    w.list_nonempty("tagSet", tags, |w, t| {
        w.text("key", &t.key).text("value", &t.value);
    });
}

/// `tagSet` that is always present, as in create responses that echo tags.
pub fn tag_set_always(w: &mut XmlWriter, tags: &[Tag]) {
    w.list("tagSet", tags, |w, t| {
        w.text("key", &t.key).text("value", &t.value);
    });
}

/// One `KeyPairInfo`.
pub fn key_pair(w: &mut XmlWriter, k: &Item<KeyPairData>, include_public_key: bool) {
    w.text("keyPairId", &k.id)
        .text("keyType", &k.data.key_type)
        .opt("keyName", k.name.as_deref())
        .text("keyFingerprint", &k.data.fingerprint);
    tag_set_always(w, &k.tags);
    if include_public_key {
        w.text("publicKey", &k.data.public_key);
    }
    w.text("createTime", &k.created_at);
}

/// One `IpPermission`.
pub fn permission(w: &mut XmlWriter, p: &IpPermission) {
    w.text("ipProtocol", &p.ip_protocol);
    if let Some(f) = p.from_port {
        w.num("fromPort", f);
    }
    if let Some(t) = p.to_port {
        w.num("toPort", t);
    }
    w.list("groups", &p.groups, |w, g| {
        w.opt("description", g.description.as_deref())
            .opt("userId", g.user_id.as_deref())
            .opt("groupId", g.group_id.as_deref());
    });
    w.list("ipRanges", &p.ip_ranges, |w, r| {
        w.opt("description", r.description.as_deref()).text("cidrIp", &r.cidr);
    });
    w.list("ipv6Ranges", &p.ipv6_ranges, |w, r| {
        w.opt("description", r.description.as_deref()).text("cidrIpv6", &r.cidr);
    });
    w.list("prefixListIds", &p.prefix_list_ids, |w, r| {
        w.opt("description", r.description.as_deref()).text("prefixListId", &r.cidr);
    });
}

/// One `SecurityGroup`.
pub fn security_group(w: &mut XmlWriter, sg: &SecurityGroup) {
    let g = &sg.group;
    w.text("ownerId", &g.account)
        .text("groupId", &g.id)
        .text("groupName", g.name.as_deref().unwrap_or(""))
        .text("groupDescription", &g.data.description);
    w.list("ipPermissions", &sg.permissions(false), permission);
    w.list("ipPermissionsEgress", &sg.permissions(true), permission);
    w.text("vpcId", &g.data.vpc_id);
    w.text("securityGroupArn", &group_arn(g));
    tag_set(w, &g.tags);
}

/// A rule's peer; a referenced group is `referencedGroupInfo` in a `SecurityGroupRule` and a
/// bare `referencedGroupId` in a `RevokedSecurityGroupRule`.
fn peer(w: &mut XmlWriter, p: &Peer, group_as_info: bool) {
    match p {
        Peer::Cidr4(c) => w.text("cidrIpv4", c),
        Peer::Cidr6(c) => w.text("cidrIpv6", c),
        Peer::PrefixList(id) => w.text("prefixListId", id),
        Peer::Group { group_id, account } if group_as_info => {
            w.start("referencedGroupInfo").text("groupId", group_id).text("userId", account).end()
        }
        Peer::Group { group_id, .. } => w.text("referencedGroupId", group_id),
    };
}

/// One `SecurityGroupRule`.
pub fn rule(w: &mut XmlWriter, r: &Item<RuleData>) {
    let d = &r.data;
    w.text("securityGroupRuleId", &r.id)
        .text("groupId", &d.group_id)
        .text("groupOwnerId", &r.account)
        .bool("isEgress", d.is_egress)
        .text("ipProtocol", &d.protocol)
        .num("fromPort", d.from_port)
        .num("toPort", d.to_port);
    peer(w, &d.peer, true);
    w.opt("description", d.description.as_deref());
    tag_set_always(w, &r.tags);
    w.text("securityGroupRuleArn", &rule_arn(r));
}

/// One `RevokedSecurityGroupRule`.
pub fn revoked_rule(w: &mut XmlWriter, r: &Item<RuleData>) {
    let d = &r.data;
    w.text("securityGroupRuleId", &r.id)
        .text("groupId", &d.group_id)
        .bool("isEgress", d.is_egress)
        .text("ipProtocol", &d.protocol)
        .num("fromPort", d.from_port)
        .num("toPort", d.to_port);
    peer(w, &d.peer, false);
    w.opt("description", d.description.as_deref());
}

/// One `Vpc`.
pub fn vpc(w: &mut XmlWriter, v: &Item<VpcData>) {
    w.text("vpcId", &v.id)
        .text("ownerId", &v.account)
        .text("state", "available")
        .text("cidrBlock", &v.data.cidr_block)
        .start("cidrBlockAssociationSet")
        .start("item")
        .text("associationId", &v.data.cidr_association_id)
        .text("cidrBlock", &v.data.cidr_block)
        .start("cidrBlockState")
        .text("state", "associated")
        .end()
        .end()
        .end()
        .text("dhcpOptionsId", &v.data.dhcp_options_id)
        .text("instanceTenancy", "default")
        .bool("isDefault", v.data.is_default);
    tag_set(w, &v.tags);
}

/// One `Subnet`.
pub fn subnet(w: &mut XmlWriter, view: &SubnetView) {
    let n = &view.subnet;
    let d = &n.data;
    w.text("subnetId", &n.id)
        .text("subnetArn", &subnet_arn(n))
        .text("state", "available")
        .text("ownerId", &n.account)
        .text("vpcId", &d.vpc_id)
        .text("cidrBlock", &d.cidr_block)
        .start("ipv6CidrBlockAssociationSet")
        .end()
        .num("availableIpAddressCount", view.available_ips)
        .text("availabilityZone", &d.availability_zone)
        .text("availabilityZoneId", &d.availability_zone_id)
        .bool("defaultForAz", d.default_for_az)
        .bool("mapPublicIpOnLaunch", d.map_public_ip_on_launch)
        .bool("assignIpv6AddressOnCreation", false)
        .bool("ipv6Native", false)
        .bool("enableDns64", false)
        .bool("mapCustomerOwnedIpOnLaunch", false)
        .start("privateDnsNameOptionsOnLaunch")
        .text("hostnameType", "ip-name")
        .bool("enableResourceNameDnsARecord", false)
        .bool("enableResourceNameDnsAAAARecord", false)
        .end();
    tag_set(w, &n.tags);
}

/// One `Region`.
pub fn region(w: &mut XmlWriter, r: &RegionInfo) {
    w.text("regionName", &r.name).text("regionEndpoint", &r.endpoint).text("optInStatus", "opt-in-not-required");
}

/// One `AvailabilityZone`.
pub fn zone(w: &mut XmlWriter, z: &ZoneInfo) {
    w.text("zoneName", &z.name)
        .text("zoneId", &z.id)
        .text("zoneState", "available")
        .text("regionName", &z.region)
        .text("groupName", &z.region)
        .text("networkBorderGroup", &z.region)
        .text("zoneType", "availability-zone")
        .text("optInStatus", "opt-in-not-required")
        .start("messageSet")
        .end();
}

/// One `TagDescription`.
pub fn tag_description(w: &mut XmlWriter, t: &TagDescription) {
    w.text("resourceId", &t.resource_id)
        .text("resourceType", t.resource_type.tag_type())
        .text("key", &t.key)
        .text("value", &t.value);
}

/// One `InstanceTypeInfo`.
pub fn instance_type(w: &mut XmlWriter, t: &InstanceType) {
    let tpc = t.threads_per_core();
    w.text("instanceType", t.name)
        .bool("currentGeneration", t.current_generation())
        .bool("freeTierEligible", t.free_tier)
        .string_list("supportedUsageClasses", &["on-demand".to_string()])
        .string_list("supportedRootDeviceTypes", &t.root_device_types())
        .string_list("supportedVirtualizationTypes", &["hvm".to_string()])
        .bool("bareMetal", false)
        .text("hypervisor", t.hypervisor)
        .start("processorInfo")
        .string_list("supportedArchitectures", &[t.arch.to_string()])
        .num("sustainedClockSpeedInGhz", t.clock_ghz)
        .end()
        .start("vCpuInfo")
        .num("defaultVCpus", t.vcpus)
        .num("defaultCores", t.vcpus / tpc)
        .num("defaultThreadsPerCore", tpc)
        .end()
        .start("memoryInfo")
        .num("sizeInMiB", t.memory_mib)
        .end()
        .bool("instanceStorageSupported", t.storage.is_some());
    if let Some(s) = t.storage {
        w.start("instanceStorageInfo")
            .num("totalSizeInGB", s.count * s.size_gb)
            .start("disks")
            .start("item")
            .num("sizeInGB", s.size_gb)
            .num("count", s.count)
            .text("type", s.kind)
            .end()
            .end()
            .text("nvmeSupport", "required")
            .end();
    }
    w.start("ebsInfo")
        .text("ebsOptimizedSupport", if t.hypervisor == "nitro" { "default" } else { "supported" })
        .text("encryptionSupport", "supported")
        .text("nvmeSupport", if t.hypervisor == "nitro" { "required" } else { "unsupported" })
        .end()
        .start("networkInfo")
        .text("networkPerformance", t.network)
        .num("maximumNetworkInterfaces", if t.vcpus <= 2 { 3 } else { 4 })
        .num("ipv4AddressesPerInterface", if t.vcpus <= 2 { 6 } else { 15 })
        .num("ipv6AddressesPerInterface", if t.vcpus <= 2 { 6 } else { 15 })
        .bool("ipv6Supported", true)
        .text("enaSupport", if t.hypervisor == "nitro" { "required" } else { "supported" })
        .end()
        .bool("hibernationSupported", false)
        .bool("burstablePerformanceSupported", t.burstable)
        .bool("dedicatedHostsSupported", false)
        .bool("autoRecoverySupported", t.storage.is_none())
        .string_list("supportedBootModes", &["legacy-bios".to_string(), "uefi".to_string()]);
}

/// One `InstanceTypeOffering`.
pub fn offering(w: &mut XmlWriter, o: &Offering) {
    w.text("instanceType", o.instance_type).text("locationType", &o.location_type).text("location", &o.location);
}

/// `nextToken`, when there is one.
pub fn next_token(w: &mut XmlWriter, token: &Option<String>) {
    w.opt("nextToken", token.as_deref());
}

mod compute;
mod lifecycle;
mod storage;
pub use compute::{instance_attribute, instance_status, reservation, state_change};
pub use lifecycle::{image_block_public_access, image_reference, snapshot_block_public_access};
pub use storage::{
    attachment, created_snapshot, created_volume, grantee, image, image_attribute, modification, snapshot,
    snapshot_info, volume,
};
