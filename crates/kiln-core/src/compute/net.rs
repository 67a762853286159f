//! What the host's network must do for instances, and security groups compiled to it.
//!
//! The use cases speak only [`HostNetwork`]: plug a port for an instance, unplug it, and apply
//! the ingress filter of every port at once. The real implementation (routed TAP devices,
//! nftables, DHCP; `kiln-net`) is chosen at start-up; [`NoNetwork`] leaves VMs without a NIC
//! where the host cannot do networking, and says so.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use kiln_meta::Query;
use kiln_types::{InstanceState, ResourceKind};

use crate::compute::launch::{all_instances, parse_cidr};

use crate::error::CoreResult;
use crate::records::instance::InstanceData;
use crate::records::item::Item;
use crate::records::security_group::{Peer, RuleData};
use crate::Kiln;

/// One instance's network port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The instance.
    pub instance_id: String,
    /// NIC MAC address.
    pub mac: [u8; 6],
    /// Private address.
    pub private_ip: Ipv4Addr,
    /// Subnet prefix length.
    pub prefix_len: u8,
    /// The subnet's gateway (its first address + 1).
    pub gateway: Ipv4Addr,
    /// Host-reachable address.
    pub public_ip: Option<Ipv4Addr>,
    /// Guest host name.
    pub hostname: String,
}

/// One ingress rule compiled for the packet filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    /// `-1` (all), `tcp`, `udp`, `icmp` or a protocol number.
    pub protocol: String,
    /// First port, or ICMP type (-1 any).
    pub from_port: i32,
    /// Last port, or ICMP code (-1 any).
    pub to_port: i32,
    /// Allowed sources; group peers are expanded to their members' addresses.
    pub sources: Vec<(Ipv4Addr, u8)>,
}

/// The filter of one port: what may reach the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFilter {
    /// The instance.
    pub instance_id: String,
    /// Its private address.
    pub private_ip: Ipv4Addr,
    /// Its public address.
    pub public_ip: Option<Ipv4Addr>,
    /// Rules, in group and rule order.
    pub ingress: Vec<Ingress>,
}

/// The host side of instance networking.
pub trait HostNetwork: Send + Sync {
    /// A word for logs and `kiln doctor` (`tap`, `none`).
    fn mode(&self) -> String;
    /// Creates (or finds) the instance's port and says how QEMU connects to it.
    fn plug(&self, port: &Port) -> CoreResult<Option<kiln_vm::Nic>>;
    /// Removes the instance's port.
    fn unplug(&self, instance_id: &str);
    /// Replaces the whole ingress filter with `ports`.
    fn apply(&self, ports: &[PortFilter]) -> CoreResult<()>;
}

/// No networking: VMs get no NIC.
#[derive(Debug, Clone)]
pub struct NoNetwork {
    /// Why, for the log and `kiln doctor`.
    pub reason: String,
}

impl HostNetwork for NoNetwork {
    fn mode(&self) -> String {
        format!("none ({})", self.reason)
    }
    fn plug(&self, _port: &Port) -> CoreResult<Option<kiln_vm::Nic>> {
        Ok(None)
    }
    fn unplug(&self, _instance_id: &str) {}
    fn apply(&self, _ports: &[PortFilter]) -> CoreResult<()> {
        Ok(())
    }
}

/// Parses `0e:12:…`.
pub(crate) fn parse_mac(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (slot, part) in out.iter_mut().zip(mac.split(':')) {
        *slot = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    out
}

/// The port of an instance record.
pub(crate) fn port_of(inst: &Item<InstanceData>, subnet_cidr: &str) -> Option<Port> {
    let private_ip: Ipv4Addr = inst.data.private_ip.parse().ok()?;
    let (net, len) = parse_cidr(subnet_cidr)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len as u32) };
    let gateway = Ipv4Addr::from((u32::from(net) & mask) + 1);
    Some(Port {
        instance_id: inst.id.clone(),
        mac: parse_mac(&inst.data.mac),
        private_ip,
        prefix_len: len,
        gateway,
        public_ip: inst.data.public_ip.as_deref().and_then(|p| p.parse().ok()),
        hostname: inst.data.private_dns_name(&inst.region).split('.').next().unwrap_or_default().to_string(),
    })
}

