//! The one exhaustive match from [`Ec2Action`] to use cases and XML.

use std::sync::Arc;

use base64::Engine;

use kiln_core::images::retirement::Include;
use kiln_core::network::security_groups::RuleTarget;
use kiln_core::{Ctx, Kiln};
use kiln_ec2::action::RuleChange;
use kiln_ec2::xml::XmlWriter;
use kiln_ec2::Ec2Action;

use crate::error::ApiError;
use crate::render::{self, next_token};

fn target(c: &RuleChange) -> RuleTarget {
    RuleTarget { group_id: c.group_id.clone(), group_name: c.group_name.clone() }
}

/// Runs one authenticated action and renders its response document.
pub fn dispatch(kiln: &Arc<Kiln>, ctx: &Ctx, action: &Ec2Action, request_id: &str) -> Result<String, ApiError> {
    let mut w = XmlWriter::response(action.name(), request_id);
    match action {
        Ec2Action::DescribeRegions { region_names, all_regions: _, filters } => {
            let regions = kiln.describe_regions(region_names, filters)?;
            w.list("regionInfo", &regions, render::region);
        }
        Ec2Action::DescribeAvailabilityZones { zone_names, zone_ids, all_zones: _, filters } => {
            let zones = kiln.describe_zones(ctx, zone_names, zone_ids, filters)?;
            w.list("availabilityZoneInfo", &zones, render::zone);
        }
        Ec2Action::DescribeAccountAttributes { attribute_names } => {
            let attrs = kiln.account_attributes(ctx, attribute_names)?;
            w.list("accountAttributeSet", &attrs, |w, (name, values)| {
                w.text("attributeName", name);
                w.list("attributeValueSet", values, |w, v| {
                    w.text("attributeValue", v);
                });
            });
        }
        Ec2Action::DescribeInstanceTypes { instance_types, filters, page } => {
            let (types, next) = kiln.describe_instance_types(instance_types, filters, page)?;
            w.list("instanceTypeSet", &types, render::instance_type);
            next_token(&mut w, &next);
        }
        Ec2Action::DescribeInstanceTypeOfferings { location_type, filters, page } => {
            let (rows, next) = kiln.describe_offerings(ctx, location_type, filters, page)?;
            w.list("instanceTypeOfferingSet", &rows, render::offering);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateKeyPair { key_name, key_type, key_format, tag_specs } => {
            let created = kiln.create_key_pair(ctx, key_name, key_type.as_deref(), key_format.as_deref(), tag_specs)?;
            let k = &created.key_pair;
            w.opt("keyName", k.name.as_deref())
                .text("keyFingerprint", &k.data.fingerprint)
                .text("keyMaterial", &created.private_key);
            w.text("keyPairId", &k.id);
            render::tag_set(&mut w, &k.tags);
        }
        Ec2Action::ImportKeyPair { key_name, public_key_material, tag_specs } => {
            let k = kiln.import_key_pair(ctx, key_name, public_key_material, tag_specs)?;
            w.opt("keyName", k.name.as_deref()).text("keyFingerprint", &k.data.fingerprint).text("keyPairId", &k.id);
            render::tag_set(&mut w, &k.tags);
        }
        Ec2Action::DescribeKeyPairs { key_names, key_pair_ids, filters, include_public_key } => {
            let keys = kiln.describe_key_pairs(ctx, key_names, key_pair_ids, filters)?;
            w.list("keySet", &keys, |w, k| render::key_pair(w, k, *include_public_key));
        }
        Ec2Action::DeleteKeyPair { key_name, key_pair_id } => {
            let deleted = kiln.delete_key_pair(ctx, key_name.as_deref(), key_pair_id.as_deref())?;
            w.bool("return", true).opt("keyPairId", deleted.as_deref());
        }
        Ec2Action::DescribeVpcs { vpc_ids, filters, page } => {
            let (vpcs, next) = kiln.describe_vpcs(ctx, vpc_ids, filters, page)?;
            w.list("vpcSet", &vpcs, render::vpc);
            next_token(&mut w, &next);
        }
        Ec2Action::DescribeSubnets { subnet_ids, filters, page } => {
            let (subnets, next) = kiln.describe_subnets(ctx, subnet_ids, filters, page)?;
            w.list("subnetSet", &subnets, render::subnet);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateSecurityGroup { group_name, description, vpc_id, tag_specs } => {
            let g = kiln.create_security_group(ctx, group_name, description, vpc_id.as_deref(), tag_specs)?;
            w.bool("return", true).text("groupId", &g.id);
            render::tag_set(&mut w, &g.tags);
            w.text("securityGroupArn", &kiln_core::network::security_groups::group_arn(&g));
        }
        Ec2Action::DeleteSecurityGroup { group_id, group_name } => {
            let id = kiln.delete_security_group(ctx, group_id.as_deref(), group_name.as_deref())?;
            w.bool("return", true).text("groupId", &id);
        }
        Ec2Action::DescribeSecurityGroups { group_ids, group_names, filters, page } => {
            let (groups, next) = kiln.describe_security_groups(ctx, group_ids, group_names, filters, page)?;
            w.list("securityGroupInfo", &groups, render::security_group);
            next_token(&mut w, &next);
        }
        Ec2Action::AuthorizeSecurityGroupIngress(c) | Ec2Action::AuthorizeSecurityGroupEgress(c) => {
            let egress = matches!(action, Ec2Action::AuthorizeSecurityGroupEgress(_));
            let rules = kiln.authorize(ctx, &target(c), egress, &c.permissions, &c.tag_specs)?;
            w.bool("return", true);
            w.list("securityGroupRuleSet", &rules, render::rule);
        }
        Ec2Action::RevokeSecurityGroupIngress(c) | Ec2Action::RevokeSecurityGroupEgress(c) => {
            let egress = matches!(action, Ec2Action::RevokeSecurityGroupEgress(_));
            let revoked = kiln.revoke(ctx, &target(c), egress, &c.permissions, &c.rule_ids)?;
            w.bool("return", true);
            w.list("revokedSecurityGroupRuleSet", &revoked, render::revoked_rule);
        }
        Ec2Action::DescribeSecurityGroupRules { rule_ids, filters, page } => {
            let (rules, next) = kiln.describe_security_group_rules(ctx, rule_ids, filters, page)?;
            w.list("securityGroupRuleSet", &rules, render::rule);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateTags { resources, tags } => {
            kiln.create_tags(ctx, resources, tags)?;
            w.bool("return", true);
        }
        Ec2Action::DeleteTags { resources, tags } => {
            kiln.delete_tags(ctx, resources, tags)?;
            w.bool("return", true);
        }
        Ec2Action::DescribeTags { filters, page } => {
            let (rows, next) = kiln.describe_tags(ctx, filters, page)?;
            w.list("tagSet", &rows, render::tag_description);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateVolume(spec) => {
            let vol = kiln.create_volume(ctx, spec)?;
            render::created_volume(&mut w, &vol);
        }
        Ec2Action::DescribeVolumes { volume_ids, filters, page } => {
            let (vols, next) = kiln.describe_volumes(ctx, volume_ids, filters, page)?;
            w.list("volumeSet", &vols, render::volume);
            next_token(&mut w, &next);
        }
        Ec2Action::DeleteVolume { volume_id } => {
            kiln.delete_volume(ctx, volume_id)?;
            w.bool("return", true);
        }
        Ec2Action::ModifyVolume { volume_id, change } => {
            let (vol, modification) = kiln.modify_volume(ctx, volume_id, change)?;
            w.start("volumeModification");
            render::modification(&mut w, &vol.id, &modification);
            w.end();
        }
        Ec2Action::DescribeVolumesModifications { volume_ids, filters, page } => {
            let (rows, next) = kiln.describe_volume_modifications(ctx, volume_ids, filters, page)?;
            w.list("volumeModificationSet", &rows, |w, (id, m)| render::modification(w, id, m));
            next_token(&mut w, &next);
        }
        Ec2Action::AttachVolume { volume_id, instance_id, device } => {
            let a = kiln.attach_volume(ctx, volume_id, instance_id, device)?;
            render::attachment(&mut w, volume_id, &a);
        }
        Ec2Action::DetachVolume { volume_id, instance_id, device: _, force: _ } => {
            let a = kiln.detach_volume(ctx, volume_id, instance_id.as_deref())?;
            render::attachment(&mut w, volume_id, &a);
        }
        Ec2Action::CreateSnapshot { volume_id, description, tag_specs } => {
            let snap = kiln.create_snapshot(ctx, volume_id, description.as_deref(), tag_specs)?;
            render::created_snapshot(&mut w, &snap);
        }
        Ec2Action::CreateSnapshots(spec) => {
            let snaps = kiln.create_snapshots(ctx, spec)?;
            w.list("snapshotSet", &snaps, render::snapshot_info);
        }
        Ec2Action::DescribeSnapshots(d) => {
            let (snaps, next) = kiln.describe_snapshots(ctx, &d.ids, &d.owners, &d.users, &d.filters, &d.page)?;
            let aliases = kiln.aliases()?;
            w.list("snapshotSet", &snaps, |w, s| render::snapshot(w, s, aliases.get(&s.account).map(String::as_str)));
            next_token(&mut w, &next);
        }
        Ec2Action::DeleteSnapshot { snapshot_id } => {
            kiln.delete_snapshot(ctx, snapshot_id)?;
            w.bool("return", true);
        }
        Ec2Action::CopySnapshot {
            source_region,
            source_snapshot_id,
            description,
            encrypted,
            destination_region,
            tag_specs,
        } => {
            if let Some(dest) = destination_region {
                if dest != &ctx.region {
                    return Err(ApiError::Core(kiln_core::CoreError::InvalidParameterValue(format!(
                        "DestinationRegion {dest} must be the region the request is sent to ({})",
                        ctx.region
                    ))));
                }
            }
            let copy = if source_region == &ctx.region {
                kiln.copy_snapshot(
                    ctx,
                    source_region,
                    source_snapshot_id,
                    description.as_deref(),
                    *encrypted,
                    tag_specs,
                )?
            } else {
                kiln.copy_snapshot_between_regions(
                    ctx,
                    source_region,
                    source_snapshot_id,
                    description.as_deref(),
                    tag_specs,
                )?
            };
            w.text("snapshotId", &copy.id);
            render::tag_set_always(&mut w, &copy.tags);
        }
        Ec2Action::DescribeSnapshotAttribute { snapshot_id, attribute } => {
            let perms = kiln.snapshot_permissions(ctx, snapshot_id, attribute)?;
            w.text("snapshotId", snapshot_id);
            if attribute == "productCodes" {
                w.start("productCodes").end();
            } else {
                w.list("createVolumePermission", &perms, render::grantee);
            }
        }
        Ec2Action::ModifySnapshotAttribute { snapshot_id, attribute, change } => {
            if let Some(a) = attribute {
                if a != "createVolumePermission" {
                    return Err(ApiError::Core(kiln_core::CoreError::InvalidParameterValue(format!(
                        "Value ({a}) for parameter attribute is invalid."
                    ))));
                }
            }
            kiln.modify_snapshot_permissions(ctx, snapshot_id, &change.add, &change.remove)?;
            w.bool("return", true);
        }
        Ec2Action::ResetSnapshotAttribute { snapshot_id, attribute } => {
            kiln.reset_snapshot_permissions(ctx, snapshot_id, attribute)?;
            w.bool("return", true);
        }
        Ec2Action::RunInstances(spec) => {
            let r = kiln.run_instances(ctx, spec)?;
            render::reservation(&mut w, &r);
        }
        Ec2Action::DescribeInstances { instance_ids, filters, page } => {
            let (reservations, next) = kiln.describe_instances(ctx, instance_ids, filters, page)?;
            w.list("reservationSet", &reservations, render::reservation);
            next_token(&mut w, &next);
        }
        Ec2Action::DescribeInstanceStatus { instance_ids, include_all, filters, page } => {
            let (items, next) = kiln.describe_instance_status(ctx, instance_ids, *include_all, filters, page)?;
            w.list("instanceStatusSet", &items, render::instance_status);
            next_token(&mut w, &next);
        }
        Ec2Action::StartInstances { instance_ids } => {
            let rows = kiln.start_instances(ctx, instance_ids)?;
            w.list("instancesSet", &rows, render::state_change);
        }
        Ec2Action::StopInstances { instance_ids, force } => {
            let rows = kiln.stop_instances(ctx, instance_ids, *force)?;
            w.list("instancesSet", &rows, render::state_change);
        }
        Ec2Action::RebootInstances { instance_ids } => {
            kiln.reboot_instances(ctx, instance_ids)?;
            w.bool("return", true);
        }
        Ec2Action::TerminateInstances { instance_ids } => {
            let rows = kiln.terminate_instances(ctx, instance_ids)?;
            w.list("instancesSet", &rows, render::state_change);
        }
        Ec2Action::GetConsoleOutput { instance_id, latest: _ } => {
            let (output, timestamp) = kiln.console_output(ctx, instance_id)?;
            w.text("instanceId", instance_id).text("timestamp", &timestamp);
            w.text("output", &base64::engine::general_purpose::STANDARD.encode(output));
        }
        Ec2Action::DescribeInstanceAttribute { instance_id, attribute } => {
            let value = kiln.instance_attribute(ctx, instance_id, attribute)?;
            w.text("instanceId", instance_id);
            render::instance_attribute(&mut w, attribute, &value);
        }
        Ec2Action::ModifyInstanceAttribute { instance_id, change } => {
            kiln.modify_instance_attribute(ctx, instance_id, change)?;
            w.bool("return", true);
        }
        Ec2Action::CopyImage(spec) => {
            let image = kiln.copy_image(ctx, spec)?;
            w.text("imageId", &image.id);
        }
        Ec2Action::GetImageAncestry { image_id } => {
            let chain = kiln.image_ancestry(ctx, image_id)?;
            let aliases = kiln.aliases()?;
            w.list("imageAncestryEntrySet", &chain, |w, i| {
                w.text("creationDate", &i.created_at)
                    .text("imageId", &i.id)
                    .opt("imageOwnerAlias", aliases.get(&i.account).map(String::as_str))
                    .opt("sourceImageId", i.data.source_image_id.as_deref())
                    .opt("sourceImageRegion", i.data.source_image_region.as_deref());
            });
        }
        Ec2Action::CreateImage(spec) => {
            let image = kiln.create_image(ctx, spec)?;
            w.text("imageId", &image.id);
        }
        Ec2Action::RegisterImage(spec) => {
            let image = kiln.register_image(ctx, spec)?;
            w.text("imageId", &image.id);
        }
        Ec2Action::DescribeImages { describe: d, include_deprecated, include_disabled } => {
            let include = Include { deprecated: *include_deprecated, disabled: *include_disabled };
            let ids = d.ids.iter().map(|id| kiln.resolve_image_id(ctx, id)).collect::<Result<Vec<_>, _>>()?;
            let (images, next) = kiln.describe_images(ctx, &ids, &d.owners, &d.users, &d.filters, &d.page, include)?;
            let aliases = kiln.aliases()?;
            w.list("imagesSet", &images, |w, i| render::image(w, i, aliases.get(&i.account).map(String::as_str)));
            next_token(&mut w, &next);
        }
        Ec2Action::DeregisterImage { image_id, delete_associated_snapshots } => {
            let results = kiln.deregister_image(ctx, image_id, *delete_associated_snapshots)?;
            w.bool("return", true);
            if *delete_associated_snapshots {
                w.list("deleteSnapshotResultSet", &results, |w, (id, outcome)| {
                    w.text("snapshotId", id).text("returnCode", if outcome.is_ok() { "success" } else { "skipped" });
                });
            }
        }
        Ec2Action::ListImagesInRecycleBin { image_ids, page } => {
            let (items, next) = kiln.list_images_in_recycle_bin(ctx, image_ids, page)?;
            let images = items.iter().map(|b| Ok((b.image()?, b))).collect::<Result<Vec<_>, kiln_core::CoreError>>()?;
            w.list("imageSet", &images, |w, (image, b)| {
                w.text("imageId", &image.id)
                    .opt("name", image.name.as_deref())
                    .opt("description", image.data.description.as_deref())
                    .text("recycleBinEnterTime", &b.enter_time())
                    .text("recycleBinExitTime", &b.exit_time());
            });
            next_token(&mut w, &next);
        }
        Ec2Action::ListSnapshotsInRecycleBin { snapshot_ids, page } => {
            let (items, next) = kiln.list_snapshots_in_recycle_bin(ctx, snapshot_ids, page)?;
            let snaps =
                items.iter().map(|b| Ok((b.snapshot()?, b))).collect::<Result<Vec<_>, kiln_core::CoreError>>()?;
            w.list("snapshotSet", &snaps, |w, (snap, b)| {
                w.text("snapshotId", &snap.id)
                    .text("recycleBinEnterTime", &b.enter_time())
                    .text("recycleBinExitTime", &b.exit_time())
                    .text("description", &snap.data.description)
                    .text("volumeId", &snap.data.volume_id);
            });
            next_token(&mut w, &next);
        }
        Ec2Action::RestoreImageFromRecycleBin { image_id } => {
            kiln.restore_image_from_recycle_bin(ctx, image_id)?;
            w.bool("return", true);
        }
        Ec2Action::RestoreSnapshotFromRecycleBin { snapshot_id } => {
            let s = kiln.restore_snapshot_from_recycle_bin(ctx, snapshot_id)?;
            let d = &s.data;
            w.text("snapshotId", &s.id)
                .text("description", &d.description)
                .bool("encrypted", d.encrypted)
                .text("ownerId", &s.account)
                .text("progress", &format!("{}%", d.progress))
                .text("startTime", &d.start_time)
                .text("status", d.state.as_str())
                .text("volumeId", &d.volume_id)
                .text("volumeSize", &d.volume_size.to_string());
        }
        Ec2Action::DescribeImageAttribute { image_id, attribute } => {
            let image = kiln.image_for_attribute(ctx, image_id, attribute)?;
            w.text("imageId", &image.id);
            render::image_attribute(&mut w, &image, attribute);
        }
        Ec2Action::ModifyImageAttribute(m) => {
            if let Some(a) = &m.attribute {
                if !["description", "launchPermission", "imdsSupport"].contains(&a.as_str()) {
                    return Err(ApiError::Core(kiln_core::CoreError::InvalidParameterValue(format!(
                        "Value ({a}) for parameter attribute is invalid."
                    ))));
                }
            }
            kiln.modify_image(
                ctx,
                &m.image_id,
                m.description.as_deref(),
                &m.launch_permission.add,
                &m.launch_permission.remove,
                m.imds_support.as_deref(),
            )?;
            w.bool("return", true);
        }
        Ec2Action::ResetImageAttribute { image_id, attribute } => {
            kiln.reset_image_attribute(ctx, image_id, attribute)?;
            w.bool("return", true);
        }
        Ec2Action::CancelImageLaunchPermission { image_id } => {
            kiln.cancel_image_launch_permission(ctx, image_id)?;
            w.bool("return", true);
        }
        Ec2Action::DescribeImageReferences { image_ids, include_all_resource_types, resource_types, page } => {
            let (refs, next) =
                kiln.describe_image_references(ctx, image_ids, *include_all_resource_types, resource_types, page)?;
            w.list("imageReferenceSet", &refs, render::image_reference);
            next_token(&mut w, &next);
        }
        Ec2Action::EnableImageBlockPublicAccess { state } => {
            let state = kiln.set_image_block_public_access(ctx, Some(state))?;
            render::image_block_public_access(&mut w, &state, false);
        }
        Ec2Action::DisableImageBlockPublicAccess => {
            let state = kiln.set_image_block_public_access(ctx, None)?;
            render::image_block_public_access(&mut w, &state, false);
        }
        Ec2Action::GetImageBlockPublicAccessState => {
            let state = kiln.image_block_public_access(ctx)?;
            render::image_block_public_access(&mut w, &state, true);
        }
        Ec2Action::EnableSnapshotBlockPublicAccess { state } => {
            let state = kiln.set_snapshot_block_public_access(ctx, Some(state))?;
            render::snapshot_block_public_access(&mut w, &state, false);
        }
        Ec2Action::DisableSnapshotBlockPublicAccess => {
            let state = kiln.set_snapshot_block_public_access(ctx, None)?;
            render::snapshot_block_public_access(&mut w, &state, false);
        }
        Ec2Action::GetSnapshotBlockPublicAccessState => {
            let state = kiln.snapshot_block_public_access(ctx)?;
            render::snapshot_block_public_access(&mut w, &state, true);
        }
        Ec2Action::EnableImageDeprecation { image_id, deprecate_at } => {
            kiln.enable_image_deprecation(ctx, image_id, *deprecate_at)?;
            w.bool("return", true);
        }
        Ec2Action::DisableImageDeprecation { image_id } => {
            kiln.disable_image_deprecation(ctx, image_id)?;
            w.bool("return", true);
        }
        Ec2Action::DisableImage { image_id } => {
            kiln.disable_image(ctx, image_id)?;
            w.bool("return", true);
        }
        Ec2Action::EnableImage { image_id } => {
            kiln.enable_image(ctx, image_id)?;
            w.bool("return", true);
        }
        Ec2Action::EnableImageDeregistrationProtection { image_id, with_cooldown } => {
            let status = kiln.enable_image_deregistration_protection(ctx, image_id, *with_cooldown)?;
            w.text("return", &status);
        }
        Ec2Action::DisableImageDeregistrationProtection { image_id } => {
            let status = kiln.disable_image_deregistration_protection(ctx, image_id)?;
            w.text("return", &status);
        }
    }
    Ok(w.finish())
}
