//! The owner thread: carries out planned actions on the QEMU process and watches it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{
    plan, Action, GuestShutdownBehavior, Request, Shared, StateChange, StateReason, VmCommand, VmConfig, VmError,
    VmState,
};
use crate::argv::{QemuCommand, VmSpec};
use crate::qmp::{QmpClient, QmpError, RunState};

/// How often a pending or stopping VM is polled: QEMU comes up (or exits) within milliseconds to
/// a few hundred, and a slower poll would only add latency to those states.
const PENDING_POLL: Duration = Duration::from_millis(20);

/// How long QEMU gets to exit by itself after `quit`, or after the guest powered off, before it
/// is killed: both normally take milliseconds.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A live QEMU process. Dropping it kills (if still alive) and reaps the child and removes its
/// socket and pidfile, so no path out of the owner, a panic included, leaves a zombie, an orphan
/// or a stale socket behind.
struct Qemu {
    child: Child,
    qmp: Option<QmpClient>,
    socket: PathBuf,
    pidfile: PathBuf,
}

impl Qemu {
    /// Waits up to `timeout` for the child to exit by itself; reaps it if it did.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Whether a `SHUTDOWN` event from the guest is among the events QEMU sent, including those
    /// still in the socket after it exited. QEMU emits it (`guest: true`) before exiting on a
    /// guest power-off, which is what tells a clean power-off from a crash.
    fn guest_shut_down(&mut self) -> bool {
        let Some(qmp) = self.qmp.as_mut() else { return false };
        let mut seen = false;
        while let Ok(Some(event)) = qmp.next_event(Duration::from_millis(5)) {
            if event.name == "SHUTDOWN" && event.data.get("guest").and_then(Value::as_bool) == Some(true) {
                seen = true;
            }
        }
        seen
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.qmp = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // QEMU unlinks its socket on a clean exit but not when killed; a stale one would make
        // the next launch's connect attempts hit a dead socket.
        remove_if_present(&self.socket);
        remove_if_present(&self.pidfile);
    }
}

fn remove_if_present(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a leftover QEMU file");
        }
    }
}

/// Everything the owner thread holds.
pub(super) struct Owner {
    spec: VmSpec,
    command: QemuCommand,
    config: VmConfig,
    shared: Arc<Shared>,
    inbox: Receiver<Request>,
    state: VmState,
    qemu: Option<Qemu>,
    /// When the current phase gives up: the boot timeout in `pending`, the stop timeout in
    /// `stopping`.
    deadline: Option<Instant>,
}

impl Owner {
    pub(super) fn new(
        spec: VmSpec,
        command: QemuCommand,
        config: VmConfig,
        shared: Arc<Shared>,
        inbox: Receiver<Request>,
    ) -> Owner {
        Owner { spec, command, config, shared, inbox, state: VmState::Pending, qemu: None, deadline: None }
    }

    pub(super) fn thread_name(&self) -> String {
        format!("vm-{}", self.spec.name)
    }

    pub(super) fn run(mut self) {
        let span = tracing::info_span!("vm", name = %self.spec.name);
        let _entered = span.enter();
        self.launch();
        while self.state != VmState::Terminated {
            let wait = match self.state {
                VmState::Pending | VmState::Stopping => PENDING_POLL,
                _ => self.config.watchdog_interval,
            };
            match self.inbox.recv_timeout(wait) {
                // The caller may have given up waiting; the command happened regardless.
                Ok(Request::Lifecycle { command, reply }) => {
                    let _ = reply.send(self.handle(command));
                }
                Ok(Request::Qmp { command, arguments, reply }) => {
                    let _ = reply.send(self.pass_through(&command, arguments));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::info!("every handle dropped; terminating");
                    let _ = self.handle(VmCommand::Terminate);
                    break;
                }
            }
            self.tick();
        }
    }

    fn handle(&mut self, command: VmCommand) -> Result<StateChange, VmError> {
        let previous = self.state;
        let (next, action) = plan(previous, command)?;
        tracing::info!(?command, %previous, %next, ?action, "command accepted");
        match action {
            Action::None => {}
            Action::Launch => {
                self.set(VmState::Pending, None);
                self.launch();
            }
            Action::PowerDown => {
                self.set(VmState::Stopping, None);
                self.power_down();
            }
            Action::PowerOff => {
                self.set(VmState::Stopping, None);
                self.power_off();
                self.set(VmState::Stopped, Some(StateReason::user_initiated()));
            }
            Action::Reset => {
                let qmp = self
                    .qemu
                    .as_mut()
                    .and_then(|q| q.qmp.as_mut())
                    .ok_or(QmpError::Closed { waiting_for: "system_reset".into() })?;
                qmp.execute("system_reset", None)?;
            }
            Action::Destroy => {
                self.set(VmState::ShuttingDown, Some(StateReason::user_initiated()));
                self.qemu = None;
                self.set(VmState::Terminated, Some(StateReason::user_initiated()));
            }
        }
        Ok(StateChange { previous, current: next })
    }

