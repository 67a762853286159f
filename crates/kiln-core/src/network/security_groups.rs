//! Security groups and their rules.
//!
//! A group stores only its name, VPC and description; each rule is a record of its own
//! (`sgr-…`, scoped to its group) holding one protocol, one port range and exactly one peer.
//! That is the shape a packet filter needs (one nftables rule per record) and the shape
//! `DescribeSecurityGroupRules` reports; `DescribeSecurityGroups` folds rules with the same
//! protocol and ports back into EC2's `IpPermission` lists.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use kiln_meta::{MetaTxn, Query};
use kiln_types::{CidrPeer, Filter, GroupPeer, IpPermission, Page, ResourceKind, TagSpecification};

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{apply, s};
use crate::records::item::{self, Item};
use crate::records::page::paginate;
use crate::records::security_group::GroupData;
use crate::records::security_group::Peer;
use crate::records::security_group::RuleData;
use crate::records::tags;
use crate::{Ctx, Kiln};

/// EC2's default limit of rules per direction of one group, kept separately for IPv4 and IPv6.
pub const MAX_RULES_PER_DIRECTION: usize = 60;

/// A group with its rules, as Describe shows it.
#[derive(Debug, Clone, Default)]
pub struct SecurityGroup {
    /// The group.
    pub group: Item<GroupData>,
    /// Its rules, in creation order.
    pub rules: Vec<Item<RuleData>>,
}

impl SecurityGroup {
    /// Rules of one direction folded into EC2 `IpPermission`s.
    pub fn permissions(&self, egress: bool) -> Vec<IpPermission> {
        fold_permissions(self.rules.iter().filter(|r| r.data.is_egress == egress))
    }
}

/// The ARN of a group.
pub fn group_arn(g: &Item<GroupData>) -> String {
    format!("arn:aws:ec2:{}:{}:security-group/{}", g.region, g.account, g.id)
}

/// The ARN of a rule.
pub fn rule_arn(r: &Item<RuleData>) -> String {
    format!("arn:aws:ec2:{}:{}:security-group-rule/{}", r.region, r.account, r.id)
}

/// Groups rules by protocol and port range, keeping first-seen order.
pub fn fold_permissions<'a>(rules: impl Iterator<Item = &'a Item<RuleData>>) -> Vec<IpPermission> {
    let mut out: Vec<IpPermission> = Vec::new();
    for r in rules {
        let d = &r.data;
        let (from, to) = if d.protocol == "-1" { (None, None) } else { (Some(d.from_port), Some(d.to_port)) };
        let idx = match out.iter().position(|p| p.ip_protocol == d.protocol && p.from_port == from && p.to_port == to) {
            Some(i) => i,
            None => {
                out.push(IpPermission {
                    ip_protocol: d.protocol.clone(),
                    from_port: from,
                    to_port: to,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let p = &mut out[idx];
        let description = d.description.clone();
        match &d.peer {
            Peer::Cidr4(c) => p.ip_ranges.push(CidrPeer { cidr: c.clone(), description }),
            Peer::Cidr6(c) => p.ipv6_ranges.push(CidrPeer { cidr: c.clone(), description }),
            Peer::PrefixList(id) => p.prefix_list_ids.push(CidrPeer { cidr: id.clone(), description }),
            Peer::Group { group_id, account } => p.groups.push(GroupPeer {
                group_id: Some(group_id.clone()),
                group_name: None,
                user_id: Some(account.clone()),
                description,
            }),
        }
    }
    out
}

/// Canonical protocol name: names and numbers of tcp/udp/icmp/icmpv6 map to names, `all`
/// and -1 to `-1`, other numbers 0..=255 stay numbers.
pub fn normalise_protocol(p: &str) -> CoreResult<String> {
    let lower = p.trim().to_ascii_lowercase();
    let name = match lower.as_str() {
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        "icmpv6" | "58" => "icmpv6",
        "-1" | "all" => "-1",
        other => match other.parse::<u8>() {
            Ok(n) => return Ok(n.to_string()),
            // EC2 reports an unknown protocol as a bad parameter value, not a malformed rule.
            Err(_) => {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Invalid value '{p}' for IP protocol. Unknown protocol."
                )))
            }
        },
    };
    Ok(name.to_string())
}

/// Validates ports for a protocol and returns the stored `(from, to)`.
fn ports(protocol: &str, from: Option<i64>, to: Option<i64>) -> CoreResult<(i64, i64)> {
    match protocol {
        "tcp" | "udp" => {
            // A missing port is InvalidParameterValue in EC2; an out-of-range one is Malformed.
            let (Some(f), Some(t)) = (from, to) else {
                return Err(CoreError::InvalidParameterValue(format!(
                    "Invalid value for portRange. Must specify both from and to ports with {}.",
                    protocol.to_uppercase()
                )));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(CoreError::PermissionMalformed(format!(
                    "Invalid port range ({f}-{t}): ports must be 0-65535 and from must not exceed to."
                )));
            }
            Ok((f, t))
        }
        "icmp" | "icmpv6" => {
            let f = from.unwrap_or(-1);
            let t = to.unwrap_or(-1);
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(CoreError::PermissionMalformed(format!(
                    "Invalid ICMP type/code ({f}, {t}): each must be -1..255."
                )));
            }
            Ok((f, t))
        }
        _ => Ok((-1, -1)),
    }
}

