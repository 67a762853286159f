//! Accounts and their access keys: the admin account made on first start, accounts declared
//! in configuration, `kiln account create`, and the lookup SigV4 verification needs.

use kiln_meta::{AccessKeyRow, AccountRow, MetaError};
use kiln_types::AccountId;
use rand::Rng;

use crate::error::{CoreError, CoreResult};
use crate::network::vpcs;
use crate::{Ctx, Kiln};

/// Settings key naming the admin account.
const ADMIN_KEY: &str = "admin_account";
/// Settings key of the account-id → owner-alias map (JSON).
pub const ALIASES_KEY: &str = "owner_aliases";

/// An account as declared in configuration (fixed id and keys).
#[derive(Debug, Clone)]
pub struct DeclaredAccount {
    /// 12-digit id.
    pub id: AccountId,
    /// Unique name.
    pub name: String,
    /// `(access key id, secret)` pairs.
    pub access_keys: Vec<(String, String)>,
    /// Owner alias shown on its images (`ImageOwnerAlias`), e.g. `kiln`.
    pub alias: Option<String>,
}

/// A freshly created account and its first key, shown to the operator once.
#[derive(Clone)]
pub struct NewAccount {
    /// The account.
    pub account: AccountRow,
    /// Its access key, secret included.
    pub key: AccessKeyRow,
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())])).collect()
}

/// A new access key pair in AWS's shapes: `AKIA` + 16 of [A-Z2-7], 40-character secret.
pub fn new_access_key(account_id: &str) -> AccessKeyRow {
    AccessKeyRow {
        id: format!("AKIA{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
        account_id: account_id.to_string(),
        secret: random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40),
    }
}

