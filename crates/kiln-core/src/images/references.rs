//! `DescribeImageReferences`: which of the caller's own resources still use an image, so that
//! cleaning up images never removes what runs or what a name resolves to.
//!
//! Kiln has two of the resource types EC2 checks:
//!
//! - `ec2:Instance`: the caller's instances in the region launched from the image, in the states
//!   asked for with the `state-name` option; all six states by default, as in EC2, so terminated
//!   instances count while they are still describable.
//! - `ssm:Parameter`: Kiln's latest-image aliases (`/kiln/images/<family>/latest`) that point at
//!   the image now. An alias belongs to the account whose images it names, so only that account
//!   sees it as a reference.
//!
//! Launch templates and Image Builder recipes do not exist in Kiln: asking for them is valid and
//! finds nothing. The images checked are any the caller may see (its own, shared with it, or
//! public), as EC2 checks references to any AMI; one it cannot see is `NotFound`.

use std::collections::BTreeSet;

use kiln_types::{Page, ResourceKind, ResourceTypeRequest};

use crate::error::{CoreError, CoreResult};
use crate::images::aliases;
use crate::records::image::{visible_image, ImageData};
use crate::records::instance::InstanceData;
use crate::records::item::{self, Item};
use crate::records::page::paginate_by_key;
use crate::{Ctx, Kiln};

/// EC2's resource type of an instance.
pub const INSTANCE: &str = "ec2:Instance";
/// EC2's resource type of a launch template.
pub const LAUNCH_TEMPLATE: &str = "ec2:LaunchTemplate";
/// EC2's resource type of a Systems Manager parameter (Kiln's latest-image aliases).
pub const PARAMETER: &str = "ssm:Parameter";
/// EC2's resource type of an Image Builder image recipe.
pub const IMAGE_RECIPE: &str = "imagebuilder:ImageRecipe";
/// EC2's resource type of an Image Builder container recipe.
pub const CONTAINER_RECIPE: &str = "imagebuilder:ContainerRecipe";

const RESOURCE_TYPES: [&str; 5] = [INSTANCE, LAUNCH_TEMPLATE, PARAMETER, IMAGE_RECIPE, CONTAINER_RECIPE];
const INSTANCE_STATES: [&str; 6] = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"];

/// One resource that uses an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// The image used.
    pub image_id: String,
    /// `ec2:Instance` or `ssm:Parameter`.
    pub resource_type: &'static str,
    /// The resource's ARN.
    pub arn: String,
}

/// What a call checks once defaults and options are applied.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scope {
    /// Instance states to report; `None` leaves instances out.
    instance_states: Option<BTreeSet<String>>,
    /// Check aliases.
    parameters: bool,
}

fn invalid(message: String) -> CoreError {
    CoreError::InvalidParameterValue(message)
}

/// Applies `IncludeAllResourceTypes` and `ResourceType.N`: the defaults of every type when all
/// are included, each named type's options overriding its defaults.
fn scope(include_all: bool, requests: &[ResourceTypeRequest]) -> CoreResult<Scope> {
    let all_states = || INSTANCE_STATES.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let mut instances_named = false;
    let mut chosen_states: Option<BTreeSet<String>> = None;
    let mut parameters = include_all;
    for r in requests {
        let kind = r.resource_type.as_str();
        match kind {
            INSTANCE => instances_named = true,
            PARAMETER => parameters = true,
            LAUNCH_TEMPLATE | IMAGE_RECIPE | CONTAINER_RECIPE => {}
            other => {
                return Err(invalid(format!(
                    "Value ({other}) for parameter ResourceType is invalid. Valid values: {}",
                    RESOURCE_TYPES.join(", ")
                )))
            }
        }
        for (name, values) in &r.options {
            match (kind, name.as_str()) {
                (INSTANCE, "state-name") => {
                    if values.is_empty() {
                        return Err(invalid("The option state-name needs at least one value.".into()));
                    }
                    if let Some(bad) = values.iter().find(|v| !INSTANCE_STATES.contains(&v.as_str())) {
                        return Err(invalid(format!(
                            "Value ({bad}) for option state-name is invalid. Valid values: {}",
                            INSTANCE_STATES.join(", ")
                        )));
                    }
                    chosen_states.get_or_insert_with(BTreeSet::new).extend(values.iter().cloned());
                }
                (LAUNCH_TEMPLATE, "version-depth") => {
                    let depth = match values.as_slice() {
                        [one] => one.parse::<u32>().ok(),
                        _ => None,
                    };
                    if !depth.is_some_and(|d| (1..=10_000).contains(&d)) {
                        return Err(invalid(format!(
                            "The option version-depth takes one integer between 1 and 10000, not {values:?}."
                        )));
                    }
                }
                (INSTANCE | LAUNCH_TEMPLATE, other) => {
                    return Err(invalid(format!("The option {other} is not valid for resource type {kind}.")))
                }
                _ => {
                    return Err(invalid(format!(
                        "ResourceTypeOptions are valid only for {INSTANCE} and {LAUNCH_TEMPLATE}, not {kind}."
                    )))
                }
            }
        }
    }
    let instance_states = match chosen_states {
        Some(states) => Some(states),
        None if include_all || instances_named => Some(all_states()),
        None => None,
    };
    Ok(Scope { instance_states, parameters })
}

