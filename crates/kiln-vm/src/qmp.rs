//! A client for QEMU's machine protocol (QMP) over a unix socket.
//!
//! It is blocking (`std::os::unix::net`) rather than tokio, on purpose: the socket has exactly
//! one owner (the VM's owner task), commands are rare and answered in milliseconds, and std
//! sockets give a read timeout per call that is easy to reason about. The owner can run it on a
//! blocking thread; no runtime is needed to use or test it.
//!
//! # Protocol
//!
//! QEMU sends a greeting (`{"QMP": {"version": ..., "capabilities": [...]}}`); the client answers
//! `qmp_capabilities` to leave negotiation mode. After that each command
//! `{"execute": ..., "arguments": ..., "id": N}` gets one reply, `{"return": ..., "id": N}` or
//! `{"error": {"class": ..., "desc": ...}, "id": N}`, and asynchronous events
//! (`{"event": ..., "data": ..., "timestamp": ...}`) may arrive at any moment in between. Every
//! message is one line of JSON.
//!
//! Events read while waiting for a reply are kept in order and handed out by
//! [`QmpClient::next_event`]. Every command carries a fresh `id`, so a late reply to a command
//! that timed out is recognised and dropped instead of being taken as the next command's answer.
//!
//! Every wait has a deadline ([`QmpClient::timeout`]) that covers the whole message, not each
//! `read`: a peer that trickles bytes cannot hold the caller forever.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

/// How long [`QmpClient::connect`] gives each step unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A greeting or reply larger than this is a broken peer, not a message worth buffering.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// What can go wrong talking QMP.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be connected, read or written.
    #[error("QMP socket I/O: {0}")]
    Io(#[from] io::Error),
    /// Nothing complete arrived before the deadline.
    #[error("QMP: no {waiting_for} within {after:?}")]
    Timeout {
        /// What was awaited: `greeting`, `reply to query-status`, ...
        waiting_for: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// QEMU closed the socket (it exited, or another client took the monitor).
    #[error("QMP: connection closed while waiting for {waiting_for}")]
    Closed {
        /// What was awaited.
        waiting_for: String,
    },
    /// The peer sent something that is not QMP.
    #[error("QMP protocol violation: {0}")]
    Protocol(String),
    /// QEMU refused a command.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command that failed.
        command: String,
        /// QEMU's error class (`GenericError`, `CommandNotFound`, `DeviceNotFound`, ...).
        class: String,
        /// QEMU's human-readable description.
        desc: String,
    },
}

/// An asynchronous QMP event (`SHUTDOWN`, `STOP`, `RESUME`, `BLOCK_JOB_COMPLETED`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The event's data, `null` when it has none.
    pub data: Value,
    /// When QEMU emitted it: seconds and microseconds since the Unix epoch.
    pub timestamp: (i64, i64),
}

/// QEMU's run state, as `query-status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Started with `-S` and not yet continued.
    Prelaunch,
    /// Stopped by `stop` (or by QEMU, e.g. on an I/O error with `werror=stop`).
    Paused,
    /// The guest's CPUs run.
    Running,
    /// The guest shut down and QEMU was told not to exit (`-no-shutdown`).
    Shutdown,
    /// The accelerator failed (e.g. a KVM emulation failure); QEMU stays up but the guest is dead.
    InternalError,
    /// The guest kernel reported a panic.
    GuestPanicked,
    /// Any other state QEMU names (`io-error`, `inmigrate`, `watchdog`, ...).
    Other(String),
}

impl RunState {
    fn parse(status: &str) -> RunState {
        match status {
            "prelaunch" => RunState::Prelaunch,
            "paused" => RunState::Paused,
            "running" => RunState::Running,
            "shutdown" => RunState::Shutdown,
            "internal-error" => RunState::InternalError,
            "guest-panicked" => RunState::GuestPanicked,
            other => RunState::Other(other.to_owned()),
        }
    }
}

/// The answer to `query-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The run state.
    pub state: RunState,
    /// Whether the guest's CPUs are running.
    pub running: bool,
}

/// The greeting's version, to log which QEMU is on the other end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QemuVersion {
    /// `major.minor.micro` as QEMU reports it.
    pub qemu: VersionTriple,
    /// The distribution's package suffix, e.g. `Debian 1:10.0.2+ds-2`.
    pub package: String,
}

/// A QEMU version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

