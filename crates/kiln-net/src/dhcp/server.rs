//! The DHCP server's runtime: one thread that owns a socket per TAP.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use super::packet::{parse_request, respond, Lease, SERVER_PORT};
use crate::tap::TapName;
use crate::NetError;

/// How long the thread sleeps when no socket had anything to read. DHCP clients wait seconds
/// for an answer, so this costs nothing noticeable and keeps the thread nearly idle.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// At most this many datagrams per TAP per round, so one chatty guest cannot starve the others.
const BURST: usize = 16;

/// The DHCP server for every TAP on the host.
///
/// Each TAP gets its own UDP socket on `0.0.0.0:67`, bound to the device (`SO_BINDTODEVICE`)
/// so a request is answered with that TAP's lease and replies leave through that TAP. All
/// sockets are nonblocking and owned by one thread, which polls them and takes
/// [`add`](DhcpServer::add) and [`remove`](DhcpServer::remove) as messages, so no lock is shared
/// with the caller. Dropping the server stops the thread and closes the sockets.
pub struct DhcpServer {
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

enum Command {
    Add(TapName, UdpSocket, Lease),
    Remove(TapName),
    Stop,
}

impl DhcpServer {
    /// Starts the thread, serving no TAP yet.
    pub fn start() -> Result<DhcpServer, NetError> {
        let (commands, inbox) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kiln-dhcp".into())
            .spawn(move || serve(inbox))
            .map_err(|source| NetError::Io { path: "thread kiln-dhcp".into(), source })?;
        Ok(DhcpServer { commands, thread: Some(thread) })
    }

    /// Serves `lease` on `tap` from now on, replacing any lease the TAP had. The TAP must exist:
    /// its socket is opened here, so a failure is reported to the caller.
    pub fn add(&self, tap: &TapName, lease: Lease) -> Result<(), NetError> {
        let socket = open_socket(tap).map_err(|source| NetError::DhcpSocket { tap: tap.to_string(), source })?;
        self.commands.send(Command::Add(tap.clone(), socket, lease)).map_err(|_| NetError::DhcpStopped)
    }

    /// Stops serving `tap` and closes its socket. Removing a TAP that is not served is a no-op.
    pub fn remove(&self, tap: &TapName) -> Result<(), NetError> {
        self.commands.send(Command::Remove(tap.clone())).map_err(|_| NetError::DhcpStopped)
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for DhcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhcpServer").finish_non_exhaustive()
    }
}

/// A UDP socket on `0.0.0.0:67` that only sees `tap`'s packets and may broadcast.
fn open_socket(tap: &TapName) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Every TAP's socket binds the same port; the device binding keeps them apart.
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(tap.as_str().as_bytes()))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT)).into())?;
    Ok(socket.into())
}

struct Port {
    socket: UdpSocket,
    lease: Lease,
    /// Whether a receive error has been logged since the last success: log once, not per poll.
    failing: bool,
}

fn serve(inbox: Receiver<Command>) {
    let mut ports: BTreeMap<TapName, Port> = BTreeMap::new();
    let mut buf = [0u8; 1500];
    loop {
        let mut busy = false;
        for (tap, port) in &mut ports {
            for _ in 0..BURST {
                match port.socket.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        busy = true;
                        port.failing = false;
                        answer(tap, port, &buf[..len], from);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        if !port.failing {
                            warn!(%tap, error = %e, "DHCP receive failed");
                            port.failing = true;
                        }
                        break;
                    }
                }
            }
        }

        // Sleep only when there was nothing to read; a command wakes the thread at once.
        let wait = if busy { Duration::ZERO } else { POLL_INTERVAL };
        match inbox.recv_timeout(wait) {
            Ok(command) => {
                let mut next = Some(command);
                while let Some(command) = next {
                    if !obey(&mut ports, command) {
                        return;
                    }
                    next = inbox.try_recv().ok();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Applies one command; `false` means stop.
fn obey(ports: &mut BTreeMap<TapName, Port>, command: Command) -> bool {
    match command {
        Command::Add(tap, socket, lease) => {
            info!(%tap, ip = %lease.ip, "DHCP lease added");
            ports.insert(tap, Port { socket, lease, failing: false });
        }
        Command::Remove(tap) => {
            if ports.remove(&tap).is_some() {
                info!(%tap, "DHCP lease removed");
            }
        }
        Command::Stop => return false,
    }
    true
}

fn answer(tap: &TapName, port: &Port, datagram: &[u8], from: SocketAddr) {
    // Guests control these bytes: anything odd is debug-level, never a warning per packet.
    let request = match parse_request(datagram) {
        Ok(request) => request,
        Err(e) => {
            debug!(%tap, %from, error = %e, "ignoring a datagram on the DHCP port");
            return;
        }
    };
    let Some(reply) = respond(&request, &port.lease) else {
        debug!(%tap, kind = ?request.message_type, "DHCP request not for this server");
        return;
    };
    debug!(%tap, request = ?request.message_type, reply = ?reply.message_type, to = %reply.destination, "DHCP reply");
    if let Err(e) = port.socket.send_to(&reply.packet, reply.destination) {
        // The client retries; a reply lost now costs it a few seconds.
        debug!(%tap, error = %e, "DHCP reply not sent");
    }
}
