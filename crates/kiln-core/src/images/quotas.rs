//! Per-account quotas on images, with EC2's default values: images per region (50,000), public
//! images per region (5) and accounts one image may be shared with (1,000).
//!
//! Each quota is checked inside the transaction that would exceed it, and transactions are
//! serialised, so two concurrent requests cannot both take the last place. A quota lowered
//! below what an account already has refuses only what would add to it: deregistering, making
//! an image private and removing launch permissions always work. Exceeding a quota is EC2's
//! `ResourceLimitExceeded`. Provided images are the operator's and count against nothing.

use kiln_meta::MetaTxn;
use kiln_types::Grantee;

use crate::error::{CoreError, CoreResult};
use crate::records::image::ImageData;
use crate::records::item::{self, Item};
use crate::Ctx;

/// The quotas every account has in every region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Images one account may have in one region: available, pending and disabled ones
    /// (failed ones do not count). EC2's "AMIs" quota.
    pub images_per_region: u64,
    /// Public images one account may have in one region. EC2's "Public AMIs" quota.
    pub public_images_per_region: u64,
    /// Accounts one image may be shared with. EC2's "AMI sharing" quota.
    pub launch_permission_targets_per_image: u64,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas { images_per_region: 50_000, public_images_per_region: 5, launch_permission_targets_per_image: 1_000 }
    }
}

fn exceeded(message: String) -> CoreError {
    CoreError::ResourceLimitExceeded(message)
}

/// Refuses `adding` more images for the caller in its region beyond `images_per_region`.
pub(crate) fn check_new_images(txn: &mut dyn MetaTxn, quotas: &Quotas, ctx: &Ctx, adding: u64) -> CoreResult<()> {
    // Counted on the store's index: every image of the caller's in the region but failed ones.
    let mine = kiln_meta::Query {
        kind: Some(kiln_types::ResourceKind::Image),
        account: Some(&ctx.account),
        region: Some(&ctx.region),
        ..Default::default()
    };
    let failed = ["failed".to_string()];
    let counted = txn.count(&mine)? - txn.count(&kiln_meta::Query { states: &failed, ..mine.clone() })?;
    if counted.saturating_add(adding) > quotas.images_per_region {
        return Err(exceeded(format!(
            "You have reached your quota of {} for the number of images allowed in this Region. \
             Deregister unused images, or ask the operator to raise [quotas] images_per_region.",
            quotas.images_per_region
        )));
    }
    Ok(())
}

fn account_grants(list: &[Grantee]) -> u64 {
    list.iter().filter(|g| matches!(g, Grantee::Account(_))).count() as u64
}

