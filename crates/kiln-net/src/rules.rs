//! The nftables ruleset: security groups, anti-spoofing, and public-IP NAT for every port.
//!
//! [`render`] is a pure function from a [`Ruleset`] to the `nft -f` script that replaces the
//! table `inet kiln` in one transaction; `tests/render.rs` pins its output. The table:
//!
//! - `dnat_prerouting` (nat, prerouting, priority `dstnat`) and `dnat_output` (nat, output,
//!   priority -100): `ip daddr <public> dnat ip to <private>` for each port with a public IP,
//!   for packets from guests and for connections the host itself opens.
//! - `input` (filter, input): a packet from a TAP whose source is that port's private IP goes
//!   to `guest_to_host`; a DHCP packet from `0.0.0.0` (a guest without an address yet) is
//!   accepted; anything else from any TAP is dropped: spoofed, or from a TAP with no rules yet.
//! - `guest_to_host`: established/related, DHCP (udp 67), instance metadata (tcp 80 to
//!   [`IMDS_ADDR`]) and ping are accepted; the rest is dropped.
//! - `forward` (filter, forward): from a TAP to the uplink ([`UPLINK_NS_IF`]), only replies
//!   (established/related) pass; from a TAP to any other non-TAP interface is dropped, so
//!   traffic never leaves the host; from a TAP with that port's private IP, on to `to_guest`; from a
//!   TAP otherwise, dropped; from elsewhere to a TAP, `to_guest`.
//! - `output` (filter, output): DHCP replies (udp 67 to 68) to TAPs are accepted, since they
//!   answer broadcasts that conntrack cannot pair with them; anything else to a TAP goes to
//!   `to_guest`.
//! - `to_guest`: established/related is accepted; otherwise the destination TAP's `in_<tap>`
//!   decides; a TAP without rules gets nothing.
//! - `in_<tap>`: one `accept` per ingress rule of the port's security groups, then `drop`.
//!
//! Base chains have policy `accept` so that nothing but TAP traffic is affected by Kiln: every
//! rule that can drop is qualified by a `kt*` interface.
//!
//! The table lives in the server's network namespace (see [`crate::netns`]). The host reaches a
//! guest's public IP through the namespace's uplink, from the host side's link-local address,
//! so a connection from the host passes only if an ingress rule admits that address (as
//! `0.0.0.0/0` does).
//!
//! # Ingress rules
//!
//! Each [`IngressRule`] becomes one `ip saddr <sources> [<protocol match>] accept` line.
//! Sources are IPv4 CIDRs (security-group peers have already been expanded by the caller to the
//! /32s of the group's members); duplicates and CIDRs inside another are dropped, since older nft
//! versions refuse overlapping elements in one set. A rule renders as nothing, i.e. matches nothing,
//! when it has no sources or when its ports are not a valid range: for an allow-list, failing
//! closed is the only safe reading of a malformed rule.
//!
//! | protocol | `from_port`, `to_port` | match |
//! |---|---|---|
//! | all | ignored | none |
//! | tcp, udp | `-1, -1` or `0, 65535` | `meta l4proto tcp` (all ports) |
//! | tcp, udp | `a, b` with `0 ≤ a ≤ b ≤ 65535` | `tcp dport a` or `tcp dport a-b` |
//! | icmp | `-1, -1` | `meta l4proto icmp` |
//! | icmp | type `t`, code `-1` | `icmp type t` |
//! | icmp | type `t`, code `c` | `icmp type t icmp code c` |
//! | a number `n` | ignored | `meta l4proto n` (6, 17 and 1 are tcp, udp and icmp) |

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::tap::TapName;
use crate::NetError;

/// The nftables table Kiln owns, in family `inet`.
pub const TABLE: &str = "kiln";

/// The namespace's side of the veth pair that links it to the host.
pub const UPLINK_NS_IF: &str = "kiln-up";

