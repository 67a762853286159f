//! Kiln's metadata store: a narrow trait ([`MetaStore`]) and its SQLite implementation.
//!
//! Every resource is one [`Record`]: kind, id, owning account and region, an optional unique
//! name, creation sequence, tags (ordered) and a JSON body that the domain crate owns. Keeping
//! the trait this small lets a PostgreSQL implementation follow without touching callers: the
//! body is opaque here; queries speak the columns every record has (ids, owner, name patterns,
//! tags, grants, creation order), so an EC2 Describe is answered from indexes, not by decoding
//! bodies it does not return.
//!
//! All mutations run inside a [`MetaTxn`]; dropping one without `commit` rolls it back, so an
//! error path can never half-apply a change. The SQLite store runs in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives SIGKILL and power loss.

#[cfg(test)]
mod conformance;
mod sqlite;

pub use sqlite::SqliteStore;

use kiln_types::{ResourceKind, Tag};
use serde::{Deserialize, Serialize};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database engine failed.
    #[error("metadata database error: {0}")]
    Db(String),
    /// A stored body could not be decoded.
    #[error("corrupt metadata record {id}: {reason}")]
    Corrupt {
        /// Record id.
        id: String,
        /// Decoder message.
        reason: String,
    },
    /// A unique key (id, or name within an owner's scope) is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The database was written by a newer Kiln.
    #[error("metadata schema version {found} is newer than this Kiln ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Resource kind.
    pub kind: ResourceKind,
    /// Unique id (`key-…`, `sg-…`).
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region the resource lives in.
    pub region: String,
    /// Optional name, unique per (kind, account, region, scope).
    pub name: Option<String>,
    /// Disambiguates names, e.g. a security group's VPC; empty when unused.
    pub scope: String,
    /// Monotonic creation sequence; stable order for pagination. Assigned on insert.
    pub seq: i64,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Tags in insertion order.
    pub tags: Vec<Tag>,
    /// The resource's state as the domain names it (`available`, `running`, …), indexed for
    /// queries and counts; empty for kinds without one.
    #[serde(default)]
    pub state: String,
    /// Domain-owned body: JSON text, decoded only by the domain (straight into its own type).
    #[serde(with = "raw_json")]
    pub body: String,
}

/// Serialises a JSON-text field as the JSON it holds (not as a string), so records kept inside
/// other JSON (the recycle bin's) read the same as before bodies were text.
mod raw_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(text.to_owned()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    // Through a `Value`, so any deserializer works (a raw value needs serde_json's own).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(serde_json::Value::deserialize(d)?.to_string())
    }
}

/// A text pattern as EC2's filters write them: `*` matches any run of characters, `?` one
/// character, everything else itself (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(pub String);

impl Pattern {
    /// Whether the pattern has no wildcard, so it matches one exact value.
    pub fn exact(&self) -> Option<&str> {
        (!self.0.contains(['*', '?'])).then_some(self.0.as_str())
    }

    /// The characters before the first wildcard: every match starts with them.
    pub fn prefix(&self) -> &str {
        &self.0[..self.0.find(['*', '?']).unwrap_or(self.0.len())]
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        fn go(p: &[char], v: &[char]) -> bool {
            match p.split_first() {
                None => v.is_empty(),
                Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
                Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
                Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
            }
        }
        let p: Vec<char> = self.0.chars().collect();
        let v: Vec<char> = value.chars().collect();
        go(&p, &v)
    }
}

/// One tag condition: some tag of the record has a key matching one of `keys` (any key when
/// empty) and a value matching one of `values` (any value when empty). EC2's `tag:<k>=v1,v2`
/// is keys `[k]`, values `[v1, v2]`; `tag-key` gives keys only, `tag-value` values only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagCondition {
    /// Key patterns, any of.
    pub keys: Vec<Pattern>,
    /// Value patterns, any of.
    pub values: Vec<Pattern>,
}

/// Who may see a record besides its owner: the grantee tokens a caller holds (its own
/// `account:<id>`, `group:all`, organisation tokens), matched against the record's grants.
#[derive(Debug, Clone, Copy)]
pub struct Visibility<'a> {
    /// The caller's account: its own records are visible.
    pub account: &'a str,
    /// Grantee tokens that make another account's record visible.
    pub grantees: &'a [String],
}

/// Selects records; every constraint present narrows, `None` and empty lists do not
/// constrain. Results come in creation order (`seq`), from `after_seq` on, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// Kind to list; `None` lists every kind.
    pub kind: Option<ResourceKind>,
    /// Owning account.
    pub account: Option<&'a str>,
    /// Region.
    pub region: Option<&'a str>,
    /// Exact name.
    pub name: Option<&'a str>,
    /// Exact scope.
    pub scope: Option<&'a str>,
    /// Ids, any of.
    pub ids: &'a [String],
    /// Owning accounts, any of.
    pub owners: &'a [String],
    /// Name patterns, any of (records without a name never match).
    pub names: &'a [Pattern],
    /// Tag conditions, all of.
    pub tags: &'a [TagCondition],
    /// States, any of.
    pub states: &'a [String],
    /// Only records the caller owns or holds a grant on.
    pub visible_to: Option<Visibility<'a>>,
    /// Only records created after this sequence number (keyset pagination).
    pub after_seq: Option<i64>,
    /// At most this many records.
    pub limit: Option<usize>,
}

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// 12-digit id.
    pub id: String,
    /// Display name, unique.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// An access key of an account. The secret is needed in clear to verify SigV4 HMACs.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// Access key id (`AKIA…`).
    pub id: String,
    /// Owning account.
    pub account_id: String,
    /// Secret access key.
    pub secret: String,
}

