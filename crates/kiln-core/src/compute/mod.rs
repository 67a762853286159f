//! Instances: `RunInstances`, `DescribeInstances`, `DescribeInstanceStatus`, `Start/Stop/Reboot/
//! TerminateInstances`, `GetConsoleOutput`, `Describe/ModifyInstanceAttribute`, `CreateImage`.
//!
//! The record (`i-…`) is the truth users see; the running VM is owned by [`runtime`]. A launch
//! commits the instance and its volumes as `pending` in one transaction, then prepares disks,
//! network and boot files and spawns QEMU on a worker thread. From then on the VM's owner
//! (`kiln_vm`) decides the lifecycle, and the runtime's reconciler writes every state change it
//! observes back into the record, so a guest that powers itself off, or a QEMU that dies, shows
//! in `DescribeInstances` within a fraction of a second.

mod create_image;
mod describe;
mod hotplug;
pub mod instance_types;
pub mod launch;
mod multi_snapshot;
pub mod net;
mod power;
mod reconciler;
pub mod runtime;

pub use launch::{AttributeValue, Reservation, StateChangeRow};
pub use net::{HostNetwork, Ingress, NoNetwork, Port, PortFilter};
pub use runtime::{Capacity, Compute, ComputeConfig, DEFAULT_CPU_ALLOCATION_RATIO, DEFAULT_RAM_ALLOCATION_RATIO};
