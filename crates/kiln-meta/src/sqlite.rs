//! The embedded SQLite implementation of [`MetaStore`].

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};

use crate::{AccessKeyRow, AccountRow, MetaError, MetaStore, MetaTxn, Pattern, Query, Record};

/// Numbered migrations; entry N brings the schema from version N to N+1. Never edit a
/// released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, keys, resources.
    "CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
     );
     CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id),
        secret TEXT NOT NULL
     );
     CREATE INDEX access_keys_account ON access_keys(account_id);
     CREATE TABLE resources (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT,
        scope TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        tags TEXT NOT NULL,
        body TEXT NOT NULL
     );
     CREATE UNIQUE INDEX resources_name ON resources(kind, account, region, scope, name) WHERE name IS NOT NULL;
     CREATE INDEX resources_owner ON resources(account, region, kind);
     CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: children by scope (a group's rules) without scanning the owner's records.
    "CREATE INDEX resources_scope ON resources(scope, kind);",
    // 3: snapshot indexes and chunk reference counts.
    "CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL);
     CREATE TABLE chunk_refs (
        region TEXT NOT NULL,
        id BLOB NOT NULL,
        refs INTEGER NOT NULL CHECK (refs >= 0),
        zero_since INTEGER,
        PRIMARY KEY (region, id)
     ) WITHOUT ROWID;
     CREATE INDEX chunk_refs_zero ON chunk_refs(region, zero_since) WHERE refs = 0;",
    // 4: tags and grants as indexed rows, so Describe filters are answered without decoding
    // bodies; the tags of existing records are copied in.
    "CREATE TABLE resource_tags (
        seq INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (seq, key)
     ) WITHOUT ROWID;
     CREATE INDEX resource_tags_kv ON resource_tags(key, value, seq);
     INSERT OR IGNORE INTO resource_tags (seq, key, value)
        SELECT r.seq, json_extract(t.value, '$.key'), json_extract(t.value, '$.value')
        FROM resources r, json_each(r.tags) t;
     CREATE TABLE grants (
        seq INTEGER NOT NULL,
        grantee TEXT NOT NULL,
        PRIMARY KEY (seq, grantee)
     ) WITHOUT ROWID;
     CREATE INDEX grants_grantee ON grants(grantee, seq);
     ALTER TABLE resources ADD COLUMN state TEXT NOT NULL DEFAULT '';
     CREATE INDEX resources_state ON resources(kind, account, region, state);
     CREATE INDEX resources_kind_name ON resources(kind, region, name) WHERE name IS NOT NULL;",
    // 5: how many resources each owner has per kind, region and state, kept by triggers in the
    // same transaction as the row, so a quota check reads one row instead of counting an
    // index range; existing rows are counted in.
    "CREATE TABLE resource_counts (
        kind TEXT NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (kind, account, region, state)
     ) WITHOUT ROWID;
     INSERT INTO resource_counts (kind, account, region, state, n)
        SELECT kind, account, region, state, count(*) FROM resources GROUP BY kind, account, region, state;
     CREATE TRIGGER resource_counts_insert AFTER INSERT ON resources BEGIN
        INSERT INTO resource_counts (kind, account, region, state, n)
            VALUES (NEW.kind, NEW.account, NEW.region, NEW.state, 1)
            ON CONFLICT (kind, account, region, state) DO UPDATE SET n = n + 1;
     END;
     CREATE TRIGGER resource_counts_delete AFTER DELETE ON resources BEGIN
        UPDATE resource_counts SET n = n - 1
            WHERE kind = OLD.kind AND account = OLD.account AND region = OLD.region AND state = OLD.state;
     END;
     CREATE TRIGGER resource_counts_update AFTER UPDATE OF kind, account, region, state ON resources BEGIN
        UPDATE resource_counts SET n = n - 1
            WHERE kind = OLD.kind AND account = OLD.account AND region = OLD.region AND state = OLD.state;
        INSERT INTO resource_counts (kind, account, region, state, n)
            VALUES (NEW.kind, NEW.account, NEW.region, NEW.state, 1)
            ON CONFLICT (kind, account, region, state) DO UPDATE SET n = n + 1;
     END;",
];

