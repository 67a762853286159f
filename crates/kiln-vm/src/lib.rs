//! Kiln's hypervisor driver: everything that knows QEMU's system emulator.
//!
//! The parts:
//!
//! - [`accel`]: whether this host gets KVM or TCG, decided by a pure function over a view of
//!   `/dev/kvm`, `/sys/module/kvm_pvm` and `/proc/cpuinfo`, with a reason for the log.
//! - [`argv`]: the `qemu-system-x86_64` command line of a VM, built by a pure function from a
//!   typed [`VmSpec`] and pinned by snapshot tests.
//! - [`qmp`]: a small QMP client (greeting, capabilities, commands with ids, buffered events,
//!   a deadline on every wait).
//! - [`vm`]: the per-VM owner thread that runs QEMU and holds the lifecycle state, driven through
//!   a cloneable [`VmHandle`].
//!
//! # The lifecycle
//!
//! An instance moves through EC2's states:
//!
//! ```text
//! pending ──► running ──► stopping ──► stopped ──► (start) ──► pending
//!    │           │                        │
//!    └───────────┴────► shutting-down ◄───┘
//!                             │
//!                             ▼
//!                         terminated
//! ```
//!
//! Each VM has exactly one owner ([`spawn_vm`]): it spawns QEMU from [`argv::build`]
//! with `start_paused`, connects [`QmpClient`] before the guest runs, sends `cont`, and from then
//! on is the only holder of the child process and the QMP socket. Everyone else sends it
//! commands; a command that does not fit the current state gets a typed error instead of a
//! race. Stopping is `system_powerdown` with a deadline, then `quit`; every boot also has a
//! wall-clock watchdog, because a guest that QEMU cannot run (a stock kernel on PVM, for one)
//! leaves QEMU alive in `internal-error` rather than exiting.
//!
//! # Design
//!
//! - **argv is data.** Building the command line is separated from running it, so every flag
//!   is reviewed through a snapshot test and the runner stays a few lines. The builder refuses
//!   specs QEMU would misread (relative paths, over-long socket paths and serials, bad node
//!   names) rather than letting QEMU fail later with a less helpful message.
//! - **QMP is the only control channel.** No human monitor, no signals for anything but a last
//!   resort kill: QMP answers are structured and its events (`SHUTDOWN`, `STOP`, `RESUME`) are
//!   what drives the state machine.
//! - **No KVM unless it is real.** PVM hosts expose `/dev/kvm` but cannot boot ordinary
//!   kernels; see [`accel`].

pub mod accel;
pub mod argv;
pub mod qmp;
pub mod vm;

pub use accel::{detect, detect_host, Accel, AccelChoice};
pub use argv::{
    build, Disk, DiskFormat, FwCfgFile, HostForward, MacAddr, Machine, Nic, QemuCommand, SpecError, VmSpec,
};
pub use qmp::{Event, QmpClient, QmpError, RunState, Status};
pub use vm::{
    spawn_vm, GuestShutdownBehavior, StateChange, StateReason, VmCommand, VmConfig, VmError, VmHandle, VmState,
    VmStatus,
};
