//! The reconciler: what each VM's owner reports (running, stopped by the guest, QEMU gone)
//! is written back into the instance records, terminations are finished, terminated records
//! expire, and images whose snapshots a restart resumed are settled.

use std::sync::Weak;
use std::time::Duration;

use kiln_types::{ImageState, InstanceState, VolumeState};
use kiln_vm::{VmHandle, VmState, VmStatus};

use crate::compute::launch::{all_instances, transition_text};
use crate::error::CoreResult;
use crate::records::image::ImageData;
use crate::records::instance::{InstanceData, Reason};
use crate::records::item::Item;
use crate::records::volume::VolumeData;
use crate::Kiln;

fn instance_state(s: VmState) -> InstanceState {
    match s {
        VmState::Pending => InstanceState::Pending,
        VmState::Running => InstanceState::Running,
        VmState::Stopping => InstanceState::Stopping,
        VmState::Stopped => InstanceState::Stopped,
        VmState::ShuttingDown => InstanceState::ShuttingDown,
        VmState::Terminated => InstanceState::Terminated,
    }
}

fn reason_of(status: &VmStatus) -> Option<Reason> {
    status.reason.as_ref().map(|r| Reason { code: r.code.clone(), message: r.message.clone() })
}

/// Sends SIGKILL to a process; one that is gone already is no error.
impl Kiln {
    pub(super) fn record_state(&self, id: &str, state: InstanceState, reason: Option<Reason>) -> CoreResult<()> {
        self.update_instance(id, |d| {
            if d.state == state {
                return;
            }
            d.state = state;
            if let Some(r) = &reason {
                d.transition_reason = transition_text(match r.code.as_str() {
                    "Client.UserInitiatedShutdown" => "User initiated",
                    "Client.InstanceInitiatedShutdown" => "Instance initiated shutdown",
                    _ => "Server initiated",
                });
            }
            d.state_reason = reason;
        })?;
        Ok(())
    }

    /// Ends an instance: the record becomes `terminated`, volumes mapped delete-on-termination
    /// go (records and files), others are detached, the port and the instance's files are
    /// removed. Idempotent, so a racing launch and terminate can both call it.
    pub(crate) fn finish_termination(&self, id: &str, reason: Option<Reason>) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let Some(rec) = self.store.read()?.get(id)? else { return Ok(()) };
        let inst = Item::<InstanceData>::from_record(rec)?;
        // Host resources go first, so `terminated` is only ever seen once nothing is left. A crash
        // in between leaves the record `shutting-down`, which start-up finishes again.
        runtime.network.unplug(id);
        runtime.slots.reset(id);
        let dir = runtime.instance_dir(id);
        for name in ["root.qcow2", "qemu.pid", "qmp.sock"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let _ = std::fs::remove_file(runtime.qmp_socket(id));
        for dev in inst.data.devices.iter().filter(|d| d.delete_on_termination) {
            self.storage.delete_volume(&inst.region, &dev.volume_id)?;
        }

        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(id)? else { return Ok(()) };
        let mut inst = Item::<InstanceData>::from_record(rec)?;
        let mut released = Vec::new();
        for dev in &inst.data.devices {
            let Some(rec) = txn.get(&dev.volume_id)? else { continue };
            let mut vol = Item::<VolumeData>::from_record(rec)?;
            if dev.delete_on_termination {
                txn.delete(&vol.id)?;
                released.extend(vol.data.snapshot_id.clone());
            } else {
                vol.data.attachments.retain(|a| a.instance_id != id);
                if vol.data.attachments.is_empty() {
                    vol.data.state = VolumeState::Available;
                }
                vol.save(txn.as_mut())?;
            }
        }
        if inst.data.state != InstanceState::Terminated {
            inst.data.state = InstanceState::Terminated;
            inst.data.ended_at = Some(chrono::Utc::now().timestamp());
            let reason = reason.unwrap_or(Reason {
                code: "Client.UserInitiatedShutdown".into(),
                message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
            });
            inst.data.transition_reason = transition_text(if reason.code.starts_with("Client.User") {
                "User initiated"
            } else if reason.code.starts_with("Client.Instance") {
                "Instance initiated shutdown"
            } else {
                "Server initiated"
            });
            inst.data.state_reason = Some(reason);
            inst.save(txn.as_mut())?;
        }
        txn.commit()?;
        for snap in released {
            self.release_base(&inst.region, &snap);
        }
        self.refresh_network();
        Ok(())
    }

    /// One reconciler pass: records what each VM's owner reports, cleans up after VMs that
    /// ended, and forgets terminated instances past their retention.
    fn reconcile(&self) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        if runtime.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let handles: Vec<(String, VmHandle)> =
            runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (id, handle) in handles {
            let status = handle.status();
            let Ok(inst) = self.load_instance(&id) else {
                runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                continue;
            };
            let name = instance_state(status.state);
            match status.state {
                VmState::Terminated => {
                    runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    self.finish_termination(&id, reason_of(&status))?;
                }
                VmState::Stopped => {
                    runtime.vms.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    self.record_state(&id, name, reason_of(&status))?;
                }
                // A stop or terminate the API already recorded is ahead of the owner's report.
                VmState::Running | VmState::Pending
                    if matches!(inst.data.state, InstanceState::Stopping | InstanceState::ShuttingDown) => {}
                _ if inst.data.state != name => self.record_state(&id, name, reason_of(&status))?,
                _ => {}
            }
        }
        // Expire terminated records.
        let retention = runtime.config.terminated_retention.as_secs() as i64;
        let now = chrono::Utc::now().timestamp();
        let expired: Vec<String> = all_instances(self.store.read()?.as_mut())?
            .into_iter()
            .filter(|i| {
                i.data.state == InstanceState::Terminated && i.data.ended_at.is_some_and(|t| now - t >= retention)
            })
            .map(|i| i.id)
            .collect();
        if !expired.is_empty() {
            let mut txn = self.store.begin()?;
            for id in &expired {
                txn.delete(id)?;
            }
            txn.commit()?;
            for id in &expired {
                let _ = std::fs::remove_dir_all(runtime.instance_dir(id));
            }
        }
        Ok(())
    }
}

pub(crate) fn reconcile_loop(kiln: Weak<Kiln>) {
    for pass in 0u64.. {
        std::thread::sleep(Duration::from_millis(200));
        let Some(kiln) = kiln.upgrade() else { return };
        if let Err(e) = kiln.reconcile() {
            tracing::warn!(error = %e, "instance reconciler pass failed");
        }
        // Images whose snapshots a restart resumed settle here (every few seconds).
        if pass % 25 == 0 {
            if let Err(e) = kiln.settle_pending_images() {
                tracing::warn!(error = %e, "could not settle pending images");
            }
        }
    }
}

impl Kiln {
    fn settle_pending_images(&self) -> CoreResult<()> {
        let pending: Vec<String> = self
            .store
            .read()?
            .find(&kiln_meta::Query { kind: Some(kiln_types::ResourceKind::Image), ..Default::default() })?
            .into_iter()
            .filter_map(|r| Item::<ImageData>::from_record(r).ok())
            .filter(|i| i.data.state == ImageState::Pending && i.data.source_instance_id.is_some())
            .map(|i| i.id)
            .collect();
        for id in pending {
            self.settle_image(&id)?;
        }
        Ok(())
    }
}
