//! Where things live and talk: regions and zones, each account's default VPC and subnets, and
//! security groups.

pub mod regions;
pub mod security_groups;
pub mod vpcs;
