//! Copies between regions: cross-region `CopySnapshot`, `CopyImage`, `GetImageAncestry`.
//!
//! Each region has its own chunk store, so a copy to another region must move bytes; it moves
//! only the chunks the destination store does not already hold. A copy is a `pending` snapshot
//! in the destination region plus a job record (blob `copy/<snapshot id>`) naming its source,
//! committed together; a worker then streams the missing chunks (each verified when read from
//! the source and written under the destination's insert guard) and, in one transaction, adds
//! the references, stores the index, marks the snapshot `completed`, counts the bytes moved
//! for the account and deletes the job. A server killed mid-copy finds the job at start-up and
//! runs it again: chunks already copied are found in the destination and skipped, so a resumed
//! copy never moves a chunk twice.
//!
//! `CopyImage` is the same per snapshot, with the new image `pending` until every snapshot copy
//! completed; the image records `SourceImageId` and `SourceImageRegion`.

use std::collections::HashSet;
use std::sync::Arc;

use kiln_chunks::BLOCK_SIZE;
use kiln_meta::MetaTxn;
use kiln_types::{CopyImageSpec, ImageState, ResourceKind, SnapshotState, Tag, TagSpecification};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::images::registry;
use crate::records::image::{ImageData, SNAPSHOT_LOCATION_PREFIX};
use crate::records::item::{self, Item};
use crate::records::snapshot::{index_key, load_index, references, SnapshotData, NO_VOLUME};
use crate::records::{idempotency, tags};
use crate::storage::snapshots::visible_snapshot;
use crate::{Ctx, Kiln};

const JOB_PREFIX: &str = "copy/";
const TRANSFER_PREFIX: &str = "transfer/";

/// A copy in progress: where its bytes come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CopyJob {
    source_region: String,
    source_snapshot_id: String,
    /// The image this copy belongs to (`CopyImage`), settled when the copy completes.
    image_id: Option<String>,
}

/// Bytes copied between regions for one account: what moved (stored, compressed chunk bytes
/// that the destination lacked) against what was copied logically (the snapshots' data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Chunk bytes written into destination stores.
    pub moved_bytes: u64,
    /// Logical bytes of the snapshots copied.
    pub logical_bytes: u64,
    /// Copies completed.
    pub copies: u64,
}

fn job_key(snapshot_id: &str) -> String {
    format!("{JOB_PREFIX}{snapshot_id}")
}

fn json<T: Serialize>(value: &T) -> CoreResult<String> {
    serde_json::to_string(value).map_err(|e| CoreError::Internal(e.to_string()))
}

impl Kiln {
    /// Records a `pending` copy of `src` (in `source_region`) into the caller's region and its
    /// job, inside `txn`.
    fn new_copy(
        &self,
        txn: &mut dyn MetaTxn,
        ctx: &Ctx,
        src: &Item<SnapshotData>,
        description: String,
        tags: Vec<Tag>,
        image_id: Option<&str>,
    ) -> CoreResult<Item<SnapshotData>> {
        let mut copy = Item::new(
            ctx,
            None,
            String::new(),
            tags,
            SnapshotData {
                volume_id: NO_VOLUME.into(),
                volume_size: src.data.volume_size,
                description,
                state: SnapshotState::Pending,
                start_time: crate::now(),
                encrypted: src.data.encrypted,
                source_snapshot_id: Some(src.id.clone()),
                ..Default::default()
            },
        );
        copy.insert(txn)?;
        let job = CopyJob {
            source_region: src.region.clone(),
            source_snapshot_id: src.id.clone(),
            image_id: image_id.map(str::to_string),
        };
        txn.put_blob(&job_key(&copy.id), json(&job)?.as_bytes())?;
        Ok(copy)
    }

