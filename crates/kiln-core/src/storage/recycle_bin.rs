//! The Recycle Bin: retention rules (the `rbin` service) and the images and snapshots they
//! keep after `DeregisterImage` and `DeleteSnapshot`.
//!
//! Rules live in settings, one key per rule (`rbin/rule/<account>/<region>/<id>`). A rule
//! without resource tags applies to every resource of its type in its account and region; one
//! with tags applies to resources carrying any of them. When several rules apply the longest
//! retention wins.
//!
//! A binned resource leaves the `resources` table (so no lookup, description or launch can see
//! it) and its whole record is kept under `rbin/item/<id>` with its enter and exit times. A
//! binned snapshot keeps its index and chunk references; a binned image keeps its snapshots in
//! use. Restoring puts the record back. Past its exit time an item is purged for good: an
//! image's record is forgotten, a snapshot's chunk references are released through the usual
//! path, so garbage collection reclaims the chunks.
//!
//! `DeregisterImage` with `DeleteAssociatedSnapshots` while only an image rule applies deletes
//! the snapshots as without a rule (a restored image then lacks them); where a snapshot rule
//! applies they go to the bin too.

use kiln_meta::{MetaTxn, Record};
use kiln_types::{ResourceKind, Tag};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, CoreResult};
use crate::records::image::ImageData;
use crate::records::item::Item;
use crate::records::page::paginate;
use crate::records::snapshot::{index_key, references, SnapshotData};
use crate::{Ctx, Kiln};

/// Default length of one retention day, seconds.
pub const DAY_SECS: u64 = 86_400;

const RULE_PREFIX: &str = "rbin/rule/";
const ITEM_PREFIX: &str = "rbin/item/";

/// Resource types a rule may retain.
pub const RESOURCE_TYPES: &[&str] = &["EBS_SNAPSHOT", "EC2_IMAGE"];

/// A retention rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionRule {
    /// Rule id (11 lowercase alphanumerics, as AWS writes them).
    pub identifier: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// `EBS_SNAPSHOT` or `EC2_IMAGE`.
    pub resource_type: String,
    /// Retention, days.
    pub retention_days: i64,
    /// Description.
    pub description: String,
    /// Resource tags (key, value) the rule is limited to; empty: every resource.
    pub resource_tags: Vec<(String, String)>,
    /// Tags of the rule itself.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl RetentionRule {
    /// The rule's ARN.
    pub fn arn(&self) -> String {
        format!("arn:aws:rbin:{}:{}:rule/{}", self.region, self.account, self.identifier)
    }

    /// Whether the rule covers a resource of `kind` with `tags`.
    pub fn applies(&self, kind: ResourceKind, tags: &[Tag]) -> bool {
        let wanted = match kind {
            ResourceKind::Image => "EC2_IMAGE",
            ResourceKind::Snapshot => "EBS_SNAPSHOT",
            _ => return false,
        };
        self.resource_type == wanted
            && (self.resource_tags.is_empty()
                || self.resource_tags.iter().any(|(k, v)| tags.iter().any(|t| &t.key == k && &t.value == v)))
    }
}

/// A resource in the bin: its whole record and when it entered and leaves (Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binned {
    /// The record as it was.
    pub record: Record,
    /// When it entered the bin.
    pub enter: i64,
    /// When it is purged.
    pub exit: i64,
}

impl Binned {
    /// The enter time in EC2's format.
    pub fn enter_time(&self) -> String {
        fmt_unix(self.enter)
    }

    /// The exit time in EC2's format.
    pub fn exit_time(&self) -> String {
        fmt_unix(self.exit)
    }

    /// The record as an image.
    pub fn image(&self) -> CoreResult<Item<ImageData>> {
        Item::from_record(self.record.clone())
    }

    /// The record as a snapshot.
    pub fn snapshot(&self) -> CoreResult<Item<SnapshotData>> {
        Item::from_record(self.record.clone())
    }
}