/// A negotiated QMP connection.
#[derive(Debug)]
pub struct QmpClient {
    stream: UnixStream,
    /// Bytes read but not yet split into lines; kept across timeouts so no message is torn.
    pending: Vec<u8>,
    events: VecDeque<Event>,
    next_id: u64,
    timeout: Duration,
    version: QemuVersion,
}

/// One message from QEMU, classified.
enum Message {
    Reply { id: Option<Value>, result: Result<Value, (String, String)> },
    Event(Event),
}

impl QmpClient {
    /// Connects to `socket`, reads the greeting and negotiates capabilities, each read waiting
    /// at most `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<QmpClient, QmpError> {
        let stream = UnixStream::connect(socket)?;
        stream.set_write_timeout(Some(timeout))?;
        let mut client = QmpClient {
            stream,
            pending: Vec::new(),
            events: VecDeque::new(),
            next_id: 0,
            timeout,
            version: QemuVersion { qemu: VersionTriple { major: 0, minor: 0, micro: 0 }, package: String::new() },
        };
        let deadline = Instant::now() + timeout;
        let greeting = client.read_message_value(deadline, "greeting")?;
        let qmp = greeting
            .get("QMP")
            .ok_or_else(|| QmpError::Protocol(format!("expected a QMP greeting, got {greeting}")))?;
        client.version = serde_json::from_value(qmp.get("version").cloned().unwrap_or(Value::Null))
            .map_err(|e| QmpError::Protocol(format!("greeting without a valid version: {e}")))?;
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// The QEMU version the greeting announced.
    pub fn version(&self) -> &QemuVersion {
        &self.version
    }