/// An SSM parameter's ARN: names with a leading slash keep it after `parameter`.
fn parameter_arn(region: &str, account: &str, name: &str) -> String {
    let sep = if name.starts_with('/') { "" } else { "/" };
    format!("arn:aws:ssm:{region}:{account}:parameter{sep}{name}")
}

impl Kiln {
    /// `DescribeImageReferences`, sorted by ARN and paginated.
    pub fn describe_image_references(
        &self,
        ctx: &Ctx,
        image_ids: &[String],
        include_all: bool,
        resource_types: &[ResourceTypeRequest],
        page: &Page,
    ) -> CoreResult<(Vec<ImageReference>, Option<String>)> {
        if let Some(bad) = image_ids.iter().find(|id| !ResourceKind::Image.is_well_formed(id)) {
            return Err(CoreError::Malformed { kind: ResourceKind::Image, id: bad.clone() });
        }
        let scope = scope(include_all, resource_types)?;
        let mut txn = self.store.read()?;
        let mut images: Vec<Item<ImageData>> = Vec::new();
        for id in image_ids {
            if !images.iter().any(|i| &i.id == id) {
                images.push(visible_image(txn.as_mut(), ctx, id)?);
            }
        }
        let mut refs = Vec::new();
        if let Some(states) = &scope.instance_states {
            for inst in item::list::<InstanceData>(txn.as_mut(), ctx, None)? {
                if states.contains(inst.data.state.as_str()) && images.iter().any(|i| i.id == inst.data.image_id) {
                    refs.push(ImageReference {
                        image_id: inst.data.image_id.clone(),
                        resource_type: INSTANCE,
                        arn: format!("arn:aws:ec2:{}:{}:instance/{}", ctx.region, ctx.account, inst.id),
                    });
                }
            }
        }
        if scope.parameters {
            for image in images.iter().filter(|i| i.account == ctx.account) {
                for name in aliases::pointing_at(txn.as_mut(), &ctx.region, &image.id)? {
                    refs.push(ImageReference {
                        image_id: image.id.clone(),
                        resource_type: PARAMETER,
                        arn: parameter_arn(&ctx.region, &ctx.account, &name),
                    });
                }
            }
        }
        drop(txn);
        refs.sort_by(|a, b| a.arn.cmp(&b.arn));
        paginate_by_key(refs, page, |r| r.arn.as_str())
    }
}

#[cfg(test)]
mod tests {

    use kiln_types::{BlockDeviceMapping, EbsSpec, Grantee, RegisterImageSpec};

    use super::*;

    const A: &str = "111111111111";
    const B: &str = "222222222222";
    const REGION: &str = "us-east-1";

    fn ctx(account: &str) -> Ctx {
        Ctx { account: account.into(), region: REGION.into() }
    }

    fn kiln(dir: &std::path::Path) -> Kiln {
        crate::test_support::kiln(dir, &["us-east-1", "eu-west-1"])
    }

