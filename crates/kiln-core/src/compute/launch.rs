//! `RunInstances`: the launch plan (image, devices, network, key) committed as `pending`, then
//! handed to the VM owner.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use base64::Engine;
use kiln_meta::{MetaTxn, Query};
use kiln_types::{
    AttachmentState, BlockDeviceMapping, ImageState, InstanceState, ResourceKind, RunInstancesSpec, ShutdownBehavior,
    Tag, TagSpecification, VolumeState,
};

use crate::error::{CoreError, CoreResult};
use crate::records::image::{ImageData, SNAPSHOT_LOCATION_PREFIX};
use crate::records::instance::GroupRef;
use crate::records::instance::InstanceData;
use crate::records::instance::InstanceDevice;
use crate::records::item::{self, Item};
use crate::records::key_pair::KeyPairData;
use crate::records::security_group::GroupData;
use crate::records::snapshot::SnapshotData;
use crate::records::volume::{Attachment, VolumeData};
use crate::records::vpc::{SubnetData, VpcData};
use crate::records::{idempotency, tags};
use crate::{Ctx, Kiln};

/// One state change, as `Start/Stop/TerminateInstances` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChangeRow {
    /// Instance id.
    pub instance_id: String,
    /// `(code, name)` before.
    pub previous: (u16, InstanceState),
    /// `(code, name)` after.
    pub current: (u16, InstanceState),
}

/// A reservation: the instances one `RunInstances` launched.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// `r-…`.
    pub reservation_id: String,
    /// Owner account.
    pub owner_id: String,
    /// Instances, by launch index.
    pub instances: Vec<Item<InstanceData>>,
}

/// `DescribeInstanceAttribute`'s answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// A string value (`instanceType`, `userData`, ...).
    Text(Option<String>),
    /// A boolean value.
    Flag(bool),
    /// `groupSet`.
    Groups(Vec<GroupRef>),
    /// `blockDeviceMapping`.
    Devices(Vec<InstanceDevice>),
}

/// EC2's `stateTransitionReason` for a user or guest action at `now`.
pub(crate) fn transition_text(what: &str) -> String {
    format!("{what} ({})", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S GMT"))
}

pub(crate) fn all_instances(txn: &mut dyn MetaTxn) -> CoreResult<Vec<Item<InstanceData>>> {
    txn.find(&Query { kind: Some(ResourceKind::Instance), ..Default::default() })?
        .into_iter()
        .map(Item::from_record)
        .collect()
}

fn random_hex(n: usize) -> String {
    let bytes: Vec<u8> = (0..n.div_ceil(2)).map(|_| rand::random::<u8>()).collect();
    hex::encode(bytes)[..n].to_string()
}

/// Parses `a.b.c.d/len`.
pub(crate) fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = cidr.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((addr.parse().ok()?, len))
}

/// The first free address of `cidr` that is not in `used`, skipping the four addresses EC2
/// reserves at the start of a subnet and the broadcast address at its end.
fn allocate_ip(cidr: &str, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (net, len) = parse_cidr(cidr)?;
    let size = 1u64 << (32 - len as u32);
    let base = u32::from(net) as u64 & !(size - 1);
    (4..size.saturating_sub(1)).map(|i| Ipv4Addr::from((base + i) as u32)).find(|a| !used.contains(a))
}

/// The first free host-reachable "public" address of `pool` (network, prefix length), skipping
/// its first ten and its last.
fn allocate_public_ip(pool: (Ipv4Addr, u8), used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let size = 1u64 << (32 - u32::from(pool.1.min(32)));
    let base = u64::from(u32::from(pool.0)) & !(size - 1);
    (10..size.saturating_sub(1)).map(|i| Ipv4Addr::from((base + i) as u32)).find(|a| !used.contains(a))
}

fn device_sort_key(d: &str) -> String {
    d.trim_start_matches("/dev/").to_string()
}

/// A volume to create at launch.
struct PlannedVolume {
    device_name: String,
    snapshot: Option<Item<SnapshotData>>,
    size: i64,
    volume_type: String,
    iops: Option<i64>,
    throughput: Option<i64>,
    delete_on_termination: bool,
    encrypted: bool,
}

