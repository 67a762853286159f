//! The host as a whole: whether TAP networking is possible, initialising it, and ports.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

use tracing::{info, warn};

use crate::cmd::{run, run_with_stdin, write_sysctl};
use crate::dhcp::{DhcpServer, Lease};
use crate::netns::Netns;
use crate::rules::{render, Ruleset, IMDS_ADDR, UPLINK_NS_IF};
use crate::tap::{self, Plumbing, TapName};
use crate::NetError;

/// One instance's network interface, as the host sets it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The TAP QEMU attaches to.
    pub tap: TapName,
    /// The guest NIC's MAC: the only client DHCP answers on this TAP.
    pub mac: [u8; 6],
    /// The guest's address, unique on the host.
    pub private_ip: Ipv4Addr,
    /// The subnet's prefix length, told to the guest by DHCP.
    pub prefix_len: u8,
    /// The subnet's gateway: put on the TAP as a /32 and handed out as the router.
    pub gateway: Ipv4Addr,
    /// A public address routed to the same TAP (and translated by the firewall), if any.
    pub public_ip: Option<Ipv4Addr>,
    /// The guest's host name, handed out by DHCP.
    pub hostname: String,
}

impl PortConfig {
    fn lease(&self) -> Lease {
        Lease {
            mac: self.mac,
            ip: self.private_ip,
            prefix_len: self.prefix_len,
            gateway: self.gateway,
            hostname: self.hostname.clone(),
        }
    }

    fn validate(&self) -> Result<(), NetError> {
        let invalid = |reason: &str| Err(NetError::InvalidPort { tap: self.tap.to_string(), reason: reason.into() });
        if self.prefix_len > 32 {
            return invalid("prefix length over 32");
        }
        if self.private_ip == self.gateway {
            return invalid("the private IP is the gateway");
        }
        if self.mac[0] & 1 == 1 {
            return invalid("multicast MAC");
        }
        if self.hostname.len() > 255 {
            return invalid("host name longer than 255 bytes");
        }
        Ok(())
    }
}

/// How the host reaches its namespace: a veth pair with a /30 of link-local addresses, the
/// host side named `kv…` (so no firewall's `kt*` match takes it for a TAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The host side's interface, in the host's namespace.
    pub host_if: String,
    /// The host side's address.
    pub host_ip: Ipv4Addr,
    /// The namespace side's address, on [`UPLINK_NS_IF`]: the next hop to every public IP.
    pub ns_ip: Ipv4Addr,
}

impl Uplink {
    /// The uplink of namespace `name`, derived from the name alone, so a restart finds the same
    /// one and two servers (two names) almost never pick the same addresses. The addresses lie
    /// in `169.254.0.0/16` outside `169.254.169.0/24`, where the metadata address is.
    pub fn for_namespace(name: &str) -> Uplink {
        let hash = crate::stable_hash(name.as_bytes());
        let third = 1 + (hash % 168) as u8; // 1..=168, below 169
        let fourth = ((hash >> 8) % 64) as u8 * 4;
        Uplink {
            host_if: format!("kv{:08x}", (hash >> 16) as u32),
            host_ip: Ipv4Addr::new(169, 254, third, fourth + 1),
            ns_ip: Ipv4Addr::new(169, 254, third, fourth + 2),
        }
    }
}

/// The host's VM networking: a network namespace of its own holding the TAPs, routes, DHCP
/// sockets, metadata address and firewall, linked to the host by an [`Uplink`].
///
/// `Send + Sync`, to be shared in an `Arc`. Ruleset changes are serialised, so two
/// [`apply`](HostNet::apply) calls never interleave; ports are independent and need no lock.
#[derive(Debug)]
pub struct HostNet {
    ns: Netns,
    uplink: Uplink,
    dhcp: DhcpServer,
    firewall: Mutex<()>,
    /// Each port's public IP, routed from the host to the uplink while the port exists.
    public_routes: Mutex<BTreeMap<TapName, Ipv4Addr>>,
}