    /// `CopySnapshot` from another region: returns the `pending` copy; the bytes follow in the
    /// background.
    pub fn copy_snapshot_between_regions(
        self: &Arc<Self>,
        ctx: &Ctx,
        source_region: &str,
        source_id: &str,
        description: Option<&str>,
        specs: &[TagSpecification],
    ) -> CoreResult<Item<SnapshotData>> {
        if self.region(source_region).is_none() {
            return Err(CoreError::InvalidParameterValue(format!("Invalid source region: {source_region}")));
        }
        let tags = tags::from_specs(specs, ResourceKind::Snapshot)?;
        let source_ctx = Ctx { account: ctx.account.clone(), region: source_region.to_string() };
        let mut txn = self.store.begin()?;
        let src = visible_snapshot(txn.as_mut(), &source_ctx, source_id)?;
        if src.data.state != SnapshotState::Completed {
            return Err(CoreError::IncorrectState(format!("Snapshot '{source_id}' is not completed.")));
        }
        let description = description.map(str::to_string).unwrap_or_else(|| {
            format!("[Copied {} from {source_region}] {}", src.id, src.data.description).trim_end().to_string()
        });
        let copy = self.new_copy(txn.as_mut(), ctx, &src, description, tags, None)?;
        txn.commit()?;
        self.start_copy_job(copy.id.clone());
        Ok(copy)
    }

