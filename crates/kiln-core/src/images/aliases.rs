//! Names that always resolve to the newest image of a family, as EC2's public SSM parameters do
//! (`resolve:ssm:/aws/service/...`).
//!
//! Provided images publish `/kiln/images/<family>/latest` in every region, repointed in the same
//! transaction that registers a new version, so a resolution sees the old image or the new one,
//! never neither. Wherever an image id is accepted (`RunInstances`, `CopyImage`,
//! `DescribeImages`), `resolve:ssm:<name>` names the image the alias points to at that moment.

use kiln_meta::MetaTxn;

use crate::error::{CoreError, CoreResult};
use crate::{Ctx, Kiln};

/// The prefix that marks an alias where an image id is expected.
pub const RESOLVE_PREFIX: &str = "resolve:ssm:";

/// The alias of a family's newest image.
pub fn latest(family: &str) -> String {
    format!("/kiln/images/{family}/latest")
}

fn key(region: &str, name: &str) -> String {
    format!("image-alias/{region}/{name}")
}

/// Points `name` at `image_id` in `region`, inside the caller's transaction.
pub(crate) fn set(txn: &mut dyn MetaTxn, region: &str, name: &str, image_id: &str) -> CoreResult<()> {
    txn.set_setting(&key(region, name), image_id)?;
    Ok(())
}

/// The aliases in `region` that point at `image_id` now, by name.
pub(crate) fn pointing_at(txn: &mut dyn MetaTxn, region: &str, image_id: &str) -> CoreResult<Vec<String>> {
    let prefix = key(region, "");
    Ok(txn
        .settings_with_prefix(&prefix)?
        .into_iter()
        .filter(|(_, target)| target == image_id)
        .map(|(k, _)| k[prefix.len()..].to_string())
        .collect())
}

impl Kiln {
    /// The image id `id` names: itself, or what a `resolve:ssm:` alias points to now.
    pub fn resolve_image_id(&self, ctx: &Ctx, id: &str) -> CoreResult<String> {
        let Some(name) = id.strip_prefix(RESOLVE_PREFIX) else { return Ok(id.to_string()) };
        self.store.read()?.setting(&key(&ctx.region, name))?.ok_or_else(|| {
            CoreError::InvalidParameterValue(format!(
                "Parameter {name} does not exist in {}; provided images publish /kiln/images/<family>/latest.",
                ctx.region
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn aliases_repoint_atomically_under_concurrent_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = Arc::new(crate::test_support::kiln(dir.path(), &["us-east-1"]));
        let store = Arc::clone(&kiln.store);
        let ctx = Ctx { account: "111111111111".into(), region: "us-east-1".into() };
        let name = latest("kiln-minimal");
        let alias = format!("{RESOLVE_PREFIX}{name}");
        assert!(matches!(kiln.resolve_image_id(&ctx, &alias), Err(CoreError::InvalidParameterValue(_))));
        assert_eq!(kiln.resolve_image_id(&ctx, "ami-0123").unwrap(), "ami-0123");
        let mut txn = store.begin().unwrap();
        set(txn.as_mut(), "us-east-1", &name, "ami-00000000000000000").unwrap();
        txn.commit().unwrap();
        let reader = {
            let kiln = Arc::clone(&kiln);
            let (ctx, alias) = (ctx.clone(), alias.clone());
            std::thread::spawn(move || {
                (0..500).map(|_| kiln.resolve_image_id(&ctx, &alias).unwrap()).collect::<Vec<_>>()
            })
        };
        for n in 1..=50 {
            let mut txn = store.begin().unwrap();
            set(txn.as_mut(), "us-east-1", &name, &format!("ami-{n:017}")).unwrap();
            txn.commit().unwrap();
        }
        let seen = reader.join().unwrap();
        assert!(seen.iter().all(|id| id.starts_with("ami-") && id.len() == 21), "never missing or torn");
        assert_eq!(kiln.resolve_image_id(&ctx, &alias).unwrap(), format!("ami-{:017}", 50));
        let other = Ctx { region: "eu-west-1".into(), ..ctx };
        assert!(kiln.resolve_image_id(&other, &alias).is_err(), "aliases are per region");
    }
}