/// The instance metadata service's address, put on the namespace's `lo`.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// Every TAP, as an nft interface-name pattern.
const ANY_TAP: &str = "\"kt*\"";

/// An IP protocol as security groups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Every protocol (EC2's `-1`).
    All,
    /// TCP, with a port range.
    Tcp,
    /// UDP, with a port range.
    Udp,
    /// ICMP, with a type and code.
    Icmp,
    /// Any other protocol, by number; ports do not apply.
    Number(u8),
}

impl Protocol {
    /// Reads EC2's `IpProtocol`: `tcp`, `udp`, `icmp`, `-1` (or `all`) or a protocol number.
    pub fn from_ec2(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Protocol::All),
            other => other.parse::<u8>().ok().map(Protocol::Number).or(match other {
                "tcp" => Some(Protocol::Tcp),
                "udp" => Some(Protocol::Udp),
                "icmp" => Some(Protocol::Icmp),
                _ => None,
            }),
        }
        .map(Protocol::canonical)
    }

    /// Numbers with a name become the name, so their ports are honoured.
    fn canonical(self) -> Protocol {
        match self {
            Protocol::Number(6) => Protocol::Tcp,
            Protocol::Number(17) => Protocol::Udp,
            Protocol::Number(1) => Protocol::Icmp,
            other => other,
        }
    }
}

/// An IPv4 network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// The network of `addr`/`prefix_len` (host bits are cleared), or `None` when the prefix
    /// is longer than 32.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        (prefix_len <= 32).then(|| Ipv4Cidr { addr: Ipv4Addr::from(u32::from(addr) & mask(prefix_len)), prefix_len })
    }

    /// One address (`/32`).
    pub fn host(addr: Ipv4Addr) -> Ipv4Cidr {
        Ipv4Cidr { addr, prefix_len: 32 }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether every address of `other` is in `self`.
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        self.prefix_len <= other.prefix_len && u32::from(other.addr) & mask(self.prefix_len) == u32::from(self.addr)
    }
}

/// The netmask of a prefix length (at most 32).
pub(crate) fn mask(prefix_len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0)
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetError;

    /// `a.b.c.d/n`, or a bare address meaning `/32`.
    fn from_str(s: &str) -> Result<Ipv4Cidr, NetError> {
        let invalid = || NetError::InvalidCidr(s.to_owned());
        let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let len: u8 = len.parse().map_err(|_| invalid())?;
        Ipv4Cidr::new(addr, len).ok_or_else(invalid)
    }
}

/// One security-group ingress permission, with its peers resolved to CIDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    /// The protocol.
    pub protocol: Protocol,
    /// First port (TCP/UDP) or the ICMP type; `-1` means any.
    pub from_port: i32,
    /// Last port (TCP/UDP) or the ICMP code; `-1` means any.
    pub to_port: i32,
    /// Who may connect. Empty matches nobody.
    pub sources: Vec<Ipv4Cidr>,
}

/// The firewall's view of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRules {
    /// The port's TAP.
    pub tap: TapName,
    /// The guest's address: the only source address accepted from the TAP.
    pub private_ip: Ipv4Addr,
    /// The public address translated to `private_ip`, if any.
    pub public_ip: Option<Ipv4Addr>,
    /// What may reach the guest: the union of its security groups' ingress rules.
    pub ingress: Vec<IngressRule>,
}

/// Every port on the host. Applying it replaces whatever was there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The ports; their order does not matter (rendering sorts them by TAP).
    pub ports: Vec<PortRules>,
}

impl Ruleset {
    /// Refuses a ruleset nft would reject for a reason the caller controls: a TAP listed twice.
    pub fn validate(&self) -> Result<(), NetError> {
        let mut taps: Vec<&TapName> = self.ports.iter().map(|p| &p.tap).collect();
        taps.sort();
        match taps.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(NetError::DuplicatePort(w[0].to_string())),
            None => Ok(()),
        }
    }
}

