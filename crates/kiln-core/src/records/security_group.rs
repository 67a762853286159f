//! The records of a security group and its rules.

use kiln_types::ResourceKind;
use serde::{Deserialize, Serialize};

use crate::records::item::Body;

/// A security group's stored fields (its name is the record name, scoped by VPC).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupData {
    /// VPC the group belongs to.
    pub vpc_id: String,
    /// Description given at creation.
    pub description: String,
}

impl Body for GroupData {
    const KIND: ResourceKind = ResourceKind::SecurityGroup;
}

/// Who a rule lets in (ingress) or out to (egress).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// An IPv4 CIDR block.
    Cidr4(String),
    /// An IPv6 CIDR block.
    Cidr6(String),
    /// Members of a security group.
    Group {
        /// Referenced group.
        group_id: String,
        /// Its owner.
        account: String,
    },
    /// A managed prefix list.
    PrefixList(String),
}

/// One rule: protocol, port range, a single peer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RuleData {
    /// Owning group.
    pub group_id: String,
    /// Egress (outbound) rather than ingress.
    pub is_egress: bool,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` (all) or a protocol number.
    pub protocol: String,
    /// First port, or ICMP type; -1 when the protocol has no ports.
    pub from_port: i64,
    /// Last port, or ICMP code; -1 when the protocol has no ports.
    pub to_port: i64,
    /// The peer.
    pub peer: Peer,
    /// Rule description.
    pub description: Option<String>,
}

impl Default for Peer {
    fn default() -> Self {
        Peer::Cidr4(String::new())
    }
}

impl Body for RuleData {
    const KIND: ResourceKind = ResourceKind::SecurityGroupRule;
}
