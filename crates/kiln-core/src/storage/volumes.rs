//! Volumes: `CreateVolume`, `DescribeVolumes`, `DeleteVolume`, `ModifyVolume`,
//! `DescribeVolumesModifications`, `AttachVolume`, `DetachVolume`.
//!
//! A volume's bytes are a qcow2 file: empty, or a copy-on-write overlay over its snapshot's
//! base (see [`crate::storage::files`]). The record moves `creating` → `available` when the file
//! exists. Scripts written against EC2 use a new volume at once, so an empty volume, and a
//! volume whose snapshot's base is already on this host, are built before `CreateVolume`
//! returns (10–25 ms of `qemu-img create`); only a volume whose base must first be
//! materialised builds in the background. Meanwhile a `CreateSnapshot` of it waits for the build
//! (its content is already defined) and a `DeleteVolume` cancels it: the record goes at once and
//! the finished file is removed.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use kiln_types::{Filter, Page, ResourceKind, SnapshotState, VolumeState};

use crate::error::{CoreError, CoreResult};
use crate::network::regions::zones_of;
use crate::records::filter::{apply, b, s};
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::snapshot::SnapshotData;
use crate::records::volume::Attachment;
use crate::records::volume::Modification;
use crate::records::volume::VolumeData;
use crate::records::volume::GIB;
use crate::records::{idempotency, tags};
use crate::storage::snapshots;
use crate::{Ctx, Kiln};

pub use kiln_types::{CreateVolumeSpec, VolumeChange};

/// One page of `DescribeVolumesModifications`: `(volume id, latest modification)` rows.
pub type ModificationPage = (Vec<(String, Modification)>, Option<String>);

/// Volume builds in progress, so snapshot jobs can wait for a volume's file.
#[derive(Default)]
pub struct Builds(Mutex<HashMap<String, Arc<Build>>>);

#[derive(Default)]
struct Build {
    done: Mutex<bool>,
    finished: Condvar,
}

impl Builds {
    fn begin(&self, volume_id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(volume_id.to_string(), Arc::default());
    }

    fn finish(&self, volume_id: &str) {
        if let Some(build) = self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(volume_id) {
            *build.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
            build.finished.notify_all();
        }
    }

