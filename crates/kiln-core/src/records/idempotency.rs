//! `ClientToken` idempotency, as EC2 defines it for the create calls that take one
//! (`RunInstances`, `CreateVolume`, `CopyImage`, …): a retried request with the same token and
//! the same parameters returns the first call's result instead of creating again; the same
//! token with different parameters is `IdempotentParameterMismatch`.
//!
//! Tokens are scoped to account, region and action, and recorded in the same transaction as
//! the resource they created, so a crash can never leave a token without its resource.

use kiln_meta::MetaTxn;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, CoreResult};
use crate::Ctx;

/// EC2's limit on token length.
pub const MAX_TOKEN_LEN: usize = 64;

#[derive(Serialize, Deserialize)]
struct Recorded {
    fingerprint: String,
    result: String,
}

fn key(ctx: &Ctx, action: &str, token: &str) -> String {
    format!("client-token/{}/{}/{action}/{token}", ctx.account, ctx.region)
}

/// A digest of the request parameters that must match on retry.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Looks up an earlier result for `token`. `Ok(Some(result))` means: answer with that and do
/// nothing else.
pub fn lookup(
    txn: &mut dyn MetaTxn,
    ctx: &Ctx,
    action: &str,
    token: &str,
    fingerprint: &str,
) -> CoreResult<Option<String>> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(CoreError::InvalidParameterValue(format!(
            "The client token must be 1 to {MAX_TOKEN_LEN} ASCII characters"
        )));
    }
    let Some(raw) = txn.setting(&key(ctx, action, token))? else { return Ok(None) };
    let rec: Recorded =
        serde_json::from_str(&raw).map_err(|e| CoreError::Internal(format!("client token record: {e}")))?;
    if rec.fingerprint != fingerprint {
        return Err(CoreError::IdempotentParameterMismatch(token.to_string()));
    }
    Ok(Some(rec.result))
}

/// Records the result of the call that first used `token`, inside its transaction.
pub fn record(
    txn: &mut dyn MetaTxn,
    ctx: &Ctx,
    action: &str,
    token: &str,
    fingerprint: &str,
    result: &str,
) -> CoreResult<()> {
    let rec = Recorded { fingerprint: fingerprint.to_string(), result: result.to_string() };
    let text = serde_json::to_string(&rec).map_err(|e| CoreError::Internal(e.to_string()))?;
    txn.set_setting(&key(ctx, action, token), &text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_meta::{MetaStore, SqliteStore};

    #[test]
    fn retries_return_the_first_result_and_mismatches_are_refused() {
        let store = SqliteStore::in_memory().unwrap();
        let ctx = Ctx { account: "111122223333".into(), region: "us-east-1".into() };
        let fp = fingerprint(&["ami-1", "t3.micro"]);
        let mut txn = store.begin().unwrap();
        assert_eq!(lookup(txn.as_mut(), &ctx, "RunInstances", "tok", &fp).unwrap(), None);
        record(txn.as_mut(), &ctx, "RunInstances", "tok", &fp, "r-1").unwrap();
        txn.commit().unwrap();

        let mut txn = store.begin().unwrap();
        assert_eq!(lookup(txn.as_mut(), &ctx, "RunInstances", "tok", &fp).unwrap().as_deref(), Some("r-1"));
        let other = fingerprint(&["ami-2", "t3.micro"]);
        assert!(matches!(
            lookup(txn.as_mut(), &ctx, "RunInstances", "tok", &other),
            Err(CoreError::IdempotentParameterMismatch(_))
        ));
        // Tokens are per account, region and action.
        let other_ctx = Ctx { account: "999922223333".into(), region: "us-east-1".into() };
        assert_eq!(lookup(txn.as_mut(), &other_ctx, "RunInstances", "tok", &fp).unwrap(), None);
        assert_eq!(lookup(txn.as_mut(), &ctx, "CreateVolume", "tok", &fp).unwrap(), None);
        assert!(lookup(txn.as_mut(), &ctx, "RunInstances", &"x".repeat(65), &fp).is_err());
    }

    #[test]
    fn fingerprints_separate_fields() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