impl HostNet {
    /// Prepares namespace `netns` (created if missing): `lo` up with the metadata address,
    /// IPv4 forwarding on, the uplink to the host, the firewall table installed with no ports
    /// (replacing any table a previous run left), and the DHCP thread. Idempotent; call
    /// [`apply`](HostNet::apply) with the real ruleset right after.
    pub fn init(netns: &str) -> Result<HostNet, NetError> {
        let ns = Netns::open_or_create(netns)?;
        let uplink = Uplink::for_namespace(netns);
        let host_if = uplink.host_if.as_str();
        let host_end = Path::new("/sys/class/net").join(host_if);
        let ns_end = run("ip", &["-n", netns, "link", "show", UPLINK_NS_IF]).is_ok();
        if !(ns_end && host_end.exists()) {
            // Half a pair: the namespace of a previous run was deleted and the kernel is still
            // tearing its veth down (it does so asynchronously), or one end was removed by
            // hand. Remove what is left, wait until it is gone, then make a new pair.
            if host_end.exists() {
                let _ = run("ip", &["link", "del", host_if]);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while host_end.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            run("ip", &["link", "add", host_if, "type", "veth", "peer", "name", UPLINK_NS_IF, "netns", netns])?;
        }
        let host_v6 = format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6");
        if Path::new(&host_v6).exists() {
            write_sysctl(&host_v6, "1")?;
        }
        run("ip", &["-4", "addr", "replace", &format!("{}/30", uplink.host_ip), "dev", host_if])?;
        run("ip", &["link", "set", "dev", host_if, "up"])?;
        ns.run(|| {
            run("ip", &["link", "set", "dev", "lo", "up"])?;
            // `replace` adds the address or leaves it as it is: idempotent across restarts.
            run("ip", &["-4", "addr", "replace", &format!("{IMDS_ADDR}/32"), "dev", "lo"])?;
            let ns_v6 = format!("/proc/sys/net/ipv6/conf/{UPLINK_NS_IF}/disable_ipv6");
            if Path::new(&ns_v6).exists() {
                write_sysctl(&ns_v6, "1")?;
            }
            run("ip", &["-4", "addr", "replace", &format!("{}/30", uplink.ns_ip), "dev", UPLINK_NS_IF])?;
            run("ip", &["link", "set", "dev", UPLINK_NS_IF, "up"])?;
            run("ip", &["-4", "route", "replace", "default", "via", &uplink.host_ip.to_string(), "dev", UPLINK_NS_IF])?;
            write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
        })?;
        let host = HostNet {
            ns,
            uplink,
            dhcp: DhcpServer::start()?,
            firewall: Mutex::new(()),
            public_routes: Mutex::new(BTreeMap::new()),
        };
        host.apply(&Ruleset::default())?;
        info!(netns, uplink = %host.uplink.host_if, "host networking ready");
        Ok(host)
    }

    /// The namespace everything lives in; QEMU must start inside it to open its TAP.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The link between the host and the namespace.
    pub fn uplink(&self) -> &Uplink {
        &self.uplink
    }

    /// Creates and configures `port`'s TAP (or repairs an existing one), starts serving its
    /// DHCP lease, and routes its public IP from the host. The guest can get its address at
    /// once; what may reach it is decided by the next [`apply`](HostNet::apply), and until then
    /// nothing but DHCP passes.
    pub fn add_port(&self, port: &PortConfig) -> Result<(), NetError> {
        port.validate()?;
        // Another server on this host routing the public address already: taking it over would
        // cut that server's guest off, so refuse before anything is made.
        if let Some(public) = port.public_ip {
            let existing = run("ip", &["-4", "-o", "route", "show", "exact", &format!("{public}/32")])?;
            if let Some(other) = route_device(&existing).filter(|dev| *dev != self.uplink.host_if) {
                return Err(NetError::InvalidPort {
                    tap: port.tap.to_string(),
                    reason: format!(
                        "public IP {public} is already routed to {other} on this host (another Kiln?); give each \
                         server its own [instances] public_ip_pool"
                    ),
                });
            }
        }
        self.ns.run(|| {
            let created = tap::create(&port.tap)?;
            let plumbing = Plumbing {
                tap: &port.tap,
                private_ip: port.private_ip,
                gateway: port.gateway,
                public_ip: port.public_ip,
            };
            let result = tap::configure(&plumbing).and_then(|()| self.dhcp.add(&port.tap, port.lease()));
            if let Err(e) = result {
                if created {
                    // Leave nothing half-made behind; the original error is the one that matters.
                    if let Err(cleanup) = tap::delete(&port.tap) {
                        warn!(tap = %port.tap, error = %cleanup, "could not delete a TAP after a failed setup");
                    }
                }
                return Err(e);
            }
            Ok(())
        })?;
        if let Some(public) = port.public_ip {
            let route = format!("{public}/32");
            run(
                "ip",
                &["-4", "route", "replace", &route, "via", &self.uplink.ns_ip.to_string(), "dev", &self.uplink.host_if],
            )?;
            self.routes().insert(port.tap.clone(), public);
        }
        info!(tap = %port.tap, ip = %port.private_ip, public_ip = ?port.public_ip, "port added");
        Ok(())
    }

    /// Stops DHCP on the TAP and deletes it, with its addresses and routes. Removing a port that
    /// does not exist succeeds. Its firewall chain stays until the next
    /// [`apply`](HostNet::apply) without it, and matches nothing meanwhile.
    pub fn remove_port(&self, tap: &TapName) -> Result<(), NetError> {
        self.dhcp.remove(tap)?;
        self.ns.run(|| tap::delete(tap))?;
        let public = self.routes().remove(tap);
        if let Some(public) = public {
            let route = format!("{public}/32");
            // Gone already (the uplink was recreated) is the end state wanted.
            if let Err(e) = run("ip", &["-4", "route", "del", &route, "dev", &self.uplink.host_if]) {
                warn!(%tap, %public, error = %e, "could not remove the public IP's route");
            }
        }
        info!(%tap, "port removed");
        Ok(())
    }

    /// The TAPs in the namespace now, sorted: after a restart, the ones no instance claims are
    /// leftovers to remove with [`remove_port`](HostNet::remove_port).
    pub fn existing_taps(&self) -> Result<Vec<TapName>, NetError> {
        self.ns.run(tap::existing_taps)
    }

    /// Replaces the firewall table with `rules`, atomically.
    pub fn apply(&self, rules: &Ruleset) -> Result<(), NetError> {
        rules.validate()?;
        let script = render(rules);
        // Poisoning only means another apply panicked; the table is still whole (nft is atomic).
        let _serial = self.firewall.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.ns.run(|| run_with_stdin("nft", &["-f", "-"], Some(&script)))?;
        info!(ports = rules.ports.len(), "firewall applied");
        Ok(())
    }

    /// Binds a TCP listener inside the namespace (the metadata service on [`IMDS_ADDR`]).
    pub fn bind_tcp(&self, addr: std::net::SocketAddr) -> Result<std::net::TcpListener, NetError> {
        self.ns.run(|| {
            std::net::TcpListener::bind(addr).map_err(|source| NetError::Io { path: format!("tcp {addr}"), source })
        })
    }

    /// Takes everything down: deletes the namespace, whose TAPs, firewall and uplink (with the
    /// host side and the public routes) the kernel removes once nothing holds it any more, i.e.
    /// once this value and the sockets bound inside are dropped. For a server that stops after
    /// its VMs.
    pub fn shutdown(&self) -> Result<(), NetError> {
        run("ip", &["netns", "delete", self.ns.name()])?;
        info!(netns = self.ns.name(), "host networking removed");
        Ok(())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, BTreeMap<TapName, Ipv4Addr>> {
        self.public_routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `dev` of a one-line `ip route show` answer.
fn route_device(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next()
}

/// Why TAP networking cannot be used on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TAP networking unavailable: {reason}")]
pub struct Unavailable {
    /// What is missing, readable by an operator.
    pub reason: String,
}

/// Whether this process can set up TAP networking: running as root (effective uid 0), with
/// `/dev/net/tun`, and `ip` (with `ip netns`) and `nft` installed and working. Where it cannot, the caller falls
/// back to QEMU's user networking and logs the reason.
pub fn probe() -> Result<(), Unavailable> {
    let unavailable = |reason: String| Err(Unavailable { reason });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_uid(&status) {
        Some(0) => {}
        Some(uid) => return unavailable(format!("not running as root (effective uid {uid})")),
        None => return unavailable("cannot read the effective uid from /proc/self/status".into()),
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return unavailable("/dev/net/tun does not exist".into());
    }
    if let Err(e) = run("ip", &["netns", "list"]) {
        return unavailable(e.to_string());
    }
    // Listing tables needs both the nft binary and the kernel's nf_tables.
    if let Err(e) = run("nft", &["list", "tables"]) {
        return unavailable(e.to_string());
    }
    Ok(())
}

/// The effective uid from `/proc/<pid>/status` (`Uid: real effective saved fs`).
fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        let status = "Name:\tkiln\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t0\t0\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tkiln\n"), None);
    }

