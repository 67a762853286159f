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
        state: String::new(),
        body: serde_json::json!({"fingerprint": "ab:cd"}).to_string(),
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
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["fingerprint"], "ab:cd");
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

/// The query forms, checked against a reference that filters in memory.
fn query_suite(store: &dyn MetaStore) {
    use crate::{Pattern, TagCondition, Visibility};
    let (a, b) = ("111111111111", "222222222222");
    let image = |i: usize, owner: &str| Record {
        kind: ResourceKind::Image,
        id: format!("ami-{i:017x}"),
        account: owner.into(),
        region: "us-east-1".into(),
        name: (i % 7 != 6).then(|| format!("fam-{}-img-{i:03}{}", i % 4, if i == 5 { "[x]" } else { "" })),
        scope: String::new(),
        seq: 0,
        created_at: "2026-01-01T00:00:00Z".into(),
        tags: [("team", format!("team-{}", i % 3)), ("family", format!("fam-{}", i % 4))]
            .into_iter()
            .filter(|(k, _)| i % 5 != 4 || *k != "team")
            .map(|(k, v)| Tag { key: k.into(), value: v })
            .collect(),
        state: if i.is_multiple_of(6) { "failed" } else { "available" }.into(),
        body: serde_json::json!({ "i": i }).to_string(),
    };
    let mut t = store.begin().unwrap();
    for i in 0..40 {
        t.insert(&image(i, if i % 2 == 0 { a } else { b })).unwrap();
    }
    // Another kind and region never leak into image queries.
    t.insert(&Record { kind: ResourceKind::Snapshot, id: "snap-00000000000000001".into(), ..image(1, a) }).unwrap();
    t.insert(&Record { region: "eu-west-1".into(), id: "ami-fffffffffffffffff".into(), ..image(2, a) }).unwrap();
    // b shares some images with a, one with everyone.
    t.set_grants(&image(1, b).id, &["account:111111111111".into()]).unwrap();
    t.set_grants(&image(3, b).id, &["group:all".into(), "account:333333333333".into()]).unwrap();
    t.set_grants(&image(7, b).id, &["account:333333333333".into()]).unwrap();
    t.commit().unwrap();
    let mut t = store.begin().unwrap();
    assert_eq!(t.grants(&image(3, b).id).unwrap(), vec!["account:333333333333", "group:all"]);

    let base = Query { kind: Some(ResourceKind::Image), region: Some("us-east-1"), ..Default::default() };
    let all = t.find(&base).unwrap();
    assert_eq!(all.len(), 40);
    let grants: std::collections::HashMap<String, Vec<String>> =
        all.iter().map(|r| (r.id.clone(), t.grants(&r.id).unwrap())).collect();
    let reference = |q: &Query<'_>| -> Vec<String> {
        all.iter()
            .filter(|r| q.ids.is_empty() || q.ids.contains(&r.id))
            .filter(|r| q.owners.is_empty() || q.owners.contains(&r.account))
            .filter(|r| q.states.is_empty() || q.states.contains(&r.state))
            .filter(|r| q.names.is_empty() || r.name.as_deref().is_some_and(|n| q.names.iter().any(|p| p.matches(n))))
            .filter(|r| {
                q.tags.iter().all(|c| {
                    r.tags.iter().any(|tag| {
                        (c.keys.is_empty() || c.keys.iter().any(|p| p.matches(&tag.key)))
                            && (c.values.is_empty() || c.values.iter().any(|p| p.matches(&tag.value)))
                    })
                })
            })
            .filter(|r| {
                q.visible_to
                    .is_none_or(|v| r.account == v.account || grants[&r.id].iter().any(|g| v.grantees.contains(g)))
            })
            .filter(|r| q.after_seq.is_none_or(|s| r.seq > s))
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|r| r.id.clone())
            .collect()
    };
    let ids = |rs: Vec<Record>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let p = |s: &str| Pattern(s.into());
    let some_ids = vec![image(3, b).id, image(8, a).id, "ami-00000000000000999".into(), image(30, a).id];
    let owners = vec![b.to_string()];
    let failed = vec!["failed".to_string()];
    let either = vec!["failed".to_string(), "available".to_string()];
    let names = [
        vec![p("fam-1-img-013")],
        vec![p("fam-2-*")],
        vec![p("fam-?-img-00?")],
        vec![p("*-img-01*"), p("fam-3-img-003")],
        vec![p("fam-1-img-005[x]")],
        vec![p("*[x]")],
        vec![p("*")],
        vec![p("nothing*")],
    ];
    let tag_conditions = [
        vec![TagCondition { keys: vec![p("team")], values: vec![p("team-1")] }],
        vec![
            TagCondition { keys: vec![p("team")], values: vec![p("team-2")] },
            TagCondition { keys: vec![p("family")], values: vec![p("fam-3")] },
        ],
        vec![TagCondition { keys: vec![p("team")], values: vec![] }],
        vec![TagCondition { keys: vec![], values: vec![p("fam-*")] }],
        vec![TagCondition { keys: vec![p("t*m")], values: vec![p("team-0"), p("*-2")] }],
        // A tag's key and value must match the same tag: no tag "family" has value "team-1".
        vec![TagCondition { keys: vec![p("family")], values: vec![p("team-1")] }],
    ];
    let grantees = ["account:111111111111".to_string(), "group:all".to_string()];
    let visible = Visibility { account: a, grantees: &grantees };
    let no_grants = Visibility { account: a, grantees: &[] };
    let mut queries: Vec<Query<'_>> = vec![
        Query { ids: &some_ids, ..base.clone() },
        Query { owners: &owners, ..base.clone() },
        Query { states: &failed, ..base.clone() },
        Query { states: &either, owners: &owners, ..base.clone() },
        Query { visible_to: Some(visible), ..base.clone() },
        Query { visible_to: Some(no_grants), ..base.clone() },
        Query { limit: Some(5), ..base.clone() },
        Query { after_seq: Some(all[10].seq), limit: Some(7), ..base.clone() },
    ];
    for n in &names {
        queries.push(Query { names: n, ..base.clone() });
        queries.push(Query { names: n, owners: &owners, ..base.clone() });
    }
    for c in &tag_conditions {
        queries.push(Query { tags: c, ..base.clone() });
        queries.push(Query { tags: c, visible_to: Some(visible), names: &names[1], ..base.clone() });
    }
    for q in &queries {
        let expected = reference(q);
        assert_eq!(ids(t.find(q).unwrap()), expected, "{q:?}");
        assert_eq!(t.count(q).unwrap(), expected.len() as u64, "count of {q:?}");
    }
    assert_eq!(ids(t.find(&Query { names: &names[4], ..base.clone() }).unwrap()), vec![image(5, b).id]);
    assert_eq!(t.count(&Query { visible_to: Some(visible), ..base.clone() }).unwrap(), 22);

    // Keyset pages stay right while records come and go between them.
    let mut seen = Vec::new();
    let mut after = None;
    let mut round = 0;
    loop {
        let page = t.find(&Query { after_seq: after, limit: Some(6), ..base.clone() }).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        seen.extend(page.iter().map(|r| r.id.clone()));
        round += 1;
        if round == 2 {
            // Delete one already seen and one still ahead; add a new one at the end.
            assert!(t.delete(&image(0, a).id).unwrap());
            assert!(t.delete(&image(20, a).id).unwrap());
            t.insert(&image(40, a)).unwrap();
        }
    }
    let mut expected: Vec<String> =
        (0..41).filter(|i| *i != 20).map(|i| image(i, if i % 2 == 0 { a } else { b }).id).collect();
    expected.sort_by_key(|id| all.iter().position(|r| &r.id == id).unwrap_or(usize::MAX));
    assert_eq!(seen, expected);

    // Tags follow updates; deleting a record drops its tags and grants.
    let mut r = t.get(&image(1, b).id).unwrap().unwrap();
    r.tags = vec![Tag { key: "team".into(), value: "moved".into() }];
    r.state = "deregistered".into();
    t.update(&r).unwrap();
    let gone = vec!["deregistered".to_string()];
    assert_eq!(ids(t.find(&Query { states: &gone, ..base.clone() }).unwrap()), vec![r.id.clone()]);
    let moved = [TagCondition { keys: vec![p("team")], values: vec![p("moved")] }];
    assert_eq!(ids(t.find(&Query { tags: &moved, ..base.clone() }).unwrap()), vec![r.id.clone()]);
    let old = [TagCondition { keys: vec![p("family")], values: vec![p("fam-1")] }];
    assert!(!ids(t.find(&Query { tags: &old, ..base.clone() }).unwrap()).contains(&r.id));
    assert!(t.delete(&r.id).unwrap());
    assert!(t.grants(&r.id).unwrap().is_empty());
    assert!(t
        .find(&Query { visible_to: Some(visible), ids: std::slice::from_ref(&r.id), ..base.clone() })
        .unwrap()
        .is_empty());
    // Counts of an owner's records per kind and region (what quotas ask) follow inserts,
    // state changes and deletes.
    let owner_count = |t: &mut Box<dyn crate::MetaTxn + '_>, account: &str, states: &[String]| {
        let q = Query { account: Some(account), states, ..base.clone() };
        let expected =
            t.find(&Query { account: None, ..q.clone() }).unwrap().iter().filter(|r| r.account == account).count();
        assert_eq!(t.count(&q).unwrap(), expected as u64, "count of {q:?}");
        expected
    };
    let failed_only = vec!["failed".to_string()];
    let before = owner_count(&mut t, a, &[]);
    let failed_before = owner_count(&mut t, a, &failed_only);
    t.insert(&image(41, a)).unwrap();
    let mut r = t.get(&image(2, a).id).unwrap().unwrap();
    r.state = "failed".into();
    t.update(&r).unwrap();
    assert_eq!(owner_count(&mut t, a, &[]), before + 1);
    assert_eq!(owner_count(&mut t, a, &failed_only), failed_before + 1);
    assert!(t.delete(&image(41, a).id).unwrap());
    assert_eq!(owner_count(&mut t, a, &[]), before);
    assert_eq!(owner_count(&mut t, b, &[]), 19);
    assert_eq!(t.count(&Query { account: Some("999999999999"), ..base.clone() }).unwrap(), 0);
    t.commit().unwrap();
}