/// How many read-only connections serve read transactions concurrently.
const READERS: usize = 4;

/// Metadata in one SQLite file (or in memory, for tests).
///
/// One writer connection serialises read-write transactions; a small pool of read-only
/// connections serves read transactions in parallel with it (WAL gives each reader a
/// consistent snapshot). An in-memory store has no readers and reads through the writer.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
}

fn db(e: rusqlite::Error) -> MetaError {
    MetaError::Db(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let conn = Connection::open(path).map_err(db)?;
        let mut store = Self::init(conn)?;
        for _ in 0..READERS {
            let r =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .map_err(db)?;
            r.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
            store.readers.push(Mutex::new(r));
        }
        Ok(store)
    }

    /// A private in-memory database.
    pub fn in_memory() -> Result<Self, MetaError> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(conn: Connection) -> Result<Self, MetaError> {
        // WAL keeps readers off writers' backs; FULL makes each commit durable on its own.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db)?;
        migrate(&conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn), readers: Vec::new(), next_reader: Default::default() })
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        MIGRATIONS.len() as i64
    }
}

/// The migrations, for tests that build a database as an earlier release left it.
#[cfg(test)]
pub(crate) fn migrations() -> &'static [&'static str] {
    MIGRATIONS
}

fn migrate(conn: &Connection) -> Result<(), MetaError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(MetaError::TooNew { found: current, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        // Each step and its version bump commit together, so a crash mid-migration retries it.
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1)).map_err(
            |e| {
                let _ = conn.execute_batch("ROLLBACK");
                db(e)
            },
        )?;
    }
    Ok(())
}

impl MetaStore for SqliteStore {
    fn begin(&self) -> Result<Box<dyn MetaTxn + '_>, MetaError> {
        // A poisoned lock only means another request panicked; the connection itself is fine
        // because that transaction was rolled back by its guard's drop.
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        Ok(Box::new(SqliteTxn { conn, open: true }))
    }

    fn read(&self) -> Result<Box<dyn MetaTxn + '_>, MetaError> {
        if self.readers.is_empty() {
            return self.begin();
        }
        // Prefer an idle reader; fall back to waiting on one in round-robin order.
        let start = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        let conn = (0..n)
            .find_map(|i| self.readers[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| self.readers[start % n].lock().unwrap_or_else(|e| e.into_inner()));
        conn.execute_batch("BEGIN DEFERRED").map_err(db)?;
        Ok(Box::new(SqliteTxn { conn, open: true }))
    }
}

struct SqliteTxn<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
}

impl Drop for SqliteTxn<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

const RECORD_COLUMNS: &str = "seq, id, kind, account, region, name, scope, created_at, tags, body, state";

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Record, MetaError>> {
    let id: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let tags: String = row.get(8)?;
    let body: String = row.get(9)?;
    let corrupt = |reason: String| MetaError::Corrupt { id: id.clone(), reason };
    let Some(kind) = kiln_types::ResourceKind::from_tag_type(&kind) else {
        return Ok(Err(corrupt(format!("unknown kind {kind}"))));
    };
    let tags = match serde_json::from_str(&tags) {
        Ok(t) => t,
        Err(e) => return Ok(Err(corrupt(e.to_string()))),
    };
    Ok(Ok(Record {
        seq: row.get(0)?,
        id: id.clone(),
        kind,
        account: row.get(3)?,
        region: row.get(4)?,
        name: row.get(5)?,
        scope: row.get(6)?,
        created_at: row.get(7)?,
        state: row.get(10)?,
        tags,
        body,
    }))
}

