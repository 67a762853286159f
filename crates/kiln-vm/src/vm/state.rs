//! The lifecycle as a pure function: which command fits which state, and what the owner must do.
//!
//! Keeping this free of processes and sockets lets every cell of the table be tested directly;
//! the owner only carries out the [`Action`] it is given.

use std::fmt;

/// An instance's lifecycle state, with EC2's names and codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmState {
    /// QEMU is being launched; the guest has not run yet.
    Pending,
    /// QEMU reports the guest's CPUs running.
    Running,
    /// A stop was asked for: the guest was sent the power button and has until the stop timeout.
    Stopping,
    /// No QEMU process; the instance can be started again.
    Stopped,
    /// The instance is being destroyed.
    ShuttingDown,
    /// Final: no QEMU process and no way back.
    Terminated,
}

impl VmState {
    /// EC2's state name (`instanceState.name`).
    pub fn name(self) -> &'static str {
        match self {
            VmState::Pending => "pending",
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Stopped => "stopped",
            VmState::ShuttingDown => "shutting-down",
            VmState::Terminated => "terminated",
        }
    }

    /// EC2's state code (`instanceState.code`, the low byte).
    pub fn code(self) -> u16 {
        match self {
            VmState::Pending => 0,
            VmState::Running => 16,
            VmState::ShuttingDown => 32,
            VmState::Terminated => 48,
            VmState::Stopping => 64,
            VmState::Stopped => 80,
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an instance is in its state, as EC2's `stateReason` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateReason {
    /// The reason code, e.g. `Client.UserInitiatedShutdown` or `Server.InternalError`.
    pub code: String,
    /// The message shown to users, e.g. `Client.UserInitiatedShutdown: User initiated shutdown`.
    pub message: String,
}

impl StateReason {
    /// A stop or terminate the user asked for.
    pub fn user_initiated() -> StateReason {
        StateReason::new("Client.UserInitiatedShutdown", "User initiated shutdown")
    }

    /// The guest powered itself off.
    pub fn instance_initiated() -> StateReason {
        StateReason::new("Client.InstanceInitiatedShutdown", "Instance initiated shutdown")
    }

    /// Something on the host side failed; `detail` says what, without host paths or secrets,
    /// because users see it.
    pub fn internal_error(detail: &str) -> StateReason {
        StateReason::new("Server.InternalError", detail)
    }

    fn new(code: &str, detail: &str) -> StateReason {
        StateReason { code: code.to_owned(), message: format!("{code}: {detail}") }
    }
}

/// A lifecycle command, named after the EC2 action that sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmCommand {
    /// `StartInstances`.
    Start,
    /// `StopInstances`; `force` skips the guest's chance to shut down cleanly.
    Stop {
        /// Power off at once instead of pressing the power button and waiting.
        force: bool,
    },
    /// `RebootInstances`.
    Reboot,
    /// `TerminateInstances`.
    Terminate,
}

impl VmCommand {
    /// The EC2 action name, for error messages.
    pub fn action(self) -> &'static str {
        match self {
            VmCommand::Start => "StartInstances",
            VmCommand::Stop { .. } => "StopInstances",
            VmCommand::Reboot => "RebootInstances",
            VmCommand::Terminate => "TerminateInstances",
        }
    }
}

/// What the owner must do to carry out an accepted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the command is already satisfied (EC2 answers these with success, too).
    None,
    /// Launch QEMU.
    Launch,
    /// Press the power button and wait up to the stop timeout before forcing.
    PowerDown,
    /// End QEMU now (`quit`, then a kill if it lingers).
    PowerOff,
    /// `system_reset`.
    Reset,
    /// Kill QEMU and release everything: the instance is being terminated.
    Destroy,
}

/// A command that does not fit the current state (EC2's `IncorrectInstanceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The state the instance was in.
    pub current: VmState,
    /// The command refused.
    pub requested: VmCommand,
}