/// Validates an IPv4 CIDR (`a.b.c.d/n`).
pub fn valid_cidr4(c: &str) -> bool {
    match c.split_once('/') {
        Some((addr, len)) => {
            addr.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32) && !len.starts_with('+')
        }
        None => false,
    }
}

/// Validates an IPv6 CIDR.
pub fn valid_cidr6(c: &str) -> bool {
    match c.split_once('/') {
        Some((addr, len)) => {
            addr.parse::<Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 128) && !len.starts_with('+')
        }
        None => false,
    }
}

fn check_description(d: &Option<String>) -> CoreResult<()> {
    if let Some(d) = d {
        if d.chars().count() > 255 {
            return Err(CoreError::InvalidParameterValue("Rule descriptions are limited to 255 characters".into()));
        }
    }
    Ok(())
}

/// Human text for a rule, as EC2 writes it in duplicate-rule errors.
fn describe_rule(d: &RuleData) -> String {
    let peer = match &d.peer {
        Peer::Cidr4(c) | Peer::Cidr6(c) | Peer::PrefixList(c) => c.clone(),
        Peer::Group { group_id, account } => format!("{group_id}/{account}"),
    };
    let proto = if d.protocol == "-1" { "ALL".to_string() } else { d.protocol.to_uppercase() };
    format!("peer: {peer}, {proto}, from port: {}, to port: {}, ALLOW", d.from_port, d.to_port)
}

/// The address family a rule quota is kept for.
#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

/// True when the rule takes a slot of the family's quota.
fn counts_for(d: &RuleData, family: Family) -> bool {
    match (&d.peer, family) {
        (Peer::Cidr4(_), Family::V4) | (Peer::Cidr6(_), Family::V6) => true,
        (Peer::Cidr4(_), Family::V6) | (Peer::Cidr6(_), Family::V4) => false,
        (Peer::Group { .. } | Peer::PrefixList(_), _) => true,
    }
}

fn same_rule(a: &RuleData, b: &RuleData) -> bool {
    a.is_egress == b.is_egress
        && a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.peer == b.peer
}

/// Creates the `default` group of a VPC: all traffic in from its own members, all out.
pub fn create_default_group(txn: &mut dyn MetaTxn, ctx: &Ctx, vpc_id: &str) -> CoreResult<Item<GroupData>> {
    let mut group = Item::new(
        ctx,
        Some("default".into()),
        vpc_id.to_string(),
        vec![],
        GroupData { vpc_id: vpc_id.to_string(), description: "default VPC security group".into() },
    );
    group.insert(txn)?;
    let self_peer = Peer::Group { group_id: group.id.clone(), account: ctx.account.clone() };
    insert_rule(txn, ctx, &group.id, false, "-1", -1, -1, self_peer, None, vec![])?;
    insert_rule(txn, ctx, &group.id, true, "-1", -1, -1, Peer::Cidr4("0.0.0.0/0".into()), None, vec![])?;
    Ok(group)
}

