//! Image lifecycle fields and block public access states to EC2 XML.

use kiln_core::images::references::ImageReference;
use kiln_core::records::image::ImageLifecycle;
use kiln_ec2::xml::XmlWriter;

/// The lifecycle elements of one `Image`: `deprecationTime` (when set),
/// `deregistrationProtection` and `lastLaunchedTime` (when known to the caller).
pub fn image_lifecycle(w: &mut XmlWriter, l: &ImageLifecycle) {
    w.opt("deprecationTime", l.deprecation_time.as_deref())
        .text("deregistrationProtection", &l.protection_status())
        .opt("lastLaunchedTime", l.last_launched_time.as_deref());
}

/// The body of `Get/Enable/DisableImageBlockPublicAccess…`.
pub fn image_block_public_access(w: &mut XmlWriter, state: &str, with_manager: bool) {
    w.text("imageBlockPublicAccessState", state);
    if with_manager {
        w.text("managedBy", "account");
    }
}

/// The body of `Get/Enable/DisableSnapshotBlockPublicAccess…`.
pub fn snapshot_block_public_access(w: &mut XmlWriter, state: &str, with_manager: bool) {
    w.text("state", state);
    if with_manager {
        w.text("managedBy", "account");
    }
}

/// One `ImageReference` of `DescribeImageReferences`.
pub fn image_reference(w: &mut XmlWriter, r: &ImageReference) {
    w.text("imageId", &r.image_id).text("resourceType", r.resource_type).text("arn", &r.arn);
}
