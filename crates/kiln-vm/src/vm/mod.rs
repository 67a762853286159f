//! The per-VM owner: one thread holds the QEMU child, its QMP connection and the lifecycle state;
//! everyone else holds a [`VmHandle`], sends it commands and reads state snapshots.
//!
//! Why one owner: start, stop, reboot, terminate and the watchdog all touch the same process and
//! socket. With a single owner they are serialised by construction, so "stop while a reboot is
//! half done" or "two threads reaping one child" cannot happen, and a command that does not fit
//! the state is refused by one table ([`plan`]) instead of by scattered checks.
//!
//! The owner is a plain std thread rather than a tokio task: the QMP client is blocking by design
//! (see [`crate::qmp`]), child processes are reaped with `try_wait`, and one thread per VM costs
//! nothing next to the QEMU process it watches. Callers on a runtime can use the handle's
//! non-blocking calls directly and [`VmHandle::wait_for`] through `spawn_blocking`.
//!
//! Commands are answered as soon as their immediate step is done (QEMU spawned, power button
//! pressed, reset sent), with the state change they caused, as EC2 answers `StopInstances` with
//! `stopping`. The slow parts (QEMU coming up, the guest shutting down) are phases the owner's
//! loop watches between commands, so a forced stop or a terminate is never stuck behind them.
//!
//! # Watchdog
//!
//! Every [`VmConfig::watchdog_interval`] the owner checks that QEMU is alive and answers
//! `query-status` within [`VmConfig::qmp_timeout`]. A QEMU that exited on its own ends in
//! [`VmState::Stopped`] with a `Server.*` reason (or `Client.InstanceInitiatedShutdown` when the
//! guest powered off), never left `running`. A QEMU that stops answering, or reports
//! `internal-error` or `guest-panicked` (which it does instead of exiting, e.g. on PVM hosts), is
//! killed with SIGKILL and reported the same way. Guest-initiated shutdowns follow
//! [`VmConfig::on_guest_shutdown`], like EC2's `InstanceInitiatedShutdownBehavior`.

mod owner;
mod state;

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::argv::{SpecError, VmSpec, QEMU_SYSTEM};
use crate::qmp::QmpError;

pub use state::{plan, Action, Refused, StateReason, VmCommand, VmState};

/// What the instance does when its guest powers itself off (EC2's
/// `InstanceInitiatedShutdownBehavior`); also applied when QEMU dies on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestShutdownBehavior {
    /// The instance becomes `stopped` and can be started again.
    #[default]
    Stop,
    /// The instance becomes `terminated`.
    Terminate,
}

/// How the owner runs and supervises QEMU.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The emulator to run; [`QEMU_SYSTEM`] looked up on `PATH` by default.
    pub qemu_binary: PathBuf,
    /// How long QEMU may take from being spawned to reporting the guest running. This bounds
    /// the `pending` state; it is not the guest OS's boot time, which QEMU cannot see.
    pub boot_timeout: Duration,
    /// How long a stop waits for the guest to honour the power button before forcing it off.
    pub stop_timeout: Duration,
    /// How long a QMP command may go unanswered before QEMU is declared wedged.
    pub qmp_timeout: Duration,
    /// How often the watchdog checks a running QEMU.
    pub watchdog_interval: Duration,
    /// Where QEMU's stderr goes; `None` discards it. A file rather than a pipe, so a chatty
    /// QEMU can never block on a full pipe nobody reads.
    pub stderr_log: Option<PathBuf>,
    /// What a guest-initiated shutdown (or QEMU dying on its own) leads to.
    pub on_guest_shutdown: GuestShutdownBehavior,
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            qemu_binary: PathBuf::from(QEMU_SYSTEM),
            boot_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(60),
            qmp_timeout: Duration::from_secs(5),
            watchdog_interval: Duration::from_millis(500),
            stderr_log: None,
            on_guest_shutdown: GuestShutdownBehavior::Stop,
        }
    }
}

/// A snapshot of an instance's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// The lifecycle state.
    pub state: VmState,
    /// Why it is in that state, when there is something to say (stops, terminations, failures).
    pub reason: Option<StateReason>,
    /// When it entered that state (EC2's `stateTransitionReason` time).
    pub since: SystemTime,
    /// The QEMU process id while one exists, for operators and diagnostics.
    pub qemu_pid: Option<u32>,
}