#[allow(clippy::too_many_arguments)]
fn insert_rule(
    txn: &mut dyn MetaTxn,
    ctx: &Ctx,
    group_id: &str,
    is_egress: bool,
    protocol: &str,
    from_port: i64,
    to_port: i64,
    peer: Peer,
    description: Option<String>,
    tags: Vec<kiln_types::Tag>,
) -> CoreResult<Item<RuleData>> {
    let mut rule = Item::new(
        ctx,
        None,
        group_id.to_string(),
        tags,
        RuleData {
            group_id: group_id.to_string(),
            is_egress,
            protocol: protocol.to_string(),
            from_port,
            to_port,
            peer,
            description,
        },
    );
    rule.insert(txn)?;
    Ok(rule)
}

fn rules_of(txn: &mut dyn MetaTxn, group: &Item<GroupData>) -> CoreResult<Vec<Item<RuleData>>> {
    // A group id is unique, so its rules are found by scope alone; adding the owner columns
    // would steer SQLite to the owner index and a scan of every rule the account has.
    txn.find(&Query { kind: Some(ResourceKind::SecurityGroupRule), scope: Some(&group.id), ..Default::default() })?
        .into_iter()
        .filter(|r| r.account == group.account && r.region == group.region)
        .map(Item::from_record)
        .collect()
}

/// How a rule change names its target group.
#[derive(Debug, Clone, Default)]
pub struct RuleTarget {
    /// Group id.
    pub group_id: Option<String>,
    /// Group name in the default VPC (ingress only).
    pub group_name: Option<String>,
}

impl Kiln {
    fn resolve_group(
        &self,
        txn: &mut dyn MetaTxn,
        ctx: &Ctx,
        id: Option<&str>,
        name: Option<&str>,
    ) -> CoreResult<Item<GroupData>> {
        if let Some(id) = id {
            return item::get::<GroupData>(txn, ctx, id);
        }
        let name = name.ok_or_else(|| CoreError::MissingParameter("GroupId".into()))?;
        let vpc = self.resolve_vpc(txn, ctx, None)?;
        item::by_name::<GroupData>(txn, ctx, &vpc.id, name)?
            .ok_or_else(|| CoreError::GroupNameNotFound { name: name.to_string(), vpc_id: vpc.id.clone() })
    }

    /// Turns a client's group peer into a stored one: the group must exist in this region and,
    /// when another account owns it, the caller must name that account.
    fn resolve_peer_group(&self, txn: &mut dyn MetaTxn, ctx: &Ctx, g: &GroupPeer, vpc_id: &str) -> CoreResult<Peer> {
        let owner = g.user_id.clone().unwrap_or_else(|| ctx.account.clone());
        let group = match (&g.group_id, &g.group_name) {
            (Some(id), _) => {
                let grp = item::get_in_region::<GroupData>(txn, ctx, id)?;
                if grp.account != owner {
                    return Err(CoreError::NotFound { kind: ResourceKind::SecurityGroup, id: id.clone() });
                }
                grp
            }
            (None, Some(name)) => {
                let owner_ctx = Ctx { account: owner.clone(), region: ctx.region.clone() };
                let scope =
                    if owner == ctx.account { vpc_id.to_string() } else { self.resolve_vpc(txn, &owner_ctx, None)?.id };
                item::by_name::<GroupData>(txn, &owner_ctx, &scope, name)?
                    .ok_or_else(|| CoreError::GroupNameNotFound { name: name.clone(), vpc_id: scope.clone() })?
            }
            (None, None) => {
                return Err(CoreError::PermissionMalformed("A UserIdGroupPair needs a GroupId or a GroupName".into()))
            }
        };
        Ok(Peer::Group { group_id: group.id, account: group.account })
    }