/// Checks an image's new launch permissions (already applied to `image`) against its old ones
/// (`before`): becoming public must fit `public_images_per_region` for its owner, and the
/// accounts it is shared with must not grow beyond `launch_permission_targets_per_image`.
pub(crate) fn check_launch_permissions(
    txn: &mut dyn MetaTxn,
    quotas: &Quotas,
    image: &Item<ImageData>,
    before: &[Grantee],
) -> CoreResult<()> {
    let (shared_before, shared_now) = (account_grants(before), account_grants(&image.data.launch_permissions));
    if shared_now > quotas.launch_permission_targets_per_image && shared_now > shared_before {
        return Err(exceeded(format!(
            "You have reached your quota of {} for the number of accounts an image can be shared with \
             ({} would have {shared_now}). Remove launch permissions first, or ask the operator to raise \
             [quotas] launch_permission_targets_per_image.",
            quotas.launch_permission_targets_per_image, image.id
        )));
    }
    if image.data.is_public() && !before.contains(&Grantee::All) {
        let owner = Ctx { account: image.account.clone(), region: image.region.clone() };
        let public = item::list::<ImageData>(txn, &owner, None)?
            .iter()
            .filter(|i| i.id != image.id && i.data.is_public())
            .count() as u64;
        if public >= quotas.public_images_per_region {
            return Err(exceeded(format!(
                "You have reached your quota of {} for the number of public images allowed in this Region. \
                 Deregister unused public images or make them private, or ask the operator to raise \
                 [quotas] public_images_per_region.",
                quotas.public_images_per_region
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kiln_types::{
        BlockDeviceMapping, CreateImageSpec, EbsSpec, ImageState, InstanceState, RegisterImageSpec, ResourceKind,
        RootDeviceType,
    };

    use super::*;
    use crate::records::instance::InstanceData;
    use crate::records::snapshot::SnapshotData;
    use crate::Kiln;

    const A: &str = "111111111111";
    const REGION: &str = "us-east-1";

    fn ctx(region: &str) -> Ctx {
        Ctx { account: A.into(), region: region.into() }
    }

    fn kiln(dir: &std::path::Path, quotas: Quotas) -> Kiln {
        crate::test_support::kiln(dir, &["us-east-1", "eu-west-1"]).with_quotas(quotas)
    }

    fn register(kiln: &Kiln, c: &Ctx, name: &str) -> CoreResult<String> {
        let spec = RegisterImageSpec {
            name: name.into(),
            root_device_name: Some("/dev/xvda".into()),
            block_device_mappings: vec![BlockDeviceMapping {
                device_name: "/dev/xvda".into(),
                ebs: Some(EbsSpec {
                    snapshot_id: Some(crate::test_support::completed_snapshot(kiln, c)),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        kiln.register_image(c, &spec).map(|i| i.id)
    }

    fn limited(r: CoreResult<impl std::fmt::Debug>) -> bool {
        matches!(r, Err(CoreError::ResourceLimitExceeded(_)))
    }

    fn account(n: u64) -> Grantee {
        Grantee::Account(format!("{n:012}"))
    }

    #[test]
    fn defaults_are_ec2s() {
        let q = Quotas::default();
        assert_eq!(
            (q.images_per_region, q.public_images_per_region, q.launch_permission_targets_per_image),
            (50_000, 5, 1_000)
        );
    }

    #[test]
    fn images_per_region_counts_the_accounts_images_in_the_region() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path(), Quotas { images_per_region: 2, ..Quotas::default() });
        let us = ctx(REGION);
        let first = register(&kiln, &us, "one").unwrap();
        let second = register(&kiln, &us, "two").unwrap();
        let refused = register(&kiln, &us, "three");
        assert!(limited(refused), "the third image is over the quota");
        // Other regions and other accounts have their own count.
        register(&kiln, &ctx("eu-west-1"), "three").unwrap();
        register(&kiln, &Ctx { account: "222222222222".into(), region: REGION.into() }, "three").unwrap();
        // Disabled images count; failed ones do not; deregistering frees a place.
        kiln.disable_image(&us, &first).unwrap();
        assert!(limited(register(&kiln, &us, "three")));
        let mut txn = kiln.store.begin().unwrap();
        let mut image = Item::<ImageData>::from_record(txn.get(&first).unwrap().unwrap()).unwrap();
        image.data.state = ImageState::Failed;
        image.save(txn.as_mut()).unwrap();
        txn.commit().unwrap();
        register(&kiln, &us, "three").unwrap();
        assert!(limited(register(&kiln, &us, "four")));
        kiln.deregister_image(&us, &first, false).unwrap();
        assert!(limited(register(&kiln, &us, "four")), "a failed image freed nothing when it went");
        kiln.deregister_image(&us, &second, false).unwrap();
        register(&kiln, &us, "four").unwrap();
    }

    #[test]
    fn create_image_is_refused_before_anything_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = Arc::new(kiln(dir.path(), Quotas { images_per_region: 1, ..Quotas::default() }));
        let us = ctx(REGION);
        let source = register(&kiln, &us, "source").unwrap();
        // An instance record as a launch commits it; no VM is needed to be refused.
        let mut txn = kiln.store.begin().unwrap();
        let data = InstanceData {
            image_id: source,
            state: InstanceState::Stopped,
            root_device_type: RootDeviceType::Ebs,
            root_device_name: "/dev/xvda".into(),
            ..Default::default()
        };
        let mut inst = Item::new(&us, None, String::new(), vec![], data);
        inst.insert(txn.as_mut()).unwrap();
        txn.commit().unwrap();
        let spec = CreateImageSpec { instance_id: inst.id.clone(), name: "from-instance".into(), ..Default::default() };
        assert!(limited(kiln.create_image(&us, &spec)));
        let mut txn = kiln.store.read().unwrap();
        assert_eq!(item::list::<ImageData>(txn.as_mut(), &us, None).unwrap().len(), 1);
        assert_eq!(item::list::<SnapshotData>(txn.as_mut(), &us, None).unwrap().len(), 1, "no snapshot was started");
    }

    #[test]
    fn public_images_per_region_refuses_one_more_public_image() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path(), Quotas { public_images_per_region: 2, ..Quotas::default() });
        let us = ctx(REGION);
        let ids: Vec<String> = (0..4).map(|n| register(&kiln, &us, &format!("img-{n}")).unwrap()).collect();
        let publish = |id: &str| kiln.modify_image(&us, id, None, &[Grantee::All], &[], None);
        publish(&ids[0]).unwrap();
        publish(&ids[1]).unwrap();
        publish(&ids[1]).unwrap();
        assert!(limited(publish(&ids[2])), "a third public image is over the quota");
        // Sharing with an account and other changes to public images still work.
        kiln.modify_image(&us, &ids[2], None, &[account(2)], &[], None).unwrap();
        kiln.modify_image(&us, &ids[0], Some("still public"), &[account(3)], &[], None).unwrap();
        // Making one private frees a place; another region has its own.
        kiln.modify_image(&us, &ids[0], None, &[], &[Grantee::All], None).unwrap();
        publish(&ids[2]).unwrap();
        assert!(limited(publish(&ids[3])));
        let eu = ctx("eu-west-1");
        let there = register(&kiln, &eu, "eu-img").unwrap();
        kiln.modify_image(&eu, &there, None, &[Grantee::All], &[], None).unwrap();
    }

    #[test]
    fn launch_permission_targets_cap_the_accounts_an_image_is_shared_with() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path(), Quotas { launch_permission_targets_per_image: 2, ..Quotas::default() });
        let us = ctx(REGION);
        let id = register(&kiln, &us, "shared").unwrap();
        let share = |add: &[Grantee], remove: &[Grantee]| kiln.modify_image(&us, &id, None, add, remove, None);
        assert!(limited(share(&[account(1), account(2), account(3)], &[])), "three at once");
        share(&[account(1), account(2)], &[]).unwrap();
        assert!(limited(share(&[account(3)], &[])));
        share(&[account(1)], &[]).unwrap();
        // Public is not an account; swapping one account for another keeps the count.
        share(&[Grantee::All], &[]).unwrap();
        share(&[account(3)], &[account(1)]).unwrap();
        let image = kiln.image_for_attribute(&us, &id, "launchPermission").unwrap();
        assert_eq!(image.data.launch_permissions.len(), 3);
    }

    #[test]
    fn a_lowered_quota_refuses_only_growth() {
        let dir = tempfile::tempdir().unwrap();
        let mut kiln = kiln(dir.path(), Quotas::default());
        let us = ctx(REGION);
        let id = register(&kiln, &us, "wide").unwrap();
        kiln.modify_image(&us, &id, None, &[account(1), account(2), account(3), Grantee::All], &[], None).unwrap();
        kiln.quotas =
            Quotas { images_per_region: 0, public_images_per_region: 0, launch_permission_targets_per_image: 1 };
        kiln.modify_image(&us, &id, Some("description changes still work"), &[], &[], None).unwrap();
        kiln.modify_image(&us, &id, None, &[], &[account(3)], None).unwrap();
        kiln.modify_image(&us, &id, None, &[account(4)], &[account(2)], None).unwrap();
        assert!(limited(kiln.modify_image(&us, &id, None, &[account(5)], &[], None)));
        kiln.modify_image(&us, &id, None, &[], &[Grantee::All], None).unwrap();
        assert!(limited(kiln.modify_image(&us, &id, None, &[Grantee::All], &[], None)));
        assert!(limited(register(&kiln, &us, "more")));
        kiln.deregister_image(&us, &id, false).unwrap();
        assert!(matches!(
            kiln.image_for_attribute(&us, &id, "description"),
            Err(CoreError::NotFound { kind: ResourceKind::Image, .. })
        ));
    }
}
