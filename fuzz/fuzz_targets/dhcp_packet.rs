//! What a guest sends to port 67: parsed or refused, never a panic; a request for the lease's
//! MAC gets an answer the parser of a client could read back (same xid, same MAC).
#![no_main]

use std::net::Ipv4Addr;

use kiln_net::dhcp::packet::{parse_request, respond};
use kiln_net::Lease;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_request(data) else { return };
    let lease = Lease {
        mac: request.chaddr,
        ip: Ipv4Addr::new(172, 31, 0, 4),
        prefix_len: 20,
        gateway: Ipv4Addr::new(172, 31, 0, 1),
        hostname: "ip-172-31-0-4".into(),
    };
    if let Some(reply) = respond(&request, &lease) {
        let p = &reply.packet;
        assert!(p.len() >= 240, "a reply carries the fixed header and the magic cookie");
        assert_eq!(p[0], 2, "BOOTREPLY");
        assert_eq!(&p[4..8], &request.xid.to_be_bytes());
        assert_eq!(&p[28..34], &request.chaddr);
    }
});