#[test]
fn sqlite_answers_every_query_form() {
    query_suite(&SqliteStore::in_memory().unwrap());
}

#[test]
fn patterns_match_like_ec2_filters() {
    use crate::Pattern;
    let p = |s: &str| Pattern(s.into());
    assert!(p("web-*").matches("web-1") && p("web-*").matches("web-") && !p("web-*").matches("web"));
    assert!(p("a?c").matches("abc") && !p("a?c").matches("ac") && p("a?c").matches("aéc"));
    assert!(p("*").matches("") && p("a*b*c").matches("aXbYc") && !p("A*").matches("abc"));
    assert_eq!(p("web-*x").prefix(), "web-");
    assert_eq!(p("plain").exact(), Some("plain"));
    assert_eq!(p("pl?in").exact(), None);
}

/// A database written by the previous schema (version 3, the migrations as released) is
/// brought forward in place: its records' tags become queryable.
#[test]
fn a_version_3_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (i, sql) in crate::sqlite::migrations().iter().take(3).enumerate() {
            conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1)).unwrap();
        }
        conn.execute(
            "INSERT INTO resources (id, kind, account, region, name, scope, created_at, tags, body)
             VALUES ('ami-00000000000000001', 'image', '111111111111', 'us-east-1', 'web', '',
                     '2026-01-01T00:00:00Z', '[{\"key\":\"team\",\"value\":\"blue\"}]', '{}')",
            [],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let mut t = store.read().unwrap();
    let blue = [crate::TagCondition {
        keys: vec![crate::Pattern("team".into())],
        values: vec![crate::Pattern("blue".into())],
    }];
    let found = t.find(&Query { tags: &blue, ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tags, vec![Tag { key: "team".into(), value: "blue".into() }]);
    // Its records are counted in: the owner's count is read from the counters.
    let mine = Query {
        kind: Some(ResourceKind::Image),
        account: Some("111111111111"),
        region: Some("us-east-1"),
        ..Default::default()
    };
    assert_eq!(t.count(&mine).unwrap(), 1);
    assert_eq!(SqliteStore::schema_version(), crate::sqlite::migrations().len() as i64);
}

/// A record kept inside other JSON (the recycle bin keeps whole records) carries its body as
/// JSON, as records did when bodies were values, and reads back the same.
#[test]
fn records_serialise_their_body_inline() {
    let rec = record("key-1", "111122223333", "us-east-1", Some("k1"));
    let json = serde_json::to_value(&rec).unwrap();
    assert_eq!(json["body"], serde_json::json!({"fingerprint": "ab:cd"}));
    let back: Record = serde_json::from_value(json).unwrap();
    assert_eq!(back, rec);
    // Written before `state` existed: it defaults to empty.
    let old = r#"{"kind":"KeyPair","id":"key-1","account":"1","region":"r","name":null,"scope":"","seq":1,
                  "created_at":"x","tags":[],"body":{"a":[1,2]}}"#;
    let back: Record = serde_json::from_str(old).unwrap();
    assert_eq!((back.state.as_str(), back.body.as_str()), ("", r#"{"a":[1,2]}"#));
}