fn hex_id(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl MetaTxn for SqliteTxn<'_> {
    fn get(&mut self, id: &str) -> Result<Option<Record>, MetaError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM resources WHERE id = ?1");
        self.conn.query_row(&sql, [id], row_to_record).optional().map_err(db)?.transpose()
    }

    fn find(&mut self, q: &Query<'_>) -> Result<Vec<Record>, MetaError> {
        let (filter, args) = where_clause(q);
        let sql = format!("SELECT {RECORD_COLUMNS} FROM resources{filter}");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt.query_map(params_from_iter(args), row_to_record).map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(db)??);
        }
        Ok(out)
    }

    fn count(&mut self, q: &Query<'_>) -> Result<u64, MetaError> {
        if let Some((sql, args)) = counter_query(q) {
            let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
            return stmt.query_row(params_from_iter(args), |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db);
        }
        let (filter, args) = where_clause(q);
        let sql = format!("SELECT count(*) FROM (SELECT seq FROM resources{filter})");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        stmt.query_row(params_from_iter(args), |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db)
    }

    fn set_grants(&mut self, id: &str, grantees: &[String]) -> Result<(), MetaError> {
        let seq = self.seq_of(id)?;
        self.conn.execute("DELETE FROM grants WHERE seq = ?1", [seq]).map_err(db)?;
        let mut stmt =
            self.conn.prepare_cached("INSERT OR IGNORE INTO grants (seq, grantee) VALUES (?1, ?2)").map_err(db)?;
        for g in grantees {
            stmt.execute(params![seq, g]).map_err(db)?;
        }
        Ok(())
    }

    fn grants(&mut self, id: &str) -> Result<Vec<String>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT grantee FROM grants WHERE seq = (SELECT seq FROM resources WHERE id = ?1) ORDER BY grantee",
            )
            .map_err(db)?;
        let rows = stmt.query_map([id], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn insert(&mut self, rec: &Record) -> Result<i64, MetaError> {
        let tags = serde_json::to_string(&rec.tags).map_err(|e| MetaError::Db(e.to_string()))?;
        let body = &rec.body;
        self.conn
            .execute(
                "INSERT INTO resources (id, kind, account, region, name, scope, created_at, tags, body, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    rec.id,
                    rec.kind.as_str(),
                    rec.account,
                    rec.region,
                    rec.name,
                    rec.scope,
                    rec.created_at,
                    tags,
                    body,
                    rec.state
                ],
            )
            .map_err(|e| if is_unique_violation(&e) { MetaError::Conflict(rec.id.clone()) } else { db(e) })?;
        let seq = self.conn.last_insert_rowid();
        self.write_tags(seq, rec)?;
        Ok(seq)
    }

    fn update(&mut self, rec: &Record) -> Result<(), MetaError> {
        let tags = serde_json::to_string(&rec.tags).map_err(|e| MetaError::Db(e.to_string()))?;
        let body = &rec.body;
        let n = self
            .conn
            .execute(
                "UPDATE resources SET tags = ?2, body = ?3, state = ?4 WHERE id = ?1",
                params![rec.id, tags, body, rec.state],
            )
            .map_err(db)?;
        if n == 0 {
            return Err(MetaError::Db(format!("update of missing record {}", rec.id)));
        }
        let seq = self.seq_of(&rec.id)?;
        self.conn.execute("DELETE FROM resource_tags WHERE seq = ?1", [seq]).map_err(db)?;
        self.write_tags(seq, rec)
    }

    fn delete(&mut self, id: &str) -> Result<bool, MetaError> {
        let Some(seq) = self
            .conn
            .query_row("SELECT seq FROM resources WHERE id = ?1", [id], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(db)?
        else {
            return Ok(false);
        };
        self.conn.execute("DELETE FROM resource_tags WHERE seq = ?1", [seq]).map_err(db)?;
        self.conn.execute("DELETE FROM grants WHERE seq = ?1", [seq]).map_err(db)?;
        Ok(self.conn.execute("DELETE FROM resources WHERE seq = ?1", [seq]).map_err(db)? > 0)
    }

    fn insert_account(&mut self, a: &AccountRow) -> Result<(), MetaError> {
        self.conn
            .execute(
                "INSERT INTO accounts (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![a.id, a.name, a.created_at],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    MetaError::Conflict(format!("account {} ({})", a.id, a.name))
                } else {
                    db(e)
                }
            })?;
        Ok(())
    }

    fn accounts(&mut self) -> Result<Vec<AccountRow>, MetaError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, name, created_at FROM accounts ORDER BY rowid").map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok(AccountRow { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? }))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn insert_access_key(&mut self, k: &AccessKeyRow) -> Result<(), MetaError> {
        self.conn
            .execute(
                "INSERT INTO access_keys (id, account_id, secret) VALUES (?1, ?2, ?3)",
                params![k.id, k.account_id, k.secret],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    MetaError::Conflict(format!("access key {}", k.id))
                } else {
                    db(e)
                }
            })?;
        Ok(())
    }

    fn access_key(&mut self, id: &str) -> Result<Option<AccessKeyRow>, MetaError> {
        self.conn
            .query_row("SELECT id, account_id, secret FROM access_keys WHERE id = ?1", [id], |r| {
                Ok(AccessKeyRow { id: r.get(0)?, account_id: r.get(1)?, secret: r.get(2)? })
            })
            .optional()
            .map_err(db)
    }

    fn access_keys(&mut self, account_id: &str) -> Result<Vec<AccessKeyRow>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, account_id, secret FROM access_keys WHERE account_id = ?1 ORDER BY rowid")
            .map_err(db)?;
        let rows = stmt
            .query_map([account_id], |r| Ok(AccessKeyRow { id: r.get(0)?, account_id: r.get(1)?, secret: r.get(2)? }))
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>, MetaError> {
        self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<(), MetaError> {
        self.conn
            .execute("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params![key, value])
            .map_err(db)?;
        Ok(())
    }

    fn settings_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, String)>, MetaError> {
        // The same primary-key range scan as `blobs_with_prefix`.
        let upper = format!("{prefix}\u{10FFFF}");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key")
            .map_err(db)?;
        let rows = stmt.query_map(params![prefix, upper], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn put_blob(&mut self, key: &str, data: &[u8]) -> Result<(), MetaError> {
        self.conn
            .execute(
                "INSERT INTO blobs (key, data) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET data = excluded.data",
                params![key, data],
            )
            .map_err(db)?;
        Ok(())
    }

    fn blob(&mut self, key: &str) -> Result<Option<Vec<u8>>, MetaError> {
        self.conn.query_row("SELECT data FROM blobs WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)
    }

    fn blobs_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MetaError> {
        // A range scan on the primary key: every key with the prefix sorts in [prefix, prefix + U+10FFFF).
        let upper = format!("{prefix}\u{10FFFF}");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, data FROM blobs WHERE key >= ?1 AND key < ?2 ORDER BY key")
            .map_err(db)?;
        let rows = stmt.query_map(params![prefix, upper], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn delete_blob(&mut self, key: &str) -> Result<bool, MetaError> {
        Ok(self.conn.execute("DELETE FROM blobs WHERE key = ?1", [key]).map_err(db)? > 0)
    }

    fn add_chunk_refs(&mut self, region: &str, ids: &[[u8; 32]], delta: i64, now: i64) -> Result<(), MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO chunk_refs (region, id, refs, zero_since) VALUES (?1, ?2, ?3, CASE WHEN ?3 = 0 THEN ?4 END)
                 ON CONFLICT(region, id) DO UPDATE SET
                    refs = refs + ?3,
                    zero_since = CASE WHEN refs + ?3 = 0 THEN ?4 ELSE NULL END",
            )
            .map_err(db)?;
        for id in ids {
            if delta < 0 {
                // A decrement below zero means the bookkeeping is broken: refuse loudly.
                let refs: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT refs FROM chunk_refs WHERE region = ?1 AND id = ?2",
                        params![region, &id[..]],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                if refs.unwrap_or(0) + delta < 0 {
                    return Err(MetaError::Db(format!("chunk reference count of {} would go below zero", hex_id(id))));
                }
            }
            if delta < 0 {
                // The upsert's candidate row would carry a negative count and fail the CHECK
                // before the conflict clause runs, so decrements are plain updates.
                self.conn
                    .execute(
                        "UPDATE chunk_refs SET refs = refs + ?3, zero_since = CASE WHEN refs + ?3 = 0 THEN ?4 ELSE NULL END
                         WHERE region = ?1 AND id = ?2",
                        params![region, &id[..], delta, now],
                    )
                    .map_err(db)?;
            } else {
                stmt.execute(params![region, &id[..], delta, now]).map_err(db)?;
            }
        }
        Ok(())
    }

    fn unreferenced_chunks(&mut self, region: &str, cutoff: i64) -> Result<Vec<[u8; 32]>, MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM chunk_refs WHERE region = ?1 AND refs = 0 AND zero_since < ?2")
            .map_err(db)?;
        let rows = stmt.query_map(params![region, cutoff], |r| r.get::<_, Vec<u8>>(0)).map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let v = r.map_err(db)?;
            out.push(
                v.try_into()
                    .map_err(|_| MetaError::Corrupt { id: "chunk_refs".into(), reason: "id is not 32 bytes".into() })?,
            );
        }
        Ok(out)
    }

    fn forget_chunk(&mut self, region: &str, id: &[u8; 32], cutoff: i64) -> Result<bool, MetaError> {
        Ok(self
            .conn
            .execute(
                "DELETE FROM chunk_refs WHERE region = ?1 AND id = ?2 AND refs = 0 AND zero_since < ?3",
                params![region, &id[..], cutoff],
            )
            .map_err(db)?
            > 0)
    }

    fn chunk_known(&mut self, region: &str, id: &[u8; 32]) -> Result<bool, MetaError> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM chunk_refs WHERE region = ?1 AND id = ?2", params![region, &id[..]], |_| Ok(()))
            .optional()
            .map_err(db)?
            .is_some())
    }

    fn chunk_stats(&mut self, region: &str) -> Result<(u64, u64), MetaError> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(refs), 0) FROM chunk_refs WHERE region = ?1 AND refs > 0",
                [region],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(db)
    }

    fn commit(mut self: Box<Self>) -> Result<(), MetaError> {
        self.conn.execute_batch("COMMIT").map_err(db)?;
        self.open = false;
        Ok(())
    }
}

