//! DHCP messages (RFC 2131, options from RFC 2132): reading a client's BOOTREQUEST and
//! writing the server's reply. Pure functions over bytes, so every case is unit-tested.
//!
//! The server is authoritative for exactly one lease per link: the guest's static address. It
//! offers that address to the guest's MAC, acknowledges a request for it (option 50 while
//! selecting or rebooting, `ciaddr` while renewing), refuses a request for anything else with a
//! NAK so a guest holding a stale lease starts over, and ignores every other MAC.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::rules::mask;

/// The port servers listen on.
pub const SERVER_PORT: u16 = 67;
/// The port clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// How long a lease lasts. Addresses are static, so this only sets how often guests renew.
pub const LEASE_SECONDS: u32 = 86_400;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Where the options start: the fixed BOOTP header (236 bytes) plus the magic cookie.
const OPTIONS_OFFSET: usize = 240;
/// BOOTP's minimum message size; some clients drop anything shorter.
const MIN_REPLY_LEN: usize = 300;

const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_HOST_NAME: u8 = 12;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_RENEWAL_TIME: u8 = 58;
const OPT_REBINDING_TIME: u8 = 59;
const OPT_END: u8 = 255;

/// A DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Client looking for servers.
    Discover,
    /// Server offering an address.
    Offer,
    /// Client asking for (or renewing) an address.
    Request,
    /// Client saying the address is already in use.
    Decline,
    /// Server confirming the address.
    Ack,
    /// Server refusing the request.
    Nak,
    /// Client giving the address up.
    Release,
    /// Client with an address asking only for configuration.
    Inform,
}

impl MessageType {
    fn from_code(code: u8) -> Option<MessageType> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }

    /// The option 53 value.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
        }
    }
}

/// What a client's message says, as far as this server cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Option 53.
    pub message_type: MessageType,
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// Flags (the broadcast bit), echoed in the reply.
    pub flags: u16,
    /// The client's current address, when it has one (renewing, rebinding, informing).
    pub ciaddr: Ipv4Addr,
    /// The relay agent's address; zero on the guest's own link.
    pub giaddr: Ipv4Addr,
    /// The client's MAC.
    pub chaddr: [u8; 6],
    /// Option 50: the address asked for.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54: the server the client chose.
    pub server_id: Option<Ipv4Addr>,
}

/// Why a datagram on port 67 is not a request this server can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the fixed header and magic cookie.
    #[error("{0} bytes is too short for a DHCP message")]
    TooShort(usize),
    /// `op` is not BOOTREQUEST.
    #[error("not a BOOTREQUEST")]
    NotARequest,
    /// Not Ethernet with 6-byte addresses.
    #[error("hardware type is not Ethernet")]
    NotEthernet,
    /// A BOOTP message without DHCP's magic cookie.
    #[error("no DHCP magic cookie")]
    NoMagicCookie,
    /// An option runs past the end of the message.
    #[error("option {0} is truncated")]
    TruncatedOption(u8),
    /// No option 53, or one with a length other than 1.
    #[error("no message type option")]
    NoMessageType,
    /// Option 53 holds an unknown value.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
}

