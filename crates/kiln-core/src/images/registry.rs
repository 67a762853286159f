//! Images: `RegisterImage`, `DescribeImages`, `DeregisterImage` and the image attributes.
//!
//! An image is metadata over snapshots: its block device mapping names the snapshot of each
//! EBS volume (the root volume template first of all), plus launch permissions. Visibility is
//! decided in one place, [`may_launch`]: the owner, accounts it is shared with, and everyone
//! when it is public.

use std::collections::HashMap;

use kiln_meta::{MetaTxn, Query};
use kiln_types::{
    Architecture, BlockDeviceMapping, Filter, Grantee, ImageState, Page, RegisterImageSpec, ResourceKind,
    RootDeviceType, SnapshotState, UnknownName,
};

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{apply, b, s};
use crate::records::image::image_using_snapshot;
use crate::records::image::may_launch;
use crate::records::image::visible_image;
use crate::records::image::ImageData;
use crate::records::image::SNAPSHOT_LOCATION_PREFIX;
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::snapshot::SnapshotData;
use crate::records::tags;
use crate::storage::snapshots::{self, owner_matches};
use crate::{Ctx, Kiln};

pub(crate) fn check_name(name: &str) -> CoreResult<()> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c));
    if name.len() < 3 || name.len() > 128 || !ok_chars {
        return Err(CoreError::ImageNameMalformed(name.chars().take(140).collect()));
    }
    Ok(())
}

fn one_of(param: &str, value: Option<&str>, allowed: &[&str], default: &str) -> CoreResult<String> {
    let v = value.unwrap_or(default);
    if allowed.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(CoreError::InvalidParameterValue(format!(
            "Value ({v}) for parameter {param} is invalid. Valid values: {}",
            allowed.join(", ")
        )))
    }
}

impl Kiln {
    /// Account aliases by account id, in their own read transaction.
    pub fn aliases(&self) -> CoreResult<HashMap<String, String>> {
        let mut txn = self.store.read()?;
        self.owner_aliases(txn.as_mut())
    }