impl SqliteTxn<'_> {
    fn seq_of(&self, id: &str) -> Result<i64, MetaError> {
        self.conn
            .query_row("SELECT seq FROM resources WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(db)?
            .ok_or_else(|| MetaError::Db(format!("no record {id}")))
    }

    fn write_tags(&self, seq: i64, rec: &Record) -> Result<(), MetaError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO resource_tags (seq, key, value) VALUES (?1, ?2, ?3)")
            .map_err(db)?;
        for t in &rec.tags {
            stmt.execute(params![seq, t.key, t.value]).map_err(db)?;
        }
        Ok(())
    }
}

/// `pattern` as a GLOB operand: EC2's `*` and `?` are GLOB's too; `[` must be escaped.
fn glob(pattern: &Pattern) -> String {
    pattern.0.replace('[', "[[]")
}

/// The smallest string greater than every string starting with `prefix`, when there is one.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `column` matching any of `patterns`: equality for exact ones, a prefix range (which an
/// index serves) plus GLOB for the rest.
fn any_pattern(column: &str, patterns: &[Pattern], args: &mut Vec<Value>) -> String {
    let mut alternatives = Vec::new();
    for p in patterns {
        match p.exact() {
            Some(exact) => {
                args.push(Value::Text(exact.to_owned()));
                alternatives.push(format!("{column} = ?"));
            }
            None => {
                let mut cond = format!("{column} GLOB ?");
                args.push(Value::Text(glob(p)));
                let prefix = p.prefix();
                if !prefix.is_empty() {
                    cond.push_str(&format!(" AND {column} >= ?"));
                    args.push(Value::Text(prefix.to_owned()));
                    if let Some(end) = prefix_end(prefix) {
                        cond.push_str(&format!(" AND {column} < ?"));
                        args.push(Value::Text(end));
                    }
                }
                alternatives.push(format!("({cond})"));
            }
        }
    }
    format!("({})", alternatives.join(" OR "))
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The `WHERE … ORDER BY seq LIMIT …` of `q`, with its arguments in order. Only the
/// constraints present go into the statement, so SQLite can pick an index for them.
/// The counter read that answers `q`, when it asks only for an owner's resources of a kind in
/// a region, in any or some states.
fn counter_query(q: &Query<'_>) -> Option<(String, Vec<Value>)> {
    let (Some(kind), Some(account), Some(region)) = (q.kind, q.account, q.region) else { return None };
    let only_owner = q.name.is_none()
        && q.scope.is_none()
        && q.ids.is_empty()
        && q.owners.is_empty()
        && q.names.is_empty()
        && q.tags.is_empty()
        && q.visible_to.is_none()
        && q.after_seq.is_none()
        && q.limit.is_none();
    if !only_owner {
        return None;
    }
    let mut sql =
        "SELECT coalesce(sum(n), 0) FROM resource_counts WHERE kind = ? AND account = ? AND region = ?".to_string();
    let mut args = vec![Value::Text(kind.as_str().into()), Value::Text(account.into()), Value::Text(region.into())];
    if !q.states.is_empty() {
        sql.push_str(&format!(" AND state IN ({})", placeholders(q.states.len())));
        args.extend(q.states.iter().map(|v| Value::Text(v.clone())));
    }
    Some((sql, args))
}

fn where_clause(q: &Query<'_>) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    // Without statistics SQLite would rather walk an owner index than look up a handful of
    // ids or tagged rows; a unary `+` keeps a column out of index choice, so the selective
    // condition drives the query.
    let selective = !q.ids.is_empty() || !q.tags.is_empty();
    let by_name = !q.names.is_empty() && q.names.iter().all(|p| !p.prefix().is_empty());
    let plain = |col: &str, demote: bool| if demote { format!("+{col}") } else { col.to_string() };
    let kind = q.kind.map(|k| k.as_str());
    for (col, value) in
        [("kind", kind), ("account", q.account), ("region", q.region), ("name", q.name), ("scope", q.scope)]
    {
        if let Some(v) = value {
            let demote = selective || (by_name && col == "account");
            clauses.push(format!("{} = ?", plain(col, demote)));
            args.push(Value::Text(v.to_owned()));
        }
    }
    for (col, list) in [("id", q.ids), ("account", q.owners), ("state", q.states)] {
        if !list.is_empty() {
            let demote = col != "id" && (selective || (by_name && col == "account"));
            clauses.push(format!("{} IN ({})", plain(col, demote), placeholders(list.len())));
            args.extend(list.iter().map(|v| Value::Text(v.clone())));
        }
    }
    if !q.names.is_empty() {
        clauses.push(any_pattern("name", q.names, &mut args));
    }
    // The first tag condition drives the query as a set of rows; each further one is checked
    // per candidate on the (seq, key) primary key, so a broad second tag costs nothing.
    for (i, cond) in q.tags.iter().enumerate() {
        let mut parts = Vec::new();
        if !cond.keys.is_empty() {
            parts.push(any_pattern("key", &cond.keys, &mut args));
        }
        if !cond.values.is_empty() {
            parts.push(any_pattern("value", &cond.values, &mut args));
        }
        if i == 0 {
            let filter = if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) };
            clauses.push(format!("seq IN (SELECT seq FROM resource_tags{filter})"));
        } else {
            parts.insert(0, "t.seq = resources.seq".into());
            clauses.push(format!("EXISTS (SELECT 1 FROM resource_tags t WHERE {})", parts.join(" AND ")));
        }
    }
    if let Some(v) = q.visible_to {
        args.push(Value::Text(v.account.to_owned()));
        if v.grantees.is_empty() {
            clauses.push("account = ?".into());
        } else {
            clauses.push(format!(
                "(account = ? OR seq IN (SELECT seq FROM grants WHERE grantee IN ({})))",
                placeholders(v.grantees.len())
            ));
            args.extend(v.grantees.iter().map(|g| Value::Text(g.clone())));
        }
    }
    if let Some(after) = q.after_seq {
        clauses.push("seq > ?".into());
        args.push(Value::Integer(after));
    }
    let mut sql = String::new();
    for (i, c) in clauses.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        sql.push_str(c);
    }
    sql.push_str(" ORDER BY seq");
    if let Some(limit) = q.limit {
        sql.push_str(" LIMIT ?");
        args.push(Value::Integer(limit.min(i64::MAX as usize) as i64));
    }
    (sql, args)
}