/// Decides `command` in `state`: the state to enter and the action to take, or a refusal.
///
/// The choices follow EC2: starting a running instance or stopping a stopped one succeeds
/// without doing anything; a pending instance cannot be stopped (it is bounded by the boot
/// timeout instead); a forced stop while stopping cuts the wait short; terminating is possible
/// from any live state, and asking again while it happens is not an error.
pub fn plan(state: VmState, command: VmCommand) -> Result<(VmState, Action), Refused> {
    use VmCommand::*;
    use VmState::*;
    let planned = match (state, command) {
        (Stopped, Start) => (Pending, Action::Launch),
        (Pending | Running, Start) => (state, Action::None),

        (Running, Stop { force: false }) => (Stopping, Action::PowerDown),
        (Running | Stopping, Stop { force: true }) => (Stopping, Action::PowerOff),
        (Stopping | Stopped, Stop { force: false }) | (Stopped, Stop { force: true }) => (state, Action::None),

        (Running, Reboot) => (Running, Action::Reset),

        (Pending | Running | Stopping | Stopped, Terminate) => (ShuttingDown, Action::Destroy),
        (ShuttingDown, Terminate) => (ShuttingDown, Action::None),

        _ => return Err(Refused { current: state, requested: command }),
    };
    Ok(planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmCommand::*;
    use VmState::*;

    const ALL_STATES: [VmState; 6] = [Pending, Running, Stopping, Stopped, ShuttingDown, Terminated];
    const ALL_COMMANDS: [VmCommand; 5] = [Start, Stop { force: false }, Stop { force: true }, Reboot, Terminate];

    #[test]
    fn names_and_codes_are_ec2s() {
        let table: Vec<(&str, u16)> = ALL_STATES.iter().map(|s| (s.name(), s.code())).collect();
        assert_eq!(
            table,
            [
                ("pending", 0),
                ("running", 16),
                ("stopping", 64),
                ("stopped", 80),
                ("shutting-down", 32),
                ("terminated", 48)
            ]
        );
    }

    #[test]
    fn start_from_stopped_launches() {
        assert_eq!(plan(Stopped, Start), Ok((Pending, Action::Launch)));
    }

    #[test]
    fn start_while_pending_or_running_is_a_no_op() {
        assert_eq!(plan(Pending, Start), Ok((Pending, Action::None)));
        assert_eq!(plan(Running, Start), Ok((Running, Action::None)));
    }

    #[test]
    fn start_while_stopping_or_going_away_is_refused() {
        for state in [Stopping, ShuttingDown, Terminated] {
            assert_eq!(plan(state, Start), Err(Refused { current: state, requested: Start }));
        }
    }

    #[test]
    fn stop_from_running_presses_the_power_button_unless_forced() {
        assert_eq!(plan(Running, Stop { force: false }), Ok((Stopping, Action::PowerDown)));
        assert_eq!(plan(Running, Stop { force: true }), Ok((Stopping, Action::PowerOff)));
    }

    #[test]
    fn a_forced_stop_while_stopping_cuts_the_wait_short() {
        assert_eq!(plan(Stopping, Stop { force: true }), Ok((Stopping, Action::PowerOff)));
        assert_eq!(plan(Stopping, Stop { force: false }), Ok((Stopping, Action::None)));
    }

    #[test]
    fn stop_when_stopped_is_a_no_op() {
        for force in [false, true] {
            assert_eq!(plan(Stopped, Stop { force }), Ok((Stopped, Action::None)));
        }
    }

    #[test]
    fn stop_while_pending_or_going_away_is_refused() {
        for state in [Pending, ShuttingDown, Terminated] {
            for force in [false, true] {
                assert!(plan(state, Stop { force }).is_err(), "{state} stop force={force}");
            }
        }
    }

    #[test]
    fn reboot_is_only_for_running_instances() {
        for state in ALL_STATES {
            let expected = if state == Running {
                Ok((Running, Action::Reset))
            } else {
                Err(Refused { current: state, requested: Reboot })
            };
            assert_eq!(plan(state, Reboot), expected, "{state}");
        }
    }

    #[test]
    fn terminate_works_from_every_live_state() {
        for state in [Pending, Running, Stopping, Stopped] {
            assert_eq!(plan(state, Terminate), Ok((ShuttingDown, Action::Destroy)), "{state}");
        }
        assert_eq!(plan(ShuttingDown, Terminate), Ok((ShuttingDown, Action::None)));
    }

    #[test]
    fn terminated_refuses_everything() {
        for command in ALL_COMMANDS {
            assert_eq!(plan(Terminated, command), Err(Refused { current: Terminated, requested: command }));
        }
    }

    #[test]
    fn no_command_leads_straight_to_a_settled_state_it_did_not_start_in() {
        // Stopped and Terminated are reached only by the owner once QEMU is gone, never by
        // planning alone: otherwise a state could claim "no process" while one still runs.
        for state in ALL_STATES {
            for command in ALL_COMMANDS {
                if let Ok((next, _)) = plan(state, command) {
                    if next != state {
                        assert!(!matches!(next, Stopped | Terminated), "{state} x {command:?} -> {next}");
                    }
                }
            }
        }
    }

    #[test]
    fn reasons_carry_ec2_codes_in_their_messages() {
        let reason = StateReason::internal_error("the VM process exited unexpectedly");
        assert_eq!(reason.code, "Server.InternalError");
        assert_eq!(reason.message, "Server.InternalError: the VM process exited unexpectedly");
        assert_eq!(StateReason::user_initiated().message, "Client.UserInitiatedShutdown: User initiated shutdown");
    }
}