    /// Runs a caller's QMP command. Only while running: in `pending` or `stopping` QEMU is
    /// between owners' steps, and a command there could race the launch or the shutdown.
    fn pass_through(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        let not_running = || VmError::NotRunning { current: self.state, command: command.to_owned() };
        if self.state != VmState::Running {
            return Err(not_running());
        }
        let qmp = self.qemu.as_mut().and_then(|q| q.qmp.as_mut()).ok_or_else(not_running)?;
        // A failure that means QEMU is gone or wedged is the watchdog's to act on, at the next tick.
        Ok(qmp.execute(command, arguments)?)
    }

    /// Spawns QEMU (paused; see `spawn_vm`) and enters the boot phase. QMP is connected by
    /// `tick_pending`, so the owner keeps answering commands while QEMU starts.
    fn launch(&mut self) {
        remove_if_present(&self.spec.qmp_socket);
        let stderr = match &self.config.stderr_log {
            Some(path) => match File::options().create(true).append(true).open(path) {
                Ok(file) => Stdio::from(file),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open the QEMU stderr log");
                    Stdio::null()
                }
            },
            None => Stdio::null(),
        };
        let spawn = || {
            Command::new(&self.config.qemu_binary)
                .args(&self.command.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
        };
        let spawned = match &self.command.netns {
            // A child starts in the network namespace of the thread that forks it, so QEMU is
            // spawned from a thread moved into the TAP's namespace; this thread stays put.
            Some(path) => File::open(path).and_then(|ns| {
                std::thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            use std::os::fd::AsFd;
                            rustix::thread::move_into_link_name_space(
                                ns.as_fd(),
                                Some(rustix::thread::LinkNameSpaceType::Network),
                            )?;
                            spawn()
                        })
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
            }),
            None => spawn(),
        };
        match spawned {
            Ok(child) => {
                tracing::info!(pid = child.id(), "QEMU spawned");
                self.qemu = Some(Qemu {
                    child,
                    qmp: None,
                    socket: self.spec.qmp_socket.clone(),
                    pidfile: self.spec.pidfile.clone(),
                });
                self.deadline = Some(Instant::now() + self.config.boot_timeout);
                self.publish_pid();
            }
            Err(e) => {
                tracing::error!(binary = %self.config.qemu_binary.display(), error = %e, "cannot spawn QEMU");
                self.set(VmState::Stopped, Some(StateReason::internal_error("the VM process could not be started")));
            }
        }
    }

    fn tick(&mut self) {
        match self.state {
            VmState::Pending => self.tick_pending(),
            VmState::Running => self.tick_running(),
            VmState::Stopping => self.tick_stopping(),
            VmState::Stopped | VmState::ShuttingDown | VmState::Terminated => {}
        }
    }

    fn tick_pending(&mut self) {
        let Some(qemu) = self.qemu.as_mut() else { return };
        if let Ok(Some(status)) = qemu.child.try_wait() {
            tracing::error!(%status, "QEMU exited during launch");
            return self.fail(StateReason::internal_error("the VM process exited during launch"));
        }
        if qemu.qmp.is_none() && qemu.socket.exists() {
            match QmpClient::connect(&qemu.socket, self.config.qmp_timeout) {
                Ok(client) => qemu.qmp = Some(client),
                Err(e) => tracing::debug!(error = %e, "QMP not ready yet"),
            }
        }
        if let Some(qmp) = qemu.qmp.as_mut() {
            match qmp.cont().and_then(|()| qmp.query_status()) {
                Ok(status) if status.running => {
                    self.deadline = None;
                    return self.set(VmState::Running, None);
                }
                Ok(status) => tracing::debug!(?status, "QEMU not running yet"),
                Err(e) => {
                    tracing::error!(error = %e, "QEMU refused to start the guest");
                    return self.fail(StateReason::internal_error("the VM could not be started"));
                }
            }
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::error!(timeout = ?self.config.boot_timeout, "QEMU did not start in time");
            self.fail(StateReason::internal_error("the VM did not start within the boot timeout"));
        }
    }

    /// The watchdog: QEMU must be alive, answer QMP in time and not report a dead guest.
    fn tick_running(&mut self) {
        let Some(qemu) = self.qemu.as_mut() else { return };
        if let Ok(Some(status)) = qemu.child.try_wait() {
            return self.exited_on_its_own(status);
        }
        let Some(qmp) = qemu.qmp.as_mut() else { return };
        match qmp.query_status() {
            Ok(status) => match status.state {
                RunState::InternalError | RunState::GuestPanicked => {
                    tracing::error!(?status, "QEMU reports the guest dead; killing it");
                    return self.fail(StateReason::internal_error("the VM stopped with an internal error"));
                }
                RunState::Shutdown => return self.guest_powered_off(),
                _ => {}
            },
            Err(QmpError::Timeout { .. }) => {
                tracing::error!(timeout = ?self.config.qmp_timeout, "QEMU stopped answering QMP; killing it");
                return self.fail(StateReason::internal_error("the VM process stopped responding"));
            }
            Err(e) => {
                // A closed socket means QEMU is on its way out; let the exit say why.
                tracing::warn!(error = %e, "QMP failed; waiting for QEMU to exit");
                return match qemu.wait_exit(self.config.qmp_timeout) {
                    Some(status) => self.exited_on_its_own(status),
                    None => self.fail(StateReason::internal_error("the VM process stopped responding")),
                };
            }
        }
        if qemu.guest_shut_down() {
            self.guest_powered_off();
        }
    }

    fn tick_stopping(&mut self) {
        let Some(qemu) = self.qemu.as_mut() else { return };
        let exited = matches!(qemu.child.try_wait(), Ok(Some(_)));
        let overdue = self.deadline.is_some_and(|d| Instant::now() >= d);
        if exited || overdue {
            if overdue && !exited {
                tracing::info!(timeout = ?self.config.stop_timeout, "guest ignored the power button; forcing off");
            }
            self.power_off();
            self.set(VmState::Stopped, Some(StateReason::user_initiated()));
        }
    }

    /// Presses the power button and starts the stop timeout; forces off at once if QEMU cannot
    /// even be asked.
    fn power_down(&mut self) {
        let pressed = self.qemu.as_mut().and_then(|q| q.qmp.as_mut()).map(|qmp| qmp.system_powerdown());
        match pressed {
            Some(Ok(())) => self.deadline = Some(Instant::now() + self.config.stop_timeout),
            other => {
                tracing::warn!(result = ?other, "cannot press the power button; forcing off");
                self.power_off();
                self.set(VmState::Stopped, Some(StateReason::user_initiated()));
            }
        }
    }

    /// Ends QEMU: `quit` first (it flushes disk caches), SIGKILL if it lingers; then reaps.
    fn power_off(&mut self) {
        self.deadline = None;
        let Some(mut qemu) = self.qemu.take() else { return };
        if let Some(qmp) = qemu.qmp.take() {
            if let Err(e) = qmp.quit() {
                tracing::warn!(error = %e, "QMP quit failed");
            }
        }
        if qemu.wait_exit(EXIT_GRACE).is_none() {
            tracing::warn!("QEMU still alive after quit; killing it");
        }
        drop(qemu);
    }

    /// QEMU exited without being asked to.
    fn exited_on_its_own(&mut self, status: ExitStatus) {
        let guest = self.qemu.as_mut().is_some_and(Qemu::guest_shut_down);
        if guest {
            return self.guest_powered_off();
        }
        tracing::error!(%status, "QEMU exited unexpectedly");
        self.qemu = None;
        let reason = StateReason::internal_error("the VM process exited unexpectedly");
        self.settle_after_guest_shutdown(reason);
    }

    /// The guest powered itself off: QEMU exits by itself (no `-no-shutdown`); make sure it did.
    fn guest_powered_off(&mut self) {
        tracing::info!("the guest powered off");
        if let Some(mut qemu) = self.qemu.take() {
            qemu.qmp = None;
            qemu.wait_exit(EXIT_GRACE);
        }
        self.settle_after_guest_shutdown(StateReason::instance_initiated());
    }

    fn settle_after_guest_shutdown(&mut self, reason: StateReason) {
        self.deadline = None;
        match self.config.on_guest_shutdown {
            GuestShutdownBehavior::Stop => self.set(VmState::Stopped, Some(reason)),
            GuestShutdownBehavior::Terminate => {
                self.set(VmState::ShuttingDown, Some(reason.clone()));
                self.set(VmState::Terminated, Some(reason));
            }
        }
    }

    /// Kills QEMU (if any) and leaves the instance stopped with `reason`, so it can be started
    /// again once whatever went wrong is fixed.
    fn fail(&mut self, reason: StateReason) {
        self.deadline = None;
        self.qemu = None;
        self.set(VmState::Stopped, Some(reason));
    }

    fn set(&mut self, state: VmState, reason: Option<StateReason>) {
        if state != self.state {
            match &reason {
                Some(reason) => tracing::info!(from = %self.state, to = %state, reason = %reason.message, "state"),
                None => tracing::info!(from = %self.state, to = %state, "state"),
            }
        }
        let mut status = self.shared.lock();
        // The transition time is when the state last changed, not when it was last restated
        // (a forced stop while already stopping).
        if state != self.state {
            status.since = SystemTime::now();
        }
        self.state = state;
        status.state = state;
        status.reason = reason;
        status.qemu_pid = self.qemu.as_ref().map(|q| q.child.id());
        drop(status);
        self.shared.changed.notify_all();
    }

    fn publish_pid(&self) {
        self.shared.lock().qemu_pid = self.qemu.as_ref().map(|q| q.child.id());
        self.shared.changed.notify_all();
    }
}