    /// Returns once the volume has no build in progress.
    pub fn wait(&self, volume_id: &str) {
        let Some(build) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(volume_id).cloned() else { return };
        let mut done = build.done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = build.finished.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Size and performance rules of one volume type, from EC2's documentation.
struct TypeRules {
    min_size: i64,
    max_size: i64,
    iops: Option<(i64, i64)>,
    iops_required: bool,
    max_iops_per_gib: i64,
    throughput: Option<(i64, i64)>,
    multi_attach: bool,
}

fn rules(volume_type: &str) -> CoreResult<TypeRules> {
    let r = |min_size, max_size, iops, iops_required, max_iops_per_gib, throughput, multi_attach| TypeRules {
        min_size,
        max_size,
        iops,
        iops_required,
        max_iops_per_gib,
        throughput,
        multi_attach,
    };
    Ok(match volume_type {
        "gp2" => r(1, 16384, None, false, 0, None, false),
        "gp3" => r(1, 16384, Some((3000, 16000)), false, 500, Some((125, 1000)), false),
        "io1" => r(4, 16384, Some((100, 64000)), true, 50, None, true),
        "io2" => r(4, 65536, Some((100, 256000)), true, 1000, None, true),
        "st1" | "sc1" => r(125, 16384, None, false, 0, None, false),
        "standard" => r(1, 1024, None, false, 0, None, false),
        other => {
            return Err(CoreError::InvalidParameterValue(format!(
            "Value ({other}) for parameter volumeType is invalid. Valid values: standard, io1, io2, gp2, sc1, st1, gp3"
        )))
        }
    })
}

/// gp2's baseline: 3 IOPS per GiB, between 100 and 16,000.
fn gp2_iops(size: i64) -> i64 {
    (size * 3).clamp(100, 16000)
}

/// Checks size, IOPS, throughput and multi-attach against the type's rules; returns the
/// effective `(iops, throughput)` to record.
pub fn validate(
    volume_type: &str,
    size: i64,
    iops: Option<i64>,
    throughput: Option<i64>,
    multi_attach: bool,
) -> CoreResult<(Option<i64>, Option<i64>)> {
    let t = rules(volume_type)?;
    if size < t.min_size || size > t.max_size {
        return Err(CoreError::InvalidParameterValue(format!(
            "Volume of {size}GiB is too {} for {volume_type}; valid sizes are {}-{} GiB.",
            if size < t.min_size { "small" } else { "large" },
            t.min_size,
            t.max_size
        )));
    }
    let iops = match (t.iops, iops) {
        (None, Some(_)) => {
            return Err(CoreError::InvalidParameterCombination(format!(
                "The parameter iops is not supported for {volume_type} volumes."
            )))
        }
        (None, None) => (volume_type == "gp2").then(|| gp2_iops(size)),
        (Some(_), None) if t.iops_required => {
            return Err(CoreError::MissingParameter(format!("iops (required for {volume_type} volumes)")))
        }
        (Some((lo, _)), None) => Some(lo),
        (Some((lo, hi)), Some(v)) => {
            if v < lo || v > hi {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Volume iops of {v} is out of range for {volume_type}; valid range is {lo}-{hi}."
                )));
            }
            if v > size * t.max_iops_per_gib && v > lo {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Iops to volume size ratio of {:.1} is too high; maximum is {}.",
                    v as f64 / size as f64,
                    t.max_iops_per_gib
                )));
            }
            Some(v)
        }
    };
    let throughput = match (t.throughput, throughput) {
        (None, Some(_)) => {
            return Err(CoreError::InvalidParameterCombination(
                "throughput can only be specified for volumeType gp3.".into(),
            ))
        }
        (None, None) => None,
        (Some((lo, _)), None) => Some(lo),
        (Some((lo, hi)), Some(v)) if v < lo || v > hi => {
            return Err(CoreError::InvalidParameterValue(format!(
                "Throughput of {v} MiB/s is out of range; valid range is {lo}-{hi}."
            )))
        }
        (Some(_), Some(v)) => Some(v),
    };
    if multi_attach && !t.multi_attach {
        return Err(CoreError::InvalidParameterCombination(format!(
            "Multi-Attach is supported only for io1 and io2 volumes, not {volume_type}."
        )));
    }
    Ok((iops, throughput))
}

/// A KMS key only means something for an encrypted volume; EC2 refuses one without
/// `Encrypted=true`.
pub fn check_encryption(encrypted: Option<bool>, kms_key_id: Option<&str>) -> CoreResult<()> {
    if kms_key_id.is_some() && encrypted != Some(true) {
        return Err(CoreError::InvalidParameterDependency(
            "The parameter KmsKeyId requires the parameter Encrypted to be set.".into(),
        ));
    }
    Ok(())
}

/// The snapshot a volume may be created from: the caller's own, or one shared with it.
pub fn restorable_snapshot(txn: &mut dyn kiln_meta::MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
    let snap = snapshots::visible_snapshot(txn, ctx, id)?;
    if snap.data.state != SnapshotState::Completed {
        return Err(CoreError::IncorrectState(format!(
            "Snapshot '{id}' is not completed (state: {}).",
            snap.data.state
        )));
    }
    Ok(snap)
}