    fn new_image(kiln: &Kiln, owner: &str, name: &str) -> String {
        let snap = crate::test_support::completed_snapshot(kiln, &ctx(owner));
        let spec = RegisterImageSpec {
            name: name.into(),
            root_device_name: Some("/dev/xvda".into()),
            block_device_mappings: vec![BlockDeviceMapping {
                device_name: "/dev/xvda".into(),
                ebs: Some(EbsSpec { snapshot_id: Some(snap), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        };
        kiln.register_image(&ctx(owner), &spec).unwrap().id
    }

    /// An instance record as a launch commits it (no VM: references only read the record).
    fn instance(kiln: &Kiln, c: &Ctx, image_id: &str, state: &str) -> String {
        let mut txn = kiln.store.begin().unwrap();
        let mut inst = Item::new(
            c,
            None,
            String::new(),
            vec![],
            InstanceData { image_id: image_id.into(), state: state.parse().unwrap(), ..Default::default() },
        );
        inst.insert(txn.as_mut()).unwrap();
        txn.commit().unwrap();
        inst.id
    }

    fn one(id: &str) -> Vec<String> {
        vec![id.to_string()]
    }

    fn no_types() -> Vec<ResourceTypeRequest> {
        vec![]
    }

    fn of_type(t: &str, options: &[(&str, &[&str])]) -> ResourceTypeRequest {
        ResourceTypeRequest {
            resource_type: t.into(),
            options: options.iter().map(|(n, v)| (n.to_string(), v.iter().map(|s| s.to_string()).collect())).collect(),
        }
    }

    fn arns(refs: &[ImageReference]) -> Vec<&str> {
        refs.iter().map(|r| r.arn.as_str()).collect()
    }

    #[test]
    fn instances_of_the_caller_launched_from_the_image_are_references() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path());
        let image = new_image(&kiln, A, "in-use");
        let other = new_image(&kiln, A, "other");
        let running = instance(&kiln, &ctx(A), &image, "running");
        let stopped = instance(&kiln, &ctx(A), &image, "stopped");
        let terminated = instance(&kiln, &ctx(A), &image, "terminated");
        instance(&kiln, &ctx(A), &other, "running");
        // Another account's instance of a shared image, and the caller's in another region.
        kiln.modify_image(&ctx(A), &image, None, &[Grantee::Account(B.into())], &[], None).unwrap();
        let of_b = instance(&kiln, &ctx(B), &image, "running");
        instance(&kiln, &Ctx { account: A.into(), region: "eu-west-1".into() }, &image, "running");

        let (refs, next) =
            kiln.describe_image_references(&ctx(A), &one(&image), true, &no_types(), &Page::default()).unwrap();
        assert_eq!(next, None);
        let mut want: Vec<String> = [&running, &stopped, &terminated]
            .iter()
            .map(|id| format!("arn:aws:ec2:{REGION}:{A}:instance/{id}"))
            .collect();
        want.sort();
        assert_eq!(arns(&refs), want);
        assert!(refs.iter().all(|r| r.image_id == image && r.resource_type == INSTANCE));

        // state-name narrows; it overrides the default of IncludeAllResourceTypes.
        let only_running = [of_type(INSTANCE, &[("state-name", &["running", "pending"])])];
        for include_all in [false, true] {
            let (refs, _) = kiln
                .describe_image_references(&ctx(A), &one(&image), include_all, &only_running, &Page::default())
                .unwrap();
            assert_eq!(arns(&refs), vec![format!("arn:aws:ec2:{REGION}:{A}:instance/{running}")]);
        }

        // The account the image is shared with sees its own instance only.
        let (refs, _) =
            kiln.describe_image_references(&ctx(B), &one(&image), true, &no_types(), &Page::default()).unwrap();
        assert_eq!(arns(&refs), vec![format!("arn:aws:ec2:{REGION}:{B}:instance/{of_b}")]);

        // Asking only for types Kiln does not have finds nothing.
        let recipes = [of_type(IMAGE_RECIPE, &[]), of_type(LAUNCH_TEMPLATE, &[("version-depth", &["3"])])];
        let (refs, _) =
            kiln.describe_image_references(&ctx(A), &one(&image), false, &recipes, &Page::default()).unwrap();
        assert!(refs.is_empty());
    }

    #[test]
    fn references_page_by_arn() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path());
        let image = new_image(&kiln, A, "busy");
        let mut want: Vec<String> = (0..7)
            .map(|_| format!("arn:aws:ec2:{REGION}:{A}:instance/{}", instance(&kiln, &ctx(A), &image, "running")))
            .collect();
        want.sort();
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = Page { max_results: Some(5), next_token: token };
            let (refs, next) = kiln.describe_image_references(&ctx(A), &one(&image), true, &no_types(), &page).unwrap();
            seen.extend(refs.into_iter().map(|r| r.arn));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, want);
    }

    #[test]
    fn aliases_are_references_for_the_images_owner() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path());
        let image = new_image(&kiln, A, "published");
        kiln.modify_image(&ctx(A), &image, None, &[Grantee::All], &[], None).unwrap();
        let name = aliases::latest("kiln-minimal");
        let mut txn = kiln.store.begin().unwrap();
        aliases::set(txn.as_mut(), REGION, &name, &image).unwrap();
        aliases::set(txn.as_mut(), "eu-west-1", &name, &image).unwrap();
        txn.commit().unwrap();

        let only_parameters = [of_type(PARAMETER, &[])];
        let (refs, _) =
            kiln.describe_image_references(&ctx(A), &one(&image), false, &only_parameters, &Page::default()).unwrap();
        assert_eq!(
            refs,
            vec![ImageReference {
                image_id: image.clone(),
                resource_type: PARAMETER,
                arn: format!("arn:aws:ssm:{REGION}:{A}:parameter/kiln/images/kiln-minimal/latest"),
            }]
        );
        // Another account sees the public image but does not own the alias.
        let (refs, _) =
            kiln.describe_image_references(&ctx(B), &one(&image), true, &no_types(), &Page::default()).unwrap();
        assert!(refs.is_empty());
        // Only instances asked for: the alias is not checked.
        let (refs, _) = kiln
            .describe_image_references(&ctx(A), &one(&image), false, &[of_type(INSTANCE, &[])], &Page::default())
            .unwrap();
        assert!(refs.is_empty());
    }

    #[test]
    fn images_the_caller_cannot_see_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let kiln = kiln(dir.path());
        let private = new_image(&kiln, A, "private");
        let r = kiln.describe_image_references(&ctx(B), &[private], true, &no_types(), &Page::default());
        assert!(matches!(r, Err(CoreError::NotFound { kind: ResourceKind::Image, .. })));
        let r = kiln.describe_image_references(&ctx(A), &["ami-nope".into()], true, &no_types(), &Page::default());
        assert!(matches!(r, Err(CoreError::Malformed { kind: ResourceKind::Image, .. })));
    }

    #[test]
    fn resource_types_and_options_are_checked() {
        assert_eq!(
            scope(true, &[]).unwrap(),
            Scope { instance_states: Some(INSTANCE_STATES.iter().map(|s| s.to_string()).collect()), parameters: true }
        );
        assert_eq!(
            scope(false, &[of_type(PARAMETER, &[])]).unwrap(),
            Scope { instance_states: None, parameters: true }
        );
        for bad in [
            vec![of_type("ec2:Volume", &[])],
            vec![of_type(INSTANCE, &[("state-name", &["exploded"])])],
            vec![of_type(INSTANCE, &[("state-name", &[])])],
            vec![of_type(INSTANCE, &[("version-depth", &["2"])])],
            vec![of_type(LAUNCH_TEMPLATE, &[("version-depth", &["0"])])],
            vec![of_type(LAUNCH_TEMPLATE, &[("version-depth", &["1", "2"])])],
            vec![of_type(PARAMETER, &[("state-name", &["running"])])],
        ] {
            assert!(matches!(scope(true, &bad), Err(CoreError::InvalidParameterValue(_))), "{bad:?}");
        }
        assert_eq!(parameter_arn("r", "1", "plain"), "arn:aws:ssm:r:1:parameter/plain");
    }
}