    /// Expands client permissions into one candidate rule per peer.
    fn expand(
        &self,
        txn: &mut dyn MetaTxn,
        ctx: &Ctx,
        group: &Item<GroupData>,
        egress: bool,
        perms: &[IpPermission],
    ) -> CoreResult<Vec<RuleData>> {
        let mut out = Vec::new();
        for p in perms {
            let protocol = normalise_protocol(&p.ip_protocol)?;
            let (from_port, to_port) = ports(&protocol, p.from_port, p.to_port)?;
            let mut peers: Vec<(Peer, Option<String>)> = Vec::new();
            for r in &p.ip_ranges {
                if !valid_cidr4(&r.cidr) {
                    return Err(CoreError::InvalidParameterValue(format!("CIDR block {} is malformed", r.cidr)));
                }
                peers.push((Peer::Cidr4(r.cidr.clone()), r.description.clone()));
            }
            for r in &p.ipv6_ranges {
                if !valid_cidr6(&r.cidr) {
                    return Err(CoreError::InvalidParameterValue(format!("CIDR block {} is malformed", r.cidr)));
                }
                peers.push((Peer::Cidr6(r.cidr.clone()), r.description.clone()));
            }
            for r in &p.prefix_list_ids {
                if !r.cidr.starts_with("pl-") {
                    return Err(CoreError::InvalidParameterValue(format!(
                        "The prefix list ID '{}' is malformed",
                        r.cidr
                    )));
                }
                peers.push((Peer::PrefixList(r.cidr.clone()), r.description.clone()));
            }
            for g in &p.groups {
                peers.push((self.resolve_peer_group(txn, ctx, g, &group.data.vpc_id)?, g.description.clone()));
            }
            if peers.is_empty() {
                return Err(CoreError::MissingParameter(
                    "IpPermissions.N.IpRanges, Ipv6Ranges, PrefixListIds or Groups".into(),
                ));
            }
            for (peer, description) in peers {
                check_description(&description)?;
                out.push(RuleData {
                    group_id: group.id.clone(),
                    is_egress: egress,
                    protocol: protocol.clone(),
                    from_port,
                    to_port,
                    peer,
                    description,
                });
            }
        }
        Ok(out)
    }

    /// `CreateSecurityGroup`.
    pub fn create_security_group(
        &self,
        ctx: &Ctx,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        specs: &[TagSpecification],
    ) -> CoreResult<Item<GroupData>> {
        if name.chars().count() > 255 || description.chars().count() > 255 {
            return Err(CoreError::InvalidParameterValue(
                "Group name and description are limited to 255 characters".into(),
            ));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(CoreError::InvalidParameterValue("Group names may not be in the format sg-*".into()));
        }
        if !description.chars().all(|c| (' '..='~').contains(&c)) {
            return Err(CoreError::InvalidParameterValue(
                "Character sets beyond ASCII are not supported in a security group description".into(),
            ));
        }
        let tags = tags::from_specs(specs, ResourceKind::SecurityGroup)?;
        let mut txn = self.store.begin()?;
        let vpc = self.resolve_vpc(txn.as_mut(), ctx, vpc_id)?;
        let mut group = Item::new(
            ctx,
            Some(name.to_string()),
            vpc.id.clone(),
            tags,
            GroupData { vpc_id: vpc.id.clone(), description: description.to_string() },
        );
        group.insert(txn.as_mut())?;
        // New VPC groups allow all outbound traffic, as in EC2.
        insert_rule(txn.as_mut(), ctx, &group.id, true, "-1", -1, -1, Peer::Cidr4("0.0.0.0/0".into()), None, vec![])?;
        txn.commit()?;
        Ok(group)
    }

