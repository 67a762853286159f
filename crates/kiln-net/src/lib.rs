//! Kiln's host-side networking for VMs: each instance's TAP device, its routes, the DHCP that
//! hands it its address, and the nftables ruleset that enforces security groups.
//!
//! Kiln runs as root on a Linux host; everything here is done with `ip`, `nft` and
//! `/proc/sys`, never through a shell. [`probe`] says whether that is possible, so the caller
//! can fall back to QEMU's user networking where it is not.
//!
//! # Topology: routed TAPs, no bridge
//!
//! Every instance gets a TAP device named [`TAP_PREFIX`]`…` (at most 15 bytes, see
//! [`TapName`]); QEMU attaches to it with `-netdev tap,ifname=<tap>,script=no,downscript=no`.
//! There is no bridge: the host is the router for every guest, so every packet between two
//! guests, or between a guest and the host, passes the host's netfilter hooks, where the
//! security groups are enforced. On each TAP ([`HostNet::add_port`]):
//!
//! - the subnet's gateway address as `<gw>/32`. The same address sits on many TAPs at once;
//!   each guest sees its gateway on its own link;
//! - `<private_ip>/32 dev <tap> src <gw>`, and the same for the public IP if there is one, so
//!   the host reaches each guest through its own TAP;
//! - `proxy_arp`: a guest ARPing for another address of its subnet (another instance) gets
//!   the host's MAC, and the host routes the packet to the right TAP;
//! - IPv6 disabled: Kiln's guests are IPv4-only and the host should not talk to them, even
//!   link-local, behind the firewall's back.
//!
//! Private IPs are unique host-wide (the caller guarantees it), so /32 routes never clash.
//! [`HostNet::init`] adds `169.254.169.254/32` (the instance metadata address, [`IMDS_ADDR`]) to
//! `lo`, turns on `ip_forward` and installs the firewall.
//!
//! # The firewall
//!
//! One table, `inet kiln`, owned entirely by Kiln and always replaced as a whole in one
//! `nft -f -` transaction ([`render`] is the pure part, [`HostNet::apply`] runs it), so there
//! is never a moment with half a ruleset. Traffic never leaves the host: packets from a TAP to
//! any non-TAP interface are dropped. See [`rules`] for the chains.
//!
//! # DHCP
//!
//! [`DhcpServer`] answers on every TAP with the one static lease that TAP's guest may have
//! ([`dhcp`]): busybox `udhcpc` (Kiln's minimal image) and systemd-networkd both configure
//! themselves from it. Requests from any other MAC are ignored.

mod cmd;
pub mod dhcp;
mod host;
pub mod netns;
pub mod rules;
mod tap;

pub use dhcp::{DhcpServer, Lease};
pub use host::{probe, HostNet, PortConfig, Unavailable, Uplink};
pub use netns::Netns;
pub use rules::{render, IngressRule, Ipv4Cidr, PortRules, Protocol, Ruleset, IMDS_ADDR, TABLE, UPLINK_NS_IF};
pub use tap::{TapName, TAP_PREFIX};

/// What can go wrong while changing the host's network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A TAP name that is not ours or that Linux would refuse.
    #[error("invalid TAP name {name:?}: {reason}")]
    InvalidTapName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A port description that cannot be set up.
    #[error("invalid port {tap}: {reason}")]
    InvalidPort {
        /// The port's TAP.
        tap: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not an IPv4 CIDR (`a.b.c.d/n` or a bare address).
    #[error("invalid IPv4 CIDR {0:?}")]
    InvalidCidr(String),
    /// The same TAP appears twice in a ruleset.
    #[error("TAP {0} appears more than once in the ruleset")]
    DuplicatePort(String),
    /// A command could not be started at all (not installed, not executable).
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A file under `/proc` or `/sys` could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A DHCP socket could not be set up on a TAP.
    #[error("DHCP socket on {tap}: {source}")]
    DhcpSocket {
        /// The TAP.
        tap: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not a name `ip netns` and a file under `/run/netns` can carry.
    #[error("invalid network namespace name {0:?}")]
    InvalidNetns(String),
    /// The DHCP thread is gone (it panicked), so leases can no longer be changed.
    #[error("the DHCP server thread has stopped")]
    DhcpStopped,
}

/// FNV-1a (64-bit): names derived from it (namespaces, uplinks) are the same across builds and
/// platforms, unlike std's hasher.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
