//! TAP devices: their names, and creating, routing and deleting them with `ip`.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::cmd::{run, write_sysctl};
use crate::NetError;

/// Every TAP Kiln creates starts with this, and nothing else Kiln touches does: the firewall
/// matches guest traffic as `iifname "kt*"`, and cleanup after a restart finds leftovers by it.
pub const TAP_PREFIX: &str = "kt";

/// Linux's limit on interface names (`IFNAMSIZ` minus the terminating NUL).
const MAX_NAME_LEN: usize = 15;

/// A valid TAP name: [`TAP_PREFIX`] followed by 1 to 13 ASCII letters, digits, `_` or `-`.
///
/// The character set keeps the name usable verbatim as an interface name, inside an nft string
/// and in an nft chain name (`in_<tap>`), so rendering never has to escape anything.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TapName(String);

impl TapName {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<TapName, NetError> {
        let invalid = |reason| Err(NetError::InvalidTapName { name: name.to_owned(), reason });
        let Some(rest) = name.strip_prefix(TAP_PREFIX) else {
            return invalid("must start with the TAP prefix \"kt\"");
        };
        if rest.is_empty() {
            return invalid("nothing follows the prefix");
        }
        if name.len() > MAX_NAME_LEN {
            return invalid("longer than 15 bytes");
        }
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return invalid("only ASCII letters, digits, '_' and '-' may follow the prefix");
        }
        Ok(TapName(name.to_owned()))
    }

    /// The interface name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TapName {
    type Err = NetError;

    fn from_str(s: &str) -> Result<TapName, NetError> {
        TapName::new(s)
    }
}

/// The TAP devices with Kiln's prefix that exist now in the calling thread's network
/// namespace, sorted: after a restart, the ones no instance claims are leftovers to remove
/// with [`crate::HostNet::remove_port`].
pub(crate) fn existing_taps() -> Result<Vec<TapName>, NetError> {
    let mut taps: Vec<TapName> =
        links()?.into_iter().filter(|l| l.tun).filter_map(|l| TapName::new(&l.name).ok()).collect();
    taps.sort();
    Ok(taps)
}

/// One interface as `ip -o -d link show` lists it.
struct Link {
    name: String,
    /// A TUN/TAP device.
    tun: bool,
}

/// The interfaces of the calling thread's namespace. Asked of `ip`, not read from
/// `/sys/class/net`, which shows the namespace sysfs was mounted in, whatever the thread's.
fn links() -> Result<Vec<Link>, NetError> {
    Ok(parse_links(&run("ip", &["-o", "-d", "link", "show"])?))
}

fn parse_links(text: &str) -> Vec<Link> {
    text.lines()
        .filter_map(|line| {
            let name = line.split(": ").nth(1)?;
            let name = name.split('@').next()?;
            Some(Link { name: name.to_owned(), tun: line.contains(" tun type ") })
        })
        .collect()
}

fn find(name: &str) -> Result<Option<Link>, NetError> {
    Ok(links()?.into_iter().find(|l| l.name == name))
}

/// Everything [`configure`] needs to know about a port.
pub(crate) struct Plumbing<'a> {
    pub tap: &'a TapName,
    pub private_ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
}

/// Creates the TAP unless it exists. Returns whether it was created, so a failed setup only
/// deletes what it made.
pub(crate) fn create(tap: &TapName) -> Result<bool, NetError> {
    if let Some(link) = find(tap.as_str())? {
        if !link.tun {
            return Err(NetError::InvalidPort {
                tap: tap.to_string(),
                reason: "an interface of that name exists and is not a TAP".into(),
            });
        }
        return Ok(false);
    }
    run("ip", &["tuntap", "add", "dev", tap.as_str(), "mode", "tap"])?;
    Ok(true)
}

/// Brings the TAP up with the gateway address, the guest's routes and proxy ARP. Every step is
/// idempotent (`replace`, sysctl writes), so it also repairs a half-configured TAP.
pub(crate) fn configure(p: &Plumbing<'_>) -> Result<(), NetError> {
    let tap = p.tap.as_str();
    // Before the link comes up, so the kernel never assigns it an IPv6 link-local address.
    let disable_ipv6 = format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6");
    if Path::new(&disable_ipv6).exists() {
        write_sysctl(&disable_ipv6, "1")?;
    }
    run("ip", &["link", "set", "dev", tap, "up"])?;
    let gw = p.gateway.to_string();
    run("ip", &["-4", "addr", "replace", &format!("{gw}/32"), "dev", tap])?;
    for ip in std::iter::once(p.private_ip).chain(p.public_ip) {
        run("ip", &["-4", "route", "replace", &format!("{ip}/32"), "dev", tap, "src", &gw])?;
    }
    write_sysctl(&format!("/proc/sys/net/ipv4/conf/{tap}/proxy_arp"), "1")
}

/// Deletes the TAP; its addresses and routes go with it. Deleting a TAP that does not exist
/// succeeds, so removal can be retried.
pub(crate) fn delete(tap: &TapName) -> Result<(), NetError> {
    if find(tap.as_str())?.is_none() {
        return Ok(());
    }
    match run("ip", &["link", "del", "dev", tap.as_str()]) {
        // Lost a race with another remover: the end state is the one wanted.
        Err(_) if matches!(find(tap.as_str()), Ok(None)) => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_parsed_from_ip_one_line_output() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT \\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0\n\
                    7: kt0a1b2c: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN \\    link/ether 6e:2c:1a:00:00:01 brd ff:ff:ff:ff:ff:ff promiscuity 0 \\    tun type tap pi off vnet_hdr on persist on\n\
                    9: kiln-up@if10: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 \\    link/ether 02:00:00:00:00:02 \\    veth\n";
        let links = parse_links(text);
        let names: Vec<(&str, bool)> = links.iter().map(|l| (l.name.as_str(), l.tun)).collect();
        assert_eq!(names, [("lo", false), ("kt0a1b2c", true), ("kiln-up", false)]);
    }

    #[test]
    fn tap_names_must_carry_the_prefix_and_fit_linux() {
        assert_eq!(TapName::new("kt0123456789ab").unwrap().as_str(), "kt0123456789ab");
        assert!(TapName::new("kt0123456789abc").is_ok(), "15 bytes is the limit");
        assert!(TapName::new("kt0123456789abcd").is_err(), "16 bytes");
        assert!(TapName::new("tap0").is_err());
        assert!(TapName::new("kt").is_err());
        assert!(TapName::new("kt a").is_err());
        assert!(TapName::new("kt\"x").is_err());
        assert!(TapName::new("kt*").is_err());
        assert!(TapName::new("kt_a-1").is_ok());
    }
}
