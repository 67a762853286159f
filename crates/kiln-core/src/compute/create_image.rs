//! `CreateImage`: an image from an instance's volumes.
//!
//! The image and one `pending` snapshot per EBS volume are committed at once, so the call
//! returns the new image id immediately, as in EC2. A worker then takes the snapshots: by
//! default with the instance cleanly stopped and started again afterwards; with `NoReboot`
//! while the VM is frozen once for the moment its disks are read. Each snapshot stores only the
//! blocks the instance's overlay holds (what it changed since launch) and takes every other
//! block from the image's snapshot, so the cost follows the changes, not the disk size.

use std::sync::Arc;
use std::time::Duration;

use kiln_types::{
    BlockDeviceMapping, CreateImageSpec, EbsSpec, ImageState, InstanceState, ResourceKind, RootDeviceType,
    SnapshotState,
};

use crate::compute::launch::split_image_tags;

use crate::error::{CoreError, CoreResult};
use crate::images::registry::check_name;
use crate::records::image::ImageData;
use crate::records::instance::InstanceData;
use crate::records::item::{self, Item};
use crate::records::snapshot::SnapshotData;
use crate::records::volume::VolumeData;
use crate::{Ctx, Kiln};

impl Kiln {
    /// `CreateImage`.
    pub fn create_image(self: &Arc<Self>, ctx: &Ctx, spec: &CreateImageSpec) -> CoreResult<Item<ImageData>> {
        check_name(&spec.name)?;
        if spec.description.as_deref().is_some_and(|d| d.chars().count() > 255) {
            return Err(CoreError::InvalidParameterValue("Image descriptions are limited to 255 characters".into()));
        }
        let (image_tags, snapshot_tags) = split_image_tags(&spec.tag_specs)?;
        let mut txn = self.store.begin()?;
        let inst = item::get::<InstanceData>(txn.as_mut(), ctx, &spec.instance_id)?;
        if !matches!(inst.data.state, InstanceState::Running | InstanceState::Stopped) {
            return Err(CoreError::IncorrectInstanceState(format!(
                "The instance '{}' is not in a state from which an image can be made (it is {}).",
                inst.id, inst.data.state
            )));
        }
        if inst.data.root_device_type != RootDeviceType::Ebs {
            return Err(CoreError::Unsupported(format!(
                "The instance '{}' has an instance-store root; CreateImage makes images of EBS-backed instances.",
                inst.id
            )));
        }
        if let Some(existing) = item::by_name::<ImageData>(txn.as_mut(), ctx, "", &spec.name)? {
            return Err(CoreError::ImageNameDuplicate { name: spec.name.clone(), existing: existing.id });
        }
        crate::images::quotas::check_new_images(txn.as_mut(), &self.quotas, ctx, 1)?;
        let source = item::get_in_region::<ImageData>(txn.as_mut(), ctx, &inst.data.image_id).ok();

        let mut image = Item::new(
            ctx,
            Some(spec.name.clone()),
            String::new(),
            image_tags,
            ImageData {
                description: spec.description.clone(),
                architecture: inst.data.architecture,
                root_device_name: inst.data.root_device_name.clone(),
                root_device_type: RootDeviceType::Ebs,
                virtualization_type: "hvm".into(),
                boot_mode: source.as_ref().and_then(|s| s.data.boot_mode.clone()),
                ena_support: true,
                imds_support: source.as_ref().and_then(|s| s.data.imds_support.clone()),
                state: ImageState::Pending,
                kiln_type: "custom".into(),
                source_instance_id: Some(inst.id.clone()),
                ..Default::default()
            },
        );
        let mut devices = inst.data.devices.clone();
        devices.sort_by_key(|d| (d.device_name != inst.data.root_device_name, d.device_name.clone()));
        let mut snapshots = Vec::new();
        for dev in &devices {
            let over = spec.block_device_mappings.iter().find(|m| m.device_name == dev.device_name);
            if over.is_some_and(|m| m.no_device) {
                if dev.device_name == inst.data.root_device_name {
                    return Err(CoreError::InvalidBlockDeviceMapping("The root device cannot be suppressed.".into()));
                }
                continue;
            }
            let vol = item::get::<VolumeData>(txn.as_mut(), ctx, &dev.volume_id)?;
            let over_ebs = over.and_then(|m| m.ebs.as_ref());
            let size = over_ebs.and_then(|e| e.volume_size).unwrap_or(vol.data.size);
            if size < vol.data.size {
                return Err(CoreError::InvalidBlockDeviceMapping(format!(
                    "The size of {} cannot be smaller than its volume ({}GiB).",
                    dev.device_name, vol.data.size
                )));
            }
            let mut snap = Item::new(
                ctx,
                None,
                String::new(),
                snapshot_tags.clone(),
                SnapshotData {
                    volume_id: vol.id.clone(),
                    volume_size: vol.data.size,
                    description: format!("Created by CreateImage({}) for {}", inst.id, image.id),
                    state: SnapshotState::Pending,
                    start_time: crate::now(),
                    encrypted: vol.data.encrypted,
                    ..Default::default()
                },
            );
            snap.insert(txn.as_mut())?;
            image.data.block_device_mappings.push(BlockDeviceMapping {
                device_name: dev.device_name.clone(),
                ebs: Some(EbsSpec {
                    snapshot_id: Some(snap.id.clone()),
                    volume_size: Some(size),
                    volume_type: Some(
                        over_ebs
                            .and_then(|e| e.volume_type.clone())
                            .unwrap_or(vol.data.volume_type.as_str().to_string()),
                    ),
                    iops: vol.data.iops,
                    throughput: vol.data.throughput,
                    delete_on_termination: Some(
                        over_ebs.and_then(|e| e.delete_on_termination).unwrap_or(dev.delete_on_termination),
                    ),
                    encrypted: Some(vol.data.encrypted),
                    kms_key_id: None,
                }),
                ..Default::default()
            });
            snapshots.push(snap);
        }
        // New volumes the request adds (empty ones) become part of the image's mappings.
        for m in &spec.block_device_mappings {
            if !devices.iter().any(|d| d.device_name == m.device_name) && !m.no_device {
                image.data.block_device_mappings.push(m.clone());
            }
        }
        image.insert(txn.as_mut())?;
        txn.commit()?;

        let kiln = Arc::clone(self);
        let image_id = image.id.clone();
        let instance_id = inst.id.clone();
        let no_reboot = spec.no_reboot;
        std::thread::spawn(move || {
            let result = kiln.take_image_snapshots(&instance_id, &snapshots, no_reboot);
            if let Err(e) = &result {
                tracing::warn!(image = %image_id, error = %e, "CreateImage failed");
                for s in &snapshots {
                    let _ = kiln.fail_snapshot(&s.id, &e.to_string());
                }
            }
            if let Err(e) = kiln.settle_image(&image_id) {
                tracing::warn!(image = %image_id, error = %e, "could not record the image's state");
            }
        });
        Ok(image)
    }

