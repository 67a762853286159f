//! `StartInstances`, `StopInstances`, `RebootInstances`, `TerminateInstances`: the API side of
//! the lifecycle. Each decides under the runtime's lifecycle lock and hands the VM work to its
//! owner (`kiln_vm`); the reconciler in [`crate::compute::runtime`] records what follows.

use std::sync::Arc;

use kiln_types::{InstanceState, RootDeviceType};

use crate::compute::launch::{all_instances, StateChangeRow};
use crate::compute::runtime::vm_error;
use crate::error::{CoreError, CoreResult};
use crate::records::instance::InstanceData;
use crate::records::item::{self, Item};
use crate::{Ctx, Kiln};

impl Kiln {
    /// `StartInstances`.
    pub fn start_instances(self: &Arc<Self>, ctx: &Ctx, ids: &[String]) -> CoreResult<Vec<StateChangeRow>> {
        let runtime = self.compute.runtime()?;
        let instances = self.owned_instances(ctx, ids)?;
        let mut rows = Vec::new();
        let mut launch = Vec::new();
        {
            let _held = runtime.lock();
            for inst in &instances {
                let previous = (inst.data.state_code(), inst.data.state);
                match inst.data.state {
                    InstanceState::Stopped => {
                        let all = all_instances(self.store.read()?.as_mut())?;
                        if runtime.instances_that_fit(&all, inst.data.vcpus, inst.data.memory_mib) == 0 {
                            return Err(CoreError::InsufficientCapacity(format!(
                                "There is not enough capacity on this host to start {}.",
                                inst.id
                            )));
                        }
                        self.update_instance(&inst.id, |d| {
                            d.state = InstanceState::Pending;
                            d.state_reason = None;
                            d.transition_reason = String::new();
                            d.launch_time = crate::now();
                        })?;
                        rows.push(StateChangeRow {
                            instance_id: inst.id.clone(),
                            previous,
                            current: (0, InstanceState::Pending),
                        });
                        launch.push(inst.id.clone());
                    }
                    InstanceState::Pending | InstanceState::Running => {
                        rows.push(StateChangeRow { instance_id: inst.id.clone(), previous, current: previous })
                    }
                    other => {
                        return Err(CoreError::IncorrectInstanceState(format!(
                            "The instance '{}' is not in a state from which it can be started (it is {other}).",
                            inst.id
                        )))
                    }
                }
            }
        }
        for id in launch {
            self.start_launch(id, false);
        }
        Ok(rows)
    }

    /// `StopInstances`.
    pub fn stop_instances(&self, ctx: &Ctx, ids: &[String], force: bool) -> CoreResult<Vec<StateChangeRow>> {
        let runtime = self.compute.runtime()?;
        let instances = self.owned_instances(ctx, ids)?;
        for inst in &instances {
            if inst.data.root_device_type == RootDeviceType::InstanceStore {
                return Err(CoreError::Unsupported(format!(
                    "The instance '{}' does not have an 'ebs' root device type and cannot be stopped.",
                    inst.id
                )));
            }
        }
        let _held = runtime.lock();
        let mut rows = Vec::new();
        for inst in &instances {
            let previous = (inst.data.state_code(), inst.data.state);
            match (inst.data.state, runtime.handle(&inst.id)) {
                (InstanceState::Stopped, _) => {
                    rows.push(StateChangeRow { instance_id: inst.id.clone(), previous, current: previous })
                }
                (InstanceState::Running | InstanceState::Stopping | InstanceState::Pending, Some(handle)) => {
                    handle.stop(force).map_err(|e| vm_error(&inst.id, e))?;
                    self.record_state(&inst.id, InstanceState::Stopping, None)?;
                    rows.push(StateChangeRow {
                        instance_id: inst.id.clone(),
                        previous,
                        current: (64, InstanceState::Stopping),
                    });
                }
                (state, _) => {
                    return Err(CoreError::IncorrectInstanceState(format!(
                        "The instance '{}' is not in a state from which it can be stopped (it is {state}).",
                        inst.id
                    )))
                }
            }
        }
        Ok(rows)
    }

    /// `RebootInstances`: a hard reset, as EC2 does when the guest ignores the request.
    pub fn reboot_instances(&self, ctx: &Ctx, ids: &[String]) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let instances = self.owned_instances(ctx, ids)?;
        let _held = runtime.lock();
        for inst in &instances {
            match runtime.handle(&inst.id) {
                Some(handle) if inst.data.state == InstanceState::Running => {
                    handle.reboot().map_err(|e| vm_error(&inst.id, e))?;
                }
                _ => {
                    return Err(CoreError::IncorrectInstanceState(format!(
                        "The instance '{}' is not in the 'running' state.",
                        inst.id
                    )))
                }
            }
        }
        Ok(())
    }

    /// `TerminateInstances`.
    pub fn terminate_instances(&self, ctx: &Ctx, ids: &[String]) -> CoreResult<Vec<StateChangeRow>> {
        let runtime = self.compute.runtime()?;
        let instances = self.owned_instances(ctx, ids)?;
        for inst in &instances {
            if inst.data.disable_api_termination && inst.data.state != InstanceState::Terminated {
                return Err(CoreError::OperationNotPermitted(format!(
                    "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                    inst.id
                )));
            }
        }
        let mut rows = Vec::new();
        let mut finish = Vec::new();
        {
            let _held = runtime.lock();
            for inst in &instances {
                let previous = (inst.data.state_code(), inst.data.state);
                if inst.data.state == InstanceState::Terminated {
                    rows.push(StateChangeRow { instance_id: inst.id.clone(), previous, current: previous });
                    continue;
                }
                match runtime.handle(&inst.id) {
                    // The owner kills QEMU; the reconciler sees `terminated` and cleans up.
                    Some(handle) => {
                        let _ = handle.terminate();
                        self.record_state(&inst.id, InstanceState::ShuttingDown, None)?;
                    }
                    // No VM (stopped, or still being prepared): the record ends now; a launch in
                    // progress sees it and stops.
                    None => finish.push(inst.id.clone()),
                }
                rows.push(StateChangeRow {
                    instance_id: inst.id.clone(),
                    previous,
                    current: (32, InstanceState::ShuttingDown),
                });
            }
        }
        for id in finish {
            self.finish_termination(&id, None)?;
        }
        Ok(rows)
    }

    /// The caller's instances, all or none (a missing id fails the call).
    fn owned_instances(&self, ctx: &Ctx, ids: &[String]) -> CoreResult<Vec<Item<InstanceData>>> {
        let mut txn = self.store.read()?;
        ids.iter().map(|id| item::get::<InstanceData>(txn.as_mut(), ctx, id)).collect()
    }
}