/// Reads a client's message.
pub fn parse_request(packet: &[u8]) -> Result<Request, ParseError> {
    if packet.len() < OPTIONS_OFFSET {
        return Err(ParseError::TooShort(packet.len()));
    }
    if packet[0] != BOOTREQUEST {
        return Err(ParseError::NotARequest);
    }
    if packet[1] != HTYPE_ETHERNET || packet[2] != 6 {
        return Err(ParseError::NotEthernet);
    }
    if packet[236..240] != MAGIC_COOKIE {
        return Err(ParseError::NoMagicCookie);
    }
    let ipv4 = |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    let mut chaddr = [0; 6];
    chaddr.copy_from_slice(&packet[28..34]);

    let mut message_type = None;
    let mut requested_ip = None;
    let mut server_id = None;
    let mut at = OPTIONS_OFFSET;
    while at < packet.len() {
        let code = packet[at];
        match code {
            OPT_PAD => {
                at += 1;
                continue;
            }
            OPT_END => break,
            _ => {}
        }
        let len = *packet.get(at + 1).ok_or(ParseError::TruncatedOption(code))? as usize;
        let value = packet.get(at + 2..at + 2 + len).ok_or(ParseError::TruncatedOption(code))?;
        let addr = || <[u8; 4]>::try_from(value).ok().map(Ipv4Addr::from);
        match code {
            OPT_MESSAGE_TYPE => match value {
                [t] => message_type = Some(MessageType::from_code(*t).ok_or(ParseError::UnknownMessageType(*t))?),
                _ => return Err(ParseError::NoMessageType),
            },
            OPT_REQUESTED_IP => requested_ip = addr(),
            OPT_SERVER_ID => server_id = addr(),
            _ => {}
        }
        at += 2 + len;
    }

    Ok(Request {
        message_type: message_type.ok_or(ParseError::NoMessageType)?,
        xid: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        flags: u16::from_be_bytes([packet[10], packet[11]]),
        ciaddr: ipv4(12),
        giaddr: ipv4(24),
        chaddr,
        requested_ip,
        server_id,
    })
}

/// The one address a link's guest gets, and what it needs to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The guest NIC's MAC; requests from any other MAC are ignored.
    pub mac: [u8; 6],
    /// The guest's address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length (option 1).
    pub prefix_len: u8,
    /// The subnet's gateway: router (option 3) and server identifier (option 54).
    pub gateway: Ipv4Addr,
    /// The guest's host name (option 12); omitted when empty.
    pub hostname: String,
}

/// A reply to send, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its option 53.
    pub message_type: MessageType,
    /// `255.255.255.255:68`, or `ciaddr:68` for a client that already has its address.
    pub destination: SocketAddrV4,
    /// The UDP payload.
    pub packet: Vec<u8>,
}

/// The reply to `request` on a link whose only lease is `lease`, or `None` when the server
/// stays silent (another MAC, another server chosen, or a message that needs no answer).
pub fn respond(request: &Request, lease: &Lease) -> Option<Reply> {
    if request.chaddr != lease.mac {
        return None;
    }
    match request.message_type {
        MessageType::Discover => Some(reply(MessageType::Offer, request, lease)),
        MessageType::Request => {
            if request.server_id.is_some_and(|chosen| chosen != lease.gateway) {
                return None;
            }
            let has_address = !request.ciaddr.is_unspecified();
            let wanted = request.requested_ip.or(has_address.then_some(request.ciaddr));
            let kind = if wanted == Some(lease.ip) { MessageType::Ack } else { MessageType::Nak };
            Some(reply(kind, request, lease))
        }
        MessageType::Inform if request.ciaddr == lease.ip => Some(reply(MessageType::Ack, request, lease)),
        // Release and decline change nothing for a static lease; the rest are server messages.
        _ => None,
    }
}