impl Kiln {
    /// Brings accounts in line with configuration, creates the admin account on first start
    /// (returning it so its credentials can be written out once) and makes sure every account
    /// has its default network in every region.
    pub fn bootstrap(&self, declared: &[DeclaredAccount]) -> CoreResult<Option<NewAccount>> {
        let mut txn = self.store.begin()?;
        let existing = txn.accounts()?;
        for d in declared {
            match existing.iter().find(|a| a.id == d.id.as_str()) {
                Some(a) if a.name != d.name => {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "configured account {} is named {:?} but was created as {:?}",
                        d.id, d.name, a.name
                    )))
                }
                Some(_) => {}
                None => txn.insert_account(&AccountRow {
                    id: d.id.to_string(),
                    name: d.name.clone(),
                    created_at: crate::now(),
                })?,
            }
            for (key_id, secret) in &d.access_keys {
                match txn.access_key(key_id)? {
                    Some(k) if k.account_id == d.id.as_str() && &k.secret == secret => {}
                    Some(_) => {
                        return Err(CoreError::InvalidParameterValue(format!(
                        "configured access key {key_id} is already stored for another account or with another secret"
                    )))
                    }
                    None => txn.insert_access_key(&AccessKeyRow {
                        id: key_id.clone(),
                        account_id: d.id.to_string(),
                        secret: secret.clone(),
                    })?,
                }
            }
        }
        let mut aliases: std::collections::BTreeMap<String, String> = match txn.setting(ALIASES_KEY)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| CoreError::Internal(format!("aliases: {e}")))?,
            None => Default::default(),
        };
        for d in declared {
            match &d.alias {
                Some(alias) => {
                    if aliases.iter().any(|(id, a)| a == alias && id != d.id.as_str()) {
                        return Err(CoreError::InvalidParameterValue(format!(
                            "owner alias {alias} is used by two accounts"
                        )));
                    }
                    aliases.insert(d.id.to_string(), alias.clone());
                }
                None => {
                    aliases.remove(d.id.as_str());
                }
            }
        }
        txn.set_setting(
            ALIASES_KEY,
            &serde_json::to_string(&aliases).map_err(|e| CoreError::Internal(e.to_string()))?,
        )?;
        let mut created = None;
        if txn.setting(ADMIN_KEY)?.is_none() {
            let account =
                AccountRow { id: AccountId::random().to_string(), name: "admin".into(), created_at: crate::now() };
            txn.insert_account(&account)?;
            let key = new_access_key(&account.id);
            txn.insert_access_key(&key)?;
            txn.set_setting(ADMIN_KEY, &account.id)?;
            created = Some(NewAccount { account, key });
        }
        txn.commit()?;
        Ok(created)
    }

    /// Creates a named account with a random id and one access key.
    pub fn create_account(&self, name: &str) -> CoreResult<NewAccount> {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(CoreError::InvalidParameterValue(format!(
                "account name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
            )));
        }
        let mut txn = self.store.begin()?;
        let account =
            AccountRow { id: AccountId::random().to_string(), name: name.to_string(), created_at: crate::now() };
        txn.insert_account(&account).map_err(|e| match e {
            MetaError::Conflict(_) => CoreError::Duplicate {
                kind: kiln_types::ResourceKind::KeyPair,
                name: name.into(),
                scope: "account".into(),
            },
            other => other.into(),
        })?;
        let key = new_access_key(&account.id);
        txn.insert_access_key(&key)?;
        txn.commit()?;
        Ok(NewAccount { account, key })
    }

    /// Makes sure the caller's default VPC, subnets and security group exist in its region.
    /// Regions are many (all of AWS's by default), so an account gets them on its first request
    /// there, not when it is created; a set in memory keeps later requests from asking again.
    pub fn ensure_region(&self, ctx: &Ctx) -> CoreResult<()> {
        let key = (ctx.account.clone(), ctx.region.clone());
        if self.touched_regions.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Ok(());
        }
        let region = self
            .region(&ctx.region)
            .ok_or_else(|| CoreError::InvalidParameterValue(format!("Unknown region {}", ctx.region)))?;
        let mut txn = self.store.begin()?;
        vpcs::ensure_defaults(txn.as_mut(), &ctx.account, region)?;
        txn.commit()?;
        self.touched_regions.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
        Ok(())
    }

    /// Looks up an access key for signature verification.
    pub fn access_key(&self, id: &str) -> CoreResult<Option<AccessKeyRow>> {
        let mut txn = self.store.read()?;
        Ok(txn.access_key(id)?)
    }

    /// Lists all accounts.
    pub fn accounts(&self) -> CoreResult<Vec<AccountRow>> {
        Ok(self.store.read()?.accounts()?)
    }

    /// The admin account's id, once bootstrapped.
    pub fn admin_account(&self) -> CoreResult<Option<String>> {
        Ok(self.store.read()?.setting(ADMIN_KEY)?)
    }

    /// `DescribeAccountAttributes`: `(name, values)` pairs, limited to `names` when given.
    pub fn account_attributes(&self, ctx: &Ctx, names: &[String]) -> CoreResult<Vec<(String, Vec<String>)>> {
        let mut txn = self.store.read()?;
        let default_vpc = vpcs::default_vpc(txn.as_mut(), ctx)?.map(|v| v.id).unwrap_or_else(|| "none".into());
        let all = vec![
            ("supported-platforms".to_string(), vec!["VPC".to_string()]),
            ("default-vpc".to_string(), vec![default_vpc]),
            ("max-instances".to_string(), vec!["20".to_string()]),
            ("vpc-max-security-groups-per-interface".to_string(), vec!["5".to_string()]),
            ("max-elastic-ips".to_string(), vec!["5".to_string()]),
            ("vpc-max-elastic-ips".to_string(), vec!["5".to_string()]),
        ];
        for n in names {
            if !all.iter().any(|(k, _)| k == n) {
                return Err(CoreError::InvalidParameterValue(format!("The attribute name '{n}' is not valid.")));
            }
        }
        Ok(all.into_iter().filter(|(k, _)| names.is_empty() || names.contains(k)).collect())
    }
}