    #[test]
    fn uplinks_are_stable_link_local_and_clear_of_the_metadata_address() {
        let a = Uplink::for_namespace("kiln-0123abcd");
        assert_eq!(a, Uplink::for_namespace("kiln-0123abcd"));
        assert_ne!(a, Uplink::for_namespace("kiln-0123abce"));
        for name in ["kiln", "kiln-1", "kiln-2", "a", "kiln-ffffffff"] {
            let u = Uplink::for_namespace(name);
            let [a, b, c, d] = u.host_ip.octets();
            assert_eq!((a, b), (169, 254));
            assert!((1..169).contains(&c), "{u:?}");
            assert_eq!(d % 4, 1);
            assert_eq!(u.ns_ip, Ipv4Addr::new(a, b, c, d + 1));
            assert!(u.host_if.len() <= 15 && u.host_if.starts_with("kv"), "{u:?}");
        }
    }

    #[test]
    fn route_devices_are_read_from_ip_route() {
        assert_eq!(route_device("100.64.0.10 via 169.254.3.2 dev kv0a1b2c3d \n"), Some("kv0a1b2c3d"));
        assert_eq!(route_device(""), None);
    }

    #[test]
    fn host_net_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<HostNet>();
    }

    #[test]
    fn ports_are_validated() {
        let good = PortConfig {
            tap: TapName::new("kta").unwrap(),
            mac: [0x02, 0, 0, 0, 0, 1],
            private_ip: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            public_ip: None,
            hostname: "ip-10-0-0-5".into(),
        };
        assert!(good.validate().is_ok());
        assert!(PortConfig { prefix_len: 33, ..good.clone() }.validate().is_err());
        assert!(PortConfig { private_ip: good.gateway, ..good.clone() }.validate().is_err());
        assert!(PortConfig { mac: [0x01, 0, 0x5e, 0, 0, 1], ..good.clone() }.validate().is_err());
        assert!(PortConfig { hostname: "x".repeat(256), ..good }.validate().is_err());
    }
}