/// The state change a command caused (EC2's `InstanceStateChange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The state before the command.
    pub previous: VmState,
    /// The state the command moved the instance into, as EC2 reports it (`stopping` for a
    /// stop). Later states follow as the owner finishes the work; see [`VmHandle::wait_for`].
    pub current: VmState,
}

/// What can go wrong driving a VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The command does not fit the current state (EC2's `IncorrectInstanceState`).
    #[error("{} is not allowed while the instance is {current}", requested.action())]
    IncorrectState {
        /// The state the instance was in.
        current: VmState,
        /// The command refused.
        requested: VmCommand,
    },
    /// The spec cannot be turned into a QEMU command line.
    #[error("invalid VM spec: {0}")]
    Spec(#[from] SpecError),
    /// QEMU refused or did not answer a command the caller is waiting on (e.g. `system_reset`).
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// [`VmHandle::wait_for`] ran out of time.
    #[error("instance did not become {wanted} within {after:?}; it is {current}")]
    Timeout {
        /// The state awaited.
        wanted: VmState,
        /// The state when time ran out.
        current: VmState,
        /// The time waited.
        after: Duration,
    },
    /// The owner thread could not be started.
    #[error("could not start the VM's owner thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A QMP command was sent to an instance that has no running QEMU.
    #[error("QMP command {command} needs a running instance; it is {current}")]
    NotRunning {
        /// The state the instance was in.
        current: VmState,
        /// The QMP command refused.
        command: String,
    },
    /// A lifecycle QMP command was sent through [`VmHandle::qmp`] (see [`RESERVED_QMP_COMMANDS`]).
    #[error("QMP command {0} is reserved to the VM's owner")]
    ReservedQmpCommand(String),
    /// The owner thread is gone without the instance being terminated (it panicked).
    #[error("the VM's owner thread has exited")]
    OwnerGone,
}

impl From<Refused> for VmError {
    fn from(refused: Refused) -> VmError {
        VmError::IncorrectState { current: refused.current, requested: refused.requested }
    }
}

/// QMP commands that would change the lifecycle behind the owner's back; they go through
/// [`VmHandle`]'s lifecycle calls instead.
pub const RESERVED_QMP_COMMANDS: [&str; 7] =
    ["qmp_capabilities", "quit", "stop", "cont", "system_powerdown", "system_reset", "system_wakeup"];

/// A request to the owner and where its answer goes.
enum Request {
    Lifecycle { command: VmCommand, reply: Sender<Result<StateChange, VmError>> },
    Qmp { command: String, arguments: Option<Value>, reply: Sender<Result<Value, VmError>> },
}

/// The snapshot the owner publishes and handles read, with a condvar for [`VmHandle::wait_for`].
struct Shared {
    status: Mutex<VmStatus>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VmStatus> {
        // A poisoned lock only means a reader panicked while holding it; the status itself is
        // always written whole, so it is still consistent.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cloneable handle to one VM's owner. Dropping the last handle terminates the VM, so a
/// forgotten instance never leaves an orphaned QEMU behind.
#[derive(Clone)]
pub struct VmHandle {
    requests: Sender<Request>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for VmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmHandle").field("status", &self.status()).finish()
    }
}

impl VmHandle {
    /// `StartInstances`: relaunches QEMU from `stopped`.
    pub fn start(&self) -> Result<StateChange, VmError> {
        self.send(VmCommand::Start)
    }

    /// `StopInstances`: presses the power button and forces the VM off after the stop timeout,
    /// or at once with `force`. Returns as soon as the instance is `stopping`.
    pub fn stop(&self, force: bool) -> Result<StateChange, VmError> {
        self.send(VmCommand::Stop { force })
    }

    /// `RebootInstances`: a hard reset of a running VM.
    pub fn reboot(&self) -> Result<StateChange, VmError> {
        self.send(VmCommand::Reboot)
    }

    /// `TerminateInstances`: kills QEMU; the instance ends `terminated` for good.
    pub fn terminate(&self) -> Result<StateChange, VmError> {
        self.send(VmCommand::Terminate)
    }