    /// `DeleteSecurityGroup`; returns the deleted group's id.
    pub fn delete_security_group(&self, ctx: &Ctx, id: Option<&str>, name: Option<&str>) -> CoreResult<String> {
        let mut txn = self.store.begin()?;
        let group = self.resolve_group(txn.as_mut(), ctx, id, name)?;
        if group.name.as_deref() == Some("default") {
            return Err(CoreError::CannotDelete(format!(
                "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                group.id
            )));
        }
        // Any other group's rule that names this one is a dependency, across accounts too.
        let referencing = txn.find(&Query {
            kind: Some(ResourceKind::SecurityGroupRule),
            region: Some(&ctx.region),
            ..Default::default()
        })?;
        for rec in referencing {
            let rule = Item::<RuleData>::from_record(rec)?;
            if rule.data.group_id != group.id
                && matches!(&rule.data.peer, Peer::Group { group_id, .. } if group_id == &group.id)
            {
                return Err(CoreError::DependencyViolation(group.id.clone()));
            }
        }
        for rule in rules_of(txn.as_mut(), &group)? {
            txn.delete(&rule.id)?;
        }
        txn.delete(&group.id)?;
        txn.commit()?;
        Ok(group.id)
    }

    /// `DescribeSecurityGroups`.
    pub fn describe_security_groups(
        &self,
        ctx: &Ctx,
        ids: &[String],
        names: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<SecurityGroup>, Option<String>)> {
        let mut txn = self.store.read()?;
        let mut groups = item::list_or_fetch::<GroupData>(txn.as_mut(), ctx, ids)?;
        if !names.is_empty() {
            let vpc = self.resolve_vpc(txn.as_mut(), ctx, None)?;
            for n in names {
                if !groups.iter().any(|g| g.name.as_deref() == Some(n.as_str()) && g.data.vpc_id == vpc.id) {
                    return Err(CoreError::GroupNameNotFound { name: n.clone(), vpc_id: vpc.id.clone() });
                }
            }
            groups.retain(|g| g.data.vpc_id == vpc.id && g.name.as_ref().is_some_and(|n| names.contains(n)));
        }
        // Without filters, a page can be cut before any rule is read: only its groups' rules
        // are then loaded, through the scope index.
        if filters.is_empty() && page.max_results.is_some() {
            let (groups, next) = paginate(groups, page, |g| g.seq)?;
            let mut full = Vec::with_capacity(groups.len());
            for g in groups {
                let rules = rules_of(txn.as_mut(), &g)?;
                full.push(SecurityGroup { group: g, rules });
            }
            return Ok((full, next));
        }
        let mut full = Vec::with_capacity(groups.len());
        if ids.is_empty() {
            // Listing everything: one scan of all the caller's rules beats one query per group.
            let mut by_group: HashMap<String, Vec<Item<RuleData>>> = HashMap::new();
            for r in item::list::<RuleData>(txn.as_mut(), ctx, None)? {
                by_group.entry(r.data.group_id.clone()).or_default().push(r);
            }
            for g in groups {
                let rules = by_group.remove(&g.id).unwrap_or_default();
                full.push(SecurityGroup { group: g, rules });
            }
        } else {
            for g in groups {
                let rules = rules_of(txn.as_mut(), &g)?;
                full.push(SecurityGroup { group: g, rules });
            }
        }
        // Names of referenced groups, for the `ip-permission.group-name` filters.
        let mut peer_names: HashMap<String, String> = HashMap::new();
        if filters.iter().any(|f| f.name.ends_with("ip-permission.group-name")) {
            for sg in &full {
                for r in &sg.rules {
                    if let Peer::Group { group_id, .. } = &r.data.peer {
                        if !peer_names.contains_key(group_id) {
                            if let Some(rec) = txn.get(group_id)? {
                                peer_names.insert(group_id.clone(), rec.name.unwrap_or_default());
                            }
                        }
                    }
                }
            }
        }
        drop(txn);
        let filtered = crate::records::filter::apply_by(full, filters, |sg, name| {
            if let Some(v) = crate::records::filter::tag_values(&sg.group.tags, name) {
                return Some(v);
            }
            let (egress, field) = match name.strip_prefix("egress.ip-permission.") {
                Some(f) => (true, Some(f)),
                None => (false, name.strip_prefix("ip-permission.")),
            };
            if let Some(field) = field {
                return permission_values(sg.rules.iter().filter(|r| r.data.is_egress == egress), field, &peer_names);
            }
            match name {
                "group-id" => Some(s(&sg.group.id)),
                "group-name" => Some(s(sg.group.name.as_deref().unwrap_or(""))),
                "description" => Some(s(&sg.group.data.description)),
                "owner-id" => Some(s(&sg.group.account)),
                "vpc-id" => Some(s(&sg.group.data.vpc_id)),
                _ => None,
            }
        })?;
        paginate(filtered, page, |g| g.group.seq)
    }

