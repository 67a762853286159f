//! `AttachVolume` / `DetachVolume`: volumes join and leave instances, hot-plugged into running
//! VMs.
//!
//! A stopped instance simply gets the disk at its next start. A running one gets it through
//! QMP: the volume's qcow2 file is opened as a block node (`blockdev-add`) and a virtio-blk
//! device is plugged into one of the VM's empty PCIe root ports (`device_add`); detaching
//! unplugs the device (the guest's PCIe hot-plug driver acknowledges it) and then closes the
//! node. Only q35 VMs have the ports; `microvm` has no hot-plug at all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kiln_types::{AttachmentState, InstanceState, ResourceKind, VolumeState};
use serde_json::json;

use crate::error::{CoreError, CoreResult};
use crate::records::instance::{InstanceData, InstanceDevice};
use crate::records::item::{self, Item};
use crate::records::volume::{Attachment, VolumeData};
use crate::{Ctx, Kiln};

/// How long a guest gets to release an unplugged disk.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(20);

/// Which hot-plug port holds which volume, per running VM (reset when a VM starts: cold disks
/// then sit on ports of their own).
#[derive(Default)]
pub struct Slots(std::sync::Mutex<HashMap<String, HashMap<String, u32>>>);

impl Slots {
    fn take(&self, instance: &str, volume: &str, capacity: u32) -> Option<u32> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let used = all.entry(instance.to_string()).or_default();
        let free = (0..capacity).find(|n| !used.values().any(|v| v == n))?;
        used.insert(volume.to_string(), free);
        Some(free)
    }

    fn release(&self, instance: &str, volume: &str) {
        if let Some(used) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(instance) {
            used.remove(volume);
        }
    }

    /// Forgets an instance's hot-plugged disks (its VM restarted or ended).
    pub fn reset(&self, instance: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(instance);
    }
}

fn qmp_error(e: kiln_vm::VmError) -> CoreError {
    CoreError::Internal(format!("hot-plug: {e}"))
}

impl Kiln {
    /// `AttachVolume`.
    pub fn attach_volume(&self, ctx: &Ctx, volume_id: &str, instance_id: &str, device: &str) -> CoreResult<Attachment> {
        if !device.starts_with("/dev/") && !device.starts_with("xvd") && !device.starts_with("sd") {
            return Err(CoreError::InvalidParameterValue(format!("Value ({device}) for parameter device is invalid.")));
        }
        let runtime = self.compute.runtime()?;
        let _held = runtime.lock();
        let mut txn = self.store.begin()?;
        let mut vol = item::get::<VolumeData>(txn.as_mut(), ctx, volume_id)?;
        let mut inst = item::get::<InstanceData>(txn.as_mut(), ctx, instance_id)?;
        if vol.data.state != VolumeState::Available {
            return Err(CoreError::IncorrectState(format!("vol '{volume_id}' is not 'available'.")));
        }
        if vol.data.availability_zone != inst.data.availability_zone {
            return Err(CoreError::InvalidParameterValue(format!(
                "Volume {volume_id} is in zone {} and instance {instance_id} in {}; they must be in the same zone.",
                vol.data.availability_zone, inst.data.availability_zone
            )));
        }
        if inst.data.devices.iter().any(|d| d.device_name == device) || device == inst.data.root_device_name {
            return Err(CoreError::InvalidParameterValue(format!("Attachment point {device} is already in use")));
        }
        match inst.data.state {
            InstanceState::Stopped => {}
            InstanceState::Running => self.plug_disk(&inst, &vol)?,
            other => {
                return Err(CoreError::IncorrectInstanceState(format!(
                    "Instance '{instance_id}' is {other}; volumes attach to running or stopped instances."
                )))
            }
        }
        let now = crate::now();
        let attachment = Attachment {
            instance_id: inst.id.clone(),
            device: device.to_string(),
            state: AttachmentState::Attached,
            attach_time: now.clone(),
            delete_on_termination: false,
        };
        vol.data.attachments.push(attachment.clone());
        vol.data.state = VolumeState::InUse;
        vol.save(txn.as_mut())?;
        inst.data.devices.push(InstanceDevice {
            device_name: device.to_string(),
            volume_id: vol.id.clone(),
            delete_on_termination: false,
            attach_time: now,
        });
        inst.save(txn.as_mut())?;
        txn.commit()?;
        Ok(attachment)
    }