    /// `CopyImage`, sent to the destination region.
    pub fn copy_image(self: &Arc<Self>, ctx: &Ctx, spec: &CopyImageSpec) -> CoreResult<Item<ImageData>> {
        registry::check_name(&spec.name)?;
        if self.region(&spec.source_region).is_none() {
            return Err(CoreError::InvalidParameterValue(format!("Invalid source region: {}", spec.source_region)));
        }
        let mut image_tags = Vec::new();
        let mut snapshot_tags = Vec::new();
        for t in &spec.tag_specs {
            let one = std::slice::from_ref(t);
            match t.resource_type.as_str() {
                "image" => image_tags.extend(tags::from_specs(one, ResourceKind::Image)?),
                "snapshot" => snapshot_tags.extend(tags::from_specs(one, ResourceKind::Snapshot)?),
                other => {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "'{other}' is not a valid taggable resource type for this operation."
                    )))
                }
            }
        }
        let fingerprint = idempotency::fingerprint(&[&spec.source_region, &spec.source_image_id, &spec.name]);
        let source_ctx = Ctx { account: ctx.account.clone(), region: spec.source_region.clone() };
        let mut txn = self.store.begin()?;
        if let Some(token) = &spec.client_token {
            if let Some(existing) = idempotency::lookup(txn.as_mut(), ctx, "CopyImage", token, &fingerprint)? {
                return item::get::<ImageData>(txn.as_mut(), ctx, &existing);
            }
        }
        // The one launch rule: a copy is a use of the image like a launch.
        let source_id = self.resolve_image_id(&source_ctx, &spec.source_image_id)?;
        let src = crate::records::image::visible_image(txn.as_mut(), &source_ctx, &source_id)?;
        if src.data.state != ImageState::Available {
            return Err(CoreError::IncorrectState(format!(
                "Image '{}' is not available (state: {}).",
                src.id, src.data.state
            )));
        }
        if let Some(existing) = item::by_name::<ImageData>(txn.as_mut(), ctx, "", &spec.name)? {
            return Err(CoreError::ImageNameDuplicate { name: spec.name.clone(), existing: existing.id });
        }
        crate::images::quotas::check_new_images(txn.as_mut(), &self.quotas, ctx, 1)?;
        if spec.copy_image_tags {
            for t in src.tags.iter().filter(|t| !t.key.starts_with("kiln:")) {
                if !image_tags.iter().any(|x: &Tag| x.key == t.key) {
                    image_tags.push(t.clone());
                }
            }
        }
        let mut image = Item::new(
            ctx,
            Some(spec.name.clone()),
            String::new(),
            image_tags,
            ImageData {
                description: spec.description.clone().or(src.data.description.clone()),
                state: ImageState::Pending,
                launch_permissions: vec![],
                kiln_type: "custom".into(),
                source_instance_id: None,
                source_image_id: Some(src.id.clone()),
                source_image_region: Some(src.region.clone()),
                // A copy starts its own life: no deprecation, protection or launches yet.
                lifecycle: Default::default(),
                ..src.data.clone()
            },
        );
        // Snapshots are read with the image's launch permission, not the caller's own rights on
        // them (sharing an image makes its snapshots usable for this, as in EC2).
        let mut copied = Vec::new();
        let description = |sid: &str| {
            format!("Copied for DestinationAmi {} from SourceAmi {} for SourceSnapshot {sid}", image.id, src.id)
        };
        for m in &mut image.data.block_device_mappings {
            let Some(ebs) = m.ebs.as_mut() else { continue };
            let Some(sid) = ebs.snapshot_id.clone() else { continue };
            let snap = item::Item::<SnapshotData>::from_record(
                txn.get(&sid)?.ok_or_else(|| CoreError::NotFound { kind: ResourceKind::Snapshot, id: sid.clone() })?,
            )?;
            let copy =
                self.new_copy(txn.as_mut(), ctx, &snap, description(&sid), snapshot_tags.clone(), Some(&image.id))?;
            ebs.snapshot_id = Some(copy.id.clone());
            copied.push(copy.id);
        }
        if let Some(sid) = image.data.image_location.as_deref().and_then(|l| l.strip_prefix(SNAPSHOT_LOCATION_PREFIX)) {
            let sid = sid.to_string();
            let snap = item::Item::<SnapshotData>::from_record(
                txn.get(&sid)?.ok_or_else(|| CoreError::NotFound { kind: ResourceKind::Snapshot, id: sid.clone() })?,
            )?;
            let copy =
                self.new_copy(txn.as_mut(), ctx, &snap, description(&sid), snapshot_tags.clone(), Some(&image.id))?;
            image.data.image_location = Some(format!("{SNAPSHOT_LOCATION_PREFIX}{}", copy.id));
            copied.push(copy.id);
        }
        image.insert(txn.as_mut())?;
        if let Some(token) = &spec.client_token {
            idempotency::record(txn.as_mut(), ctx, "CopyImage", token, &fingerprint, &image.id)?;
        }
        txn.commit()?;
        for id in copied {
            self.start_copy_job(id);
        }
        Ok(image)
    }

    /// Runs a copy on a worker thread; a failure marks the copy `error` (and its image `failed`).
    pub fn start_copy_job(self: &Arc<Self>, snapshot_id: String) {
        let kiln = Arc::clone(self);
        std::thread::spawn(move || {
            let image = kiln.copy_job(&snapshot_id).ok().flatten().and_then(|j| j.image_id);
            if let Err(e) = kiln.run_copy(&snapshot_id) {
                tracing::warn!(snapshot = %snapshot_id, error = %e, "copy between regions failed");
                let _ = kiln.fail_snapshot(&snapshot_id, &e.to_string());
                if let Ok(mut txn) = kiln.store.begin() {
                    let _ = txn.delete_blob(&job_key(&snapshot_id));
                    let _ = txn.commit();
                }
            }
            if let Some(image) = image {
                if let Err(e) = kiln.settle_image(&image) {
                    tracing::warn!(image = %image, error = %e, "could not settle a copied image");
                }
            }
        });
    }

    fn copy_job(&self, snapshot_id: &str) -> CoreResult<Option<CopyJob>> {
        let Some(bytes) = self.store.read()?.blob(&job_key(snapshot_id))? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| CoreError::Internal(format!("copy job: {e}")))
    }

    fn run_copy(&self, snapshot_id: &str) -> CoreResult<()> {
        let Some(job) = self.copy_job(snapshot_id)? else { return Ok(()) };
        let (dest, index) = {
            let mut txn = self.store.read()?;
            let Some(rec) = txn.get(snapshot_id)? else { return Ok(()) };
            let dest = Item::<SnapshotData>::from_record(rec)?;
            let index = load_index(txn.as_mut(), &job.source_snapshot_id)?;
            (dest, index)
        };
        if dest.data.state != SnapshotState::Pending {
            return Ok(());
        }
        let source_store = self.storage.chunks(&job.source_region)?;
        let dest_store = self.storage.chunks(&dest.region)?;
        let _guard = dest_store.insert_guard();
        let distinct: Vec<_> = {
            let mut seen = HashSet::new();
            index.blocks().iter().flatten().filter(|id| seen.insert(**id)).copied().collect()
        };
        let mut moved = 0u64;
        let total = distinct.len().max(1);
        for (n, id) in distinct.iter().enumerate() {
            // Same region, a parent copied before, or an earlier run of this job: nothing moves.
            moved += dest_store.copy_from(&source_store, id).map_err(|e| CoreError::Storage(e.to_string()))?;
            if n % 64 == 63 {
                self.set_snapshot_progress(snapshot_id, ((n + 1) * 100 / total) as u8)?;
            }
        }
        let logical = index.blocks().iter().flatten().count() as u64 * BLOCK_SIZE as u64;
        let mut txn = self.store.begin()?;
        let Some(rec) = txn.get(snapshot_id)? else { return Ok(()) };
        let mut snap = Item::<SnapshotData>::from_record(rec)?;
        txn.add_chunk_refs(&dest.region, &references(&index), 1, chrono::Utc::now().timestamp())?;
        txn.put_blob(&index_key(snapshot_id), &index.encode())?;
        snap.data.state = SnapshotState::Completed;
        snap.data.progress = 100;
        snap.data.completion_time = Some(crate::now());
        snap.data.full_size_bytes = logical;
        snap.save(txn.as_mut())?;
        let key = format!("{TRANSFER_PREFIX}{}", snap.account);
        let mut transfer: Transfer = txn.setting(&key)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        if job.source_region != dest.region {
            transfer.moved_bytes += moved;
            transfer.logical_bytes += logical;
            transfer.copies += 1;
        }
        txn.set_setting(&key, &json(&transfer)?)?;
        txn.delete_blob(&job_key(snapshot_id))?;
        txn.commit()?;
        tracing::info!(snapshot = snapshot_id, from = %job.source_region, to = %dest.region, moved, logical, "copy completed");
        Ok(())
    }

    /// Starts again every copy a previous run left unfinished.
    pub fn resume_copies(self: &Arc<Self>) -> CoreResult<()> {
        let jobs = self.store.read()?.blobs_with_prefix(JOB_PREFIX)?;
        for (key, _) in jobs {
            let id = key[JOB_PREFIX.len()..].to_string();
            tracing::info!(snapshot = %id, "resuming a copy between regions");
            self.start_copy_job(id);
        }
        Ok(())
    }

    /// Bytes moved between regions per account.
    pub fn transfers(&self) -> CoreResult<Vec<(String, Transfer)>> {
        let mut txn = self.store.read()?;
        let mut out = Vec::new();
        for account in txn.accounts()? {
            if let Some(t) = txn.setting(&format!("{TRANSFER_PREFIX}{}", account.id))? {
                out.push((account.id, serde_json::from_str(&t).unwrap_or_default()));
            }
        }
        Ok(out)
    }

    /// `GetImageAncestry`: the image, then the image it was copied from, and so on, across
    /// regions, as far as the caller may see.
    pub fn image_ancestry(&self, ctx: &Ctx, image_id: &str) -> CoreResult<Vec<Item<ImageData>>> {
        let mut txn = self.store.read()?;
        let mut chain = vec![crate::records::image::visible_image(txn.as_mut(), ctx, image_id)?];
        while let Some(last) = chain.last() {
            let (Some(id), Some(region)) = (&last.data.source_image_id, &last.data.source_image_region) else {
                break;
            };
            if chain.len() > 100 || chain.iter().any(|i| &i.id == id) {
                break;
            }
            let source_ctx = Ctx { account: ctx.account.clone(), region: region.clone() };
            match txn.get(id)? {
                Some(rec) => {
                    let image = Item::<ImageData>::from_record(rec)?;
                    if image.region != source_ctx.region {
                        break;
                    }
                    chain.push(image);
                }
                // A deregistered ancestor ends the walk.
                None => break,
            }
        }
        Ok(chain)
    }
}
