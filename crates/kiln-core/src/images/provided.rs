//! Provided images: the operator's own images, owned by a provider account with an owner
//! alias (so `Owners=[kiln]` finds them), public, and registered again under a new name
//! whenever their content version changes. Older versions stay registered and usable, as AWS
//! keeps old AMIs.
//!
//! The bytes go straight into the region's chunk store from this process (the one that owns
//! it), the same way a snapshot does: chunks written under the insert guard, then the snapshot,
//! its references and the image committed in one transaction.

use std::path::Path;

use kiln_chunks::{ChunkId, SnapshotIndex, BLOCK_SIZE};
use kiln_meta::AccountRow;
use kiln_types::{
    AccountId, BlockDeviceMapping, EbsSpec, Grantee, ImageState, ResourceKind, RootDeviceType, SnapshotState,
};

use crate::error::{CoreError, CoreResult};
use crate::records::image::ImageData;
use crate::records::item::{self, Item};
use crate::records::snapshot::{index_key, references, SnapshotData, NO_VOLUME};
use crate::records::volume::GIB;
use crate::{Ctx, Kiln};

/// Settings key naming the provider account.
const PROVIDER_KEY: &str = "provider_account";
/// The provider account's name and owner alias.
pub const PROVIDER_ALIAS: &str = "kiln";

/// A disk to publish as a provided image.
pub struct ProvidedDisk<'a> {
    /// Image family, e.g. `kiln-minimal`; the image is named `<family>-<version>`.
    pub family: &'a str,
    /// Content version.
    pub version: &'a str,
    /// Raw disk image file.
    pub path: &'a Path,
    /// Description.
    pub description: &'a str,
    /// Architecture.
    pub architecture: &'a str,
}

impl Kiln {
    /// The provider account, created (with alias `kiln`) on first use.
    pub fn provider_account(&self) -> CoreResult<String> {
        let mut txn = self.store.begin()?;
        if let Some(id) = txn.setting(PROVIDER_KEY)? {
            return Ok(id);
        }
        let id = AccountId::random().to_string();
        txn.insert_account(&AccountRow { id: id.clone(), name: PROVIDER_ALIAS.into(), created_at: crate::now() })?;
        let mut aliases = self.owner_aliases(txn.as_mut())?;
        aliases.insert(id.clone(), PROVIDER_ALIAS.into());
        txn.set_setting(
            crate::identity::accounts::ALIASES_KEY,
            &serde_json::to_string(&aliases).map_err(|e| CoreError::Internal(e.to_string()))?,
        )?;
        txn.set_setting(PROVIDER_KEY, &id)?;
        txn.commit()?;
        Ok(id)
    }

    /// Registers `disk` in `region` as the public provided image `<family>-<version>`, unless
    /// that version is already registered. Returns the new image id, or `None`.
    pub fn publish_provided(&self, region: &str, disk: &ProvidedDisk<'_>) -> CoreResult<Option<String>> {
        let owner = self.provider_account()?;
        let ctx = Ctx { account: owner, region: region.to_string() };
        self.ensure_region(&ctx)?;
        let name = format!("{}-{}", disk.family, disk.version);
        {
            let mut txn = self.store.read()?;
            if item::by_name::<ImageData>(txn.as_mut(), &ctx, "", &name)?.is_some() {
                return Ok(None);
            }
        }
        let source = kiln_disk::ImageSource::open(disk.path).map_err(|e| CoreError::Storage(e.to_string()))?;
        let size = source.size();
        let gib = size.div_ceil(GIB).max(1);
        let mut blocks: Vec<Option<ChunkId>> = vec![None; SnapshotIndex::block_count(gib * GIB) as usize];
        let store = self.storage.chunks(region)?;
        let _guard = store.insert_guard();
        for item in source {
            let (index, mut data) = item.map_err(|e| CoreError::Storage(e.to_string()))?;
            data.resize(BLOCK_SIZE, 0);
            blocks[index as usize] = store.insert(&data).map_err(|e| CoreError::Storage(e.to_string()))?;
        }
        let index = SnapshotIndex::from_blocks(gib * GIB, blocks).map_err(|e| CoreError::Internal(e.to_string()))?;
        let now = crate::now();
        let mut txn = self.store.begin()?;
        let mut snap = Item::new(
            &ctx,
            None,
            String::new(),
            vec![kiln_types::Tag { key: "kiln:source-size".into(), value: size.to_string() }],
            SnapshotData {
                volume_id: NO_VOLUME.into(),
                volume_size: gib as i64,
                description: format!("Root volume of {name}"),
                state: SnapshotState::Completed,
                progress: 100,
                start_time: now.clone(),
                completion_time: Some(now),
                full_size_bytes: index.blocks().iter().flatten().count() as u64 * BLOCK_SIZE as u64,
                ..Default::default()
            },
        );
        snap.insert(txn.as_mut())?;
        txn.add_chunk_refs(region, &references(&index), 1, chrono::Utc::now().timestamp())?;
        txn.put_blob(&index_key(&snap.id), &index.encode())?;
        let mut image = Item::new(
            &ctx,
            Some(name),
            String::new(),
            vec![kiln_types::Tag { key: "kiln:family".into(), value: disk.family.to_string() }],
            ImageData {
                description: Some(disk.description.to_string()),
                architecture: crate::error::named(disk.architecture)?,
                root_device_name: "/dev/xvda".into(),
                root_device_type: RootDeviceType::Ebs,
                block_device_mappings: vec![BlockDeviceMapping {
                    device_name: "/dev/xvda".into(),
                    ebs: Some(EbsSpec {
                        snapshot_id: Some(snap.id.clone()),
                        volume_size: Some(gib as i64),
                        volume_type: Some("gp3".into()),
                        delete_on_termination: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                virtualization_type: "hvm".into(),
                boot_mode: Some("legacy-bios".into()),
                ena_support: true,
                state: ImageState::Available,
                launch_permissions: vec![Grantee::All],
                kiln_type: "provided".into(),
                ..Default::default()
            },
        );
        image.insert(txn.as_mut())?;
        // The family's `latest` alias moves to the new version in the same transaction.
        crate::images::aliases::set(txn.as_mut(), region, &crate::images::aliases::latest(disk.family), &image.id)?;
        txn.commit()?;
        debug_assert_eq!(ResourceKind::of_id(&image.id), Some(ResourceKind::Image));
        Ok(Some(image.id))
    }
}
