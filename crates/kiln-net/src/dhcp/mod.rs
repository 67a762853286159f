//! Kiln's DHCP server: every guest gets its one static address, its gateway and its host name.
//!
//! [`packet`] is the pure part (parsing a request, choosing and building the reply); [`server`]
//! runs it on a socket per TAP. Replies carry what busybox `udhcpc` insists on (message type,
//! server identifier, lease time, subnet mask, router) plus the host name and renewal times;
//! no DNS server is offered, since the host runs none.

pub mod packet;
pub mod server;

pub use packet::{Lease, LEASE_SECONDS};
pub use server::DhcpServer;