/// The `nft -f` script that atomically replaces table `inet kiln` with `rules`.
///
/// The first two lines create the table if it is missing and then delete it, so the script
/// works whether or not the table exists; nft runs the whole file as one transaction.
pub fn render(rules: &Ruleset) -> String {
    let mut ports: Vec<&PortRules> = rules.ports.iter().collect();
    ports.sort_by(|a, b| a.tap.cmp(&b.tap));
    let public: Vec<String> =
        ports.iter().filter_map(|p| Some(format!("ip daddr {} dnat ip to {}", p.public_ip?, p.private_ip))).collect();

    let mut out = Script::default();
    out.line(0, &format!("table inet {TABLE} {{}}"));
    out.line(0, &format!("delete table inet {TABLE}"));
    out.line(0, &format!("table inet {TABLE} {{"));

    out.chain("dnat_prerouting", Some("type nat hook prerouting priority dstnat; policy accept;"), &public);
    out.chain("dnat_output", Some("type nat hook output priority -100; policy accept;"), &public);

    let mut input = Vec::new();
    for p in &ports {
        input.push(format!("iifname \"{}\" ip saddr {} jump guest_to_host", p.tap, p.private_ip));
    }
    input.push(format!("iifname {ANY_TAP} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"));
    input.push(format!("iifname {ANY_TAP} drop"));
    out.chain("input", Some("type filter hook input priority filter; policy accept;"), &input);

    out.chain(
        "guest_to_host",
        None,
        &[
            "ct state established,related accept".into(),
            "udp dport 67 accept".into(),
            format!("ip daddr {IMDS_ADDR} tcp dport 80 accept"),
            "icmp type echo-request accept".into(),
            "drop".into(),
        ],
    );

    // The host reaches guests through the namespace's uplink; guests may only answer it.
    let mut forward = vec![
        format!("iifname {ANY_TAP} oifname \"{UPLINK_NS_IF}\" ct state established,related accept"),
        format!("iifname {ANY_TAP} oifname != {ANY_TAP} drop"),
    ];
    for p in &ports {
        forward.push(format!("iifname \"{}\" ip saddr {} jump to_guest", p.tap, p.private_ip));
    }
    forward.push(format!("iifname {ANY_TAP} drop"));
    forward.push(format!("oifname {ANY_TAP} jump to_guest"));
    out.chain("forward", Some("type filter hook forward priority filter; policy accept;"), &forward);

    out.chain(
        "output",
        Some("type filter hook output priority filter; policy accept;"),
        &[format!("oifname {ANY_TAP} udp sport 67 udp dport 68 accept"), format!("oifname {ANY_TAP} jump to_guest")],
    );

    let mut to_guest = vec!["ct state established,related accept".to_owned()];
    for p in &ports {
        to_guest.push(format!("oifname \"{}\" jump in_{}", p.tap, p.tap));
    }
    to_guest.push("drop".into());
    out.chain("to_guest", None, &to_guest);

    for p in &ports {
        let mut lines: Vec<String> = p.ingress.iter().filter_map(ingress_line).collect();
        lines.push("drop".into());
        out.chain(&format!("in_{}", p.tap), None, &lines);
    }
    out.line(0, "}");
    out.text
}

#[derive(Default)]
struct Script {
    text: String,
    chains: usize,
}

impl Script {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.text.push('\t');
        }
        self.text.push_str(text);
        self.text.push('\n');
    }

    fn chain(&mut self, name: &str, base: Option<&str>, rules: &[String]) {
        if self.chains > 0 {
            self.text.push('\n');
        }
        self.chains += 1;
        self.line(1, &format!("chain {name} {{"));
        if let Some(base) = base {
            self.line(2, base);
        }
        for rule in rules {
            self.line(2, rule);
        }
        self.line(1, "}");
    }
}

