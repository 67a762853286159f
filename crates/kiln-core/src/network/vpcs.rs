//! Default VPCs and subnets. Each account gets, per region, a default VPC (172.31.0.0/16),
//! one default /20 subnet per zone and a `default` security group, made once at account
//! creation or start-up, so SDKs and tools that look them up find what AWS would give them.

use kiln_meta::MetaTxn;
use kiln_types::{Filter, InstanceState, Page, ResourceKind};

use crate::error::{CoreError, CoreResult};
use crate::network::regions::zone_id;
use crate::network::security_groups;
use crate::records::filter::{apply, b, s};
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::vpc::SubnetData;
use crate::records::vpc::VpcData;
use crate::{Ctx, Kiln, RegionSpec};

/// Addresses AWS reserves in every subnet (network, router, DNS, future, broadcast).
const RESERVED_PER_SUBNET: u32 = 5;

/// Free addresses of a subnet of `cidr` with `in_use` addresses allocated.
pub fn available_ips(cidr: &str, in_use: u32) -> u32 {
    let bits: u32 = cidr.rsplit_once('/').and_then(|(_, p)| p.parse().ok()).unwrap_or(32);
    (1u64 << (32 - bits.min(32))).saturating_sub(u64::from(RESERVED_PER_SUBNET + in_use)) as u32
}

/// A subnet as `DescribeSubnets` shows it: the record and its free addresses.
#[derive(Debug, Clone, Default)]
pub struct SubnetView {
    /// The subnet.
    pub subnet: Item<SubnetData>,
    /// Addresses not reserved and not allocated to an instance.
    pub available_ips: u32,
}

fn hex8() -> String {
    let id = ResourceKind::Vpc.new_id();
    id[4..12].to_string()
}

/// Creates the default VPC, subnets and security group of an account in a region, once.
pub fn ensure_defaults(txn: &mut dyn MetaTxn, account: &str, region: &RegionSpec) -> CoreResult<()> {
    let marker = format!("defaults/{account}/{}", region.name);
    if txn.setting(&marker)?.is_some() {
        return Ok(());
    }
    let ctx = Ctx { account: account.to_string(), region: region.name.clone() };
    let mut vpc = Item::new(
        &ctx,
        None,
        String::new(),
        vec![],
        VpcData {
            cidr_block: "172.31.0.0/16".into(),
            is_default: true,
            dhcp_options_id: format!("dopt-{}", hex8()),
            cidr_association_id: format!("vpc-cidr-assoc-{}", hex8()),
        },
    );
    vpc.insert(txn)?;
    // Sixteen /20s fit in the /16; zones beyond that get no default subnet.
    for (i, zone) in region.zones.iter().enumerate().take(16) {
        let mut subnet = Item::new(
            &ctx,
            None,
            vpc.id.clone(),
            vec![],
            SubnetData {
                vpc_id: vpc.id.clone(),
                cidr_block: format!("172.31.{}.0/20", i * 16),
                availability_zone: zone.clone(),
                availability_zone_id: zone_id(&region.name, i),
                default_for_az: true,
                map_public_ip_on_launch: true,
            },
        );
        subnet.insert(txn)?;
    }
    security_groups::create_default_group(txn, &ctx, &vpc.id)?;
    txn.set_setting(&marker, &vpc.id)?;
    Ok(())
}

/// The caller's default VPC in its region.
pub fn default_vpc(txn: &mut dyn MetaTxn, ctx: &Ctx) -> CoreResult<Option<Item<VpcData>>> {
    Ok(item::list::<VpcData>(txn, ctx, None)?.into_iter().find(|v| v.data.is_default))
}

/// The ARN of a subnet, as EC2 reports it.
pub fn subnet_arn(item: &Item<SubnetData>) -> String {
    format!("arn:aws:ec2:{}:{}:subnet/{}", item.region, item.account, item.id)
}

