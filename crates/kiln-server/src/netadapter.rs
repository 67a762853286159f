//! Connects the use cases' [`HostNetwork`] to the host: `kiln-net`'s routed TAPs, or no NIC.

use std::sync::Arc;

use anyhow::Context;
use kiln_core::compute::net::{HostNetwork, NoNetwork, Port, PortFilter};
use kiln_core::CoreError;
use kiln_net::{HostNet, IngressRule, Ipv4Cidr, PortConfig, PortRules, Protocol, Ruleset, TapName, TAP_PREFIX};

/// The TAP of an instance: the prefix and the id's last hex digits, within `IFNAMSIZ`.
pub fn tap_name(instance_id: &str) -> String {
    let hex = instance_id.trim_start_matches("i-");
    let room = kiln_vm::argv::MAX_IFNAME - TAP_PREFIX.len();
    format!("{TAP_PREFIX}{}", &hex[hex.len().saturating_sub(room)..])
}

/// Routed TAP networking with DHCP and an nftables filter.
pub struct TapNetwork {
    host: HostNet,
}

fn net_error(e: kiln_net::NetError) -> CoreError {
    CoreError::Internal(format!("host networking: {e}"))
}

impl HostNetwork for TapNetwork {
    fn mode(&self) -> String {
        "tap (routed TAP devices, DHCP, nftables security groups)".into()
    }

    fn plug(&self, port: &Port) -> Result<Option<kiln_vm::Nic>, CoreError> {
        let tap = TapName::new(&tap_name(&port.instance_id)).map_err(net_error)?;
        self.host
            .add_port(&PortConfig {
                tap: tap.clone(),
                mac: port.mac,
                private_ip: port.private_ip,
                prefix_len: port.prefix_len,
                gateway: port.gateway,
                public_ip: port.public_ip,
                hostname: port.hostname.clone(),
            })
            .map_err(net_error)?;
        Ok(Some(kiln_vm::Nic::Tap {
            ifname: tap.as_str().to_string(),
            mac: kiln_vm::MacAddr(port.mac),
            netns: Some(self.host.netns().path()),
        }))
    }

    fn unplug(&self, instance_id: &str) {
        if let Ok(tap) = TapName::new(&tap_name(instance_id)) {
            if let Err(e) = self.host.remove_port(&tap) {
                tracing::warn!(instance = instance_id, error = %e, "could not remove the instance's TAP");
            }
        }
    }

    fn apply(&self, ports: &[PortFilter]) -> Result<(), CoreError> {
        let mut rules = Ruleset::default();
        for p in ports {
            let tap = TapName::new(&tap_name(&p.instance_id)).map_err(net_error)?;
            let ingress = p
                .ingress
                .iter()
                .filter_map(|r| {
                    Some(IngressRule {
                        protocol: Protocol::from_ec2(&r.protocol)?,
                        from_port: r.from_port,
                        to_port: r.to_port,
                        sources: r.sources.iter().filter_map(|(a, l)| Ipv4Cidr::new(*a, *l)).collect(),
                    })
                })
                .collect();
            rules.ports.push(PortRules { tap, private_ip: p.private_ip, public_ip: p.public_ip, ingress });
        }
        self.host.apply(&rules).map_err(net_error)
    }
}

/// The network instances get, and what goes with it.
pub struct Chosen {
    /// What the use cases plug instances into.
    pub network: Arc<dyn HostNetwork>,
    /// The metadata service's socket, bound inside the namespace, when guests can reach one.
    pub metadata: Option<std::net::TcpListener>,
    /// The host networking to take down when the server stops.
    pub host: Option<Arc<TapNetwork>>,
}

impl TapNetwork {
    /// Removes the namespace and everything in it; for after every VM has stopped.
    pub fn shutdown(&self) {
        match self.host.shutdown() {
            Ok(()) => tracing::info!(netns = self.host.netns().name(), "removed the instances' network namespace"),
            Err(e) => tracing::warn!(error = %e, "could not remove the instances' network namespace"),
        }
    }
}

/// Picks the network for `mode` (`auto`, `tap`, `none`). TAP networking lives in network
/// namespace `netns`, where the metadata service is bound on `metadata_listen`.
pub fn choose(mode: &str, netns: &str, metadata_listen: std::net::SocketAddr) -> anyhow::Result<Chosen> {
    let none = |reason: String| Chosen { network: Arc::new(NoNetwork { reason }), metadata: None, host: None };
    match mode {
        "none" => Ok(none("networking is off in the configuration".into())),
        "auto" | "tap" => match kiln_net::probe() {
            Ok(()) => {
                let host =
                    HostNet::init(netns).with_context(|| format!("setting up host networking in netns {netns}"))?;
                let metadata = host.bind_tcp(metadata_listen).with_context(|| {
                    format!("binding the instance metadata service on {metadata_listen} in netns {netns}")
                })?;
                let tap = Arc::new(TapNetwork { host });
                Ok(Chosen {
                    network: Arc::clone(&tap) as Arc<dyn HostNetwork>,
                    metadata: Some(metadata),
                    host: Some(tap),
                })
            }
            Err(e) if mode == "auto" => {
                tracing::warn!(reason = %e, "instances will have no network");
                Ok(none(e.reason))
            }
            Err(e) => Err(anyhow::anyhow!("[instances] network = \"tap\" but {e}")),
        },
        other => Err(anyhow::anyhow!("[instances] network must be auto, tap or none, not {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_ifnamsiz() {
        let name = tap_name("i-0123456789abcdef0");
        assert!(name.len() <= 15, "{name}");
        assert!(name.starts_with(TAP_PREFIX));
        assert!(name.ends_with("bcdef0"));
        TapName::new(&name).unwrap();
    }
}
