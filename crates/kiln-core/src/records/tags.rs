//! Tags on every resource kind: `CreateTags`, `DeleteTags`, `DescribeTags` and the
//! `TagSpecification` of create calls. At most 50 tags per resource; insertion order is kept
//! (overwriting a key keeps its place).

use kiln_meta::{MetaTxn, Query};
use kiln_types::{Filter, Page, ResourceKind, Tag, TagSpecification};

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{any_match, s};
use crate::records::item::visible;
use crate::records::page::paginate;
use crate::{Ctx, Kiln};

/// EC2's per-resource tag limit.
pub const MAX_TAGS: usize = 50;

/// One row of `DescribeTags`.
#[derive(Debug, Clone, PartialEq)]
pub struct TagDescription {
    /// Tagged resource id.
    pub resource_id: String,
    /// Its kind.
    pub resource_type: ResourceKind,
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Checks one tag's key and value as EC2 does.
pub fn validate_tag(tag: &Tag) -> CoreResult<()> {
    let n = tag.key.chars().count();
    if n == 0 || n > 128 {
        return Err(CoreError::InvalidParameterValue(format!(
            "Tag key must be between 1 and 128 characters long; got {n} characters"
        )));
    }
    if tag.key.to_ascii_lowercase().starts_with("aws:") {
        return Err(CoreError::InvalidParameterValue(format!(
            "Tag keys starting with 'aws:' are reserved for internal use; got '{}'",
            tag.key
        )));
    }
    if tag.value.chars().count() > 256 {
        return Err(CoreError::InvalidParameterValue("Tag value must be at most 256 characters long".into()));
    }
    Ok(())
}

/// Sets `new` on `tags`: existing keys keep their position, new keys append. Enforces the
/// per-resource limit.
pub fn merge(tags: &mut Vec<Tag>, new: &[Tag]) -> CoreResult<()> {
    for t in new {
        validate_tag(t)?;
        match tags.iter_mut().find(|x| x.key == t.key) {
            Some(existing) => existing.value = t.value.clone(),
            None => tags.push(t.clone()),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(CoreError::TagLimitExceeded);
    }
    Ok(())
}

/// The tags a create call's `TagSpecification` gives the resource of `kind`. A specification
/// for a type this call does not create is an error, as in EC2.
pub fn from_specs(specs: &[TagSpecification], kind: ResourceKind) -> CoreResult<Vec<Tag>> {
    let mut tags = Vec::new();
    for spec in specs {
        if spec.resource_type != kind.tag_type() {
            return Err(CoreError::InvalidParameterValue(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                spec.resource_type
            )));
        }
        if spec.tags.is_empty() {
            return Err(CoreError::InvalidParameterValue("Tag specification must have at least one tag".into()));
        }
        merge(&mut tags, &spec.tags)?;
    }
    Ok(tags)
}

/// Loads a taggable resource of the caller, refusing unknown prefixes and foreign resources.
fn load_own(txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<kiln_meta::Record> {
    let kind = ResourceKind::of_id(id).ok_or_else(|| CoreError::InvalidId(id.to_string()))?;
    if !kind.is_well_formed(id) {
        return Err(CoreError::InvalidId(id.to_string()));
    }
    match txn.get(id)? {
        Some(rec) if visible(ctx, &rec) => Ok(rec),
        _ => Err(CoreError::NotFound { kind, id: id.to_string() }),
    }
}

impl Kiln {
    /// `CreateTags`: all resources or none.
    pub fn create_tags(&self, ctx: &Ctx, resources: &[String], tags: &[Tag]) -> CoreResult<()> {
        for t in tags {
            validate_tag(t)?;
        }
        let mut txn = self.store.begin()?;
        for id in resources {
            let mut rec = load_own(txn.as_mut(), ctx, id)?;
            merge(&mut rec.tags, tags)?;
            txn.update(&rec)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// `DeleteTags`: a tag given with a value is removed only when the value matches; with no
    /// tags at all, every tag of the resources goes.
    pub fn delete_tags(&self, ctx: &Ctx, resources: &[String], tags: &[(String, Option<String>)]) -> CoreResult<()> {
        let mut txn = self.store.begin()?;
        for id in resources {
            let mut rec = load_own(txn.as_mut(), ctx, id)?;
            if tags.is_empty() {
                rec.tags.clear();
            } else {
                rec.tags.retain(|t| !tags.iter().any(|(k, v)| &t.key == k && v.as_ref().is_none_or(|v| v == &t.value)));
            }
            txn.update(&rec)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// `DescribeTags`, ordered by resource creation then tag order.
    pub fn describe_tags(
        &self,
        ctx: &Ctx,
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<TagDescription>, Option<String>)> {
        for f in filters {
            if !matches!(f.name.as_str(), "key" | "value" | "resource-id" | "resource-type")
                && !f.name.starts_with("tag:")
            {
                return Err(CoreError::InvalidFilter(f.name.clone()));
            }
        }
        let mut txn = self.store.read()?;
        let records =
            txn.find(&Query { account: Some(&ctx.account), region: Some(&ctx.region), ..Default::default() })?;
        drop(txn);
        let mut rows = Vec::new();
        for rec in records {
            // `tag:<key>` filters select resources; the other filters select individual tags.
            let resource_ok = filters.iter().filter(|f| f.name.starts_with("tag:")).all(|f| {
                let key = &f.name[4..];
                let have: Vec<String> = rec.tags.iter().filter(|t| t.key == key).map(|t| t.value.clone()).collect();
                any_match(f, &have)
            });
            if !resource_ok {
                continue;
            }
            for (i, t) in rec.tags.iter().enumerate() {
                let ok = filters.iter().filter(|f| !f.name.starts_with("tag:")).all(|f| {
                    let have = match f.name.as_str() {
                        "key" => s(&t.key),
                        "value" => s(&t.value),
                        "resource-id" => s(&rec.id),
                        _ => s(rec.kind.tag_type()),
                    };
                    any_match(f, &have)
                });
                if ok {
                    // Position = seq * 64 + index keeps a total order that survives between pages.
                    rows.push((
                        rec.seq * 64 + i as i64,
                        TagDescription {
                            resource_id: rec.id.clone(),
                            resource_type: rec.kind,
                            key: t.key.clone(),
                            value: t.value.clone(),
                        },
                    ));
                }
            }
        }
        let (rows, next) = paginate(rows, page, |r| r.0)?;
        Ok((rows.into_iter().map(|r| r.1).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> Tag {
        Tag { key: k.into(), value: v.into() }
    }

    #[test]
    fn merge_keeps_order_and_overwrites_in_place() {
        let mut tags = vec![t("b", "1"), t("a", "2")];
        merge(&mut tags, &[t("c", "3"), t("b", "9")]).unwrap();
        assert_eq!(tags, vec![t("b", "9"), t("a", "2"), t("c", "3")]);
    }

    #[test]
    fn limits_and_reserved_keys() {
        let mut tags: Vec<Tag> = (0..50).map(|i| t(&format!("k{i}"), "")).collect();
        assert!(matches!(merge(&mut tags.clone(), &[t("k1", "x")]), Ok(())));
        assert!(matches!(merge(&mut tags, &[t("k50", "")]), Err(CoreError::TagLimitExceeded)));
        assert!(validate_tag(&t("aws:x", "")).is_err());
        assert!(validate_tag(&t("", "")).is_err());
        assert!(validate_tag(&t(&"k".repeat(129), "")).is_err());
        assert!(validate_tag(&t("k", &"v".repeat(257))).is_err());
    }

    #[test]
    fn specs_must_name_the_created_type() {
        let spec = TagSpecification { resource_type: "vpc".into(), tags: vec![t("a", "b")] };
        assert!(from_specs(&[spec], ResourceKind::KeyPair).is_err());
        let spec = TagSpecification { resource_type: "key-pair".into(), tags: vec![t("a", "b")] };
        assert_eq!(from_specs(&[spec], ResourceKind::KeyPair).unwrap(), vec![t("a", "b")]);
    }
}