impl Kiln {
    /// `DescribeVpcs`.
    pub fn describe_vpcs(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Item<VpcData>>, Option<String>)> {
        let mut txn = self.store.read()?;
        let vpcs = item::list_or_fetch::<VpcData>(txn.as_mut(), ctx, ids)?;
        drop(txn);
        let vpcs = apply(vpcs, filters, |v, name| match name {
            "vpc-id" => Some(s(&v.id)),
            "cidr" | "cidr-block-association.cidr-block" | "cidrBlock" => Some(s(&v.data.cidr_block)),
            "cidr-block-association.association-id" => Some(s(&v.data.cidr_association_id)),
            "cidr-block-association.state" | "state" => {
                Some(s(if name == "state" { "available" } else { "associated" }))
            }
            "dhcp-options-id" => Some(s(&v.data.dhcp_options_id)),
            "is-default" | "isDefault" => Some(b(v.data.is_default)),
            "owner-id" => Some(s(&v.account)),
            "instance-tenancy" => Some(s("default")),
            "ipv6-cidr-block-association.ipv6-cidr-block"
            | "ipv6-cidr-block-association.association-id"
            | "ipv6-cidr-block-association.state" => Some(vec![]),
            _ => None,
        })?;
        paginate(vpcs, page, |v| v.seq)
    }

    /// `DescribeSubnets`.
    pub fn describe_subnets(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<SubnetView>, Option<String>)> {
        let mut txn = self.store.read()?;
        let subnets = item::list_or_fetch::<SubnetData>(txn.as_mut(), ctx, ids)?;
        // Every instance not yet terminated holds its private address.
        let mut in_use: std::collections::HashMap<String, u32> = Default::default();
        for inst in item::list::<crate::records::instance::InstanceData>(txn.as_mut(), ctx, None)? {
            if inst.data.state != InstanceState::Terminated {
                *in_use.entry(inst.data.subnet_id).or_default() += 1;
            }
        }
        drop(txn);
        let subnets: Vec<SubnetView> = subnets
            .into_iter()
            .map(|n| {
                let available_ips = available_ips(&n.data.cidr_block, in_use.get(&n.id).copied().unwrap_or(0));
                SubnetView { subnet: n, available_ips }
            })
            .collect();
        let subnets = crate::records::filter::apply_by(subnets, filters, |view, name| {
            let n = &view.subnet;
            if let Some(values) = crate::records::filter::tag_values(&n.tags, name) {
                return Some(values);
            }
            match name {
                "subnet-id" => Some(s(&n.id)),
                "subnet-arn" => Some(s(subnet_arn(n))),
                "vpc-id" => Some(s(&n.data.vpc_id)),
                "cidr-block" | "cidr" | "cidrBlock" => Some(s(&n.data.cidr_block)),
                "availability-zone" | "availabilityZone" => Some(s(&n.data.availability_zone)),
                "availability-zone-id" | "availabilityZoneId" => Some(s(&n.data.availability_zone_id)),
                "available-ip-address-count" => Some(s(view.available_ips.to_string())),
                "default-for-az" | "defaultForAz" => Some(b(n.data.default_for_az)),
                "map-public-ip-on-launch" => Some(b(n.data.map_public_ip_on_launch)),
                "owner-id" => Some(s(&n.account)),
                "state" => Some(s("available")),
                "ipv6-cidr-block-association.ipv6-cidr-block" | "ipv6-native" => {
                    Some(if name == "ipv6-native" { b(false) } else { vec![] })
                }
                _ => None,
            }
        })?;
        paginate(subnets, page, |v| v.subnet.seq)
    }

    /// Resolves a VPC id of the caller (or its default VPC when none is given).
    pub fn resolve_vpc(&self, txn: &mut dyn MetaTxn, ctx: &Ctx, vpc_id: Option<&str>) -> CoreResult<Item<VpcData>> {
        match vpc_id {
            Some(id) => item::get::<VpcData>(txn, ctx, id),
            None => default_vpc(txn, ctx)?
                .ok_or_else(|| CoreError::InvalidParameterValue("No default VPC for this user".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_sizes() {
        assert_eq!(available_ips("172.31.0.0/20", 0), 4091);
        assert_eq!(available_ips("172.31.0.0/20", 3), 4088);
        assert_eq!(available_ips("10.0.0.0/28", 0), 11);
        assert_eq!(available_ips("10.0.0.0/28", 20), 0);
        assert_eq!(available_ips("0.0.0.0/0", 0), u32::MAX - 4);
    }
}