fn reply(kind: MessageType, request: &Request, lease: &Lease) -> Reply {
    let nak = kind == MessageType::Nak;
    // INFORM's ACK carries configuration but no address or lease (RFC 2131 §3.4).
    let grants_lease = !nak && request.message_type != MessageType::Inform;

    let mut p = vec![0u8; OPTIONS_OFFSET];
    p[0] = BOOTREPLY;
    p[1] = HTYPE_ETHERNET;
    p[2] = 6;
    p[4..8].copy_from_slice(&request.xid.to_be_bytes());
    p[10..12].copy_from_slice(&request.flags.to_be_bytes());
    if kind == MessageType::Ack {
        p[12..16].copy_from_slice(&request.ciaddr.octets());
    }
    if grants_lease {
        p[16..20].copy_from_slice(&lease.ip.octets());
    }
    if !nak {
        p[20..24].copy_from_slice(&lease.gateway.octets());
    }
    p[24..28].copy_from_slice(&request.giaddr.octets());
    p[28..34].copy_from_slice(&request.chaddr);
    p[236..240].copy_from_slice(&MAGIC_COOKIE);

    let mut option = |code: u8, value: &[u8]| {
        p.push(code);
        p.push(value.len() as u8);
        p.extend_from_slice(value);
    };
    option(OPT_MESSAGE_TYPE, &[kind.code()]);
    option(OPT_SERVER_ID, &lease.gateway.octets());
    if grants_lease {
        option(OPT_LEASE_TIME, &LEASE_SECONDS.to_be_bytes());
        option(OPT_RENEWAL_TIME, &(LEASE_SECONDS / 2).to_be_bytes());
        option(OPT_REBINDING_TIME, &(LEASE_SECONDS / 8 * 7).to_be_bytes());
    }
    if !nak {
        option(OPT_SUBNET_MASK, &mask(lease.prefix_len.min(32)).to_be_bytes());
        option(OPT_ROUTER, &lease.gateway.octets());
        let name = lease.hostname.as_bytes();
        if !name.is_empty() {
            option(OPT_HOST_NAME, &name[..name.len().min(255)]);
        }
    }
    p.push(OPT_END);
    if p.len() < MIN_REPLY_LEN {
        p.resize(MIN_REPLY_LEN, OPT_PAD);
    }

    // RFC 2131 §4.1: a NAK is always broadcast; a client with an address gets a unicast, which
    // matters for clients that renew on a socket bound to their address (systemd-networkd).
    let to = if !nak && !request.ciaddr.is_unspecified() { request.ciaddr } else { Ipv4Addr::BROADCAST };
    Reply { message_type: kind, destination: SocketAddrV4::new(to, CLIENT_PORT), packet: p }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x4b, 0x4c, 0x00, 0x00, 0x05];
    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn lease() -> Lease {
        Lease { mac: MAC, ip: IP, prefix_len: 20, gateway: GW, hostname: "ip-10-0-1-5".into() }
    }

    /// A client message built byte by byte, the way udhcpc lays it out.
    fn client_packet(kind: u8, mac: [u8; 6], ciaddr: Ipv4Addr, options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = vec![0u8; 236];
        p[0] = 1;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        p[8..10].copy_from_slice(&3u16.to_be_bytes());
        p[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
        p[12..16].copy_from_slice(&ciaddr.octets());
        p[28..34].copy_from_slice(&mac);
        p.extend_from_slice(&[99, 130, 83, 99]);
        p.extend_from_slice(&[53, 1, kind]);
        p.push(0); // a pad between options, which clients may send
        for (code, value) in options {
            p.push(*code);
            p.push(value.len() as u8);
            p.extend_from_slice(value);
        }
        p.push(255);
        p
    }

    fn discover() -> Vec<u8> {
        client_packet(1, MAC, Ipv4Addr::UNSPECIFIED, &[(55, &[1, 3, 6, 12, 15, 28, 42]), (57, &[2, 64])])
    }

    /// The options of a reply, in order, until END.
    fn options(reply: &[u8]) -> Vec<(u8, Vec<u8>)> {
        assert_eq!(reply[236..240], [99, 130, 83, 99]);
        let mut out = Vec::new();
        let mut at = 240;
        while reply[at] != 255 {
            let len = reply[at + 1] as usize;
            out.push((reply[at], reply[at + 2..at + 2 + len].to_vec()));
            at += 2 + len;
        }
        assert!(reply[at + 1..].iter().all(|&b| b == 0), "only padding after END");
        out
    }

    fn answer(packet: &[u8]) -> Option<Reply> {
        respond(&parse_request(packet).unwrap(), &lease())
    }

    #[test]
    fn a_discover_parses() {
        let req = parse_request(&discover()).unwrap();
        assert_eq!(
            req,
            Request {
                message_type: MessageType::Discover,
                xid: 0xdead_beef,
                flags: 0x8000,
                ciaddr: Ipv4Addr::UNSPECIFIED,
                giaddr: Ipv4Addr::UNSPECIFIED,
                chaddr: MAC,
                requested_ip: None,
                server_id: None,
            }
        );
    }

    #[test]
    fn discover_gets_an_offer_with_everything_udhcpc_needs() {
        let reply = answer(&discover()).unwrap();
        assert_eq!(reply.message_type, MessageType::Offer);
        assert_eq!(reply.destination, "255.255.255.255:68".parse().unwrap());
        let p = &reply.packet;
        assert_eq!(p.len(), 300);
        assert_eq!(p[..4], [2, 1, 6, 0], "BOOTREPLY, Ethernet");
        assert_eq!(p[4..8], 0xdead_beef_u32.to_be_bytes(), "xid echoed");
        assert_eq!(p[10..12], [0x80, 0], "flags echoed");
        assert_eq!(p[12..16], [0; 4], "ciaddr");
        assert_eq!(p[16..20], IP.octets(), "yiaddr");
        assert_eq!(p[20..24], GW.octets(), "siaddr");
        assert_eq!(p[28..34], MAC, "chaddr");
        assert_eq!(
            options(p),
            vec![
                (53, vec![2]),
                (54, GW.octets().to_vec()),
                (51, 86_400u32.to_be_bytes().to_vec()),
                (58, 43_200u32.to_be_bytes().to_vec()),
                (59, 75_600u32.to_be_bytes().to_vec()),
                (1, vec![255, 255, 240, 0]),
                (3, GW.octets().to_vec()),
                (12, b"ip-10-0-1-5".to_vec()),
            ]
        );
    }

    #[test]
    fn selecting_request_for_the_offered_address_is_acked() {
        let req = client_packet(3, MAC, Ipv4Addr::UNSPECIFIED, &[(50, &IP.octets()), (54, &GW.octets())]);
        let reply = answer(&req).unwrap();
        assert_eq!(reply.message_type, MessageType::Ack);
        assert_eq!(reply.destination, "255.255.255.255:68".parse().unwrap());
        assert_eq!(reply.packet[16..20], IP.octets());
        let opts = options(&reply.packet);
        assert_eq!(opts[0], (53, vec![5]));
        assert!(opts.iter().any(|(c, v)| *c == 51 && v == &86_400u32.to_be_bytes()));
    }

    #[test]
    fn renewing_request_by_ciaddr_is_acked_by_unicast() {
        let reply = answer(&client_packet(3, MAC, IP, &[])).unwrap();
        assert_eq!(reply.message_type, MessageType::Ack);
        assert_eq!(reply.destination, SocketAddrV4::new(IP, 68));
        assert_eq!(reply.packet[12..16], IP.octets(), "ciaddr echoed");
        assert_eq!(reply.packet[16..20], IP.octets());
    }

    #[test]
    fn request_for_another_address_is_nakked_by_broadcast() {
        let other = Ipv4Addr::new(10, 0, 1, 99);
        for req in [
            client_packet(3, MAC, Ipv4Addr::UNSPECIFIED, &[(50, &other.octets())]),
            client_packet(3, MAC, other, &[]),
            client_packet(3, MAC, Ipv4Addr::UNSPECIFIED, &[]),
        ] {
            let reply = answer(&req).unwrap();
            assert_eq!(reply.message_type, MessageType::Nak);
            assert_eq!(reply.destination, "255.255.255.255:68".parse().unwrap());
            assert_eq!(reply.packet[12..24], [0; 12], "no addresses in a NAK");
            assert_eq!(options(&reply.packet), vec![(53, vec![6]), (54, GW.octets().to_vec())]);
        }
    }

    #[test]
    fn request_naming_another_server_is_ignored() {
        let req = client_packet(3, MAC, Ipv4Addr::UNSPECIFIED, &[(50, &IP.octets()), (54, &[10, 0, 0, 2])]);
        assert_eq!(answer(&req), None);
    }

    #[test]
    fn unknown_macs_are_ignored() {
        let stranger = [0x02, 0, 0, 0, 0, 0x99];
        assert_eq!(answer(&client_packet(1, stranger, Ipv4Addr::UNSPECIFIED, &[])), None);
        assert_eq!(answer(&client_packet(3, stranger, Ipv4Addr::UNSPECIFIED, &[(50, &IP.octets())])), None);
    }

    #[test]
    fn inform_gets_configuration_without_a_lease() {
        let reply = answer(&client_packet(8, MAC, IP, &[])).unwrap();
        assert_eq!(reply.message_type, MessageType::Ack);
        assert_eq!(reply.destination, SocketAddrV4::new(IP, 68));
        assert_eq!(reply.packet[16..20], [0; 4], "no yiaddr");
        let codes: Vec<u8> = options(&reply.packet).into_iter().map(|(c, _)| c).collect();
        assert_eq!(codes, vec![53, 54, 1, 3, 12]);
    }

    #[test]
    fn release_and_decline_need_no_answer() {
        assert_eq!(answer(&client_packet(7, MAC, IP, &[])), None);
        assert_eq!(answer(&client_packet(4, MAC, Ipv4Addr::UNSPECIFIED, &[(50, &IP.octets())])), None);
    }

    #[test]
    fn empty_hostname_is_left_out() {
        let lease = Lease { hostname: String::new(), ..lease() };
        let reply = respond(&parse_request(&discover()).unwrap(), &lease).unwrap();
        assert!(options(&reply.packet).iter().all(|(c, _)| *c != 12));
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let good = discover();
        assert_eq!(parse_request(&good[..200]), Err(ParseError::TooShort(200)));
        let mut reply = good.clone();
        reply[0] = 2;
        assert_eq!(parse_request(&reply), Err(ParseError::NotARequest));
        let mut bootp = good.clone();
        bootp[236] = 0;
        assert_eq!(parse_request(&bootp), Err(ParseError::NoMagicCookie));
        let mut token_ring = good.clone();
        token_ring[1] = 6;
        assert_eq!(parse_request(&token_ring), Err(ParseError::NotEthernet));
        let mut truncated = good[..good.len() - 1].to_vec();
        truncated.truncate(truncated.len() - 1); // cut inside option 57
        assert_eq!(parse_request(&truncated), Err(ParseError::TruncatedOption(57)));
        let no_type = client_packet(1, MAC, Ipv4Addr::UNSPECIFIED, &[]);
        let mut no_type = no_type[..240].to_vec();
        no_type.push(255);
        assert_eq!(parse_request(&no_type), Err(ParseError::NoMessageType));
        assert_eq!(
            parse_request(&client_packet(42, MAC, Ipv4Addr::UNSPECIFIED, &[])),
            Err(ParseError::UnknownMessageType(42))
        );
    }

    #[test]
    fn options_may_end_without_an_end_marker() {
        let mut p = discover();
        p.pop();
        assert_eq!(parse_request(&p).unwrap().message_type, MessageType::Discover);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            /// Whatever a guest sends, parsing and answering return; they never panic.
            #[test]
            fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
                if let Ok(request) = parse_request(&bytes) {
                    let _ = respond(&request, &lease());
                }
            }

            /// A valid header followed by arbitrary option bytes: the same, and a message that
            /// parses is answered only for the lease's MAC.
            #[test]
            fn arbitrary_options_after_a_valid_header(
                kind in 0u8..12,
                mac in any::<[u8; 6]>(),
                tail in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut p = client_packet(kind, mac, Ipv4Addr::UNSPECIFIED, &[]);
                p.pop();
                p.extend_from_slice(&tail);
                if let Ok(request) = parse_request(&p) {
                    prop_assert_eq!(request.chaddr, mac);
                    prop_assert_eq!(request.xid, 0xdead_beef);
                    if let Some(reply) = respond(&request, &lease()) {
                        prop_assert_eq!(mac, MAC);
                        prop_assert!(reply.packet.len() >= 240 && reply.packet.len() <= 576);
                    }
                }
            }

            /// Well-formed requests read back as built.
            #[test]
            fn well_formed_requests_round_trip(
                kind in 1u8..=8,
                mac in any::<[u8; 6]>(),
                ciaddr in any::<[u8; 4]>(),
                requested in proptest::option::of(any::<[u8; 4]>()),
            ) {
                let options: Vec<(u8, &[u8])> = requested.iter().map(|r| (50u8, &r[..])).collect();
                let p = client_packet(kind, mac, Ipv4Addr::from(ciaddr), &options);
                let request = parse_request(&p).unwrap();
                prop_assert_eq!(request.message_type.code(), kind);
                prop_assert_eq!(request.chaddr, mac);
                prop_assert_eq!(request.ciaddr, Ipv4Addr::from(ciaddr));
                prop_assert_eq!(request.requested_ip, requested.map(Ipv4Addr::from));
            }
        }
    }
}
