//! `CreateSnapshots`: one snapshot per volume of an instance, all of one instant.
//!
//! The snapshots are committed `pending` together; a worker then reads every disk while the VM
//! is frozen once (CPUs paused, I/O drained), so the set is crash-consistent across disks, as a
//! database spread over several volumes needs. A stopped instance's disks are still, so they
//! are read as they are.

use std::sync::Arc;

use kiln_types::{CreateSnapshotsSpec, InstanceState, ResourceKind, SnapshotState};

use crate::error::{CoreError, CoreResult};
use crate::records::instance::InstanceData;
use crate::records::item::{self, Item};
use crate::records::snapshot::SnapshotData;
use crate::records::tags;
use crate::records::volume::VolumeData;
use crate::{Ctx, Kiln};

impl Kiln {
    /// `CreateSnapshots`: returns the pending snapshots, root first.
    pub fn create_snapshots(
        self: &Arc<Self>,
        ctx: &Ctx,
        spec: &CreateSnapshotsSpec,
    ) -> CoreResult<Vec<Item<SnapshotData>>> {
        let spec_tags = tags::from_specs(&spec.tag_specs, ResourceKind::Snapshot)?;
        if spec.description.as_deref().is_some_and(|d| d.chars().count() > 255) {
            return Err(CoreError::InvalidParameterValue("Snapshot descriptions are limited to 255 characters".into()));
        }
        let mut txn = self.store.begin()?;
        let inst = item::get::<InstanceData>(txn.as_mut(), ctx, &spec.instance_id)?;
        if !matches!(inst.data.state, InstanceState::Running | InstanceState::Stopped | InstanceState::Stopping) {
            return Err(CoreError::IncorrectInstanceState(format!(
                "The instance '{}' is {}; snapshots are taken of running or stopped instances.",
                inst.id, inst.data.state
            )));
        }
        for id in &spec.exclude_data_volume_ids {
            if !inst.data.devices.iter().any(|d| &d.volume_id == id && d.device_name != inst.data.root_device_name) {
                return Err(CoreError::InvalidParameterValue(format!(
                    "The volume '{id}' is not a data volume of instance '{}'.",
                    inst.id
                )));
            }
        }
        let mut devices = inst.data.devices.clone();
        devices.sort_by_key(|d| (d.device_name != inst.data.root_device_name, d.device_name.clone()));
        let mut snapshots = Vec::new();
        let description = spec.description.clone().unwrap_or_default();
        for dev in &devices {
            let is_root = dev.device_name == inst.data.root_device_name;
            if (is_root && spec.exclude_boot_volume) || spec.exclude_data_volume_ids.contains(&dev.volume_id) {
                continue;
            }
            let vol = item::get::<VolumeData>(txn.as_mut(), ctx, &dev.volume_id)?;
            let mut snap_tags = if spec.copy_tags { vol.tags.clone() } else { Vec::new() };
            tags::merge(&mut snap_tags, &spec_tags)?;
            let mut snap = Item::new(
                ctx,
                None,
                String::new(),
                snap_tags,
                SnapshotData {
                    volume_id: vol.id.clone(),
                    volume_size: vol.data.size,
                    description: description.clone(),
                    state: SnapshotState::Pending,
                    start_time: crate::now(),
                    encrypted: vol.data.encrypted,
                    ..Default::default()
                },
            );
            snap.insert(txn.as_mut())?;
            snapshots.push(snap);
        }
        if snapshots.is_empty() {
            return Err(CoreError::InvalidParameterCombination(format!(
                "Every volume of instance '{}' is excluded; there is nothing to snapshot.",
                inst.id
            )));
        }
        txn.commit()?;
        let kiln = Arc::clone(self);
        let instance_id = inst.id.clone();
        let pending = snapshots.clone();
        std::thread::spawn(move || {
            if let Err(e) = kiln.snapshot_at_one_instant(&instance_id, &pending) {
                tracing::warn!(instance = %instance_id, error = %e, "CreateSnapshots failed");
                for s in &pending {
                    let _ = kiln.fail_snapshot(&s.id, "The snapshot could not be taken.");
                }
            }
        });
        Ok(snapshots)
    }

    /// Takes pending snapshots of an instance's volumes, all while its VM (if running) is
    /// frozen once.
    pub(crate) fn snapshot_at_one_instant(
        &self,
        instance_id: &str,
        snapshots: &[Item<SnapshotData>],
    ) -> CoreResult<()> {
        let take_all = || snapshots.iter().try_for_each(|s| self.read_snapshot(s));
        match self.vm_of(instance_id).filter(|vm| vm.state().0 == kiln_vm::VmState::Running) {
            Some(vm) => vm.frozen(take_all).map_err(|e| CoreError::Internal(e.to_string()))?,
            None => take_all(),
        }
    }
}