    /// `AuthorizeSecurityGroupIngress`/`Egress`: all permissions or none.
    pub fn authorize(
        &self,
        ctx: &Ctx,
        target: &RuleTarget,
        egress: bool,
        perms: &[IpPermission],
        specs: &[TagSpecification],
    ) -> CoreResult<Vec<Item<RuleData>>> {
        if egress && target.group_id.is_none() {
            return Err(CoreError::MissingParameter("GroupId".into()));
        }
        if perms.is_empty() {
            return Err(CoreError::MissingParameter("IpPermissions".into()));
        }
        let tags = tags::from_specs(specs, ResourceKind::SecurityGroupRule)?;
        let mut txn = self.store.begin()?;
        let group = self.resolve_group(txn.as_mut(), ctx, target.group_id.as_deref(), target.group_name.as_deref())?;
        let existing = rules_of(txn.as_mut(), &group)?;
        let wanted = self.expand(txn.as_mut(), ctx, &group, egress, perms)?;
        for (i, w) in wanted.iter().enumerate() {
            if existing.iter().any(|e| same_rule(&e.data, w)) || wanted[..i].iter().any(|o| same_rule(o, w)) {
                return Err(CoreError::PermissionDuplicate(describe_rule(w)));
            }
        }
        // EC2 counts IPv4 and IPv6 rules against separate quotas; a group or prefix list peer
        // counts against both.
        for family in [Family::V4, Family::V6] {
            let old = existing.iter().filter(|e| e.data.is_egress == egress && counts_for(&e.data, family)).count();
            let new = wanted.iter().filter(|w| counts_for(w, family)).count();
            if old + new > MAX_RULES_PER_DIRECTION {
                return Err(CoreError::RulesPerGroupLimitExceeded);
            }
        }
        let mut created = Vec::with_capacity(wanted.len());
        for w in wanted {
            let owner_ctx = Ctx { account: group.account.clone(), region: group.region.clone() };
            created.push(insert_rule(
                txn.as_mut(),
                &owner_ctx,
                &group.id,
                egress,
                &w.protocol,
                w.from_port,
                w.to_port,
                w.peer,
                w.description,
                tags.clone(),
            )?);
        }
        txn.commit()?;
        // Running instances in the group see the new rule at once.
        self.refresh_network();
        Ok(created)
    }

    /// `RevokeSecurityGroupIngress`/`Egress`, by permissions or by rule ids; every named rule
    /// must exist. Returns the revoked rules.
    pub fn revoke(
        &self,
        ctx: &Ctx,
        target: &RuleTarget,
        egress: bool,
        perms: &[IpPermission],
        rule_ids: &[String],
    ) -> CoreResult<Vec<Item<RuleData>>> {
        if egress && target.group_id.is_none() {
            return Err(CoreError::MissingParameter("GroupId".into()));
        }
        if perms.is_empty() && rule_ids.is_empty() {
            return Err(CoreError::MissingParameter("IpPermissions or SecurityGroupRuleIds".into()));
        }
        let mut txn = self.store.begin()?;
        let group = self.resolve_group(txn.as_mut(), ctx, target.group_id.as_deref(), target.group_name.as_deref())?;
        let existing = rules_of(txn.as_mut(), &group)?;
        let mut doomed: Vec<Item<RuleData>> = Vec::new();
        for id in rule_ids {
            if !ResourceKind::SecurityGroupRule.is_well_formed(id) {
                return Err(CoreError::Malformed { kind: ResourceKind::SecurityGroupRule, id: id.clone() });
            }
            match existing.iter().find(|r| &r.id == id && r.data.is_egress == egress) {
                Some(r) => doomed.push(r.clone()),
                None => return Err(CoreError::NotFound { kind: ResourceKind::SecurityGroupRule, id: id.clone() }),
            }
        }
        for w in self.expand(txn.as_mut(), ctx, &group, egress, perms)? {
            match existing.iter().find(|e| same_rule(&e.data, &w)) {
                Some(r) => doomed.push(r.clone()),
                None => return Err(CoreError::PermissionNotFound),
            }
        }
        doomed.dedup_by(|a, b| a.id == b.id);
        for r in &doomed {
            txn.delete(&r.id)?;
        }
        txn.commit()?;
        self.refresh_network();
        Ok(doomed)
    }

