//! Key pairs: `CreateKeyPair`, `ImportKeyPair`, `DescribeKeyPairs`, `DeleteKeyPair`.
//!
//! Only the public key is stored. A created private key is returned once and then exists
//! nowhere on the server, so Kiln can never hand it out again.

use kiln_types::{Filter, ResourceKind, TagSpecification};

use crate::error::{CoreError, CoreResult};
use crate::identity::keys::{self, KeyError, KeyFormat, KeyType};
use crate::records::filter::{apply, s};
use crate::records::item::{self, Item};
use crate::records::key_pair::KeyPairData;
use crate::records::tags;
use crate::{Ctx, Kiln};

/// A created key pair with its one-time private key.
pub struct CreatedKeyPair {
    /// The stored key pair.
    pub key_pair: Item<KeyPairData>,
    /// Private key material, returned to the caller once.
    pub private_key: String,
}

fn check_name(name: &str) -> CoreResult<()> {
    if name.is_empty() || name.len() > 255 || !name.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(CoreError::InvalidParameterValue(format!(
            "Key pair name must be 1-255 ASCII characters; got {:?}",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

fn key_error(e: KeyError) -> CoreError {
    match e {
        KeyError::Format(m) => CoreError::KeyFormat(format!("Key is not in valid OpenSSH public key format: {m}")),
        KeyError::Unsupported(m) => CoreError::InvalidParameterValue(m),
        KeyError::Internal(m) => CoreError::Internal(m),
    }
}

impl Kiln {
    /// Refuses a name already used by the caller in this region.
    fn check_free(&self, ctx: &Ctx, name: &str) -> CoreResult<()> {
        let mut txn = self.store.read()?;
        if item::by_name::<KeyPairData>(txn.as_mut(), ctx, "", name)?.is_some() {
            return Err(CoreError::Duplicate {
                kind: ResourceKind::KeyPair,
                name: name.to_string(),
                scope: String::new(),
            });
        }
        Ok(())
    }

    fn store_key_pair(
        &self,
        ctx: &Ctx,
        name: &str,
        data: KeyPairData,
        specs: &[TagSpecification],
    ) -> CoreResult<Item<KeyPairData>> {
        let tags = tags::from_specs(specs, ResourceKind::KeyPair)?;
        let mut txn = self.store.begin()?;
        let mut kp = Item::new(ctx, Some(name.to_string()), String::new(), tags, data);
        kp.insert(txn.as_mut())?;
        txn.commit()?;
        Ok(kp)
    }

    /// `CreateKeyPair`.
    pub fn create_key_pair(
        &self,
        ctx: &Ctx,
        name: &str,
        key_type: Option<&str>,
        key_format: Option<&str>,
        specs: &[TagSpecification],
    ) -> CoreResult<CreatedKeyPair> {
        check_name(name)?;
        let key_type = match key_type {
            None => KeyType::Rsa,
            Some(t) => KeyType::parse(t).ok_or_else(|| {
                CoreError::InvalidParameterValue(format!(
                    "Value ({t}) for parameter keyType is invalid. Valid values: rsa, ed25519"
                ))
            })?,
        };
        let format = match key_format {
            None => KeyFormat::Pem,
            Some(f) => KeyFormat::parse(f).ok_or_else(|| {
                CoreError::InvalidParameterValue(format!(
                    "Value ({f}) for parameter keyFormat is invalid. Valid values: pem, ppk, openssh"
                ))
            })?,
        };
        tags::from_specs(specs, ResourceKind::KeyPair)?;
        // Fail fast on a taken name before spending time on RSA generation; the insert below
        // still decides races.
        self.check_free(ctx, name)?;
        let generated = keys::generate(key_type, format, name).map_err(key_error)?;
        let key_pair = self.store_key_pair(
            ctx,
            name,
            KeyPairData {
                key_type: key_type.as_str().to_string(),
                fingerprint: generated.fingerprint,
                public_key: generated.public_key_openssh,
            },
            specs,
        )?;
        Ok(CreatedKeyPair { key_pair, private_key: generated.private_key_material })
    }

    /// `ImportKeyPair`.
    pub fn import_key_pair(
        &self,
        ctx: &Ctx,
        name: &str,
        material: &[u8],
        specs: &[TagSpecification],
    ) -> CoreResult<Item<KeyPairData>> {
        check_name(name)?;
        let imported = keys::import(material).map_err(key_error)?;
        self.store_key_pair(
            ctx,
            name,
            KeyPairData {
                key_type: imported.key_type.as_str().to_string(),
                fingerprint: imported.fingerprint,
                public_key: imported.public_key_openssh,
            },
            specs,
        )
    }

    /// `DescribeKeyPairs`: every named key must exist.
    pub fn describe_key_pairs(
        &self,
        ctx: &Ctx,
        names: &[String],
        ids: &[String],
        filters: &[Filter],
    ) -> CoreResult<Vec<Item<KeyPairData>>> {
        let mut txn = self.store.read()?;
        let keys = if names.is_empty() {
            item::list_or_fetch::<KeyPairData>(txn.as_mut(), ctx, ids)?
        } else {
            // By name: indexed lookups, then the ids (if any) must also match.
            let mut by_name = Vec::with_capacity(names.len());
            for n in names {
                match item::by_name::<KeyPairData>(txn.as_mut(), ctx, "", n)? {
                    Some(k) if !by_name.iter().any(|x: &Item<KeyPairData>| x.id == k.id) => by_name.push(k),
                    Some(_) => {}
                    None => return Err(CoreError::NotFound { kind: ResourceKind::KeyPair, id: n.clone() }),
                }
            }
            let fetched = item::fetch_ids::<KeyPairData>(txn.as_mut(), ctx, ids)?;
            if !ids.is_empty() {
                by_name.retain(|k| fetched.iter().any(|f| f.id == k.id));
            }
            by_name.sort_by_key(|k| k.seq);
            by_name
        };
        drop(txn);
        apply(keys, filters, |k, name| match name {
            "key-pair-id" => Some(s(&k.id)),
            "key-name" => Some(s(k.name.as_deref().unwrap_or(""))),
            "fingerprint" => Some(s(&k.data.fingerprint)),
            "key-type" => Some(s(&k.data.key_type)),
            _ => None,
        })
    }

    /// `DeleteKeyPair`: deleting a name that does not exist succeeds, as in EC2; an id that
    /// does not exist is an error. Returns the deleted id, if any.
    pub fn delete_key_pair(&self, ctx: &Ctx, name: Option<&str>, id: Option<&str>) -> CoreResult<Option<String>> {
        let mut txn = self.store.begin()?;
        let target = match (id, name) {
            (Some(id), _) => Some(item::get::<KeyPairData>(txn.as_mut(), ctx, id)?),
            (None, Some(name)) => item::by_name::<KeyPairData>(txn.as_mut(), ctx, "", name)?,
            (None, None) => return Err(CoreError::MissingParameter("KeyName or KeyPairId".into())),
        };
        let Some(kp) = target else { return Ok(None) };
        txn.delete(&kp.id)?;
        txn.commit()?;
        Ok(Some(kp.id))
    }
}