/// One `in_<tap>` line, or `None` when the rule matches nothing.
fn ingress_line(rule: &IngressRule) -> Option<String> {
    let sources = normalise(&rule.sources);
    let saddr = match sources.as_slice() {
        [] => return None,
        [one] => nft_cidr(one),
        many => format!("{{ {} }}", many.iter().map(nft_cidr).collect::<Vec<_>>().join(", ")),
    };
    let l4 = l4_match(rule.protocol.canonical(), rule.from_port, rule.to_port)?;
    Some(format!("ip saddr {saddr}{l4} accept"))
}

/// The protocol part of a rule (with a leading space), `Some("")` for all protocols, or `None`
/// when the ports make the rule invalid.
fn l4_match(protocol: Protocol, from: i32, to: i32) -> Option<String> {
    let byte = |n: i32| u8::try_from(n).ok();
    match protocol {
        Protocol::All => Some(String::new()),
        Protocol::Number(n) => Some(format!(" meta l4proto {n}")),
        Protocol::Tcp | Protocol::Udp => {
            let name = if protocol == Protocol::Tcp { "tcp" } else { "udp" };
            match (from, to) {
                (-1, -1) | (0, 65535) => Some(format!(" meta l4proto {name}")),
                (a, b) if a == b => Some(format!(" {name} dport {}", u16::try_from(a).ok()?)),
                (a, b) if a < b => Some(format!(" {name} dport {}-{}", u16::try_from(a).ok()?, u16::try_from(b).ok()?)),
                _ => None,
            }
        }
        Protocol::Icmp => match (from, to) {
            (-1, -1) => Some(" meta l4proto icmp".into()),
            (t, -1) => Some(format!(" icmp type {}", byte(t)?)),
            (t, c) => Some(format!(" icmp type {} icmp code {}", byte(t)?, byte(c)?)),
        },
    }
}

/// Sorted, without duplicates or networks inside another one of the list.
fn normalise(sources: &[Ipv4Cidr]) -> Vec<Ipv4Cidr> {
    let mut broadest_first = sources.to_vec();
    broadest_first.sort_by_key(|c| (c.prefix_len, u32::from(c.addr)));
    let mut kept: Vec<Ipv4Cidr> = Vec::new();
    for cidr in broadest_first {
        if !kept.iter().any(|k| k.contains(&cidr)) {
            kept.push(cidr);
        }
    }
    kept.sort_by_key(|c| (u32::from(c.addr), c.prefix_len));
    kept
}