impl Kiln {
    /// `CreateVolume`: records the volume as `creating` and builds its file in the background.
    pub fn create_volume(self: &Arc<Self>, ctx: &Ctx, spec: &CreateVolumeSpec) -> CoreResult<Item<VolumeData>> {
        let tags = tags::from_specs(&spec.tag_specs, ResourceKind::Volume)?;
        check_encryption(spec.encrypted, spec.kms_key_id.as_deref())?;
        let region = self.region(&ctx.region).ok_or_else(|| CoreError::Internal("region vanished".into()))?;
        let zones = zones_of(region);
        let zone = match (&spec.availability_zone, &spec.availability_zone_id) {
            (Some(name), _) => zones.iter().find(|z| &z.name == name),
            (None, Some(id)) => zones.iter().find(|z| &z.id == id),
            (None, None) => return Err(CoreError::MissingParameter("AvailabilityZone".into())),
        }
        .ok_or_else(|| {
            CoreError::InvalidParameterValue(format!(
                "Invalid availability zone: [{}]",
                spec.availability_zone.clone().or(spec.availability_zone_id.clone()).unwrap_or_default()
            ))
        })?
        .clone();
        let volume_type = spec.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let fingerprint = idempotency::fingerprint(&[
            &zone.name,
            &format!("{:?}", spec.size),
            spec.snapshot_id.as_deref().unwrap_or(""),
            &volume_type,
            &format!("{:?}/{:?}", spec.iops, spec.throughput),
        ]);

        let mut txn = self.store.begin()?;
        if let Some(token) = &spec.client_token {
            if let Some(existing) = idempotency::lookup(txn.as_mut(), ctx, "CreateVolume", token, &fingerprint)? {
                return item::get::<VolumeData>(txn.as_mut(), ctx, &existing);
            }
        }
        let (snapshot, snap_size) = match &spec.snapshot_id {
            Some(id) => {
                let snap = restorable_snapshot(txn.as_mut(), ctx, id)?;
                let size = snap.data.volume_size;
                (Some(snap), size)
            }
            None => (None, 0),
        };
        let size = match (spec.size, snapshot.is_some()) {
            (Some(s), _) => s,
            (None, true) => snap_size,
            (None, false) => return Err(CoreError::MissingParameter("Size or SnapshotId".into())),
        };
        if snapshot.is_some() && size < snap_size {
            return Err(CoreError::InvalidParameterValue(format!(
                "Volume of {size}GiB is too small; minimum is {snap_size}GiB (the snapshot's size)."
            )));
        }
        let (iops, throughput) = validate(&volume_type, size, spec.iops, spec.throughput, spec.multi_attach_enabled)?;
        let encrypted = spec.encrypted.unwrap_or(false) || snapshot.as_ref().is_some_and(|s| s.data.encrypted);
        let mut vol = Item::new(
            ctx,
            None,
            String::new(),
            tags,
            VolumeData {
                size,
                volume_type: crate::error::named(&volume_type)?,
                iops,
                throughput,
                availability_zone: zone.name.clone(),
                availability_zone_id: zone.id.clone(),
                snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
                encrypted,
                kms_key_id: spec.kms_key_id.clone(),
                multi_attach_enabled: spec.multi_attach_enabled,
                state: VolumeState::Creating,
                ..Default::default()
            },
        );
        vol.insert(txn.as_mut())?;
        if let Some(token) = &spec.client_token {
            idempotency::record(txn.as_mut(), ctx, "CreateVolume", token, &fingerprint, &vol.id)?;
        }
        txn.commit()?;
        let base_ready = vol.data.snapshot_id.as_ref().is_none_or(|snap| self.storage.has_base(&vol.region, snap));
        if base_ready {
            // The answer still says `creating`, as EC2's does; the volume is usable already.
            self.volume_builds.begin(&vol.id);
            self.finish_volume_build(&vol);
        } else {
            self.start_volume_build(vol.clone());
        }
        Ok(vol)
    }

    /// Builds a `creating` volume's file on a worker thread and flips it to `available`
    /// (or `error`). Also used at start-up for volumes a crash left in `creating`.
    pub fn start_volume_build(self: &Arc<Self>, vol: Item<VolumeData>) {
        self.volume_builds.begin(&vol.id);
        let kiln = Arc::clone(self);
        std::thread::spawn(move || kiln.finish_volume_build(&vol));
    }

    /// Builds the volume's file and records the outcome; a volume deleted meanwhile loses the
    /// file instead.
    fn finish_volume_build(&self, vol: &Item<VolumeData>) {
        let result = self.build_volume(vol);
        let (state, message) = match result {
            Ok(()) => (VolumeState::Available, None),
            Err(e) => {
                tracing::warn!(volume = %vol.id, error = %e, "volume creation failed");
                (VolumeState::Error, Some("The volume could not be created.".to_string()))
            }
        };
        match self.set_volume_state(vol, state, message) {
            Ok(true) => {}
            Ok(false) => {
                let _ = self.storage.delete_volume(&vol.region, &vol.id);
                if let Some(snap) = &vol.data.snapshot_id {
                    self.release_base(&vol.region, snap);
                }
            }
            Err(e) => tracing::warn!(volume = %vol.id, error = %e, "could not record the volume's state"),
        }
        self.volume_builds.finish(&vol.id);
    }

