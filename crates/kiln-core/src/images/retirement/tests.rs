use std::sync::Arc;

use chrono::{Duration, TimeZone};
use kiln_types::{BlockDeviceMapping, EbsSpec, Page, RegisterImageSpec};

use super::*;
use crate::records::image::ImageLifecycle;
use crate::storage::public_access::BLOCK_ALL_SHARING;
use crate::storage::public_access::BLOCK_NEW_SHARING;
use crate::storage::public_access::UNBLOCKED;

const A: &str = "111111111111";
const B: &str = "222222222222";
const C: &str = "333333333333";
const REGION: &str = "us-east-1";

fn at(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

fn ctx(account: &str) -> Ctx {
    Ctx { account: account.into(), region: REGION.into() }
}

struct Fixture {
    kiln: Arc<Kiln>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kiln = crate::test_support::kiln(dir.path(), &[REGION]);
    Fixture { kiln: Arc::new(kiln), _dir: dir }
}

fn register(kiln: &Kiln, owner: &str, name: &str, snaps: &[&str]) -> String {
    let devices = ["/dev/xvda", "/dev/sdf", "/dev/sdg"];
    let spec = RegisterImageSpec {
        name: name.into(),
        root_device_name: Some("/dev/xvda".into()),
        block_device_mappings: snaps
            .iter()
            .zip(devices)
            .map(|(s, d)| BlockDeviceMapping {
                device_name: d.into(),
                ebs: Some(EbsSpec { snapshot_id: Some(s.to_string()), ..Default::default() }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    kiln.register_image(&ctx(owner), &spec).unwrap().id
}

fn share(kiln: &Kiln, owner: &str, image: &str, with: Grantee) {
    kiln.modify_image(&ctx(owner), image, None, &[with], &[], None).unwrap();
}

fn listed(kiln: &Kiln, who: &str, ids: &[String], include: Include) -> Vec<String> {
    kiln.describe_images(&ctx(who), ids, &[], &[], &[], &Page::default(), include)
        .unwrap()
        .0
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn one(id: &str) -> Vec<String> {
    vec![id.to_string()]
}

fn stored(kiln: &Kiln, id: &str) -> Item<ImageData> {
    let mut txn = kiln.store.read().unwrap();
    Item::from_record(txn.get(id).unwrap().unwrap()).unwrap()
}

fn rewrite(kiln: &Kiln, id: &str, f: impl FnOnce(&mut ImageData)) {
    let mut txn = kiln.store.begin().unwrap();
    let mut image = Item::<ImageData>::from_record(txn.get(id).unwrap().unwrap()).unwrap();
    f(&mut image.data);
    image.save(txn.as_mut()).unwrap();
    txn.commit().unwrap();
}

fn not_found(r: CoreResult<impl std::fmt::Debug>) -> bool {
    matches!(r, Err(CoreError::NotFound { kind: ResourceKind::Image, .. }))
}

#[test]
fn deprecation_times_round_to_the_nearest_minute() {
    assert_eq!(round_to_minute(at("2030-10-15T13:17:12Z")), at("2030-10-15T13:17:00Z"));
    assert_eq!(round_to_minute(at("2030-10-15T13:17:29.999Z")), at("2030-10-15T13:17:00Z"));
    assert_eq!(round_to_minute(at("2030-10-15T13:17:30Z")), at("2030-10-15T13:18:00Z"));
    assert_eq!(round_to_minute(at("2030-12-31T23:59:45Z")), at("2031-01-01T00:00:00Z"));
}

#[test]
fn deprecation_must_lie_in_the_future_and_within_the_limits() {
    let now = at("2026-01-01T12:00:10Z");
    assert!(matches!(deprecation_time(now, now, None, false), Err(CoreError::InvalidParameterValue(_))));
    assert!(deprecation_time(at("2025-01-01T00:00:00Z"), now, None, false).is_err());
    // The value asked for is in the future; rounding may land on the current minute.
    assert_eq!(deprecation_time(at("2026-01-01T12:00:20Z"), now, None, false).unwrap(), at("2026-01-01T12:00:00Z"));
    assert_eq!(deprecation_time(at("2035-06-01T08:30:40Z"), now, None, false).unwrap(), at("2035-06-01T08:31:00Z"));
    assert!(deprecation_time(at("2036-01-01T12:01:00Z"), now, None, false).is_err(), "over 10 years");
    let created = Some(at("2025-06-01T00:00:00Z"));
    assert!(deprecation_time(at("2027-05-31T00:00:00Z"), now, created, true).is_ok());
    assert!(deprecation_time(at("2027-06-02T00:00:00Z"), now, created, true).is_err(), "public: 2 years");
    assert!(deprecation_time(at("2027-06-02T00:00:00Z"), now, created, false).is_ok());
}

#[test]
fn protection_states_and_cooldown() {
    let now = at("2026-03-01T10:00:00Z");
    let plain = Protection::Enabled { with_cooldown: false };
    assert_eq!(plain.status_at(now), "enabled-without-cooldown");
    assert!(plain.blocks_at(now));
    assert_eq!(plain.disabled_at(now), Protection::Disabled);
    assert_eq!(Protection::Disabled.status_at(now), "disabled");
    assert!(!Protection::Disabled.blocks_at(now));

    let cooled = Protection::Enabled { with_cooldown: true };
    assert_eq!(cooled.status_at(now), "enabled-with-cooldown");
    let cooling = cooled.disabled_at(now);
    assert_eq!(cooling, Protection::CoolingDown { until: "2026-03-02T10:00:00.000Z".into() });
    assert_eq!(cooling.status_at(now), "disabled-until 2026-03-02T10:00:00.000Z");
    assert!(cooling.blocks_at(now + Duration::hours(23)));
    // Disabling again does not restart or end the cooldown.
    assert_eq!(cooling.disabled_at(now + Duration::hours(1)), cooling);
    let later = now + Duration::hours(24);
    assert!(!cooling.blocks_at(later));
    assert_eq!(cooling.status_at(later), "disabled");
    assert_eq!(cooling.disabled_at(later), Protection::Disabled);
}

#[test]
fn images_stored_before_lifecycle_fields_still_decode() {
    let mut json = serde_json::to_value(ImageData::default()).unwrap();
    json.as_object_mut().unwrap().remove("lifecycle");
    let back: ImageData = serde_json::from_value(json).unwrap();
    assert_eq!(back.lifecycle, ImageLifecycle::default());
    let partial: ImageLifecycle = serde_json::from_str(r#"{"deprecation_time":"2030-01-01T00:00:00.000Z"}"#).unwrap();
    assert_eq!(partial.protection, Protection::Disabled);
}

fn image_item(id: &str, owner: &str, state: &str, deprecation: Option<&str>) -> Item<ImageData> {
    Item {
        id: id.into(),
        account: owner.into(),
        data: ImageData {
            state: state.parse().unwrap(),
            lifecycle: ImageLifecycle {
                deprecation_time: deprecation.map(str::to_string),
                last_launched_time: Some("2026-01-01T00:00:00.000Z".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn describe_view_hides_deprecated_and_disabled_images() {
    let now = at("2026-03-01T10:00:00Z");
    let images = vec![
        image_item("ami-own-deprecated", A, "available", Some("2026-01-01T00:00:00.000Z")),
        image_item("ami-own-disabled", A, "disabled", None),
        image_item("ami-theirs-deprecated", B, "available", Some("2026-01-01T00:00:00.000Z")),
        image_item("ami-theirs-later", B, "available", Some("2027-01-01T00:00:00.000Z")),
        image_item("ami-theirs-disabled", B, "disabled", None),
    ];
    let view = |ids: &[&str], include| {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        describe_view(images.clone(), &ctx(A), &ids, include, now).into_iter().map(|i| i.id).collect::<Vec<_>>()
    };
    assert_eq!(view(&[], Include::default()), ["ami-own-deprecated", "ami-theirs-later"]);
    assert_eq!(
        view(&[], Include { deprecated: true, disabled: false }),
        ["ami-own-deprecated", "ami-theirs-deprecated", "ami-theirs-later"]
    );
    assert_eq!(
        view(&[], Include { deprecated: false, disabled: true }),
        ["ami-own-deprecated", "ami-own-disabled", "ami-theirs-later"]
    );
    assert_eq!(
        view(&["ami-theirs-deprecated"], Include::default()),
        ["ami-own-deprecated", "ami-theirs-deprecated", "ami-theirs-later"]
    );
    assert_eq!(view(&["ami-own-disabled"], Include::default()), ["ami-own-deprecated", "ami-theirs-later"]);
    let launched: Vec<Option<String>> = describe_view(images.clone(), &ctx(A), &[], Include::default(), now)
        .into_iter()
        .map(|i| i.data.lifecycle.last_launched_time)
        .collect();
    assert_eq!(launched, [Some("2026-01-01T00:00:00.000Z".to_string()), None], "only the owner sees launches");
}

#[test]
fn a_recipient_cancels_its_own_launch_permission() {
    let f = fixture();
    let k = &f.kiln;
    let image = register(k, A, "shared-image", &[&crate::test_support::completed_snapshot(k, &ctx(A))]);
    share(k, A, &image, Grantee::Account(B.into()));
    share(k, A, &image, Grantee::Account(C.into()));
    assert_eq!(listed(k, B, &[], Include::default()), one(&image));

    k.cancel_image_launch_permission(&ctx(B), &image).unwrap();
    assert!(listed(k, B, &[], Include::default()).is_empty());
    assert!(not_found(k.cancel_image_launch_permission(&ctx(B), &image)), "no longer shared");
    assert_eq!(stored(k, &image).data.launch_permissions, [Grantee::Account(C.into())], "others keep theirs");
    assert!(matches!(k.cancel_image_launch_permission(&ctx(A), &image), Err(CoreError::OperationNotPermitted(_))));

    // Public only is not a share with the caller's account.
    share(k, A, &image, Grantee::All);
    assert!(not_found(k.cancel_image_launch_permission(&ctx(B), &image)));
    assert!(not_found(k.cancel_image_launch_permission(&ctx(B), "ami-0123456789abcdef0")));
}

#[test]
fn image_block_public_access_refuses_new_public_shares_only() {
    let f = fixture();
    let k = &f.kiln;
    let snap = crate::test_support::completed_snapshot(k, &ctx(A));
    let public = register(k, A, "public-before", &[&snap]);
    let private = register(k, A, "private", &[&snap]);
    share(k, A, &public, Grantee::All);
    assert_eq!(k.image_block_public_access(&ctx(A)).unwrap(), UNBLOCKED);
    assert!(k.set_image_block_public_access(&ctx(A), Some("block-all-sharing")).is_err());
    assert_eq!(k.set_image_block_public_access(&ctx(A), Some(BLOCK_NEW_SHARING)).unwrap(), BLOCK_NEW_SHARING);
    assert_eq!(k.image_block_public_access(&ctx(A)).unwrap(), BLOCK_NEW_SHARING);
    assert_eq!(k.image_block_public_access(&ctx(B)).unwrap(), UNBLOCKED, "per account");
    let other_region = Ctx { account: A.into(), region: "eu-west-1".into() };
    assert_eq!(k.image_block_public_access(&other_region).unwrap(), UNBLOCKED, "per region");

    let refused = k.modify_image(&ctx(A), &private, None, &[Grantee::All], &[], None);
    assert!(matches!(refused, Err(CoreError::OperationNotPermitted(_))), "{refused:?}");
    assert!(stored(k, &private).data.launch_permissions.is_empty());
    share(k, A, &private, Grantee::Account(B.into()));
    assert!(stored(k, &public).data.is_public(), "existing public images stay public");
    assert!(listed(k, C, &[], Include::default()).contains(&public));

    assert_eq!(k.set_image_block_public_access(&ctx(A), None).unwrap(), UNBLOCKED);
    share(k, A, &private, Grantee::All);
    assert!(stored(k, &private).data.is_public());
}

fn set_public(k: &Kiln, owner: &str, snap: &str) -> CoreResult<()> {
    k.modify_snapshot_permissions(&ctx(owner), snap, &[Grantee::All], &[])
}

fn restorable(k: &Kiln, who: &str) -> Vec<String> {
    k.describe_snapshots(&ctx(who), &[], &[], &[], &[], &Page::default()).unwrap().0.into_iter().map(|s| s.id).collect()
}

#[test]
fn snapshot_block_public_access_modes() {
    let f = fixture();
    let k = &f.kiln;
    let public = crate::test_support::completed_snapshot(k, &ctx(A));
    let shared = crate::test_support::completed_snapshot(k, &ctx(A));
    set_public(k, A, &public).unwrap();
    set_public(k, A, &shared).unwrap();
    k.modify_snapshot_permissions(&ctx(A), &shared, &[Grantee::Account(B.into())], &[]).unwrap();
    assert!(k.set_snapshot_block_public_access(&ctx(A), Some(UNBLOCKED)).is_err());

    assert_eq!(k.set_snapshot_block_public_access(&ctx(A), Some(BLOCK_NEW_SHARING)).unwrap(), BLOCK_NEW_SHARING);
    let fresh = crate::test_support::completed_snapshot(k, &ctx(A));
    assert!(matches!(set_public(k, A, &fresh), Err(CoreError::OperationNotPermitted(_))));
    assert!(restorable(k, C).contains(&public), "block-new-sharing keeps existing public snapshots public");

    assert_eq!(k.set_snapshot_block_public_access(&ctx(A), Some(BLOCK_ALL_SHARING)).unwrap(), BLOCK_ALL_SHARING);
    assert_eq!(k.snapshot_block_public_access(&ctx(A)).unwrap(), BLOCK_ALL_SHARING);
    assert!(restorable(k, C).is_empty(), "public snapshots are private for others");
    assert_eq!(restorable(k, B), one(&shared), "explicit shares are unaffected");
    let mut txn = k.store.read().unwrap();
    assert!(crate::storage::snapshots::visible_snapshot(txn.as_mut(), &ctx(C), &public).is_err());
    assert!(crate::storage::snapshots::visible_snapshot(txn.as_mut(), &ctx(B), &shared).is_ok());
    drop(txn);
    assert_eq!(restorable(k, A).len(), 3, "the owner sees everything");
    assert_eq!(k.snapshot_permissions(&ctx(A), &public, "createVolumePermission").unwrap(), [Grantee::All]);

    assert_eq!(k.set_snapshot_block_public_access(&ctx(A), None).unwrap(), UNBLOCKED);
    assert_eq!(restorable(k, C).len(), 2, "public again once unblocked");
    set_public(k, A, &fresh).unwrap();
}

#[test]
fn disabled_images_are_private_hidden_and_unshareable() {
    let f = fixture();
    let k = &f.kiln;
    let image = register(k, A, "to-disable", &[&crate::test_support::completed_snapshot(k, &ctx(A))]);
    share(k, A, &image, Grantee::Account(B.into()));
    share(k, A, &image, Grantee::All);
    assert!(matches!(k.disable_image(&ctx(B), &image), Err(CoreError::NotOwner(_))));
    k.disable_image(&ctx(A), &image).unwrap();
    k.disable_image(&ctx(A), &image).unwrap();
    let d = stored(k, &image).data;
    assert_eq!(d.state, ImageState::Disabled);
    assert!(d.launch_permissions.is_empty());

    assert!(listed(k, A, &[], Include::default()).is_empty());
    assert!(listed(k, A, std::slice::from_ref(&image), Include::default()).is_empty());
    assert_eq!(listed(k, A, &[], Include { deprecated: false, disabled: true }), one(&image));
    assert!(listed(k, B, &[], Include { deprecated: true, disabled: true }).is_empty());
    let shared = k.modify_image(&ctx(A), &image, None, &[Grantee::Account(B.into())], &[], None);
    assert!(matches!(shared, Err(CoreError::ImageUnavailable(_))), "{shared:?}");
    k.modify_image(&ctx(A), &image, Some("still describable"), &[], &[], None).unwrap();

    k.enable_image(&ctx(A), &image).unwrap();
    let d = stored(k, &image).data;
    assert_eq!(d.state, ImageState::Available);
    assert!(d.launch_permissions.is_empty(), "shares do not come back");
    assert_eq!(listed(k, A, &[], Include::default()), one(&image));
    share(k, A, &image, Grantee::Account(B.into()));
    assert_eq!(listed(k, B, &[], Include::default()), [image]);
}

#[test]
fn deprecated_images_leave_other_accounts_listings() {
    let f = fixture();
    let k = &f.kiln;
    let image = register(k, A, "old-image", &[&crate::test_support::completed_snapshot(k, &ctx(A))]);
    share(k, A, &image, Grantee::Account(B.into()));
    assert!(k.enable_image_deprecation(&ctx(A), &image, Utc::now() - Duration::minutes(5)).is_err());
    assert!(matches!(
        k.enable_image_deprecation(&ctx(B), &image, Utc::now() + Duration::days(1)),
        Err(CoreError::NotOwner(_))
    ));
    let later = Utc.with_ymd_and_hms(2030, 5, 1, 9, 10, 40).unwrap();
    k.enable_image_deprecation(&ctx(A), &image, later).unwrap();
    assert_eq!(stored(k, &image).data.lifecycle.deprecation_time.as_deref(), Some("2030-05-01T09:11:00.000Z"));
    assert_eq!(listed(k, B, &[], Include::default()), one(&image), "not deprecated yet");

    rewrite(k, &image, |d| d.lifecycle.deprecation_time = Some("2020-01-01T00:00:00.000Z".into()));
    assert!(listed(k, B, &[], Include::default()).is_empty());
    assert_eq!(listed(k, B, std::slice::from_ref(&image), Include::default()), one(&image));
    assert_eq!(listed(k, B, &[], Include { deprecated: true, disabled: false }), one(&image));
    assert_eq!(listed(k, A, &[], Include::default()), one(&image), "owners always see theirs");

    k.disable_image_deprecation(&ctx(A), &image).unwrap();
    assert_eq!(stored(k, &image).data.lifecycle.deprecation_time, None);
    assert_eq!(listed(k, B, &[], Include::default()), [image]);
}

#[test]
fn deregistration_protection_and_its_cooldown() {
    let f = fixture();
    let k = &f.kiln;
    let image = register(k, A, "protected", &[&crate::test_support::completed_snapshot(k, &ctx(A))]);
    assert_eq!(k.enable_image_deregistration_protection(&ctx(A), &image, false).unwrap(), "enabled-without-cooldown");
    assert!(matches!(k.deregister_image(&ctx(A), &image, false), Err(CoreError::OperationNotPermitted(_))));
    assert_eq!(k.disable_image_deregistration_protection(&ctx(A), &image).unwrap(), "disabled");

    assert_eq!(k.enable_image_deregistration_protection(&ctx(A), &image, true).unwrap(), "enabled-with-cooldown");
    let status = k.disable_image_deregistration_protection(&ctx(A), &image).unwrap();
    assert!(status.starts_with("disabled-until "), "{status}");
    assert_eq!(stored(k, &image).data.lifecycle.protection_status(), status);
    assert!(matches!(k.deregister_image(&ctx(A), &image, false), Err(CoreError::OperationNotPermitted(_))));

    rewrite(k, &image, |d| {
        d.lifecycle.protection = Protection::CoolingDown { until: "2020-01-01T00:00:00.000Z".into() }
    });
    assert_eq!(stored(k, &image).data.lifecycle.protection_status(), "disabled");
    k.deregister_image(&ctx(A), &image, false).unwrap();
}

#[test]
fn deregistering_never_deletes_a_snapshot_another_image_uses() {
    let f = fixture();
    let k = &f.kiln;
    let (own, twice, lent) = (
        crate::test_support::completed_snapshot(k, &ctx(A)),
        crate::test_support::completed_snapshot(k, &ctx(A)),
        crate::test_support::completed_snapshot(k, &ctx(A)),
    );
    k.modify_snapshot_permissions(&ctx(A), &lent, &[Grantee::Account(B.into())], &[]).unwrap();
    // The same snapshot behind two devices, a snapshot another account's image uses, and
    // one used by another image of the same account (disabled, which still counts).
    let image = register(k, A, "many", &[&own, &twice, &twice]);
    let image2 = register(k, A, "lender", &[&lent]);
    let borrower = register(k, B, "borrower", &[&lent]);
    let keeper = register(k, A, "keeper", &[&own]);
    k.disable_image(&ctx(A), &keeper).unwrap();

    let results = k.deregister_image(&ctx(A), &image, true).unwrap();
    let ids: Vec<&str> = results.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(ids, [own.as_str(), twice.as_str()], "one result per distinct snapshot");
    assert!(results[0].1.as_ref().is_err_and(|e| e.contains(&keeper)));
    assert!(results[1].1.is_ok());
    let exists = |id: &str| k.store.read().unwrap().get(id).unwrap().is_some();
    assert!(exists(&own) && !exists(&twice));

    let results = k.deregister_image(&ctx(A), &image2, true).unwrap();
    assert!(results[0].1.as_ref().is_err_and(|e| e.contains(&borrower)), "{results:?}");
    assert!(exists(&lent));
    let results = k.deregister_image(&ctx(B), &borrower, true).unwrap();
    assert!(results[0].1.is_err(), "not the deregistering account's snapshot");
    assert!(exists(&lent));
}

#[test]
fn launches_are_recorded_on_the_image() {
    let f = fixture();
    let k = &f.kiln;
    let image = register(k, A, "launched", &[&crate::test_support::completed_snapshot(k, &ctx(A))]);
    assert_eq!(stored(k, &image).data.lifecycle.last_launched_time, None);
    let mut txn = k.store.begin().unwrap();
    record_launch(txn.as_mut(), &image, "2026-02-03T04:05:06.000Z").unwrap();
    record_launch(txn.as_mut(), "ami-0123456789abcdef0", "2026-02-03T04:05:06.000Z").unwrap();
    txn.commit().unwrap();
    assert_eq!(stored(k, &image).data.lifecycle.last_launched_time.as_deref(), Some("2026-02-03T04:05:06.000Z"));
    let attr = k.image_for_attribute(&ctx(A), &image, "lastLaunchedTime").unwrap();
    assert!(attr.data.lifecycle.last_launched_time.is_some());
    share(k, A, &image, Grantee::Account(B.into()));
    assert!(matches!(k.image_for_attribute(&ctx(B), &image, "lastLaunchedTime"), Err(CoreError::NotOwner(_))));
}
