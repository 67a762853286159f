//! The behaviour every [`MetaStore`] must show; each implementation runs this suite.

use kiln_types::{ResourceKind, Tag};

use crate::{AccessKeyRow, AccountRow, MetaError, MetaStore, Query, Record, SqliteStore};

fn record(id: &str, account: &str, region: &str, name: Option<&str>) -> Record {
    Record {
        kind: ResourceKind::KeyPair,
        id: id.into(),
        account: account.into(),
        region: region.into(),
        name: name.map(str::to_string),
        scope: String::new(),
        seq: 0,
        created_at: "2026-01-01T00:00:00Z".into(),
        tags: vec![Tag { key: "b".into(), value: "1".into() }, Tag { key: "a".into(), value: "2".into() }],
        body: serde_json::json!({"fingerprint": "ab:cd"}),
    }
}

fn suite(store: &dyn MetaStore) {
    // Insert, read back, tags keep their order.
    let mut t = store.begin().unwrap();
    t.insert(&record("key-1", "111122223333", "us-east-1", Some("k1"))).unwrap();
    t.insert(&record("key-2", "111122223333", "us-east-1", Some("k2"))).unwrap();
    t.insert(&record("key-3", "111122223333", "eu-west-1", Some("k1"))).unwrap();
    t.commit().unwrap();

    let mut t = store.begin().unwrap();
    let r = t.get("key-1").unwrap().unwrap();
    assert_eq!(r.tags[0].key, "b");
    assert_eq!(r.body["fingerprint"], "ab:cd");
    let in_region =
        t.find(&Query { account: Some("111122223333"), region: Some("us-east-1"), ..Default::default() }).unwrap();
    assert_eq!(in_region.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["key-1", "key-2"]);
    assert!(in_region[0].seq < in_region[1].seq);

    // Names are unique per owner and region, not globally.
    assert!(matches!(t.insert(&record("key-4", "111122223333", "us-east-1", Some("k1"))), Err(MetaError::Conflict(_))));
    drop(t);

    // Dropping a transaction rolls it back.
    let mut t = store.begin().unwrap();
    t.insert(&record("key-5", "111122223333", "us-east-1", Some("k5"))).unwrap();
    drop(t);
    let mut t = store.begin().unwrap();
    assert!(t.get("key-5").unwrap().is_none());

    // Update and delete.
    let mut r = t.get("key-2").unwrap().unwrap();
    r.tags.clear();
    t.update(&r).unwrap();
    assert!(t.get("key-2").unwrap().unwrap().tags.is_empty());
    assert!(t.delete("key-2").unwrap());
    assert!(!t.delete("key-2").unwrap());

    // Accounts and keys.
    t.insert_account(&AccountRow { id: "111122223333".into(), name: "a".into(), created_at: "x".into() }).unwrap();
    assert!(t
        .insert_account(&AccountRow { id: "999922223333".into(), name: "a".into(), created_at: "x".into() })
        .is_err());
    t.insert_access_key(&AccessKeyRow { id: "AKIA1".into(), account_id: "111122223333".into(), secret: "s".into() })
        .unwrap();
    assert_eq!(t.access_key("AKIA1").unwrap().unwrap().secret, "s");
    assert!(t.access_key("AKIA2").unwrap().is_none());
    assert_eq!(t.access_keys("111122223333").unwrap().len(), 1);
    t.set_setting("k", "v1").unwrap();
    t.set_setting("k", "v2").unwrap();
    assert_eq!(t.setting("k").unwrap().as_deref(), Some("v2"));
    t.set_setting("alias/r1/b", "2").unwrap();
    t.set_setting("alias/r1/a", "1").unwrap();
    t.set_setting("alias/r10/a", "9").unwrap();
    assert_eq!(
        t.settings_with_prefix("alias/r1/").unwrap(),
        vec![("alias/r1/a".to_string(), "1".to_string()), ("alias/r1/b".to_string(), "2".to_string())]
    );
    assert!(t.settings_with_prefix("nothing/").unwrap().is_empty());
    t.commit().unwrap();

    // Blobs and chunk reference counts.
    let mut t = store.begin().unwrap();
    t.put_blob("index/snap-1", &[1, 2, 3]).unwrap();
    assert_eq!(t.blob("index/snap-1").unwrap().unwrap(), vec![1, 2, 3]);
    t.put_blob("upload/snap-2/00000002", &[2]).unwrap();
    t.put_blob("upload/snap-2/00000001", &[1]).unwrap();
    t.put_blob("upload/snap-20/00000001", &[9]).unwrap();
    let listed = t.blobs_with_prefix("upload/snap-2/").unwrap();
    assert_eq!(
        listed,
        vec![("upload/snap-2/00000001".to_string(), vec![1]), ("upload/snap-2/00000002".to_string(), vec![2])]
    );
    assert!(t.delete_blob("index/snap-1").unwrap());
    assert!(t.blob("index/snap-1").unwrap().is_none());
    let (a, b) = ([1u8; 32], [2u8; 32]);
    t.add_chunk_refs("r1", &[a, b, a], 1, 100).unwrap();
    assert_eq!(t.chunk_stats("r1").unwrap(), (2, 3));
    assert_eq!(t.chunk_stats("r2").unwrap(), (0, 0));
    t.add_chunk_refs("r1", &[b], -1, 200).unwrap();
    assert!(t.chunk_known("r1", &b).unwrap());
    assert!(!t.chunk_known("r2", &b).unwrap());
    // Zero since 200: not yet collectable with cutoff 200, collectable with 201.
    assert!(t.unreferenced_chunks("r1", 200).unwrap().is_empty());
    assert_eq!(t.unreferenced_chunks("r1", 201).unwrap(), vec![b]);
    // Going below zero is refused.
    assert!(t.add_chunk_refs("r1", &[b], -1, 300).is_err());
    // A re-reference clears the zero mark, so the chunk is no longer collectable.
    t.add_chunk_refs("r1", &[b], 1, 300).unwrap();
    assert!(t.unreferenced_chunks("r1", 1000).unwrap().is_empty());
    assert!(!t.forget_chunk("r1", &b, 1000).unwrap());
    t.add_chunk_refs("r1", &[b], -1, 400).unwrap();
    assert!(t.forget_chunk("r1", &b, 1000).unwrap());
    assert!(!t.chunk_known("r1", &b).unwrap());
    t.commit().unwrap();
}

#[test]
fn sqlite_in_memory_conforms() {
    suite(&SqliteStore::in_memory().unwrap());
}

#[test]
fn sqlite_file_conforms_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    suite(&SqliteStore::open(&path).unwrap());
    let reopened = SqliteStore::open(&path).unwrap();
    // Read transactions see committed data, run beside a writer, and cannot write.
    let mut writer = reopened.begin().unwrap();
    writer.insert(&record("key-9", "111122223333", "us-east-1", Some("k9"))).unwrap();
    let mut reader = reopened.read().unwrap();
    assert!(reader.get("key-1").unwrap().is_some());
    assert!(reader.get("key-9").unwrap().is_none(), "uncommitted writes are invisible to readers");
    assert!(reader.insert(&record("key-10", "111122223333", "us-east-1", Some("k10"))).is_err());
    drop(reader);
    writer.commit().unwrap();
    assert!(reopened.read().unwrap().get("key-9").unwrap().is_some());
    let mut t = reopened.read().unwrap();
    assert!(t.get("key-1").unwrap().is_some());
    assert!(t.get("key-2").unwrap().is_none());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(SqliteStore::open(&path), Err(MetaError::TooNew { found: 99, .. })));
}
