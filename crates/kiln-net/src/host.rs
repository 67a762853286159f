//! The host as a whole: whether TAP networking is possible, initialising it, and ports.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use tracing::{info, warn};

use crate::cmd::{run, run_with_stdin, write_sysctl};
use crate::dhcp::{DhcpServer, Lease};
use crate::rules::{render, render_delete, Ruleset, IMDS_ADDR};
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

/// The host's VM networking: TAPs, routes, DHCP and the firewall.
///
/// `Send + Sync`, to be shared in an `Arc`. Ruleset changes are serialised, so two
/// [`apply`](HostNet::apply) calls never interleave; ports are independent and need no lock.
#[derive(Debug)]
pub struct HostNet {
    dhcp: DhcpServer,
    firewall: Mutex<()>,
}

impl HostNet {
    /// Prepares the host: the metadata address on `lo`, IPv4 forwarding on, the firewall table
    /// installed with no ports (replacing any table a previous run left), and the DHCP thread.
    /// Idempotent; call [`apply`](HostNet::apply) with the real ruleset right after.
    pub fn init() -> Result<HostNet, NetError> {
        // `replace` adds the address or leaves it as it is: idempotent across restarts.
        run("ip", &["-4", "addr", "replace", &format!("{IMDS_ADDR}/32"), "dev", "lo"])?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        let host = HostNet { dhcp: DhcpServer::start()?, firewall: Mutex::new(()) };
        host.apply(&Ruleset::default())?;
        info!("host networking ready");
        Ok(host)
    }

    /// Creates and configures `port`'s TAP (or repairs an existing one) and starts serving its
    /// DHCP lease. The guest can get its address at once; what may reach it is decided by the
    /// next [`apply`](HostNet::apply), and until then nothing but DHCP passes.
    pub fn add_port(&self, port: &PortConfig) -> Result<(), NetError> {
        port.validate()?;
        let created = tap::create(&port.tap)?;
        let plumbing =
            Plumbing { tap: &port.tap, private_ip: port.private_ip, gateway: port.gateway, public_ip: port.public_ip };
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
        info!(tap = %port.tap, ip = %port.private_ip, public_ip = ?port.public_ip, "port added");
        Ok(())
    }

    /// Stops DHCP on the TAP and deletes it, with its addresses and routes. Removing a port that
    /// does not exist succeeds. Its firewall chain stays until the next
    /// [`apply`](HostNet::apply) without it, and matches nothing meanwhile.
    pub fn remove_port(&self, tap: &TapName) -> Result<(), NetError> {
        self.dhcp.remove(tap)?;
        tap::delete(tap)?;
        info!(%tap, "port removed");
        Ok(())
    }

    /// Replaces the firewall table with `rules`, atomically.
    pub fn apply(&self, rules: &Ruleset) -> Result<(), NetError> {
        rules.validate()?;
        let script = render(rules);
        // Poisoning only means another apply panicked; the table is still whole (nft is atomic).
        let _serial = self.firewall.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        run_with_stdin("nft", &["-f", "-"], Some(&script))?;
        info!(ports = rules.ports.len(), "firewall applied");
        Ok(())
    }
}

/// Deletes the firewall table, if it exists: for uninstalling, and for tests.
pub fn remove_table() -> Result<(), NetError> {
    run_with_stdin("nft", &["-f", "-"], Some(&render_delete())).map(drop)
}

/// Why TAP networking cannot be used on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TAP networking unavailable: {reason}")]
pub struct Unavailable {
    /// What is missing, readable by an operator.
    pub reason: String,
}

/// Whether this process can set up TAP networking: running as root (effective uid 0), with
/// `/dev/net/tun`, and `ip` and `nft` installed and working. Where it cannot, the caller falls
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
    if let Err(e) = run("ip", &["-V"]) {
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
