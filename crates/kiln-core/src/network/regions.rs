//! Regions and availability zones (`DescribeRegions`, `DescribeAvailabilityZones`) and the
//! account attributes SDKs look up on start.

use kiln_types::Filter;

use crate::error::{CoreError, CoreResult};
use crate::records::filter::{apply_by, s};
use crate::{Ctx, Kiln, RegionSpec};

/// A region as `DescribeRegions` shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionInfo {
    /// Region name.
    pub name: String,
    /// Endpoint host.
    pub endpoint: String,
}

/// A zone as `DescribeAvailabilityZones` shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZoneInfo {
    /// Zone name (`us-east-1a`).
    pub name: String,
    /// Zone id (`use1-az1`).
    pub id: String,
    /// Region name.
    pub region: String,
}

/// AWS's public commercial regions and the letters of their zones, as a new account sees them.
/// Kiln knows them all by default, so a client may pick any real region; each account's default
/// network in a region is made on its first request there ([`Kiln::ensure_region`]).
pub const AWS_REGIONS: [(&str, &str); 33] = [
    ("us-east-1", "abcdef"),
    ("us-east-2", "abc"),
    ("us-west-1", "ab"),
    ("us-west-2", "abcd"),
    ("af-south-1", "abc"),
    ("ap-east-1", "abc"),
    ("ap-east-2", "abc"),
    ("ap-south-1", "abc"),
    ("ap-south-2", "abc"),
    ("ap-southeast-1", "abc"),
    ("ap-southeast-2", "abc"),
    ("ap-southeast-3", "abc"),
    ("ap-southeast-4", "abc"),
    ("ap-southeast-5", "abc"),
    ("ap-southeast-7", "abc"),
    ("ap-northeast-1", "acd"),
    ("ap-northeast-2", "abcd"),
    ("ap-northeast-3", "abc"),
    ("ca-central-1", "abd"),
    ("ca-west-1", "abc"),
    ("eu-central-1", "abc"),
    ("eu-central-2", "abc"),
    ("eu-west-1", "abc"),
    ("eu-west-2", "abc"),
    ("eu-west-3", "abc"),
    ("eu-south-1", "abc"),
    ("eu-south-2", "abc"),
    ("eu-north-1", "abc"),
    ("il-central-1", "abc"),
    ("me-south-1", "abc"),
    ("me-central-1", "abc"),
    ("mx-central-1", "abc"),
    ("sa-east-1", "abc"),
];

/// `us-east-1` → `use1`: the short form AWS zone ids start with.
pub fn region_short(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i == 0 || i + 1 == parts.len() {
            out.push_str(p);
        } else {
            // Compass words shorten to their initials: southeast -> se, central -> c.
            let short = match *p {
                "northeast" => "ne",
                "northwest" => "nw",
                "southeast" => "se",
                "southwest" => "sw",
                other => other.get(..1).unwrap_or(""),
            };
            out.push_str(short);
        }
    }
    out
}

/// The zone id of the N-th (0-based) zone of a region.
pub fn zone_id(region: &str, index: usize) -> String {
    format!("{}-az{}", region_short(region), index + 1)
}

/// All zones of a region.
pub fn zones_of(spec: &RegionSpec) -> Vec<ZoneInfo> {
    spec.zones
        .iter()
        .enumerate()
        .map(|(i, z)| ZoneInfo { name: z.clone(), id: zone_id(&spec.name, i), region: spec.name.clone() })
        .collect()
}

impl Kiln {
    /// `DescribeRegions`.
    pub fn describe_regions(&self, names: &[String], filters: &[Filter]) -> CoreResult<Vec<RegionInfo>> {
        let unknown: Vec<&String> = names.iter().filter(|n| self.region(n).is_none()).collect();
        if !unknown.is_empty() {
            return Err(CoreError::InvalidParameterValue(format!(
                "Invalid region names: [{}]",
                unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let regions = self
            .regions
            .iter()
            .filter(|r| names.is_empty() || names.contains(&r.name))
            .map(|r| RegionInfo { name: r.name.clone(), endpoint: self.endpoint_host.clone() })
            .collect();
        apply_by(regions, filters, |r, name| match name {
            "region-name" => Some(s(&r.name)),
            "endpoint" => Some(s(&r.endpoint)),
            "opt-in-status" => Some(s("opt-in-not-required")),
            _ => None,
        })
    }

    /// `DescribeAvailabilityZones` for the caller's region.
    pub fn describe_zones(
        &self,
        ctx: &Ctx,
        names: &[String],
        ids: &[String],
        filters: &[Filter],
    ) -> CoreResult<Vec<ZoneInfo>> {
        let spec =
            self.region(&ctx.region).ok_or_else(|| CoreError::Internal(format!("region {} vanished", ctx.region)))?;
        let zones = zones_of(spec);
        for n in names {
            if !zones.iter().any(|z| &z.name == n) {
                return Err(CoreError::InvalidParameterValue(format!("The zone '{n}' does not exist.")));
            }
        }
        for n in ids {
            if !zones.iter().any(|z| &z.id == n) {
                return Err(CoreError::InvalidParameterValue(format!("The zone id '{n}' does not exist.")));
            }
        }
        let zones = zones
            .into_iter()
            .filter(|z| (names.is_empty() || names.contains(&z.name)) && (ids.is_empty() || ids.contains(&z.id)))
            .collect();
        apply_by(zones, filters, |z, name| match name {
            "zone-name" => Some(s(&z.name)),
            "zone-id" => Some(s(&z.id)),
            "region-name" | "group-name" | "network-border-group" => Some(s(&z.region)),
            "state" => Some(s("available")),
            "zone-type" => Some(s("availability-zone")),
            "opt-in-status" => Some(s("opt-in-not-required")),
            "message" | "parent-zone-name" | "parent-zone-id" => Some(vec![]),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_follow_aws_shape() {
        assert_eq!(zone_id("us-east-1", 0), "use1-az1");
        assert_eq!(zone_id("eu-west-2", 2), "euw2-az3");
        assert_eq!(zone_id("ap-southeast-1", 1), "apse1-az2");
    }
}