impl Kiln {
    /// `RunInstances`.
    pub fn run_instances(self: &Arc<Self>, ctx: &Ctx, spec: &RunInstancesSpec) -> CoreResult<Reservation> {
        let compute = self.compute.runtime()?;
        let mut instance_tags = Vec::new();
        let mut volume_tags = Vec::new();
        for t in &spec.tag_specs {
            let one = std::slice::from_ref(t);
            match t.resource_type.as_str() {
                "instance" => instance_tags.extend(tags::from_specs(one, ResourceKind::Instance)?),
                "volume" => volume_tags.extend(tags::from_specs(one, ResourceKind::Volume)?),
                other => {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "'{other}' is not a valid taggable resource type for this operation."
                    )))
                }
            }
        }
        let type_name = spec.instance_type.clone().unwrap_or_else(|| "t3.micro".into());
        let itype = self
            .catalogue
            .get(&type_name)
            .ok_or_else(|| CoreError::InvalidParameterValue(format!("Invalid value '{type_name}' for InstanceType.")))?
            .clone();
        let shutdown_behavior = match spec.shutdown_behavior.as_deref() {
            None => ShutdownBehavior::Stop,
            Some(v) => v.parse().map_err(|_| {
                CoreError::InvalidParameterValue(format!(
                    "Value ({v}) for parameter instanceInitiatedShutdownBehavior is invalid. Expected: 'stop', 'terminate'."
                ))
            })?,
        };
        if spec.private_ip_address.is_some() && spec.max_count > 1 {
            return Err(CoreError::InvalidParameterCombination(
                "Cannot specify PrivateIpAddress when launching more than one instance.".into(),
            ));
        }
        let fingerprint = idempotency::fingerprint(&[
            &spec.image_id,
            &type_name,
            &format!("{}-{}", spec.min_count, spec.max_count),
            spec.key_name.as_deref().unwrap_or(""),
            spec.subnet_id.as_deref().unwrap_or(""),
        ]);

        let mut txn = self.store.begin()?;
        if let Some(token) = &spec.client_token {
            if let Some(existing) = idempotency::lookup(txn.as_mut(), ctx, "RunInstances", token, &fingerprint)? {
                let instances: Vec<Item<InstanceData>> = item::list::<InstanceData>(txn.as_mut(), ctx, None)?
                    .into_iter()
                    .filter(|i| i.data.reservation_id == existing)
                    .collect();
                return Ok(Reservation { reservation_id: existing, owner_id: ctx.account.clone(), instances });
            }
        }

        // The image (or the one an alias names now): visible and launchable by the caller (own,
        // shared, public), available.
        let image_id = self.resolve_image_id(ctx, &spec.image_id)?;
        if !ResourceKind::Image.is_well_formed(&image_id) {
            return Err(CoreError::Malformed { kind: ResourceKind::Image, id: image_id.clone() });
        }
        // An image the caller may not launch does not exist for it, as in DescribeImages.
        let image = crate::records::image::visible_image(txn.as_mut(), ctx, &image_id)?;
        if image.data.state != ImageState::Available {
            return Err(CoreError::ImageUnavailable(format!(
                "Image '{}' is not available (state: {}).",
                image.id, image.data.state
            )));
        }
        if image.data.architecture.as_str() != itype.arch {
            return Err(CoreError::InvalidParameterValue(format!(
                "The architecture '{}' of the specified instance type does not match the architecture '{}' of the specified AMI.",
                itype.arch, image.data.architecture
            )));
        }
        if itype.arch != "x86_64" {
            return Err(CoreError::Unsupported(format!(
                "Instance type {type_name} ({}) cannot run on this host, which runs x86_64 guests only.",
                itype.arch
            )));
        }

        // Key pair.
        let (key_name, public_key) = match &spec.key_name {
            Some(name) => {
                let key = item::by_name::<KeyPairData>(txn.as_mut(), ctx, "", name)?
                    .ok_or_else(|| CoreError::NotFound { kind: ResourceKind::KeyPair, id: name.clone() })?;
                (Some(name.clone()), Some(key.data.public_key.clone()))
            }
            None => (None, None),
        };

        // Subnet: named, or the default subnet of the named zone, or the first default subnet.
        let subnet = match &spec.subnet_id {
            Some(id) => item::get::<SubnetData>(txn.as_mut(), ctx, id)?,
            None => {
                let vpc = crate::network::vpcs::default_vpc(txn.as_mut(), ctx)?
                    .ok_or_else(|| CoreError::Unsupported("No default VPC for this account; name a subnet.".into()))?;
                let mut subnets: Vec<Item<SubnetData>> = item::list::<SubnetData>(txn.as_mut(), ctx, Some(&vpc.id))?
                    .into_iter()
                    .filter(|s| s.data.default_for_az)
                    .collect();
                subnets.sort_by(|a, b| a.data.availability_zone.cmp(&b.data.availability_zone));
                match &spec.availability_zone {
                    Some(zone) => subnets.into_iter().find(|s| &s.data.availability_zone == zone).ok_or_else(|| {
                        CoreError::InvalidParameterValue(format!("Invalid availability zone: [{zone}]"))
                    })?,
                    None => subnets
                        .into_iter()
                        .next()
                        .ok_or_else(|| CoreError::Unsupported("The default VPC has no default subnet.".into()))?,
                }
            }
        };
        if let Some(zone) = &spec.availability_zone {
            if zone != &subnet.data.availability_zone {
                return Err(CoreError::InvalidParameterValue(format!(
                    "The subnet {} is in zone {}, not {zone}.",
                    subnet.id, subnet.data.availability_zone
                )));
            }
        }
        let vpc = item::get::<VpcData>(txn.as_mut(), ctx, &subnet.data.vpc_id)?;

        // Security groups: by id, by name (in the subnet's VPC), or the VPC's default group.
        let mut groups = Vec::new();
        for id in &spec.security_group_ids {
            let g = item::get::<GroupData>(txn.as_mut(), ctx, id)?;
            if g.data.vpc_id != vpc.id {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Security group {id} and subnet {} belong to different networks.",
                    subnet.id
                )));
            }
            groups.push(GroupRef { id: g.id.clone(), name: g.name.clone().unwrap_or_default() });
        }
        for name in &spec.security_groups {
            let g = item::by_name::<GroupData>(txn.as_mut(), ctx, &vpc.id, name)?
                .ok_or_else(|| CoreError::GroupNameNotFound { name: name.clone(), vpc_id: vpc.id.clone() })?;
            groups.push(GroupRef { id: g.id.clone(), name: name.clone() });
        }
        if groups.is_empty() {
            let g = item::by_name::<GroupData>(txn.as_mut(), ctx, &vpc.id, "default")?
                .ok_or_else(|| CoreError::Internal("the VPC has no default group".into()))?;
            groups.push(GroupRef { id: g.id.clone(), name: "default".into() });
        }
        groups.dedup_by(|a, b| a.id == b.id);

        // Disks: the image's mappings with the request's overrides and additions.
        let root_device_type = image.data.root_device_type;
        let planned = self.plan_volumes(txn.as_mut(), ctx, &image, &spec.block_device_mappings)?;
        // The image must have a root disk to boot; its boot files are read on the launch thread,
        // since the first launch of an image builds its base in time proportional to the image.
        match root_device_type.as_str() {
            "instance-store" => image
                .data
                .image_location
                .as_deref()
                .and_then(|l| l.strip_prefix(SNAPSHOT_LOCATION_PREFIX))
                .map(str::to_string)
                .ok_or_else(|| CoreError::Unsupported(format!("Image {} has no root disk Kiln can boot.", image.id)))?,
            _ => planned
                .iter()
                .find(|p| p.device_name == image.data.root_device_name)
                .and_then(|p| p.snapshot.as_ref().map(|s| s.id.clone()))
                .ok_or_else(|| {
                    CoreError::InvalidBlockDeviceMapping(format!(
                        "The image's root device {} has no snapshot to boot from.",
                        image.data.root_device_name
                    ))
                })?,
        };

        // Capacity: launch as many as fit, at least MinCount.
        let (vcpus, memory_mib) = compute.sizing(&itype);
        let everything = all_instances(txn.as_mut())?;
        let fit = compute.instances_that_fit(&everything, vcpus, memory_mib);
        if (fit as i64) < spec.min_count {
            let cap = compute.capacity();
            return Err(CoreError::InsufficientCapacity(format!(
                "There is not enough capacity on this host for {} {type_name} instance(s) ({vcpus} vCPU and \
                 {memory_mib} MiB each); {fit} fit now (instances may use {} MiB and {} vCPUs in all).",
                spec.min_count, cap.memory_mib, cap.vcpus
            )));
        }
        let count = spec.max_count.min(fit as i64) as u32;

        // Addresses: private addresses are unique across the host, since the host routes them.
        let mut used_private: HashSet<Ipv4Addr> = everything
            .iter()
            .filter(|i| i.data.state != InstanceState::Terminated)
            .filter_map(|i| i.data.private_ip.parse().ok())
            .collect();
        let mut used_public: HashSet<Ipv4Addr> = everything
            .iter()
            .filter(|i| i.data.state != InstanceState::Terminated)
            .filter_map(|i| i.data.public_ip.as_deref()?.parse().ok())
            .collect();
        let (_, prefix_len) = parse_cidr(&subnet.data.cidr_block)
            .ok_or_else(|| CoreError::Internal(format!("bad subnet CIDR {}", subnet.data.cidr_block)))?;

        let reservation_id = format!("r-{}", random_hex(17));
        let now = crate::now();
        let user_data = spec.user_data.as_ref().map(|u| base64::engine::general_purpose::STANDARD.encode(u));
        let mut launched = Vec::new();
        for index in 0..count {
            let private_ip = match (&spec.private_ip_address, index) {
                (Some(addr), 0) => {
                    let ip: Ipv4Addr = addr
                        .parse()
                        .map_err(|_| CoreError::InvalidParameterValue(format!("Invalid private IP address {addr}")))?;
                    if used_private.contains(&ip) {
                        return Err(CoreError::InvalidParameterValue(format!("Address {addr} is in use.")));
                    }
                    ip
                }
                _ => allocate_ip(&subnet.data.cidr_block, &used_private).ok_or_else(|| {
                    CoreError::InsufficientCapacity(format!("Subnet {} has no free addresses.", subnet.id))
                })?,
            };
            used_private.insert(private_ip);
            let public_ip = if subnet.data.map_public_ip_on_launch {
                let ip = allocate_public_ip(compute.config.public_ip_pool, &used_public)
                    .ok_or_else(|| CoreError::InsufficientCapacity("No free public addresses.".into()))?;
                used_public.insert(ip);
                Some(ip.to_string())
            } else {
                None
            };
            let mac = format!(
                "0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                rand::random::<u8>(),
                rand::random::<u8>(),
                rand::random::<u8>(),
                rand::random::<u8>(),
                rand::random::<u8>()
            );
            let mut inst = Item::new(
                ctx,
                None,
                String::new(),
                instance_tags.clone(),
                InstanceData {
                    reservation_id: reservation_id.clone(),
                    launch_index: index,
                    image_id: image.id.clone(),
                    instance_type: type_name.clone(),
                    state: InstanceState::Pending,
                    launch_time: now.clone(),
                    key_name: key_name.clone(),
                    public_key: public_key.clone(),
                    groups: groups.clone(),
                    vpc_id: vpc.id.clone(),
                    subnet_id: subnet.id.clone(),
                    availability_zone: subnet.data.availability_zone.clone(),
                    private_ip: private_ip.to_string(),
                    prefix_len,
                    public_ip,
                    mac,
                    user_data: user_data.clone(),
                    root_device_name: image.data.root_device_name.clone(),
                    root_device_type,
                    shutdown_behavior,
                    disable_api_termination: spec.disable_api_termination.unwrap_or(false),
                    client_token: spec.client_token.clone(),
                    architecture: image.data.architecture,
                    vcpus,
                    memory_mib,
                    http_tokens: if image.data.imds_support.as_deref() == Some("v2.0") {
                        "required".into()
                    } else {
                        "optional".into()
                    },
                    ..Default::default()
                },
            );
            inst.insert(txn.as_mut())?;
            for p in &planned {
                let mut vol = Item::new(
                    ctx,
                    None,
                    String::new(),
                    volume_tags.clone(),
                    VolumeData {
                        size: p.size,
                        volume_type: crate::error::named(&p.volume_type)?,
                        iops: p.iops,
                        throughput: p.throughput,
                        availability_zone: subnet.data.availability_zone.clone(),
                        availability_zone_id: subnet.data.availability_zone_id.clone(),
                        snapshot_id: p.snapshot.as_ref().map(|s| s.id.clone()),
                        encrypted: p.encrypted,
                        state: VolumeState::InUse,
                        attachments: vec![Attachment {
                            instance_id: inst.id.clone(),
                            device: p.device_name.clone(),
                            state: AttachmentState::Attached,
                            attach_time: now.clone(),
                            delete_on_termination: p.delete_on_termination,
                        }],
                        ..Default::default()
                    },
                );
                vol.insert(txn.as_mut())?;
                inst.data.devices.push(InstanceDevice {
                    device_name: p.device_name.clone(),
                    volume_id: vol.id.clone(),
                    delete_on_termination: p.delete_on_termination,
                    attach_time: now.clone(),
                });
            }
            inst.save(txn.as_mut())?;
            launched.push(inst);
        }
        crate::images::retirement::record_launch(txn.as_mut(), &image.id, &now)?;
        if let Some(token) = &spec.client_token {
            idempotency::record(txn.as_mut(), ctx, "RunInstances", token, &fingerprint, &reservation_id)?;
        }
        txn.commit()?;
        for inst in &launched {
            self.start_launch(inst.id.clone(), true);
        }
        Ok(Reservation { reservation_id, owner_id: ctx.account.clone(), instances: launched })
    }

    /// The volumes a launch creates: the image's EBS mappings, changed or suppressed by the
    /// request's mappings, plus the request's new ones.
    fn plan_volumes(
        &self,
        txn: &mut dyn MetaTxn,
        ctx: &Ctx,
        image: &Item<ImageData>,
        overrides: &[BlockDeviceMapping],
    ) -> CoreResult<Vec<PlannedVolume>> {
        let mut mappings: Vec<BlockDeviceMapping> = image.data.block_device_mappings.clone();
        for o in overrides {
            match mappings.iter_mut().find(|m| m.device_name == o.device_name) {
                Some(m) if o.no_device => m.no_device = true,
                Some(m) => {
                    if let (Some(base), Some(new)) = (m.ebs.as_mut(), o.ebs.as_ref()) {
                        if new.snapshot_id.is_some() && new.snapshot_id != base.snapshot_id {
                            return Err(CoreError::InvalidBlockDeviceMapping(format!(
                                "The snapshot of {} cannot be replaced at launch.",
                                o.device_name
                            )));
                        }
                        base.volume_size = new.volume_size.or(base.volume_size);
                        base.volume_type = new.volume_type.clone().or(base.volume_type.clone());
                        base.iops = new.iops.or(base.iops);
                        base.throughput = new.throughput.or(base.throughput);
                        base.delete_on_termination = new.delete_on_termination.or(base.delete_on_termination);
                        base.encrypted = new.encrypted.or(base.encrypted);
                    } else if o.ebs.is_some() {
                        *m = o.clone();
                    }
                }
                None if o.no_device => {}
                None => mappings.push(o.clone()),
            }
        }
        let mut planned = Vec::new();
        let mut seen = BTreeSet::new();
        for m in mappings.iter().filter(|m| !m.no_device) {
            let Some(ebs) = &m.ebs else { continue };
            if !seen.insert(m.device_name.clone()) {
                return Err(CoreError::InvalidBlockDeviceMapping(format!(
                    "The device name {} is used more than once.",
                    m.device_name
                )));
            }
            let snapshot = match &ebs.snapshot_id {
                // Launch permission on the image covers its snapshots; a snapshot the request adds
                // must be restorable by the caller itself.
                Some(id) if image.data.snapshot_ids().contains(id) => {
                    Some(item::get_in_region::<SnapshotData>(txn, ctx, id)?)
                }
                Some(id) => Some(crate::storage::volumes::restorable_snapshot(txn, ctx, id)?),
                None => None,
            };
            let min = snapshot.as_ref().map_or(1, |s| s.data.volume_size);
            let size = ebs.volume_size.unwrap_or(min);
            if size < min {
                return Err(CoreError::InvalidBlockDeviceMapping(format!(
                    "Volume of {size}GiB for {} is smaller than its snapshot ({min}GiB).",
                    m.device_name
                )));
            }
            if snapshot.is_none() && ebs.volume_size.is_none() {
                return Err(CoreError::InvalidBlockDeviceMapping(format!(
                    "The mapping for {} needs a snapshot or a volume size.",
                    m.device_name
                )));
            }
            crate::storage::volumes::check_encryption(ebs.encrypted, ebs.kms_key_id.as_deref())?;
            let volume_type = ebs.volume_type.clone().unwrap_or_else(|| "gp3".into());
            let (iops, throughput) =
                crate::storage::volumes::validate(&volume_type, size, ebs.iops, ebs.throughput, false)?;
            planned.push(PlannedVolume {
                device_name: m.device_name.clone(),
                encrypted: ebs.encrypted.unwrap_or(false) || snapshot.as_ref().is_some_and(|s| s.data.encrypted),
                snapshot,
                size,
                volume_type,
                iops,
                throughput,
                delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
            });
        }
        // The root first, then the rest in device order: the guest sees them in this order.
        let root = image.data.root_device_name.clone();
        planned.sort_by_key(|p| (p.device_name != root, device_sort_key(&p.device_name)));
        Ok(planned)
    }
}

