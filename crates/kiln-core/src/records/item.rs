//! Typed views of stored records, and the owner-scoped lookups every use case goes through.

use kiln_meta::{MetaTxn, Query, Record};
use kiln_types::{ResourceKind, Tag};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{CoreError, CoreResult};
use crate::Ctx;

/// A stored resource with its body decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Item<T> {
    /// Resource id.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Unique name, where the kind has one.
    pub name: Option<String>,
    /// Name scope (the VPC of a security group, the group of a rule).
    pub scope: String,
    /// Creation sequence (pagination order).
    pub seq: i64,
    /// Creation time.
    pub created_at: String,
    /// Tags in insertion order.
    pub tags: Vec<Tag>,
    /// Kind-specific fields.
    pub data: T,
}

/// Ties a body type to its resource kind.
pub trait Body: Serialize + DeserializeOwned {
    /// The kind whose records carry this body.
    const KIND: ResourceKind;

    /// The grantee tokens other accounts see this record through (launch or create-volume
    /// permissions), kept as indexed rows beside it; `None` for kinds that are never shared.
    fn grantees(&self) -> Option<Vec<String>> {
        None
    }

    /// The state the store indexes (empty for kinds without one).
    fn state(&self) -> &str {
        ""
    }
}

/// The grantee tokens of a permission list, as [`kiln_meta::Query::visible_to`] matches them.
pub fn grant_tokens(list: &[kiln_types::Grantee]) -> Vec<String> {
    list.iter()
        .map(|g| match g {
            kiln_types::Grantee::Account(a) => account_token(a),
            kiln_types::Grantee::All => ALL_TOKEN.to_string(),
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The token of a grant to everyone.
pub const ALL_TOKEN: &str = "group:all";

/// The token of a grant to one account.
pub fn account_token(account: &str) -> String {
    format!("account:{account}")
}

/// What a caller of `account` sees other accounts' records through.
pub fn tokens_of(account: &str) -> Vec<String> {
    vec![account_token(account), ALL_TOKEN.to_string()]
}

impl<T: Body> Item<T> {
    /// Decodes a record of the right kind.
    pub fn from_record(rec: Record) -> CoreResult<Self> {
        if rec.kind != T::KIND {
            return Err(CoreError::Internal(format!("record {} is a {}, not a {}", rec.id, rec.kind, T::KIND)));
        }
        let data = serde_json::from_str(&rec.body)
            .map_err(|e| CoreError::Internal(format!("record {} has an undecodable body: {e}", rec.id)))?;
        Ok(Item {
            id: rec.id,
            account: rec.account,
            region: rec.region,
            name: rec.name,
            scope: rec.scope,
            seq: rec.seq,
            created_at: rec.created_at,
            tags: rec.tags,
            data,
        })
    }

    /// Encodes for storage.
    pub fn to_record(&self) -> CoreResult<Record> {
        Ok(Record {
            kind: T::KIND,
            id: self.id.clone(),
            account: self.account.clone(),
            region: self.region.clone(),
            name: self.name.clone(),
            scope: self.scope.clone(),
            seq: self.seq,
            created_at: self.created_at.clone(),
            tags: self.tags.clone(),
            state: self.data.state().to_string(),
            body: serde_json::to_string(&self.data).map_err(|e| CoreError::Internal(e.to_string()))?,
        })
    }

    /// A new, not yet stored item owned by the caller.
    pub fn new(ctx: &Ctx, name: Option<String>, scope: String, tags: Vec<Tag>, data: T) -> Self {
        Item {
            id: T::KIND.new_id(),
            account: ctx.account.clone(),
            region: ctx.region.clone(),
            name,
            scope,
            seq: 0,
            created_at: crate::now(),
            tags,
            data,
        }
    }

    /// Stores a new item, assigning its sequence number.
    pub fn insert(&mut self, txn: &mut dyn MetaTxn) -> CoreResult<()> {
        let rec = self.to_record()?;
        self.seq = txn.insert(&rec).map_err(|e| match e {
            kiln_meta::MetaError::Conflict(_) => CoreError::Duplicate {
                kind: T::KIND,
                name: self.name.clone().unwrap_or_default(),
                scope: self.scope.clone(),
            },
            other => other.into(),
        })?;
        if let Some(grants) = self.data.grantees() {
            if !grants.is_empty() {
                txn.set_grants(&self.id, &grants)?;
            }
        }
        Ok(())
    }

    /// Writes back changed tags or body (and the grants that follow from the body).
    pub fn save(&self, txn: &mut dyn MetaTxn) -> CoreResult<()> {
        txn.update(&self.to_record()?)?;
        if let Some(grants) = self.data.grantees() {
            if txn.grants(&self.id)? != sorted(grants.clone()) {
                txn.set_grants(&self.id, &grants)?;
            }
        }
        Ok(())
    }
}

/// True when the record belongs to the caller's account and region.
pub fn visible(ctx: &Ctx, rec: &Record) -> bool {
    rec.account == ctx.account && rec.region == ctx.region
}

/// Fetches one of the caller's resources by id: malformed ids and ids of other accounts or
/// regions are refused exactly as missing ones are, so existence never leaks.
pub fn get<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<T>> {
    if !T::KIND.is_well_formed(id) {
        return Err(CoreError::Malformed { kind: T::KIND, id: id.to_string() });
    }
    match txn.get(id)? {
        Some(rec) if rec.kind == T::KIND && visible(ctx, &rec) => Item::from_record(rec),
        _ => Err(CoreError::NotFound { kind: T::KIND, id: id.to_string() }),
    }
}

/// Fetches a resource by id in the caller's region whatever its owner (for cross-account
/// references such as a security group peer); the caller decides what the owner may see.
pub fn get_in_region<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, id: &str) -> CoreResult<Item<T>> {
    if !T::KIND.is_well_formed(id) {
        return Err(CoreError::Malformed { kind: T::KIND, id: id.to_string() });
    }
    match txn.get(id)? {
        Some(rec) if rec.kind == T::KIND && rec.region == ctx.region => Item::from_record(rec),
        _ => Err(CoreError::NotFound { kind: T::KIND, id: id.to_string() }),
    }
}

/// Lists the caller's resources of one kind, optionally within a scope, in creation order.
pub fn list<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, scope: Option<&str>) -> CoreResult<Vec<Item<T>>> {
    txn.find(&Query {
        kind: Some(T::KIND),
        account: Some(&ctx.account),
        region: Some(&ctx.region),
        scope,
        ..Default::default()
    })?
    .into_iter()
    .map(Item::from_record)
    .collect()
}

/// Finds the caller's resource of one kind by its unique name within a scope.
pub fn by_name<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, scope: &str, name: &str) -> CoreResult<Option<Item<T>>> {
    let found = txn.find(&Query {
        kind: Some(T::KIND),
        account: Some(&ctx.account),
        region: Some(&ctx.region),
        scope: Some(scope),
        name: Some(name),
        ..Default::default()
    })?;
    found.into_iter().next().map(Item::from_record).transpose()
}

/// Fetches the caller's resources with the given ids (each must exist), in creation order,
/// without listing the whole kind: Describe calls by id stay cheap however many exist.
pub fn fetch_ids<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, ids: &[String]) -> CoreResult<Vec<Item<T>>> {
    let mut out: Vec<Item<T>> = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for id in ids {
        if out.iter().any(|i| &i.id == id) || missing.contains(id) {
            continue;
        }
        match get::<T>(txn, ctx, id) {
            Ok(item) => out.push(item),
            Err(CoreError::NotFound { .. }) => missing.push(id.clone()),
            Err(e) => return Err(e),
        }
    }
    if !missing.is_empty() {
        return Err(CoreError::not_found(T::KIND, missing));
    }
    out.sort_by_key(|i| i.seq);
    Ok(out)
}

/// Lists the caller's resources of one kind, or only those with the given ids when any are.
pub fn list_or_fetch<T: Body>(txn: &mut dyn MetaTxn, ctx: &Ctx, ids: &[String]) -> CoreResult<Vec<Item<T>>> {
    if ids.is_empty() {
        list::<T>(txn, ctx, None)
    } else {
        fetch_ids::<T>(txn, ctx, ids)
    }
}