    fn build_volume(&self, vol: &Item<VolumeData>) -> CoreResult<()> {
        let size = vol.data.size as u64 * GIB;
        match &vol.data.snapshot_id {
            None => self.storage.create_empty(&vol.region, &vol.id, size),
            Some(snap) => {
                let index = crate::records::snapshot::index_bytes(self.store.read()?.as_mut(), snap)?;
                self.storage.create_from_snapshot(&vol.region, &vol.id, snap, &index, size)
            }
        }
    }

    /// Records a build's outcome; false when the volume was deleted meanwhile.
    fn set_volume_state(
        &self,
        vol: &Item<VolumeData>,
        state: VolumeState,
        message: Option<String>,
    ) -> CoreResult<bool> {
        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(&vol.id)? else { return Ok(false) };
        let mut v = Item::<VolumeData>::from_record(rec)?;
        v.data.state = state;
        v.data.state_message = message;
        v.save(txn.as_mut())?;
        txn.commit()?;
        Ok(true)
    }

    /// `DescribeVolumes`.
    pub fn describe_volumes(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Item<VolumeData>>, Option<String>)> {
        let mut txn = self.store.read()?;
        let vols = item::list_or_fetch::<VolumeData>(txn.as_mut(), ctx, ids)?;
        drop(txn);
        let vols = apply(vols, filters, |v, name| {
            let d = &v.data;
            let att = |f: &dyn Fn(&Attachment) -> String| d.attachments.iter().map(f).collect::<Vec<_>>();
            Some(match name {
                "volume-id" => s(&v.id),
                "size" => s(d.size.to_string()),
                "snapshot-id" => d.snapshot_id.iter().cloned().collect(),
                "availability-zone" => s(&d.availability_zone),
                "availability-zone-id" => s(&d.availability_zone_id),
                "status" => s(d.state),
                "volume-type" => s(d.volume_type),
                "create-time" => s(&v.created_at),
                "encrypted" => b(d.encrypted),
                "multi-attach-enabled" => b(d.multi_attach_enabled),
                "fast-restored" => b(false),
                "attachment.instance-id" => att(&|a| a.instance_id.clone()),
                "attachment.device" => att(&|a| a.device.clone()),
                "attachment.status" => att(&|a| a.state.as_str().to_string()),
                "attachment.attach-time" => att(&|a| a.attach_time.clone()),
                "attachment.delete-on-termination" => att(&|a| a.delete_on_termination.to_string()),
                _ => return None,
            })
        })?;
        paginate(vols, page, |v| v.seq)
    }

    /// `DeleteVolume`: refused while attached; a volume still `creating` loses its build.
    pub fn delete_volume(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        let vol = item::get::<VolumeData>(txn.as_mut(), ctx, id)?;
        if !vol.data.attachments.is_empty() || vol.data.state == VolumeState::InUse {
            return Err(CoreError::VolumeInUse(id.to_string()));
        }
        txn.delete(&vol.id)?;
        txn.commit()?;
        // The record is gone first: a crash now leaves a stray file, never a volume without one.
        self.storage.delete_volume(&vol.region, &vol.id)?;
        if let Some(snap) = &vol.data.snapshot_id {
            self.release_base(&vol.region, snap);
        }
        Ok(())
    }