    /// `DetachVolume`.
    pub fn detach_volume(&self, ctx: &Ctx, volume_id: &str, instance_id: Option<&str>) -> CoreResult<Attachment> {
        let runtime = self.compute.runtime()?;
        let _held = runtime.lock();
        let mut txn = self.store.begin()?;
        let mut vol = item::get::<VolumeData>(txn.as_mut(), ctx, volume_id)?;
        let Some(attachment) =
            vol.data.attachments.iter().find(|a| instance_id.is_none_or(|i| i == a.instance_id)).cloned()
        else {
            return Err(CoreError::IncorrectState(format!("Volume '{volume_id}' is in the 'available' state.")));
        };
        let mut inst = Item::<InstanceData>::from_record(txn.get(&attachment.instance_id)?.ok_or_else(|| {
            CoreError::NotFound { kind: ResourceKind::Instance, id: attachment.instance_id.clone() }
        })?)?;
        if attachment.device == inst.data.root_device_name {
            return Err(CoreError::OperationNotPermitted(format!(
                "The volume {volume_id} is the root device of {}; it cannot be detached while the instance exists.",
                inst.id
            )));
        }
        match inst.data.state {
            InstanceState::Stopped => {}
            InstanceState::Running => self.unplug_disk(&inst, volume_id)?,
            other => {
                return Err(CoreError::IncorrectInstanceState(format!(
                    "Instance '{}' is {other}; volumes detach from running or stopped instances.",
                    inst.id
                )))
            }
        }
        vol.data.attachments.retain(|a| a.instance_id != inst.id);
        if vol.data.attachments.is_empty() {
            vol.data.state = VolumeState::Available;
        }
        vol.save(txn.as_mut())?;
        inst.data.devices.retain(|d| d.volume_id != volume_id);
        inst.save(txn.as_mut())?;
        txn.commit()?;
        Ok(Attachment { state: AttachmentState::Detaching, ..attachment })
    }

    fn plug_disk(&self, inst: &Item<InstanceData>, vol: &Item<VolumeData>) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let vm = self.vm_of(&inst.id).ok_or_else(|| {
            CoreError::IncorrectInstanceState(format!("Instance '{}' has no running VM yet.", inst.id))
        })?;
        let capacity = runtime.hotplug_capacity(inst);
        if capacity == 0 {
            return Err(CoreError::Unsupported(format!(
                "Instance '{}' runs on a machine type without hot-plug; stop it to attach volumes.",
                inst.id
            )));
        }
        let slot = runtime.slots.take(&inst.id, &vol.id, capacity).ok_or_else(|| {
            CoreError::InvalidParameterValue(format!("Instance '{}' has no free hot-plug slot.", inst.id))
        })?;
        let path = self.storage.volume_path(&vol.region, &vol.id);
        let result = vm
            .qmp(
                "blockdev-add",
                Some(json!({"driver": "qcow2", "node-name": vol.id, "file": {"driver": "file", "filename": path}})),
            )
            .and_then(|_| {
                vm.qmp(
                    "device_add",
                    Some(json!({
                        "driver": "virtio-blk-pci",
                        "id": vol.id,
                        "drive": vol.id,
                        "bus": kiln_vm::argv::hotplug_port(slot),
                        "serial": vol.id.replace('-', ""),
                    })),
                )
            });
        if let Err(e) = result {
            let _ = vm.qmp("blockdev-del", Some(json!({"node-name": vol.id})));
            runtime.slots.release(&inst.id, &vol.id);
            return Err(qmp_error(e));
        }
        Ok(())
    }

    fn unplug_disk(&self, inst: &Item<InstanceData>, volume_id: &str) -> CoreResult<()> {
        let runtime = self.compute.runtime()?;
        let vm = self
            .vm_of(&inst.id)
            .ok_or_else(|| CoreError::IncorrectInstanceState(format!("Instance '{}' has no running VM.", inst.id)))?;
        if runtime.hotplug_capacity(inst) == 0 {
            return Err(CoreError::Unsupported(format!(
                "Instance '{}' runs on a machine type without hot-plug; stop it to detach volumes.",
                inst.id
            )));
        }
        vm.qmp("device_del", Some(json!({"id": volume_id}))).map_err(qmp_error)?;
        // The device goes once the guest acknowledges the unplug; then the node can close.
        let deadline = Instant::now() + UNPLUG_TIMEOUT;
        let path = format!("/machine/peripheral/{volume_id}");
        while vm.qmp("qom-list", Some(json!({"path": path}))).is_ok() {
            if Instant::now() >= deadline {
                return Err(CoreError::IncorrectInstanceState(format!(
                    "The guest of '{}' did not release {volume_id} within {UNPLUG_TIMEOUT:?}.",
                    inst.id
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        vm.qmp("blockdev-del", Some(json!({"node-name": volume_id}))).map_err(qmp_error)?;
        runtime.slots.release(&inst.id, volume_id);
        Ok(())
    }
}
