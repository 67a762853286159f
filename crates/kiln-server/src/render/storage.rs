//! Volumes, snapshots and images to EC2 XML.

use kiln_core::records::image::ImageData;
use kiln_core::records::item::Item;
use kiln_core::records::snapshot::SnapshotData;
use kiln_core::records::volume::{Attachment, Modification, VolumeData};
use kiln_ec2::xml::XmlWriter;
use kiln_types::{BlockDeviceMapping, Grantee, SnapshotState};

use super::{tag_set, tag_set_always};

/// One `Volume` as Describe calls show it (`tagSet` only when tagged).
pub fn volume(w: &mut XmlWriter, v: &Item<VolumeData>) {
    volume_with(w, v, tag_set);
}

/// The `CreateVolume` response body: EC2 always sends its `tagSet`, empty or not.
pub fn created_volume(w: &mut XmlWriter, v: &Item<VolumeData>) {
    volume_with(w, v, tag_set_always);
}

fn volume_with(w: &mut XmlWriter, v: &Item<VolumeData>, tags: fn(&mut XmlWriter, &[kiln_types::Tag])) {
    let d = &v.data;
    w.text("volumeId", &v.id)
        .num("size", d.size)
        .text("snapshotId", d.snapshot_id.as_deref().unwrap_or(""))
        .text("availabilityZone", &d.availability_zone)
        .text("availabilityZoneId", &d.availability_zone_id)
        .text("status", d.state.as_str())
        .text("createTime", &v.created_at);
    w.list("attachmentSet", &d.attachments, |w, a| attachment(w, &v.id, a));
    w.text("volumeType", d.volume_type.as_str());
    if let Some(i) = d.iops {
        w.num("iops", i);
    }
    if let Some(t) = d.throughput {
        w.num("throughput", t);
    }
    w.bool("encrypted", d.encrypted).opt("kmsKeyId", d.kms_key_id.as_deref());
    w.bool("multiAttachEnabled", d.multi_attach_enabled).bool("fastRestored", false);
    tags(w, &v.tags);
}

/// One `VolumeAttachment`.
pub fn attachment(w: &mut XmlWriter, volume_id: &str, a: &Attachment) {
    w.text("volumeId", volume_id)
        .text("instanceId", &a.instance_id)
        .text("device", &a.device)
        .text("status", a.state.as_str())
        .text("attachTime", &a.attach_time)
        .bool("deleteOnTermination", a.delete_on_termination);
}

/// One `VolumeModification`.
pub fn modification(w: &mut XmlWriter, volume_id: &str, m: &Modification) {
    w.text("volumeId", volume_id)
        .text("modificationState", &m.state)
        .num("targetSize", m.target_size)
        .text("targetVolumeType", &m.target_type)
        .bool("targetMultiAttachEnabled", m.target_multi_attach)
        .num("originalSize", m.original_size)
        .text("originalVolumeType", &m.original_type)
        .bool("originalMultiAttachEnabled", m.original_multi_attach);
    if let Some(i) = m.target_iops {
        w.num("targetIops", i);
    }
    if let Some(i) = m.original_iops {
        w.num("originalIops", i);
    }
    if let Some(t) = m.target_throughput {
        w.num("targetThroughput", t);
    }
    if let Some(t) = m.original_throughput {
        w.num("originalThroughput", t);
    }
    w.num("progress", m.progress).text("startTime", &m.start_time).opt("endTime", m.end_time.as_deref());
    w.opt("statusMessage", m.status_message.as_deref());
}

/// One `Snapshot` as Describe calls show it (`tagSet` only when tagged).
pub fn snapshot(w: &mut XmlWriter, s: &Item<SnapshotData>, owner_alias: Option<&str>) {
    snapshot_with(w, s, owner_alias, tag_set);
}

/// The `CreateSnapshot` response body: EC2 always sends its `tagSet`, empty or not.
pub fn created_snapshot(w: &mut XmlWriter, s: &Item<SnapshotData>) {
    snapshot_with(w, s, None, tag_set_always);
}

fn snapshot_with(
    w: &mut XmlWriter,
    s: &Item<SnapshotData>,
    owner_alias: Option<&str>,
    tags: fn(&mut XmlWriter, &[kiln_types::Tag]),
) {
    let d = &s.data;
    w.text("snapshotId", &s.id)
        .text("volumeId", &d.volume_id)
        .text("status", d.state.as_str())
        .opt("statusMessage", d.state_message.as_deref())
        .text("startTime", &d.start_time)
        .opt("completionTime", d.completion_time.as_deref())
        .text("progress", &format!("{}%", d.progress))
        .text("ownerId", &s.account)
        .opt("ownerAlias", owner_alias)
        .text("volumeSize", &d.volume_size.to_string())
        .text("description", &d.description)
        .bool("encrypted", d.encrypted)
        .text("storageTier", "standard");
    if d.state == SnapshotState::Completed {
        w.num("fullSnapshotSizeInBytes", d.full_size_bytes);
    }
    tags(w, &s.tags);
}