    /// `DescribeSecurityGroupRules`.
    pub fn describe_security_group_rules(
        &self,
        ctx: &Ctx,
        ids: &[String],
        filters: &[Filter],
        page: &Page,
    ) -> CoreResult<(Vec<Item<RuleData>>, Option<String>)> {
        let mut txn = self.store.read()?;
        let rules = item::list_or_fetch::<RuleData>(txn.as_mut(), ctx, ids)?;
        drop(txn);
        let rules = apply(rules, filters, |r, name| match name {
            "group-id" => Some(s(&r.data.group_id)),
            "security-group-rule-id" => Some(s(&r.id)),
            _ => None,
        })?;
        paginate(rules, page, |r| r.seq)
    }
}

/// Values of an `ip-permission.*` filter field over a direction's rules.
fn permission_values<'a>(
    rules: impl Iterator<Item = &'a Item<RuleData>>,
    field: &str,
    peer_names: &HashMap<String, String>,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for r in rules {
        let d = &r.data;
        let v: Option<String> = match field {
            "cidr" => match &d.peer {
                Peer::Cidr4(c) => Some(c.clone()),
                _ => None,
            },
            "ipv6-cidr" => match &d.peer {
                Peer::Cidr6(c) => Some(c.clone()),
                _ => None,
            },
            "prefix-list-id" => match &d.peer {
                Peer::PrefixList(c) => Some(c.clone()),
                _ => None,
            },
            "group-id" => match &d.peer {
                Peer::Group { group_id, .. } => Some(group_id.clone()),
                _ => None,
            },
            "user-id" => match &d.peer {
                Peer::Group { account, .. } => Some(account.clone()),
                _ => None,
            },
            "group-name" => match &d.peer {
                Peer::Group { group_id, .. } => peer_names.get(group_id).cloned(),
                _ => None,
            },
            "protocol" => Some(d.protocol.clone()),
            "from-port" => Some(d.from_port.to_string()),
            "to-port" => Some(d.to_port.to_string()),
            _ => return None,
        };
        out.extend(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_normalise() {
        assert_eq!(normalise_protocol("TCP").unwrap(), "tcp");
        assert_eq!(normalise_protocol("6").unwrap(), "tcp");
        assert_eq!(normalise_protocol("all").unwrap(), "-1");
        assert_eq!(normalise_protocol("47").unwrap(), "47");
        assert!(normalise_protocol("256").is_err());
        assert!(normalise_protocol("bogus").is_err());
    }

    #[test]
    fn port_rules() {
        assert_eq!(ports("tcp", Some(22), Some(22)).unwrap(), (22, 22));
        assert!(ports("tcp", Some(22), None).is_err());
        assert!(ports("tcp", Some(23), Some(22)).is_err());
        assert!(ports("udp", Some(0), Some(65536)).is_err());
        assert_eq!(ports("-1", Some(1), Some(2)).unwrap(), (-1, -1));
        assert_eq!(ports("icmp", None, None).unwrap(), (-1, -1));
        assert!(ports("icmp", Some(256), Some(0)).is_err());
    }

    #[test]
    fn cidrs() {
        assert!(valid_cidr4("0.0.0.0/0"));
        assert!(valid_cidr4("10.1.2.3/32"));
        assert!(!valid_cidr4("10.1.2.3/33"));
        assert!(!valid_cidr4("10.1.2/8"));
        assert!(!valid_cidr4("10.1.2.3"));
        assert!(valid_cidr6("::/0"));
        assert!(valid_cidr6("2001:db8::/32"));
        assert!(!valid_cidr6("2001:db8::/129"));
    }
}
