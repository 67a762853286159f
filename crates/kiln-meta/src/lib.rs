//! Kiln's metadata store: a narrow trait ([`MetaStore`]) and its SQLite implementation.
//!
//! Every resource is one [`Record`]: kind, id, owning account and region, an optional unique
//! name, creation sequence, tags (ordered) and a JSON body that the domain crate owns. Keeping
//! the trait this small lets a PostgreSQL implementation follow without touching callers: the
//! body is opaque here, and queries are by key, owner and name only.
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
    /// Domain-owned body.
    pub body: serde_json::Value,
}

/// Selects records by owner and optional name; `None` fields do not constrain.
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