impl std::fmt::Debug for AccessKeyRow {
    // Never print the secret, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// The store: hands out transactions.
pub trait MetaStore: Send + Sync {
    /// Starts a read-write transaction. Read-write transactions are serialised.
    fn begin(&self) -> Result<Box<dyn MetaTxn + '_>, MetaError>;
    /// Starts a read-only transaction: a consistent snapshot that may run alongside others.
    /// Writing through it fails.
    fn read(&self) -> Result<Box<dyn MetaTxn + '_>, MetaError>;
}

/// One transaction. Dropping it without [`MetaTxn::commit`] rolls back.
pub trait MetaTxn {
    /// Fetches one record by id.
    fn get(&mut self, id: &str) -> Result<Option<Record>, MetaError>;
    /// Lists records matching `q`, in creation order.
    fn find(&mut self, q: &Query<'_>) -> Result<Vec<Record>, MetaError>;
    /// How many records match `q` (its `after_seq` and `limit` apply too).
    fn count(&mut self, q: &Query<'_>) -> Result<u64, MetaError>;
    /// Replaces the grantee tokens of record `id` (launch or create-volume permissions), which
    /// [`Query::visible_to`] matches. Deleting the record drops them.
    fn set_grants(&mut self, id: &str, grantees: &[String]) -> Result<(), MetaError>;
    /// The grantee tokens of record `id`, sorted.
    fn grants(&mut self, id: &str) -> Result<Vec<String>, MetaError>;
    /// Inserts a new record; its `seq` is assigned and returned. Name clashes are `Conflict`.
    fn insert(&mut self, rec: &Record) -> Result<i64, MetaError>;
    /// Replaces the tags and body of an existing record (kind, owner and name are immutable).
    fn update(&mut self, rec: &Record) -> Result<(), MetaError>;
    /// Deletes a record; returns whether it existed.
    fn delete(&mut self, id: &str) -> Result<bool, MetaError>;
    /// Inserts an account.
    fn insert_account(&mut self, account: &AccountRow) -> Result<(), MetaError>;
    /// Lists all accounts.
    fn accounts(&mut self) -> Result<Vec<AccountRow>, MetaError>;
    /// Inserts an access key.
    fn insert_access_key(&mut self, key: &AccessKeyRow) -> Result<(), MetaError>;
    /// Looks up an access key by id.
    fn access_key(&mut self, id: &str) -> Result<Option<AccessKeyRow>, MetaError>;
    /// Lists an account's access keys.
    fn access_keys(&mut self, account_id: &str) -> Result<Vec<AccessKeyRow>, MetaError>;
    /// Reads a small settings value.
    fn setting(&mut self, key: &str) -> Result<Option<String>, MetaError>;
    /// Writes a small settings value.
    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), MetaError>;
    /// The settings whose keys start with `prefix`, sorted by key.
    fn settings_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, MetaError>;
    /// Stores a binary blob (a snapshot index) under a key, replacing any previous one.
    fn put_blob(&mut self, key: &str, data: &[u8]) -> Result<(), MetaError>;
    /// Reads a blob.
    fn blob(&mut self, key: &str) -> Result<Option<Vec<u8>>, MetaError>;
    /// Keys of the blobs starting with `prefix`, sorted, each with its blob.
    fn blobs_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MetaError>;
    /// Deletes a blob; returns whether it existed.
    fn delete_blob(&mut self, key: &str) -> Result<bool, MetaError>;
    /// Adds `delta` to the reference count of each chunk id (32-byte digests) in a region,
    /// creating rows as needed. A count reaching zero records when it did.
    fn add_chunk_refs(&mut self, region: &str, ids: &[[u8; 32]], delta: i64, now: i64) -> Result<(), MetaError>;
    /// Chunk ids of a region whose count has been zero since before `cutoff` (unix seconds).
    fn unreferenced_chunks(&mut self, region: &str, cutoff: i64) -> Result<Vec<[u8; 32]>, MetaError>;
    /// Forgets a chunk whose count is still zero since before `cutoff`; returns whether it did.
    fn forget_chunk(&mut self, region: &str, id: &[u8; 32], cutoff: i64) -> Result<bool, MetaError>;
    /// Whether a chunk id has a row (referenced now or recently) in a region.
    fn chunk_known(&mut self, region: &str, id: &[u8; 32]) -> Result<bool, MetaError>;
    /// `(distinct chunks, total references)` of a region.
    fn chunk_stats(&mut self, region: &str) -> Result<(u64, u64), MetaError>;
    /// Makes every change of this transaction durable.
    fn commit(self: Box<Self>) -> Result<(), MetaError>;
}