    /// The current state, its reason and when it was entered.
    pub fn state(&self) -> (VmState, Option<StateReason>, SystemTime) {
        let status = self.status();
        (status.state, status.reason, status.since)
    }

    /// The whole current snapshot, including QEMU's pid.
    pub fn status(&self) -> VmStatus {
        self.shared.lock().clone()
    }

    /// Waits until the instance is in `wanted`, for at most `timeout`. Gives up early once the
    /// instance is terminated, since nothing follows that.
    pub fn wait_for(&self, wanted: VmState, timeout: Duration) -> Result<VmStatus, VmError> {
        let deadline = Instant::now() + timeout;
        let mut status = self.shared.lock();
        loop {
            if status.state == wanted {
                return Ok(status.clone());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || status.state == VmState::Terminated {
                return Err(VmError::Timeout { wanted, current: status.state, after: timeout });
            }
            status = self.shared.changed.wait_timeout(status, remaining).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Runs a QMP command on the running QEMU through its owner (e.g. `query-block`,
    /// `blockdev-snapshot-sync`), since the owner holds the only QMP connection. Lifecycle
    /// commands are refused ([`RESERVED_QMP_COMMANDS`]) so the state cannot be changed behind the
    /// owner's back.
    pub fn qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        if RESERVED_QMP_COMMANDS.contains(&command) {
            return Err(VmError::ReservedQmpCommand(command.to_owned()));
        }
        self.owner_qmp(command, arguments)
    }

    /// Pauses the guest's CPUs (QMP `stop`, which also drains and flushes its disks), runs `f`,
    /// and lets the guest continue. While `f` runs the disk images are quiescent, so they can be
    /// read as a crash-consistent point in time without stopping the instance (`CreateImage`
    /// with `NoReboot`). The guest resumes even if `f` fails.
    pub fn frozen<T>(&self, f: impl FnOnce() -> T) -> Result<T, VmError> {
        self.owner_qmp("stop", None)?;
        let result = f();
        self.owner_qmp("cont", None)?;
        Ok(result)
    }

    fn owner_qmp(&self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        let (reply, answer) = mpsc::channel();
        let request = Request::Qmp { command: command.to_owned(), arguments, reply };
        if self.requests.send(request).is_ok() {
            if let Ok(result) = answer.recv() {
                return result;
            }
        }
        Err(VmError::NotRunning { current: self.shared.lock().state, command: command.to_owned() })
    }

    fn send(&self, command: VmCommand) -> Result<StateChange, VmError> {
        let (reply, answer) = mpsc::channel();
        if self.requests.send(Request::Lifecycle { command, reply }).is_ok() {
            if let Ok(result) = answer.recv() {
                return result;
            }
        }
        // The owner exits once the instance is terminated; every command is refused from then on,
        // which is exactly what the state table says for `terminated`.
        let current = self.shared.lock().state;
        match current {
            VmState::Terminated => Err(VmError::IncorrectState { current, requested: command }),
            _ => Err(VmError::OwnerGone),
        }
    }
}

/// Starts the owner of a new VM and launches QEMU; the instance begins `pending`.
///
/// The spec is validated here, so a bad one is an error now rather than a failed instance
/// later. `start_paused` is forced on: the owner connects QMP before the guest runs a single
/// instruction, so no event is missed, and then continues it.
pub fn spawn_vm(mut spec: VmSpec, config: VmConfig) -> Result<VmHandle, VmError> {
    spec.start_paused = true;
    let command = crate::argv::build(&spec)?;
    let shared = Arc::new(Shared {
        status: Mutex::new(VmStatus {
            state: VmState::Pending,
            reason: None,
            since: SystemTime::now(),
            qemu_pid: None,
        }),
        changed: Condvar::new(),
    });
    let (requests, inbox) = mpsc::channel();
    let owner = owner::Owner::new(spec, command, config, Arc::clone(&shared), inbox);
    let name = owner.thread_name();
    std::thread::Builder::new().name(name).spawn(move || owner.run()).map_err(VmError::Thread)?;
    Ok(VmHandle { requests, shared })
}