    /// `ModifyVolume`: growing resizes the file at once; type and performance changes are
    /// recorded. Returns the modification.
    pub fn modify_volume(
        &self,
        ctx: &Ctx,
        id: &str,
        change: &VolumeChange,
    ) -> CoreResult<(Item<VolumeData>, Modification)> {
        let VolumeChange { size, ref volume_type, iops, throughput, multi_attach } = *change;
        let volume_type = volume_type.as_deref();
        let mut txn = self.store.begin()?;
        let mut vol = item::get::<VolumeData>(txn.as_mut(), ctx, id)?;
        if vol.data.state != VolumeState::Available && vol.data.state != VolumeState::InUse {
            return Err(CoreError::IncorrectState(format!("Volume '{id}' is in state {}.", vol.data.state)));
        }
        if size.is_none() && volume_type.is_none() && iops.is_none() && throughput.is_none() && multi_attach.is_none() {
            return Err(CoreError::MissingParameter("Size, VolumeType, Iops, Throughput or MultiAttachEnabled".into()));
        }
        let d = &vol.data;
        let target_size = size.unwrap_or(d.size);
        if target_size < d.size {
            return Err(CoreError::InvalidParameterValue(format!(
                "New size ({target_size}GiB) cannot be smaller than the existing size ({}GiB).",
                d.size
            )));
        }
        let target_type = volume_type.unwrap_or(d.volume_type.as_str()).to_string();
        let keep_iops =
            if volume_type.is_some() && volume_type != Some(d.volume_type.as_str()) { None } else { d.iops };
        let keep_tp =
            if volume_type.is_some() && volume_type != Some(d.volume_type.as_str()) { None } else { d.throughput };
        let target_multi = multi_attach.unwrap_or(d.multi_attach_enabled);
        let requested_iops = iops.or(if target_type == "gp2" { None } else { keep_iops });
        let (new_iops, new_tp) =
            validate(&target_type, target_size, requested_iops, throughput.or(keep_tp), target_multi)?;
        let now = crate::now();
        let modification = Modification {
            state: "completed".into(),
            original_size: d.size,
            target_size,
            original_type: d.volume_type.as_str().to_string(),
            target_type: target_type.clone(),
            original_iops: d.iops,
            target_iops: new_iops,
            original_throughput: d.throughput,
            target_throughput: new_tp,
            original_multi_attach: d.multi_attach_enabled,
            target_multi_attach: target_multi,
            progress: 100,
            start_time: now.clone(),
            end_time: Some(now),
            status_message: None,
        };
        if target_size > vol.data.size {
            // Grow the file before recording the new size, so the record never promises bytes
            // that are not there.
            self.storage.grow(&vol.region, &vol.id, target_size as u64 * GIB)?;
        }
        vol.data.size = target_size;
        vol.data.volume_type = crate::error::named(&target_type)?;
        vol.data.iops = new_iops;
        vol.data.throughput = new_tp;
        vol.data.multi_attach_enabled = target_multi;
        vol.data.modifications.push(modification.clone());
        vol.save(txn.as_mut())?;
        txn.commit()?;
        Ok((vol, modification))
    }

    /// `DescribeVolumesModifications`: the latest modification of each volume.
    pub fn describe_volume_modifications(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<ModificationPage> {
        let mut txn = self.store.read()?;
        let vols = item::list_or_fetch::<VolumeData>(txn.as_mut(), ctx, ids)?;
        drop(txn);
        let rows: Vec<(i64, String, Modification)> = vols
            .into_iter()
            .filter_map(|v| v.data.modifications.last().cloned().map(|m| (v.seq, v.id.clone(), m)))
            .collect();
        let rows = crate::records::filter::apply_by(rows, filters, |(_, id, m), name| {
            Some(match name {
                "volume-id" => s(id),
                "modification-state" => s(&m.state),
                "target-size" => s(m.target_size.to_string()),
                "target-volume-type" => s(&m.target_type),
                "original-size" => s(m.original_size.to_string()),
                "original-volume-type" => s(&m.original_type),
                "start-time" => s(&m.start_time),
                _ => return None,
            })
        })?;
        let (rows, next) = paginate(rows, page, |r| r.0)?;
        Ok((rows.into_iter().map(|(_, id, m)| (id, m)).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_rules() {
        assert_eq!(validate("gp2", 8, None, None, false).unwrap(), (Some(100), None));
        assert_eq!(validate("gp2", 1000, None, None, false).unwrap(), (Some(3000), None));
        assert_eq!(validate("gp3", 8, None, None, false).unwrap(), (Some(3000), Some(125)));
        assert!(validate("gp2", 8, Some(300), None, false).is_err());
        assert!(validate("io1", 8, None, None, false).is_err());
        assert!(validate("io1", 8, Some(500), None, false).is_err(), "50 IOPS per GiB at most");
        assert_eq!(validate("io1", 10, Some(500), None, true).unwrap(), (Some(500), None));
        assert!(validate("st1", 100, None, None, false).is_err());
        assert!(validate("standard", 2000, None, None, false).is_err());
        assert!(validate("gp3", 8, None, Some(2000), false).is_err());
        assert!(validate("gp2", 8, None, None, true).is_err());
        assert!(validate("gp9", 8, None, None, false).is_err());
        assert!(validate("gp2", 0, None, None, false).is_err());
    }
}