/// One `SnapshotInfo` of `CreateSnapshots`.
pub fn snapshot_info(w: &mut XmlWriter, s: &Item<SnapshotData>) {
    let d = &s.data;
    w.text("description", &d.description);
    tag_set_always(w, &s.tags);
    w.bool("encrypted", d.encrypted)
        .text("volumeId", &d.volume_id)
        .text("state", d.state.as_str())
        .num("volumeSize", d.volume_size)
        .text("startTime", &d.start_time)
        .text("progress", &format!("{}%", d.progress))
        .text("ownerId", &s.account)
        .text("snapshotId", &s.id);
}

/// One `CreateVolumePermission`/`LaunchPermission`.
pub fn grantee(w: &mut XmlWriter, g: &Grantee) {
    match g {
        Grantee::Account(a) => w.text("userId", a),
        Grantee::All => w.text("group", "all"),
    };
}

fn mapping(w: &mut XmlWriter, m: &BlockDeviceMapping) {
    w.text("deviceName", &m.device_name).opt("virtualName", m.virtual_name.as_deref());
    if m.no_device {
        w.text("noDevice", "");
    }
    if let Some(e) = &m.ebs {
        w.start("ebs");
        w.opt("snapshotId", e.snapshot_id.as_deref());
        if let Some(s) = e.volume_size {
            w.num("volumeSize", s);
        }
        w.bool("deleteOnTermination", e.delete_on_termination.unwrap_or(true));
        w.text("volumeType", e.volume_type.as_deref().unwrap_or("gp2"));
        if let Some(i) = e.iops {
            w.num("iops", i);
        }
        if let Some(t) = e.throughput {
            w.num("throughput", t);
        }
        w.bool("encrypted", e.encrypted.unwrap_or(false)).opt("kmsKeyId", e.kms_key_id.as_deref());
        w.end();
    }
}

/// One `Image`.
pub fn image(w: &mut XmlWriter, i: &Item<ImageData>, owner_alias: Option<&str>) {
    let d = &i.data;
    w.text("imageId", &i.id)
        .opt(
            "imageLocation",
            d.image_location.as_deref().or(Some(&format!("{}/{}", i.account, i.name.as_deref().unwrap_or("")))),
        )
        .text("imageState", d.state.as_str())
        .text("imageOwnerId", &i.account)
        .text("creationDate", &i.created_at)
        .bool("isPublic", d.is_public())
        .text("architecture", d.architecture.as_str())
        .text("imageType", "machine")
        .opt("kernelId", d.kernel_id.as_deref())
        .opt("ramdiskId", d.ramdisk_id.as_deref())
        .opt("imageOwnerAlias", owner_alias)
        .opt("platform", d.platform.as_deref())
        .text("platformDetails", if d.platform.is_some() { "Windows" } else { "Linux/UNIX" })
        .text("usageOperation", if d.platform.is_some() { "RunInstances:0002" } else { "RunInstances" })
        .opt("name", i.name.as_deref())
        .opt("description", d.description.as_deref())
        .text("rootDeviceType", d.root_device_type.as_str())
        .text("rootDeviceName", &d.root_device_name);
    w.list("blockDeviceMapping", &d.block_device_mappings, mapping);
    w.text("virtualizationType", &d.virtualization_type).text("hypervisor", "xen");
    w.bool("enaSupport", d.ena_support).opt("sriovNetSupport", d.sriov_net_support.as_deref());
    w.opt("bootMode", d.boot_mode.as_deref())
        .opt("tpmSupport", d.tpm_support.as_deref())
        .opt("imdsSupport", d.imds_support.as_deref());
    w.opt("sourceInstanceId", d.source_instance_id.as_deref());
    w.opt("sourceImageId", d.source_image_id.as_deref());
    w.opt("sourceImageRegion", d.source_image_region.as_deref());
    super::lifecycle::image_lifecycle(w, &d.lifecycle);
    w.start("productCodes").end();
    tag_set(w, &i.tags);
}

/// The one attribute `DescribeImageAttribute` asked for.
pub fn image_attribute(w: &mut XmlWriter, i: &Item<ImageData>, attribute: &str) {
    let d = &i.data;
    let value = |w: &mut XmlWriter, name: &'static str, v: Option<&str>| {
        w.start(name);
        w.opt("value", v);
        w.end();
    };
    match attribute {
        "description" => value(w, "description", d.description.as_deref()),
        "kernel" => value(w, "kernel", d.kernel_id.as_deref()),
        "ramdisk" => value(w, "ramdisk", d.ramdisk_id.as_deref()),
        "sriovNetSupport" => value(w, "sriovNetSupport", d.sriov_net_support.as_deref()),
        "bootMode" => value(w, "bootMode", d.boot_mode.as_deref()),
        "tpmSupport" => value(w, "tpmSupport", d.tpm_support.as_deref()),
        "uefiData" => value(w, "uefiData", None),
        "imdsSupport" => value(w, "imdsSupport", d.imds_support.as_deref()),
        "lastLaunchedTime" => value(w, "lastLaunchedTime", d.lifecycle.last_launched_time.as_deref()),
        "deregistrationProtection" => value(w, "deregistrationProtection", Some(&d.lifecycle.protection_status())),
        "launchPermission" => {
            w.list("launchPermission", &d.launch_permissions, grantee);
        }
        "productCodes" => {
            w.start("productCodes").end();
        }
        "blockDeviceMapping" => {
            w.list("blockDeviceMapping", &d.block_device_mappings, mapping);
        }
        _ => {}
    }
}