    fn take_image_snapshots(
        self: &Arc<Self>,
        instance_id: &str,
        snapshots: &[Item<SnapshotData>],
        no_reboot: bool,
    ) -> CoreResult<()> {
        let vm = self.vm_of(instance_id).filter(|vm| vm.state().0 == kiln_vm::VmState::Running);
        match vm {
            // A clean stop, the snapshots, and the instance back up: what EC2 does by default.
            Some(vm) if !no_reboot => {
                let stop_wait = self.compute.runtime()?.config.stop_timeout + Duration::from_secs(15);
                vm.stop(false).map_err(|e| CoreError::Internal(e.to_string()))?;
                self.update_instance(instance_id, |d| d.state = InstanceState::Stopping)?;
                vm.wait_for(kiln_vm::VmState::Stopped, stop_wait).map_err(|e| CoreError::Internal(e.to_string()))?;
                // Let the reconciler record the stop before the start, so the two never cross.
                for _ in 0..50 {
                    if self.load_instance(instance_id)?.data.state == InstanceState::Stopped {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let result = snapshots.iter().try_for_each(|s| self.run_snapshot(s));
                let inst = self.load_instance(instance_id)?;
                if inst.data.state == InstanceState::Stopped {
                    let ctx = Ctx { account: inst.account.clone(), region: inst.region.clone() };
                    self.start_instances(&ctx, &[instance_id.to_string()])?;
                }
                result
            }
            // Stopped already, or NoReboot: every disk read while the VM is frozen once.
            _ => self.snapshot_at_one_instant(instance_id, snapshots),
        }
    }

    /// Moves a `pending` image made by `CreateImage` to `available` once all its snapshots
    /// completed, or to `failed` if one did not.
    pub(crate) fn settle_image(&self, image_id: &str) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(image_id)? else { return Ok(()) };
        let mut image = Item::<ImageData>::from_record(rec)?;
        if image.data.state != ImageState::Pending {
            return Ok(());
        }
        let mut state = ImageState::Available;
        for sid in image.data.snapshot_ids() {
            let snap = match txn.get(&sid)? {
                Some(rec) => Item::<SnapshotData>::from_record(rec)?,
                None => {
                    state = ImageState::Failed;
                    break;
                }
            };
            match snap.data.state {
                SnapshotState::Completed => {}
                SnapshotState::Pending => return Ok(()),
                _ => state = ImageState::Failed,
            }
        }
        image.data.state = state;
        image.save(txn.as_mut())?;
        txn.commit()?;
        debug_assert_eq!(ResourceKind::of_id(image_id), Some(ResourceKind::Image));
        Ok(())
    }
}
