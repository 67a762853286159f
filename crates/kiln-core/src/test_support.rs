//! Fixtures the unit tests of several use cases share.

use std::path::Path;
use std::sync::Arc;

use kiln_meta::SqliteStore;
use kiln_types::SnapshotState;

use crate::compute::instance_types::Catalogue;
use crate::records::item::Item;
use crate::records::snapshot::SnapshotData;
use crate::{Ctx, Kiln, RegionSpec};

/// A service over an in-memory store with `regions` (one zone each, `<region>a`), keeping its
/// files under `dir`.
pub fn kiln(dir: &Path, regions: &[&str]) -> Kiln {
    let regions = regions
        .iter()
        .map(|r| RegionSpec { name: r.to_string(), zones: vec![format!("{r}a")], price_factor: 1.0 })
        .collect();
    Kiln::new(Arc::new(SqliteStore::in_memory().unwrap()), regions, Catalogue::default(), "localhost".into(), dir)
}

/// A completed snapshot record owned by `ctx` (no bytes: images only need the record).
pub fn completed_snapshot(kiln: &Kiln, ctx: &Ctx) -> String {
    let mut txn = kiln.store.begin().unwrap();
    let mut snap = Item::new(
        ctx,
        None,
        String::new(),
        vec![],
        SnapshotData {
            volume_id: "vol-ffffffff".into(),
            volume_size: 1,
            state: SnapshotState::Completed,
            ..Default::default()
        },
    );
    snap.insert(txn.as_mut()).unwrap();
    txn.commit().unwrap();
    snap.id
}
