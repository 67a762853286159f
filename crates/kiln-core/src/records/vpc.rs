//! The records of a VPC and its subnets.

use kiln_types::ResourceKind;
use serde::{Deserialize, Serialize};

use crate::records::item::Body;

/// A VPC's stored fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VpcData {
    /// Primary IPv4 CIDR.
    pub cidr_block: String,
    /// The account's default VPC in this region.
    pub is_default: bool,
    /// DHCP options set id.
    pub dhcp_options_id: String,
    /// Association id of the primary CIDR.
    pub cidr_association_id: String,
}

impl Body for VpcData {
    const KIND: ResourceKind = ResourceKind::Vpc;
}

/// A subnet's stored fields.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubnetData {
    /// Owning VPC.
    pub vpc_id: String,
    /// IPv4 CIDR.
    pub cidr_block: String,
    /// Zone name.
    pub availability_zone: String,
    /// Zone id.
    pub availability_zone_id: String,
    /// The default subnet of its zone.
    pub default_for_az: bool,
    /// Instances get a public address by default.
    pub map_public_ip_on_launch: bool,
}

impl Body for SubnetData {
    const KIND: ResourceKind = ResourceKind::Subnet;
}