fn nft_cidr(c: &Ipv4Cidr) -> String {
    if c.prefix_len == 32 {
        c.addr.to_string()
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn line(protocol: Protocol, from: i32, to: i32, sources: &[&str]) -> Option<String> {
        ingress_line(&IngressRule {
            protocol,
            from_port: from,
            to_port: to,
            sources: sources.iter().map(|s| cidr(s)).collect(),
        })
    }

    #[test]
    fn ec2_protocol_names_and_numbers_parse() {
        assert_eq!(Protocol::from_ec2("-1"), Some(Protocol::All));
        assert_eq!(Protocol::from_ec2("TCP"), Some(Protocol::Tcp));
        assert_eq!(Protocol::from_ec2("6"), Some(Protocol::Tcp));
        assert_eq!(Protocol::from_ec2("17"), Some(Protocol::Udp));
        assert_eq!(Protocol::from_ec2("icmp"), Some(Protocol::Icmp));
        assert_eq!(Protocol::from_ec2("47"), Some(Protocol::Number(47)));
        assert_eq!(Protocol::from_ec2("gre"), None);
        assert_eq!(Protocol::from_ec2("256"), None);
    }

    #[test]
    fn cidrs_parse_and_lose_their_host_bits() {
        assert_eq!(cidr("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Cidr>().is_err());
        assert!(cidr("10.0.0.0/8").contains(&cidr("10.9.0.0/16")));
        assert!(!cidr("10.9.0.0/16").contains(&cidr("10.0.0.0/8")));
        assert!(cidr("0.0.0.0/0").contains(&cidr("192.0.2.1")));
    }

    #[test]
    fn tcp_and_udp_port_ranges() {
        let l = |p, a, b| line(p, a, b, &["10.0.0.0/16"]);
        assert_eq!(l(Protocol::Tcp, 22, 22).unwrap(), "ip saddr 10.0.0.0/16 tcp dport 22 accept");
        assert_eq!(l(Protocol::Udp, 1000, 2000).unwrap(), "ip saddr 10.0.0.0/16 udp dport 1000-2000 accept");
        assert_eq!(l(Protocol::Tcp, 0, 65535).unwrap(), "ip saddr 10.0.0.0/16 meta l4proto tcp accept");
        assert_eq!(l(Protocol::Udp, -1, -1).unwrap(), "ip saddr 10.0.0.0/16 meta l4proto udp accept");
        assert_eq!(l(Protocol::Number(6), 80, 80).unwrap(), "ip saddr 10.0.0.0/16 tcp dport 80 accept");
    }

    #[test]
    fn malformed_port_ranges_match_nothing() {
        for (a, b) in [(20, 10), (-1, 22), (22, -1), (0, 65536), (70000, 70000), (-5, -5)] {
            assert_eq!(line(Protocol::Tcp, a, b, &["0.0.0.0/0"]), None, "{a}..{b}");
        }
        assert_eq!(line(Protocol::Icmp, -1, 3, &["0.0.0.0/0"]), None);
        assert_eq!(line(Protocol::Icmp, 256, -1, &["0.0.0.0/0"]), None);
    }

    #[test]
    fn icmp_type_and_code() {
        let l = |a, b| line(Protocol::Icmp, a, b, &["192.0.2.7"]).unwrap();
        assert_eq!(l(-1, -1), "ip saddr 192.0.2.7 meta l4proto icmp accept");
        assert_eq!(l(8, -1), "ip saddr 192.0.2.7 icmp type 8 accept");
        assert_eq!(l(3, 4), "ip saddr 192.0.2.7 icmp type 3 icmp code 4 accept");
    }

    #[test]
    fn all_and_numbered_protocols_ignore_ports() {
        assert_eq!(line(Protocol::All, 5, 1, &["0.0.0.0/0"]).unwrap(), "ip saddr 0.0.0.0/0 accept");
        assert_eq!(
            line(Protocol::Number(47), -1, -1, &["10.0.0.1"]).unwrap(),
            "ip saddr 10.0.0.1 meta l4proto 47 accept"
        );
    }

    #[test]
    fn no_sources_means_no_rule() {
        assert_eq!(line(Protocol::All, -1, -1, &[]), None);
    }

    #[test]
    fn sources_are_sorted_deduplicated_and_nested_networks_dropped() {
        let got = line(Protocol::All, -1, -1, &["10.0.0.9", "10.0.0.0/24", "192.0.2.1", "10.0.0.7/32", "192.0.2.1"]);
        assert_eq!(got.unwrap(), "ip saddr { 10.0.0.0/24, 192.0.2.1 } accept");
        let everyone = line(Protocol::All, -1, -1, &["10.0.0.1", "0.0.0.0/0"]);
        assert_eq!(everyone.unwrap(), "ip saddr 0.0.0.0/0 accept");
    }

    #[test]
    fn a_tap_listed_twice_is_refused() {
        let port = PortRules {
            tap: TapName::new("kta").unwrap(),
            private_ip: Ipv4Addr::new(10, 0, 0, 5),
            public_ip: None,
            ingress: vec![],
        };
        let rules = Ruleset { ports: vec![port.clone(), port] };
        assert!(matches!(rules.validate(), Err(NetError::DuplicatePort(t)) if t == "kta"));
    }

    #[test]
    fn masks() {
        assert_eq!(mask(0), 0);
        assert_eq!(mask(24), 0xffff_ff00);
        assert_eq!(mask(32), u32::MAX);
    }
}