/// Tags for the snapshots and image `CreateImage` makes.
pub(crate) fn split_image_tags(specs: &[TagSpecification]) -> CoreResult<(Vec<Tag>, Vec<Tag>)> {
    let mut image = Vec::new();
    let mut snapshot = Vec::new();
    for t in specs {
        let one = std::slice::from_ref(t);
        match t.resource_type.as_str() {
            "image" => image.extend(tags::from_specs(one, ResourceKind::Image)?),
            "snapshot" => snapshot.extend(tags::from_specs(one, ResourceKind::Snapshot)?),
            other => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "'{other}' is not a valid taggable resource type for this operation."
                )))
            }
        }
    }
    Ok((image, snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_reserved_and_used() {
        let mut used = HashSet::new();
        assert_eq!(allocate_ip("172.31.16.0/20", &used), Some(Ipv4Addr::new(172, 31, 16, 4)));
        used.insert(Ipv4Addr::new(172, 31, 16, 4));
        assert_eq!(allocate_ip("172.31.16.0/20", &used), Some(Ipv4Addr::new(172, 31, 16, 5)));
        let full: HashSet<Ipv4Addr> = (4..7).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(allocate_ip("10.0.0.0/29", &full), None, "a /29 has three usable addresses");
        assert_eq!(
            allocate_public_ip(crate::compute::runtime::DEFAULT_PUBLIC_IP_POOL, &HashSet::new()),
            Some(Ipv4Addr::new(100, 64, 0, 10))
        );
        let pool = (Ipv4Addr::new(100, 80, 0, 0), 16);
        assert_eq!(allocate_public_ip(pool, &HashSet::new()), Some(Ipv4Addr::new(100, 80, 0, 10)));
        let tiny = (Ipv4Addr::new(100, 90, 0, 0), 28);
        let used: HashSet<Ipv4Addr> = (10..15).map(|i| Ipv4Addr::new(100, 90, 0, i)).collect();
        assert_eq!(allocate_public_ip(tiny, &used), None, "a /28 has 10 to 14 only");
    }

    #[test]
    fn dns_names_follow_ec2() {
        let d = InstanceData { private_ip: "172.31.16.5".into(), ..Default::default() };
        assert_eq!(d.private_dns_name("us-east-1"), "ip-172-31-16-5.ec2.internal");
        assert_eq!(d.private_dns_name("eu-west-1"), "ip-172-31-16-5.eu-west-1.compute.internal");
    }
}