    /// Account aliases (`kiln`, …) by account id.
    pub fn owner_aliases(&self, txn: &mut dyn MetaTxn) -> CoreResult<HashMap<String, String>> {
        Ok(match txn.setting(crate::identity::accounts::ALIASES_KEY)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| CoreError::Internal(format!("aliases: {e}")))?,
            None => HashMap::new(),
        })
    }

    /// `RegisterImage`.
    pub fn register_image(&self, ctx: &Ctx, spec: &RegisterImageSpec) -> CoreResult<Item<ImageData>> {
        check_name(&spec.name)?;
        if spec.description.as_deref().is_some_and(|d| d.chars().count() > 255) {
            return Err(CoreError::InvalidParameterValue("Image descriptions are limited to 255 characters".into()));
        }
        let tags = tags::from_specs(&spec.tag_specs, ResourceKind::Image)?;
        let architecture = match spec.architecture.as_deref() {
            None => Architecture::X86_64,
            Some(v) => v.parse().map_err(|e: UnknownName| {
                CoreError::InvalidParameterValue(format!(
                    "Value ({v}) for parameter architecture is invalid. Valid values: {}",
                    e.allowed
                ))
            })?,
        };
        let virtualization_type =
            one_of("virtualizationType", spec.virtualization_type.as_deref(), &["hvm", "paravirtual"], "hvm")?;
        if let Some(m) = &spec.boot_mode {
            one_of("bootMode", Some(m), &["legacy-bios", "uefi", "uefi-preferred"], "")?;
        }
        if let Some(v) = &spec.imds_support {
            one_of("imdsSupport", Some(v), &["v2.0"], "")?;
        }
        if let Some(v) = &spec.tpm_support {
            one_of("tpmSupport", Some(v), &["v2.0"], "")?;
        }
        let mut txn = self.store.begin()?;
        // Every snapshot named must be visible to the caller, completed, and fit its volume.
        let mut seen_devices = Vec::new();
        for m in &spec.block_device_mappings {
            if seen_devices.contains(&m.device_name) {
                return Err(CoreError::InvalidBlockDeviceMapping(format!(
                    "The device name {} is used more than once.",
                    m.device_name
                )));
            }
            seen_devices.push(m.device_name.clone());
            if let Some(v) = &m.virtual_name {
                if !v.starts_with("ephemeral") || v["ephemeral".len()..].parse::<u8>().is_err() {
                    return Err(CoreError::InvalidBlockDeviceMapping(format!(
                        "Virtual device name {v} is invalid: expected ephemeralN."
                    )));
                }
            }
            if let Some(ebs) = &m.ebs {
                let volume_type = ebs.volume_type.as_deref().unwrap_or("gp2");
                match &ebs.snapshot_id {
                    Some(sid) => {
                        let snap = self.launchable_snapshot(txn.as_mut(), ctx, sid)?;
                        let size = ebs.volume_size.unwrap_or(snap.data.volume_size);
                        if size < snap.data.volume_size {
                            return Err(CoreError::InvalidBlockDeviceMapping(format!(
                                "Volume of {size}GiB is smaller than snapshot {sid} ({}GiB).",
                                snap.data.volume_size
                            )));
                        }
                        crate::storage::volumes::validate(volume_type, size, ebs.iops, ebs.throughput, false)?;
                    }
                    None => {
                        let size = ebs.volume_size.ok_or_else(|| {
                            CoreError::InvalidBlockDeviceMapping(format!(
                                "{}: an EBS mapping needs a SnapshotId or a VolumeSize.",
                                m.device_name
                            ))
                        })?;
                        crate::storage::volumes::validate(volume_type, size, ebs.iops, ebs.throughput, false)?;
                    }
                }
            }
        }
        let (root_device_type, root_device_name) = match spec.image_location.as_deref() {
            Some(loc) => {
                let Some(sid) = loc.strip_prefix(SNAPSHOT_LOCATION_PREFIX) else {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "ImageLocation '{loc}' is not supported: use '{SNAPSHOT_LOCATION_PREFIX}<snapshot id>' for an instance-store image."
                    )));
                };
                self.launchable_snapshot(txn.as_mut(), ctx, sid)?;
                (RootDeviceType::InstanceStore, spec.root_device_name.clone().unwrap_or_else(|| "/dev/sda1".into()))
            }
            None => {
                let root = spec
                    .root_device_name
                    .clone()
                    .ok_or_else(|| CoreError::MissingParameter("RootDeviceName".into()))?;
                let mapped = spec.block_device_mappings.iter().find(|m| m.device_name == root);
                if mapped.is_none_or(|m| m.ebs.as_ref().is_none_or(|e| e.snapshot_id.is_none())) {
                    return Err(CoreError::InvalidBlockDeviceMapping(format!(
                        "The root device {root} must be mapped to an EBS snapshot."
                    )));
                }
                (RootDeviceType::Ebs, root)
            }
        };
        let mut image = Item::new(
            ctx,
            Some(spec.name.clone()),
            String::new(),
            tags,
            ImageData {
                description: spec.description.clone(),
                architecture,
                root_device_name,
                root_device_type,
                block_device_mappings: spec.block_device_mappings.clone(),
                virtualization_type,
                boot_mode: spec.boot_mode.clone(),
                ena_support: spec.ena_support.unwrap_or(true),
                sriov_net_support: spec.sriov_net_support.clone(),
                imds_support: spec.imds_support.clone(),
                tpm_support: spec.tpm_support.clone(),
                kernel_id: spec.kernel_id.clone(),
                ramdisk_id: spec.ramdisk_id.clone(),
                image_location: spec.image_location.clone(),
                state: ImageState::Available,
                launch_permissions: vec![],
                platform: None,
                kiln_type: "custom".into(),
                source_instance_id: None,
                lifecycle: Default::default(),
                source_image_id: None,
                source_image_region: None,
            },
        );
        crate::images::quotas::check_new_images(txn.as_mut(), &self.quotas, ctx, 1)?;
        match image.insert(txn.as_mut()) {
            Err(CoreError::Duplicate { .. }) => {
                let existing =
                    item::by_name::<ImageData>(txn.as_mut(), ctx, "", &spec.name)?.map(|i| i.id).unwrap_or_default();
                return Err(CoreError::ImageNameDuplicate { name: spec.name.clone(), existing });
            }
            other => other?,
        }
        txn.commit()?;
        Ok(image)
    }

    /// A snapshot an image may reference: completed and restorable by the caller.
    fn launchable_snapshot(&self, txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
        let snap = snapshots::visible_snapshot(txn, ctx, id)?;
        if snap.data.state != SnapshotState::Completed {
            return Err(CoreError::IncorrectState(format!(
                "Snapshot '{id}' is not completed (state: {}).",
                snap.data.state
            )));
        }
        Ok(snap)
    }

    /// `DescribeImages`: what the caller may launch, narrowed by ids, owners and executable
    /// users, with disabled and deprecated images as [`crate::images::retirement::describe_view`] says.
    #[allow(clippy::too_many_arguments)]
    pub fn describe_images(
        &self,
        ctx: &Ctx,
        ids: &[String],
        owners: &[String],
        executable_by: &[String],
        filters: &[Filter],
        page: &Page,
        include: crate::images::retirement::Include,
    ) -> CoreResult<(Vec<Item<ImageData>>, Option<String>)> {
        for id in ids {
            if !ResourceKind::Image.is_well_formed(id) {
                return Err(CoreError::Malformed { kind: ResourceKind::Image, id: id.clone() });
            }
        }
        let mut txn = self.store.read()?;
        let aliases = self.owner_aliases(txn.as_mut())?;
        // The store narrows by what it indexes (visibility, ids, owners, names, tags); every
        // condition is still checked below, so the store may return more, never less.
        let grantees = crate::records::item::tokens_of(&ctx.account);
        let mut query = Query {
            kind: Some(ResourceKind::Image),
            region: Some(&ctx.region),
            visible_to: Some(kiln_meta::Visibility { account: &ctx.account, grantees: &grantees }),
            ids,
            ..Default::default()
        };
        let owner_ids: Vec<String>;
        let pushed = crate::records::filter::pushdown(filters);
        if ids.is_empty() {
            if !owners.is_empty() {
                owner_ids = owners.iter().flat_map(|o| snapshots::owner_accounts(o, ctx, &aliases)).collect();
                if owner_ids.is_empty() {
                    return Ok((vec![], None));
                }
                query.owners = &owner_ids;
            }
            query.names = &pushed.names;
            query.tags = &pushed.tags;
        }
        let mut images: Vec<Item<ImageData>> =
            txn.find(&query)?.into_iter().map(Item::from_record).collect::<CoreResult<_>>()?;
        drop(txn);
        images.retain(|i| may_launch(ctx, i));
        if !ids.is_empty() {
            let missing: Vec<String> = ids.iter().filter(|id| !images.iter().any(|i| &&i.id == id)).cloned().collect();
            if !missing.is_empty() {
                return Err(CoreError::not_found(ResourceKind::Image, missing));
            }
            images.retain(|i| ids.contains(&i.id));
        }
        let mut images = crate::images::retirement::describe_view(images, ctx, ids, include, chrono::Utc::now());
        if !owners.is_empty() {
            images.retain(|i| owners.iter().any(|o| owner_matches(o, &i.account, ctx, &aliases)));
        }
        if !executable_by.is_empty() {
            // EC2 scopes by explicit launch permissions: `self` (or the caller's own id) means
            // images shared with the caller, another id means images shared with that account;
            // owning an image is not an explicit permission, so owners never match.
            images.retain(|i| {
                executable_by.iter().any(|e| match e.as_str() {
                    "all" => i.data.is_public(),
                    user => {
                        let who = if user == "self" { ctx.account.as_str() } else { user };
                        i.account != who
                            && i.data.launch_permissions.iter().any(|g| matches!(g, Grantee::Account(a) if a == who))
                    }
                })
            });
        }
        let images = apply(images, filters, |i, name| image_filter(i, name, &aliases))?;
        paginate(images, page, |i| i.seq)
    }

    /// `DeregisterImage` (refused while deregistration protection is in force); with
    /// `delete_snapshots`, also deletes the image's snapshots that the caller owns, that are
    /// completed and that no other image of any account uses. Returns `(snapshot id,
    /// deleted?)` pairs, one per distinct snapshot.
    pub fn deregister_image(
        &self,
        ctx: &Ctx,
        id: &str,
        delete_snapshots: bool,
    ) -> CoreResult<Vec<(String, Result<(), String>)>> {
        let mut txn = self.store.begin()?;
        let image = self.owned_image(txn.as_mut(), ctx, id)?;
        crate::images::retirement::check_deregistration(&image)?;
        match self.retention_secs(txn.as_mut(), &image.account, &image.region, ResourceKind::Image, &image.tags)? {
            Some(secs) => self.bin_record(txn.as_mut(), image.to_record()?, secs)?,
            None => {
                txn.delete(&image.id)?;
            }
        }
        let mut results = Vec::new();
        let mut dropped = Vec::new();
        if delete_snapshots {
            let mut sids = image.data.snapshot_ids();
            let mut seen = std::collections::HashSet::new();
            sids.retain(|s| seen.insert(s.clone()));
            for sid in sids {
                // The image's own record is already gone, so any image found still uses it.
                let outcome = match item::get::<SnapshotData>(txn.as_mut(), ctx, &sid) {
                    Err(_) => Err("The snapshot is not owned by the image's owner.".to_string()),
                    Ok(snap) if snap.data.state == SnapshotState::Pending => {
                        Err("The snapshot is still pending.".to_string())
                    }
                    Ok(snap) => match image_using_snapshot(txn.as_mut(), &snap.region, &sid)?.or(
                        crate::storage::recycle_bin::binned_image_using_snapshot(
                            txn.as_mut(),
                            &snap.region,
                            &sid,
                            &image.id,
                        )?,
                    ) {
                        Some(other) => Err(format!("The snapshot is in use by {other}.")),
                        None => {
                            if !self.remove_snapshot(txn.as_mut(), &snap)? {
                                dropped.push(snap);
                            }
                            Ok(())
                        }
                    },
                };
                results.push((sid, outcome));
            }
        }
        txn.commit()?;
        for snap in dropped {
            self.release_base(&snap.region, &snap.id);
        }
        Ok(results)
    }

    /// An image the caller owns. One it can only see is `NotOwner`; one it cannot see is
    /// missing.
    pub fn owned_image(&self, txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<ImageData>> {
        let image = visible_image(txn, ctx, id)?;
        if image.account != ctx.account {
            return Err(CoreError::NotOwner(id.to_string()));
        }
        Ok(image)
    }

    /// `DescribeImageAttribute`: the image as seen by the caller; launch permissions and the
    /// last launch time only for the owner.
    pub fn image_for_attribute(&self, ctx: &Ctx, id: &str, attribute: &str) -> CoreResult<Item<ImageData>> {
        const KNOWN: &[&str] = &[
            "description",
            "kernel",
            "ramdisk",
            "launchPermission",
            "productCodes",
            "blockDeviceMapping",
            "sriovNetSupport",
            "bootMode",
            "tpmSupport",
            "uefiData",
            "lastLaunchedTime",
            "imdsSupport",
            "deregistrationProtection",
        ];
        if !KNOWN.contains(&attribute) {
            return Err(CoreError::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid."
            )));
        }
        let mut txn = self.store.read()?;
        // Who may launch it and when it was last launched are the owner's business.
        if matches!(attribute, "launchPermission" | "lastLaunchedTime") {
            self.owned_image(txn.as_mut(), ctx, id)
        } else {
            visible_image(txn.as_mut(), ctx, id)
        }
    }

    /// `ModifyImageAttribute`: description, launch permissions, IMDS support (owner only).
    pub fn modify_image(
        &self,
        ctx: &Ctx,
        id: &str,
        description: Option<&str>,
        add: &[Grantee],
        remove: &[Grantee],
        imds_support: Option<&str>,
    ) -> CoreResult<()> {
        snapshots::validate_grantees(add)?;
        snapshots::validate_grantees(remove)?;
        if description.is_none() && add.is_empty() && remove.is_empty() && imds_support.is_none() {
            return Err(CoreError::MissingParameter("Description, LaunchPermission or ImdsSupport".into()));
        }
        let mut txn = self.store.begin()?;
        let mut image = self.owned_image(txn.as_mut(), ctx, id)?;
        if let Some(d) = description {
            if d.chars().count() > 255 {
                return Err(CoreError::InvalidParameterValue(
                    "Image descriptions are limited to 255 characters".into(),
                ));
            }
            image.data.description = Some(d.to_string());
        }
        if let Some(v) = imds_support {
            image.data.imds_support = Some(one_of("imdsSupport", Some(v), &["v2.0"], "")?);
        }
        crate::storage::public_access::check_image_sharing(txn.as_mut(), &image, add)?;
        let before = image.data.launch_permissions.clone();
        snapshots::apply_grantees(&mut image.data.launch_permissions, add, remove);
        crate::images::quotas::check_launch_permissions(txn.as_mut(), &self.quotas, &image, &before)?;
        image.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }

    /// `ResetImageAttribute`: `launchPermission` back to private.
    pub fn reset_image_attribute(&self, ctx: &Ctx, id: &str, attribute: &str) -> CoreResult<()> {
        if attribute != "launchPermission" {
            return Err(CoreError::InvalidParameterValue(format!(
                "Value ({attribute}) for parameter attribute is invalid. Only launchPermission can be reset."
            )));
        }
        let mut txn = self.store.begin()?;
        let mut image = self.owned_image(txn.as_mut(), ctx, id)?;
        image.data.launch_permissions.clear();
        image.save(txn.as_mut())?;
        txn.commit()?;
        Ok(())
    }
}