fn fmt_unix(t: i64) -> String {
    kiln_types::format_time(chrono::DateTime::from_timestamp(t, 0).unwrap_or_default())
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rule_key(account: &str, region: &str, id: &str) -> String {
    format!("{RULE_PREFIX}{account}/{region}/{id}")
}

fn item_key(id: &str) -> String {
    format!("{ITEM_PREFIX}{id}")
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> CoreResult<T> {
    serde_json::from_str(json).map_err(|e| CoreError::Internal(format!("{what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> CoreResult<String> {
    serde_json::to_string(v).map_err(|e| CoreError::Internal(e.to_string()))
}

/// Every rule of an account in a region.
pub fn rules(txn: &mut dyn MetaTxn, account: &str, region: &str) -> CoreResult<Vec<RetentionRule>> {
    txn.settings_with_prefix(&format!("{RULE_PREFIX}{account}/{region}/"))?
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(_, v)| decode("retention rule", &v))
        .collect()
}

/// Everything in the bin, all accounts and regions.
pub fn binned(txn: &mut dyn MetaTxn) -> CoreResult<Vec<Binned>> {
    txn.settings_with_prefix(ITEM_PREFIX)?
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(_, v)| decode("recycle bin item", &v))
        .collect()
}

/// A binned image of the region (other than `except`) that uses the snapshot.
pub fn binned_image_using_snapshot(
    txn: &mut dyn MetaTxn,
    region: &str,
    snapshot_id: &str,
    except: &str,
) -> CoreResult<Option<String>> {
    for b in binned(txn)? {
        if b.record.kind == ResourceKind::Image
            && b.record.region == region
            && b.record.id != except
            && b.image()?.data.snapshot_ids().iter().any(|s| s == snapshot_id)
        {
            return Ok(Some(b.record.id));
        }
    }
    Ok(None)
}

/// Checks a rule's retention period.
pub fn check_retention(value: i64, unit: &str) -> CoreResult<()> {
    if unit != "DAYS" {
        return Err(CoreError::InvalidParameterValue(format!("RetentionPeriodUnit {unit} is invalid: use DAYS.")));
    }
    if !(1..=3650).contains(&value) {
        return Err(CoreError::InvalidParameterValue(format!(
            "RetentionPeriodValue {value} is invalid: it must be between 1 and 3650."
        )));
    }
    Ok(())
}

fn check_resource_type(t: &str) -> CoreResult<()> {
    if RESOURCE_TYPES.contains(&t) {
        Ok(())
    } else {
        Err(CoreError::InvalidParameterValue(format!(
            "ResourceType {t} is invalid: use {}.",
            RESOURCE_TYPES.join(" or ")
        )))
    }
}

impl Kiln {
    fn day_secs(&self) -> i64 {
        self.recycle_bin_day_secs.max(1) as i64
    }

    /// `CreateRule`.
    #[allow(clippy::too_many_arguments)]
    pub fn create_retention_rule(
        &self,
        ctx: &Ctx,
        resource_type: &str,
        retention_days: i64,
        unit: &str,
        description: Option<&str>,
        resource_tags: Vec<(String, String)>,
        tags: Vec<Tag>,
    ) -> CoreResult<RetentionRule> {
        check_resource_type(resource_type)?;
        check_retention(retention_days, unit)?;
        if description.is_some_and(|d| d.chars().count() > 500) {
            return Err(CoreError::InvalidParameterValue("Description is limited to 500 characters.".into()));
        }
        let identifier: String = ResourceKind::Image.new_id().chars().skip(4).take(11).collect();
        let rule = RetentionRule {
            identifier,
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            resource_type: resource_type.to_string(),
            retention_days,
            description: description.unwrap_or("").to_string(),
            resource_tags,
            tags,
        };
        let mut txn = self.store.begin()?;
        txn.set_setting(&rule_key(&ctx.account, &ctx.region, &rule.identifier), &encode(&rule)?)?;
        txn.commit()?;
        Ok(rule)
    }

    /// `ListRules` of a resource type.
    pub fn list_retention_rules(&self, ctx: &Ctx, resource_type: &str) -> CoreResult<Vec<RetentionRule>> {
        check_resource_type(resource_type)?;
        let mut txn = self.store.read()?;
        let mut all = rules(txn.as_mut(), &ctx.account, &ctx.region)?;
        all.retain(|r| r.resource_type == resource_type);
        Ok(all)
    }

    /// `GetRule`: `None` when the caller has no such rule in the region.
    pub fn retention_rule(&self, ctx: &Ctx, id: &str) -> CoreResult<Option<RetentionRule>> {
        let mut txn = self.store.read()?;
        txn.setting(&rule_key(&ctx.account, &ctx.region, id))?
            .filter(|v| !v.is_empty())
            .map(|v| decode("retention rule", &v))
            .transpose()
    }

    /// `DeleteRule`: false when there was no such rule.
    pub fn delete_retention_rule(&self, ctx: &Ctx, id: &str) -> CoreResult<bool> {
        let mut txn = self.store.begin()?;
        let key = rule_key(&ctx.account, &ctx.region, id);
        if txn.setting(&key)?.is_none_or(|v| v.is_empty()) {
            return Ok(false);
        }
        // Settings have no delete; prefix listings skip empty values.
        txn.set_setting(&key, "")?;
        txn.commit()?;
        Ok(true)
    }

    /// How long a deleted resource of this owner, region, kind and tags is retained, seconds;
    /// `None` when no rule applies.
    pub(crate) fn retention_secs(
        &self,
        txn: &mut dyn MetaTxn,
        account: &str,
        region: &str,
        kind: ResourceKind,
        tags: &[Tag],
    ) -> CoreResult<Option<i64>> {
        Ok(rules(txn, account, region)?
            .iter()
            .filter(|r| r.applies(kind, tags))
            .map(|r| r.retention_days * self.day_secs())
            .max())
    }

    /// Moves a record into the bin for `secs` inside `txn`: it leaves the resources table,
    /// everything it references stays.
    pub(crate) fn bin_record(&self, txn: &mut dyn MetaTxn, record: Record, secs: i64) -> CoreResult<()> {
        let now = unix_now();
        txn.delete(&record.id)?;
        let id = record.id.clone();
        txn.set_setting(&item_key(&id), &encode(&Binned { record, enter: now, exit: now + secs })?)?;
        Ok(())
    }

    fn binned_of(&self, ctx: &Ctx, kind: ResourceKind, ids: &[String]) -> CoreResult<Vec<Binned>> {
        self.purge_recycle_bin()?;
        for id in ids {
            if !kind.is_well_formed(id) {
                return Err(CoreError::Malformed { kind, id: id.clone() });
            }
        }
        let mut txn = self.store.read()?;
        let mut items: Vec<Binned> = binned(txn.as_mut())?
            .into_iter()
            .filter(|b| b.record.kind == kind && b.record.account == ctx.account && b.record.region == ctx.region)
            .filter(|b| ids.is_empty() || ids.contains(&b.record.id))
            .collect();
        items.sort_by_key(|b| b.record.seq);
        Ok(items)
    }

    /// `ListImagesInRecycleBin`.
    pub fn list_images_in_recycle_bin(
        &self,
        ctx: &Ctx,
        ids: &[String],
        page: &kiln_types::Page,
    ) -> CoreResult<(Vec<Binned>, Option<String>)> {
        let items = self.binned_of(ctx, ResourceKind::Image, ids)?;
        paginate(items, page, |b| b.record.seq)
    }

    /// `ListSnapshotsInRecycleBin`.
    pub fn list_snapshots_in_recycle_bin(
        &self,
        ctx: &Ctx,
        ids: &[String],
        page: &kiln_types::Page,
    ) -> CoreResult<(Vec<Binned>, Option<String>)> {
        let items = self.binned_of(ctx, ResourceKind::Snapshot, ids)?;
        paginate(items, page, |b| b.record.seq)
    }

    fn restore(&self, ctx: &Ctx, kind: ResourceKind, id: &str) -> CoreResult<Record> {
        if !kind.is_well_formed(id) {
            return Err(CoreError::Malformed { kind, id: id.to_string() });
        }
        self.purge_recycle_bin()?;
        let mut txn = self.store.begin()?;
        let missing = || CoreError::NotFound { kind, id: id.to_string() };
        let json = txn.setting(&item_key(id))?.filter(|v| !v.is_empty()).ok_or_else(missing)?;
        let b: Binned = decode("recycle bin item", &json)?;
        if b.record.kind != kind || b.record.account != ctx.account || b.record.region != ctx.region {
            return Err(missing());
        }
        if let Err(e) = txn.insert(&b.record) {
            return Err(match (e, kind) {
                (kiln_meta::MetaError::Conflict(_), ResourceKind::Image) => CoreError::ImageNameDuplicate {
                    name: b.record.name.clone().unwrap_or_default(),
                    existing: String::new(),
                },
                (e, _) => e.into(),
            });
        }
        crate::records::reindex(txn.as_mut(), b.record.clone())?;
        txn.set_setting(&item_key(id), "")?;
        txn.commit()?;
        Ok(b.record)
    }

    /// `RestoreImageFromRecycleBin`.
    pub fn restore_image_from_recycle_bin(&self, ctx: &Ctx, id: &str) -> CoreResult<()> {
        self.restore(ctx, ResourceKind::Image, id).map(|_| ())
    }

    /// `RestoreSnapshotFromRecycleBin`.
    pub fn restore_snapshot_from_recycle_bin(&self, ctx: &Ctx, id: &str) -> CoreResult<Item<SnapshotData>> {
        Item::from_record(self.restore(ctx, ResourceKind::Snapshot, id)?)
    }

    /// Purges every item past its exit time: images are forgotten, snapshots release their
    /// chunk references. Returns how many were purged.
    pub fn purge_recycle_bin(&self) -> CoreResult<usize> {
        let now = unix_now();
        let mut txn = self.store.begin()?;
        let expired: Vec<Binned> = binned(txn.as_mut())?.into_iter().filter(|b| b.exit <= now).collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let mut snapshots = Vec::new();
        for b in &expired {
            if b.record.kind == ResourceKind::Snapshot {
                if let Some(bytes) = txn.blob(&index_key(&b.record.id))? {
                    let index =
                        kiln_chunks::SnapshotIndex::decode(&bytes).map_err(|e| CoreError::Internal(e.to_string()))?;
                    txn.add_chunk_refs(&b.record.region, &references(&index), -1, now)?;
                    txn.delete_blob(&index_key(&b.record.id))?;
                }
                snapshots.push((b.record.region.clone(), b.record.id.clone()));
            }
            txn.set_setting(&item_key(&b.record.id), "")?;
        }
        txn.commit()?;
        for (region, id) in snapshots {
            self.release_base(&region, &id);
        }
        tracing::info!(purged = expired.len(), "recycle bin purged");
        Ok(expired.len())
    }
}

#[cfg(test)]
mod tests {

    use kiln_types::{BlockDeviceMapping, EbsSpec, Page, RegisterImageSpec};

    use super::*;

    const A: &str = "111111111111";

    fn ctx() -> Ctx {
        Ctx { account: A.into(), region: "us-east-1".into() }
    }

    fn kiln(dir: &std::path::Path, day_secs: u64) -> Kiln {
        let mut k = crate::test_support::kiln(dir, &["us-east-1"]);
        k.recycle_bin_day_secs = day_secs;
        k
    }

    fn image(kiln: &Kiln, snap: &str) -> String {
        let spec = RegisterImageSpec {
            name: "binned".into(),
            root_device_name: Some("/dev/xvda".into()),
            block_device_mappings: vec![BlockDeviceMapping {
                device_name: "/dev/xvda".into(),
                ebs: Some(EbsSpec { snapshot_id: Some(snap.into()), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        };
        kiln.register_image(&ctx(), &spec).unwrap().id
    }

    #[test]
    fn rule_matching() {
        let mut r = RetentionRule {
            identifier: "abc".into(),
            account: A.into(),
            region: "r".into(),
            resource_type: "EC2_IMAGE".into(),
            retention_days: 1,
            description: String::new(),
            resource_tags: vec![],
            tags: vec![],
        };
        assert!(r.applies(ResourceKind::Image, &[]));
        assert!(!r.applies(ResourceKind::Snapshot, &[]));
        r.resource_tags = vec![("k".into(), "v".into())];
        assert!(!r.applies(ResourceKind::Image, &[]));
        assert!(r.applies(ResourceKind::Image, &[Tag { key: "k".into(), value: "v".into() }]));
        assert!(check_retention(0, "DAYS").is_err() && check_retention(1, "HOURS").is_err());
    }

    #[test]
    fn rules_crud() {
        let dir = tempfile::tempdir().unwrap();
        let k = kiln(dir.path(), DAY_SECS);
        let r = k.create_retention_rule(&ctx(), "EC2_IMAGE", 7, "DAYS", Some("d"), vec![], vec![]).unwrap();
        assert_eq!(r.identifier.len(), 11);
        assert_eq!(k.list_retention_rules(&ctx(), "EC2_IMAGE").unwrap().len(), 1);
        assert!(k.list_retention_rules(&ctx(), "EBS_SNAPSHOT").unwrap().is_empty());
        assert_eq!(k.retention_rule(&ctx(), &r.identifier).unwrap(), Some(r.clone()));
        assert!(k.delete_retention_rule(&ctx(), &r.identifier).unwrap());
        assert!(!k.delete_retention_rule(&ctx(), &r.identifier).unwrap());
        assert!(k.list_retention_rules(&ctx(), "EC2_IMAGE").unwrap().is_empty());
        assert!(k.create_retention_rule(&ctx(), "VOLUME", 7, "DAYS", None, vec![], vec![]).is_err());
    }

    #[test]
    fn image_bin_restore_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let k = kiln(dir.path(), DAY_SECS);
        let snap = crate::test_support::completed_snapshot(&k, &ctx());
        let id = image(&k, &snap);
        // Without a rule, deregistering deletes.
        k.deregister_image(&ctx(), &id, false).unwrap();
        assert!(k.list_images_in_recycle_bin(&ctx(), &[], &Page::default()).unwrap().0.is_empty());
        k.create_retention_rule(&ctx(), "EC2_IMAGE", 1, "DAYS", None, vec![], vec![]).unwrap();
        let id = image(&k, &snap);
        k.deregister_image(&ctx(), &id, false).unwrap();
        let (items, _) = k.list_images_in_recycle_bin(&ctx(), &[], &Page::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].exit - items[0].enter, DAY_SECS as i64);
        // The binned image keeps its snapshot in use.
        assert!(matches!(k.delete_snapshot(&ctx(), &snap), Err(CoreError::SnapshotInUse { .. })));
        k.restore_image_from_recycle_bin(&ctx(), &id).unwrap();
        assert!(k.list_images_in_recycle_bin(&ctx(), &[], &Page::default()).unwrap().0.is_empty());
        assert!(matches!(
            k.restore_image_from_recycle_bin(&ctx(), &id),
            Err(CoreError::NotFound { kind: ResourceKind::Image, .. })
        ));
        // Expiry: a day of zero length has passed at once... one second here.
        let mut k = k;
        k.recycle_bin_day_secs = 1;
        k.deregister_image(&ctx(), &id, false).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(k.purge_recycle_bin().unwrap(), 1);
        assert!(k.restore_image_from_recycle_bin(&ctx(), &id).is_err());
        k.delete_snapshot(&ctx(), &snap).unwrap();
    }

    #[test]
    fn snapshot_bin() {
        let dir = tempfile::tempdir().unwrap();
        let k = kiln(dir.path(), DAY_SECS);
        k.create_retention_rule(&ctx(), "EBS_SNAPSHOT", 2, "DAYS", None, vec![], vec![]).unwrap();
        let snap = crate::test_support::completed_snapshot(&k, &ctx());
        k.delete_snapshot(&ctx(), &snap).unwrap();
        let (items, _) = k.list_snapshots_in_recycle_bin(&ctx(), &[], &Page::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert!(k.describe_snapshots(&ctx(), &[], &[], &[], &[], &Page::default()).unwrap().0.is_empty());
        let restored = k.restore_snapshot_from_recycle_bin(&ctx(), &snap).unwrap();
        assert_eq!(restored.id, snap);
        assert_eq!(k.describe_snapshots(&ctx(), &[], &[], &[], &[], &Page::default()).unwrap().0.len(), 1);
    }
}