/// Compiles every live instance's security groups into port filters. Group peers expand to the
/// private addresses of the live instances in that group.
pub(crate) fn compile(instances: &[Item<InstanceData>], rules: &[Item<RuleData>]) -> Vec<PortFilter> {
    let live: Vec<&Item<InstanceData>> =
        instances.iter().filter(|i| i.data.state != InstanceState::Terminated).collect();
    let mut members: HashMap<&str, Vec<(Ipv4Addr, u8)>> = HashMap::new();
    for inst in &live {
        if let Ok(ip) = inst.data.private_ip.parse::<Ipv4Addr>() {
            for g in &inst.data.groups {
                members.entry(g.id.as_str()).or_default().push((ip, 32));
            }
        }
    }
    let mut by_group: HashMap<&str, Vec<&Item<RuleData>>> = HashMap::new();
    for r in rules.iter().filter(|r| !r.data.is_egress) {
        by_group.entry(r.data.group_id.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for inst in live {
        let Ok(private_ip) = inst.data.private_ip.parse::<Ipv4Addr>() else { continue };
        let mut ingress = Vec::new();
        for g in &inst.data.groups {
            for r in by_group.get(g.id.as_str()).into_iter().flatten() {
                let sources = match &r.data.peer {
                    Peer::Cidr4(c) => parse_cidr(c).into_iter().collect(),
                    Peer::Group { group_id, .. } => members.get(group_id.as_str()).cloned().unwrap_or_default(),
                    // IPv6 never reaches an IPv4-only guest; prefix lists are not modelled.
                    Peer::Cidr6(_) | Peer::PrefixList(_) => continue,
                };
                ingress.push(Ingress {
                    protocol: r.data.protocol.clone(),
                    from_port: r.data.from_port as i32,
                    to_port: r.data.to_port as i32,
                    sources,
                });
            }
        }
        out.push(PortFilter {
            instance_id: inst.id.clone(),
            private_ip,
            public_ip: inst.data.public_ip.as_deref().and_then(|p| p.parse().ok()),
            ingress,
        });
    }
    out
}

impl Kiln {
    /// Recompiles the packet filter from every live instance and security group rule. Called
    /// after anything that changes who may reach whom; failures are logged, since the previous
    /// filter stays in force (it only ever allows what was allowed before).
    pub fn refresh_network(&self) {
        let Ok(runtime) = self.compute.runtime() else { return };
        let result = (|| -> CoreResult<()> {
            let mut txn = self.store.read()?;
            let instances = all_instances(txn.as_mut())?;
            let rules: Vec<Item<RuleData>> = txn
                .find(&Query { kind: Some(ResourceKind::SecurityGroupRule), ..Default::default() })?
                .into_iter()
                .map(Item::from_record)
                .collect::<CoreResult<_>>()?;
            drop(txn);
            runtime.network.apply(&compile(&instances, &rules))
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, "could not apply the security group filter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::instance::GroupRef;
    use crate::Ctx;

    fn inst(id: &str, ip: &str, groups: &[&str]) -> Item<InstanceData> {
        let ctx = Ctx { account: "111111111111".into(), region: "us-east-1".into() };
        let mut i = Item::new(
            &ctx,
            None,
            String::new(),
            vec![],
            InstanceData {
                private_ip: ip.into(),
                state: InstanceState::Running,
                groups: groups.iter().map(|g| GroupRef { id: g.to_string(), name: g.to_string() }).collect(),
                ..Default::default()
            },
        );
        i.id = id.into();
        i
    }

    fn rule(group: &str, protocol: &str, port: i64, peer: Peer) -> Item<RuleData> {
        let ctx = Ctx { account: "111111111111".into(), region: "us-east-1".into() };
        Item::new(
            &ctx,
            None,
            group.into(),
            vec![],
            RuleData {
                group_id: group.into(),
                is_egress: false,
                protocol: protocol.into(),
                from_port: port,
                to_port: port,
                peer,
                description: None,
            },
        )
    }

    #[test]
    fn group_peers_expand_to_member_addresses() {
        let instances = vec![inst("i-a", "172.31.0.4", &["sg-web"]), inst("i-b", "172.31.0.5", &["sg-app"])];
        let rules = vec![
            rule("sg-web", "tcp", 22, Peer::Cidr4("0.0.0.0/0".into())),
            rule("sg-app", "tcp", 8080, Peer::Group { group_id: "sg-web".into(), account: "1".into() }),
            rule("sg-app", "tcp", 9, Peer::Cidr6("::/0".into())),
        ];
        let filters = compile(&instances, &rules);
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].ingress[0].sources, vec![(Ipv4Addr::UNSPECIFIED, 0)]);
        let app = &filters[1];
        assert_eq!(app.ingress.len(), 1, "the IPv6 rule compiles to nothing");
        assert_eq!(app.ingress[0].sources, vec![(Ipv4Addr::new(172, 31, 0, 4), 32)]);
    }

    #[test]
    fn ports_use_the_subnet_gateway() {
        let mut i = inst("i-a", "172.31.16.9", &[]);
        i.data.mac = "0e:01:02:03:04:05".into();
        let port = port_of(&i, "172.31.16.0/20").unwrap();
        assert_eq!(port.gateway, Ipv4Addr::new(172, 31, 16, 1));
        assert_eq!(port.mac, [0x0e, 1, 2, 3, 4, 5]);
        assert_eq!(port.hostname, "ip-172-31-16-9");
    }
}
