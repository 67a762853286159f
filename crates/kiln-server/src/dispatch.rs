//! The one exhaustive match from [`Ec2Action`] to use cases and XML.

use kiln_core::security_groups::RuleTarget;
use kiln_core::{Ctx, Kiln};
use kiln_ec2::action::RuleChange;
use kiln_ec2::xml::XmlWriter;
use kiln_ec2::Ec2Action;

use crate::error::ApiError;
use crate::render::{self, next_token};

fn target(c: &RuleChange) -> RuleTarget {
    RuleTarget { group_id: c.group_id.clone(), group_name: c.group_name.clone() }
}

/// Runs one authenticated action and renders its response document.
pub fn dispatch(kiln: &Kiln, ctx: &Ctx, action: &Ec2Action, request_id: &str) -> Result<String, ApiError> {
    let mut w = XmlWriter::response(action.name(), request_id);
    match action {
        Ec2Action::DescribeRegions { region_names, all_regions: _, filters } => {
            let regions = kiln.describe_regions(region_names, filters)?;
            w.list("regionInfo", &regions, render::region);
        }
        Ec2Action::DescribeAvailabilityZones { zone_names, zone_ids, all_zones: _, filters } => {
            let zones = kiln.describe_zones(ctx, zone_names, zone_ids, filters)?;
            w.list("availabilityZoneInfo", &zones, render::zone);
        }
        Ec2Action::DescribeAccountAttributes { attribute_names } => {
            let attrs = kiln.account_attributes(ctx, attribute_names)?;
            w.list("accountAttributeSet", &attrs, |w, (name, values)| {
                w.text("attributeName", name);
                w.list("attributeValueSet", values, |w, v| {
                    w.text("attributeValue", v);
                });
            });
        }
        Ec2Action::DescribeInstanceTypes { instance_types, filters, page } => {
            let (types, next) = kiln.describe_instance_types(instance_types, filters, page)?;
            w.list("instanceTypeSet", &types, render::instance_type);
            next_token(&mut w, &next);
        }
        Ec2Action::DescribeInstanceTypeOfferings { location_type, filters, page } => {
            let (rows, next) = kiln.describe_offerings(ctx, location_type, filters, page)?;
            w.list("instanceTypeOfferingSet", &rows, render::offering);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateKeyPair { key_name, key_type, key_format, tag_specs } => {
            let created = kiln.create_key_pair(ctx, key_name, key_type.as_deref(), key_format.as_deref(), tag_specs)?;
            let k = &created.key_pair;
            w.opt("keyName", k.name.as_deref())
                .text("keyFingerprint", &k.data.fingerprint)
                .text("keyMaterial", &created.private_key);
            w.text("keyPairId", &k.id);
            render::tag_set(&mut w, &k.tags);
        }
        Ec2Action::ImportKeyPair { key_name, public_key_material, tag_specs } => {
            let k = kiln.import_key_pair(ctx, key_name, public_key_material, tag_specs)?;
            w.opt("keyName", k.name.as_deref()).text("keyFingerprint", &k.data.fingerprint).text("keyPairId", &k.id);
            render::tag_set(&mut w, &k.tags);
        }
        Ec2Action::DescribeKeyPairs { key_names, key_pair_ids, filters, include_public_key } => {
            let keys = kiln.describe_key_pairs(ctx, key_names, key_pair_ids, filters)?;
            w.list("keySet", &keys, |w, k| render::key_pair(w, k, *include_public_key));
        }
        Ec2Action::DeleteKeyPair { key_name, key_pair_id } => {
            let deleted = kiln.delete_key_pair(ctx, key_name.as_deref(), key_pair_id.as_deref())?;
            w.bool("return", true).opt("keyPairId", deleted.as_deref());
        }
        Ec2Action::DescribeVpcs { vpc_ids, filters, page } => {
            let (vpcs, next) = kiln.describe_vpcs(ctx, vpc_ids, filters, page)?;
            w.list("vpcSet", &vpcs, render::vpc);
            next_token(&mut w, &next);
        }
        Ec2Action::DescribeSubnets { subnet_ids, filters, page } => {
            let (subnets, next) = kiln.describe_subnets(ctx, subnet_ids, filters, page)?;
            w.list("subnetSet", &subnets, render::subnet);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateSecurityGroup { group_name, description, vpc_id, tag_specs } => {
            let g = kiln.create_security_group(ctx, group_name, description, vpc_id.as_deref(), tag_specs)?;
            w.bool("return", true).text("groupId", &g.id);
            render::tag_set(&mut w, &g.tags);
            w.text("securityGroupArn", &kiln_core::security_groups::group_arn(&g));
        }
        Ec2Action::DeleteSecurityGroup { group_id, group_name } => {
            let id = kiln.delete_security_group(ctx, group_id.as_deref(), group_name.as_deref())?;
            w.bool("return", true).text("groupId", &id);
        }
        Ec2Action::DescribeSecurityGroups { group_ids, group_names, filters, page } => {
            let (groups, next) = kiln.describe_security_groups(ctx, group_ids, group_names, filters, page)?;
            w.list("securityGroupInfo", &groups, render::security_group);
            next_token(&mut w, &next);
        }
        Ec2Action::AuthorizeSecurityGroupIngress(c) | Ec2Action::AuthorizeSecurityGroupEgress(c) => {
            let egress = matches!(action, Ec2Action::AuthorizeSecurityGroupEgress(_));
            let rules = kiln.authorize(ctx, &target(c), egress, &c.permissions, &c.tag_specs)?;
            w.bool("return", true);
            w.list("securityGroupRuleSet", &rules, render::rule);
        }
        Ec2Action::RevokeSecurityGroupIngress(c) | Ec2Action::RevokeSecurityGroupEgress(c) => {
            let egress = matches!(action, Ec2Action::RevokeSecurityGroupEgress(_));
            let revoked = kiln.revoke(ctx, &target(c), egress, &c.permissions, &c.rule_ids)?;
            w.bool("return", true);
            w.list("revokedSecurityGroupRuleSet", &revoked, render::revoked_rule);
        }
        Ec2Action::DescribeSecurityGroupRules { rule_ids, filters, page } => {
            let (rules, next) = kiln.describe_security_group_rules(ctx, rule_ids, filters, page)?;
            w.list("securityGroupRuleSet", &rules, render::rule);
            next_token(&mut w, &next);
        }
        Ec2Action::CreateTags { resources, tags } => {
            kiln.create_tags(ctx, resources, tags)?;
            w.bool("return", true);
        }
        Ec2Action::DeleteTags { resources, tags } => {
            kiln.delete_tags(ctx, resources, tags)?;
            w.bool("return", true);
        }
        Ec2Action::DescribeTags { filters, page } => {
            let (rows, next) = kiln.describe_tags(ctx, filters, page)?;
            w.list("tagSet", &rows, render::tag_description);
            next_token(&mut w, &next);
        }
    }
    Ok(w.finish())
}