    /// How long each command or event wait may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long each command or event wait may take (e.g. longer for block jobs).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), QmpError> {
        self.stream.set_write_timeout(Some(timeout))?;
        self.timeout = timeout;
        Ok(())
    }

    /// Runs `command` with optional `arguments` and returns its `return` value. Events that
    /// arrive meanwhile are kept for [`QmpClient::next_event`].
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = serde_json::to_vec(&request).map_err(|e| QmpError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.stream.write_all(&line)?;

        let deadline = Instant::now() + self.timeout;
        let waiting_for = format!("reply to {command}");
        loop {
            match self.read_message(deadline, &waiting_for)? {
                Message::Event(event) => self.events.push_back(event),
                Message::Reply { id: Some(reply_id), result } if reply_id == json!(id) => {
                    return result.map_err(|(class, desc)| QmpError::Command {
                        command: command.to_owned(),
                        class,
                        desc,
                    });
                }
                Message::Reply { id: reply_id, .. } => {
                    tracing::debug!(?reply_id, expected = id, "dropping a QMP reply to an earlier command");
                }
            }
        }
    }

    /// The next event: a buffered one at once, otherwise the next to arrive within `timeout`.
    /// `Ok(None)` when none arrived in time.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, QmpError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_message(deadline, "event") {
                Ok(Message::Event(event)) => return Ok(Some(event)),
                Ok(Message::Reply { id, .. }) => {
                    tracing::debug!(?id, "dropping a QMP reply to an earlier command");
                }
                Err(QmpError::Timeout { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// `query-status`: QEMU's run state.
    pub fn query_status(&mut self) -> Result<Status, QmpError> {
        let value = self.execute("query-status", None)?;
        let status = value
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| QmpError::Protocol(format!("query-status without a status: {value}")))?;
        let running = value.get("running").and_then(Value::as_bool).unwrap_or(false);
        Ok(Status { state: RunState::parse(status), running })
    }

    /// `system_powerdown`: presses the ACPI power button; the guest decides whether to obey.
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// `stop`: pauses the guest's CPUs.
    pub fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).map(drop)
    }

    /// `cont`: resumes the guest's CPUs (also starts a VM launched with `-S`).
    pub fn cont(&mut self) -> Result<(), QmpError> {
        self.execute("cont", None).map(drop)
    }

    /// `quit`: QEMU exits at once, without asking the guest. QEMU may close the socket before
    /// its reply is read; that still means it is going away, so it counts as success. The caller
    /// must still reap the process.
    pub fn quit(mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io(e))
                if e.kind() == io::ErrorKind::BrokenPipe || e.kind() == io::ErrorKind::ConnectionReset =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn read_message(&mut self, deadline: Instant, waiting_for: &str) -> Result<Message, QmpError> {
        let value = self.read_message_value(deadline, waiting_for)?;
        classify(value)
    }

    /// Reads one line of JSON, waiting until `deadline` at most.
    fn read_message_value(&mut self, deadline: Instant, waiting_for: &str) -> Result<Value, QmpError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                return serde_json::from_slice(text)
                    .map_err(|e| QmpError::Protocol(format!("{e}: {}", String::from_utf8_lossy(text))));
            }
            if self.pending.len() > MAX_LINE {
                return Err(QmpError::Protocol(format!("a message longer than {MAX_LINE} bytes")));
            }
            let timeout_error = || QmpError::Timeout { waiting_for: waiting_for.to_owned(), after: self.timeout };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timeout_error());
            }
            self.stream.set_read_timeout(Some(remaining))?;
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(QmpError::Closed { waiting_for: waiting_for.to_owned() }),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(timeout_error());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(QmpError::Closed { waiting_for: waiting_for.to_owned() });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn classify(mut value: Value) -> Result<Message, QmpError> {
    if let Some(name) = value.get("event").and_then(Value::as_str) {
        let name = name.to_owned();
        let data = value.get_mut("data").map(Value::take).unwrap_or(Value::Null);
        let ts = value.get("timestamp");
        let field = |key: &str| ts.and_then(|t| t.get(key)).and_then(Value::as_i64).unwrap_or(0);
        return Ok(Message::Event(Event { name, data, timestamp: (field("seconds"), field("microseconds")) }));
    }
    let id = value.get_mut("id").map(Value::take);
    if let Some(result) = value.get_mut("return") {
        return Ok(Message::Reply { id, result: Ok(result.take()) });
    }
    if let Some(error) = value.get("error") {
        let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        return Ok(Message::Reply { id, result: Err((text("class"), text("desc"))) });
    }
    Err(QmpError::Protocol(format!("neither a reply nor an event: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::thread::{self, JoinHandle};

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2"}, "capabilities": ["oob"]}}"#;

    /// The server side of one fake QMP connection.
    struct Peer {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
    }

    impl Peer {
        fn send(&mut self, line: &str) {
            self.writer.write_all(line.as_bytes()).unwrap();
            self.writer.write_all(b"\r\n").unwrap();
        }

        /// Reads one command and returns it.
        fn recv(&mut self) -> Value {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad command {line:?}: {e}"))
        }

        /// Expects `command`, and returns its id for the reply.
        fn expect(&mut self, command: &str) -> Value {
            let request = self.recv();
            assert_eq!(request["execute"], command, "{request}");
            request["id"].clone()
        }

        fn reply(&mut self, id: &Value, result: Value) {
            self.send(&json!({ "return": result, "id": id }).to_string());
        }

        /// Greets and accepts capability negotiation, as QEMU does.
        fn handshake(&mut self) {
            self.send(GREETING);
            let id = self.expect("qmp_capabilities");
            self.reply(&id, json!({}));
        }
    }

    /// A fake QMP server on a fresh socket, running `script` for the one connection it accepts.
    fn fake_server(
        script: impl FnOnce(Peer) + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf, JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let writer = stream.try_clone().unwrap();
            script(Peer { reader: BufReader::new(stream), writer });
        });
        (dir, path, handle)
    }

    fn event(name: &str) -> String {
        json!({ "event": name, "data": { "guest": false }, "timestamp": { "seconds": 1700000000, "microseconds": 5 } })
            .to_string()
    }

    #[test]
    fn handshake_reads_the_version() {
        let (_dir, path, server) = fake_server(|mut peer| peer.handshake());
        let client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(client.version().qemu, VersionTriple { major: 10, minor: 0, micro: 2 });
        assert_eq!(client.version().package, "Debian 1:10.0.2+ds-2");
        server.join().unwrap();
    }

    #[test]
    fn events_interleaved_with_a_reply_are_kept_in_order() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let id = peer.expect("query-status");
            peer.send(&event("STOP"));
            peer.send(&event("RESUME"));
            peer.reply(&id, json!({ "status": "running", "singlestep": false, "running": true }));
            peer.send(&event("SHUTDOWN"));
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let status = client.query_status().unwrap();
        assert_eq!(status, Status { state: RunState::Running, running: true });
        let names: Vec<String> =
            (0..3).map(|_| client.next_event(Duration::from_secs(5)).unwrap().expect("an event").name).collect();
        assert_eq!(names, ["STOP", "RESUME", "SHUTDOWN"]);
        server.join().unwrap();
    }

    #[test]
    fn event_fields_are_parsed() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            peer.send(&event("SHUTDOWN"));
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let event = client.next_event(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(
            event,
            Event { name: "SHUTDOWN".into(), data: json!({ "guest": false }), timestamp: (1700000000, 5) }
        );
        server.join().unwrap();
    }

    #[test]
    fn execute_sends_arguments_and_returns_the_value() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let request = peer.recv();
            assert_eq!(request["execute"], "human-monitor-command");
            assert_eq!(request["arguments"], json!({ "command-line": "info version" }));
            peer.reply(&request["id"], json!("10.0.2\r\n"));
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let value = client.execute("human-monitor-command", Some(json!({ "command-line": "info version" }))).unwrap();
        assert_eq!(value, json!("10.0.2\r\n"));
        server.join().unwrap();
    }

    #[test]
    fn a_refused_command_is_a_typed_error() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let id = peer.expect("cont");
            let error = json!({ "error": { "class": "GenericError", "desc": "guest is dead" }, "id": id });
            peer.send(&error.to_string());
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        match client.cont() {
            Err(QmpError::Command { command, class, desc }) => {
                assert_eq!(
                    (command.as_str(), class.as_str(), desc.as_str()),
                    ("cont", "GenericError", "guest is dead")
                );
            }
            other => panic!("expected a command error, got {other:?}"),
        }
        server.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out_and_a_late_reply_is_not_misattributed() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let stop_id = peer.expect("stop");
            // No answer until the client gives up and sends its next command.
            let status_id = peer.expect("query-status");
            peer.reply(&stop_id, json!({}));
            peer.reply(&status_id, json!({ "status": "paused", "running": false }));
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        client.set_timeout(Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        assert!(matches!(client.stop(), Err(QmpError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(2));
        client.set_timeout(DEFAULT_TIMEOUT).unwrap();
        assert_eq!(client.query_status().unwrap().state, RunState::Paused);
        server.join().unwrap();
    }

    #[test]
    fn a_message_split_across_writes_is_reassembled() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let id = peer.expect("query-status");
            let reply = json!({ "return": { "status": "prelaunch", "running": false }, "id": id }).to_string();
            let (head, tail) = reply.split_at(reply.len() / 2);
            peer.writer.write_all(head.as_bytes()).unwrap();
            thread::sleep(Duration::from_millis(50));
            peer.writer.write_all(tail.as_bytes()).unwrap();
            peer.writer.write_all(b"\r\n").unwrap();
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        assert_eq!(client.query_status().unwrap(), Status { state: RunState::Prelaunch, running: false });
        server.join().unwrap();
    }

    #[test]
    fn next_event_without_events_returns_none_after_the_timeout() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            // Hold the connection open until the client hangs up.
            let mut rest = String::new();
            let _ = peer.reader.read_line(&mut rest);
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        let started = Instant::now();
        assert_eq!(client.next_event(Duration::from_millis(100)).unwrap(), None);
        assert!(started.elapsed() >= Duration::from_millis(100));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn quit_succeeds_when_qemu_closes_before_replying() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            peer.expect("quit");
            peer.send(&event("SHUTDOWN"));
        });
        let client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        client.quit().unwrap();
        server.join().unwrap();
    }

    #[test]
    fn system_powerdown_is_sent_and_acknowledged() {
        let (_dir, path, server) = fake_server(|mut peer| {
            peer.handshake();
            let id = peer.expect("system_powerdown");
            peer.reply(&id, json!({}));
            peer.send(&event("POWERDOWN"));
        });
        let mut client = QmpClient::connect(&path, DEFAULT_TIMEOUT).unwrap();
        client.system_powerdown().unwrap();
        assert_eq!(client.next_event(DEFAULT_TIMEOUT).unwrap().unwrap().name, "POWERDOWN");
        server.join().unwrap();
    }

    #[test]
    fn a_peer_that_is_not_qmp_is_refused() {
        let (_dir, path, server) = fake_server(|mut peer| peer.send(r#"{"hello": "world"}"#));
        assert!(matches!(QmpClient::connect(&path, DEFAULT_TIMEOUT), Err(QmpError::Protocol(_))));
        server.join().unwrap();
    }

    #[test]
    fn a_peer_that_never_greets_times_out() {
        let (_dir, path, server) = fake_server(|peer| {
            thread::sleep(Duration::from_millis(300));
            drop(peer);
        });
        let result = QmpClient::connect(&path, Duration::from_millis(100));
        assert!(
            matches!(result, Err(QmpError::Timeout { ref waiting_for, .. }) if waiting_for == "greeting"),
            "{result:?}"
        );
        server.join().unwrap();
    }
}