fn image_filter(i: &Item<ImageData>, name: &str, aliases: &HashMap<String, String>) -> Option<Vec<String>> {
    let d = &i.data;
    let bdm = |f: &dyn Fn(&BlockDeviceMapping) -> Option<String>| {
        d.block_device_mappings.iter().filter_map(f).collect::<Vec<_>>()
    };
    Some(match name {
        "image-id" => s(&i.id),
        "name" => s(i.name.as_deref().unwrap_or("")),
        "description" => d.description.iter().cloned().collect(),
        "owner-id" => s(&i.account),
        "owner-alias" => aliases.get(&i.account).map(s).unwrap_or_default(),
        "state" => s(d.state),
        "architecture" => s(d.architecture),
        "root-device-type" => s(d.root_device_type),
        "root-device-name" => s(&d.root_device_name),
        "virtualization-type" => s(&d.virtualization_type),
        "hypervisor" => s("xen"),
        "is-public" => b(d.is_public()),
        "platform" => d.platform.iter().cloned().collect(),
        "platform-details" => s(if d.platform.is_some() { "Windows" } else { "Linux/UNIX" }),
        "image-type" => s("machine"),
        "kiln:image-type" => s(&d.kiln_type),
        "ena-support" => b(d.ena_support),
        "sriov-net-support" => d.sriov_net_support.iter().cloned().collect(),
        "boot-mode" => d.boot_mode.iter().cloned().collect(),
        "imds-support" => d.imds_support.iter().cloned().collect(),
        "creation-date" => s(&i.created_at),
        "source-instance-id" => d.source_instance_id.iter().cloned().collect(),
        "kernel-id" => d.kernel_id.iter().cloned().collect(),
        "ramdisk-id" => d.ramdisk_id.iter().cloned().collect(),
        "manifest-location" => d.image_location.iter().cloned().collect(),
        "product-code" | "product-code.type" | "state-reason-code" | "state-reason-message" => vec![],
        "block-device-mapping.device-name" => bdm(&|m| Some(m.device_name.clone())),
        "block-device-mapping.snapshot-id" => bdm(&|m| m.ebs.as_ref()?.snapshot_id.clone()),
        "block-device-mapping.volume-size" => bdm(&|m| m.ebs.as_ref()?.volume_size.map(|v| v.to_string())),
        "block-device-mapping.volume-type" => {
            bdm(&|m| Some(m.ebs.as_ref()?.volume_type.clone().unwrap_or_else(|| "gp2".into())))
        }
        "block-device-mapping.delete-on-termination" => {
            bdm(&|m| Some(m.ebs.as_ref()?.delete_on_termination.unwrap_or(true).to_string()))
        }
        "block-device-mapping.encrypted" => bdm(&|m| Some(m.ebs.as_ref()?.encrypted.unwrap_or(false).to_string())),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("my-image (v1) [x] @2026_01.02/a'b").is_ok());
        assert!(check_name("ab").is_err());
        assert!(check_name(&"a".repeat(129)).is_err());
        assert!(check_name("bad*name").is_err());
    }

    #[test]
    fn launch_rule() {
        let ctx = Ctx { account: "111111111111".into(), region: "r".into() };
        let mut image = Item::<ImageData> { account: "222222222222".into(), ..Default::default() };
        assert!(!may_launch(&ctx, &image));
        image.data.launch_permissions.push(Grantee::Account("111111111111".into()));
        assert!(may_launch(&ctx, &image));
        image.data.launch_permissions = vec![Grantee::All];
        assert!(may_launch(&ctx, &image) && image.data.is_public());
    }
}
