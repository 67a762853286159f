//! Decoding of the image and snapshot lifecycle actions: block public access, deprecation,
//! disabling, deregistration protection, cancelling a share, and the references that keep an
//! image in use.

use chrono::{DateTime, NaiveDateTime, Utc};
use kiln_types::ResourceTypeRequest;

use super::{page, Ec2Action};
use crate::params::Params;
use crate::ProtocolError;

/// The actions this module decodes.
pub(super) const ACTIONS: &[&str] = &[
    "CancelImageLaunchPermission",
    "DescribeImageReferences",
    "DisableImage",
    "DisableImageBlockPublicAccess",
    "DisableImageDeprecation",
    "DisableImageDeregistrationProtection",
    "DisableSnapshotBlockPublicAccess",
    "EnableImage",
    "EnableImageBlockPublicAccess",
    "EnableImageDeprecation",
    "EnableImageDeregistrationProtection",
    "EnableSnapshotBlockPublicAccess",
    "GetImageBlockPublicAccessState",
    "GetSnapshotBlockPublicAccessState",
];

/// Decodes one of [`ACTIONS`].
pub(super) fn parse(name: &str, p: &Params) -> Result<Ec2Action, ProtocolError> {
    let image_id = || p.required("ImageId").map(str::to_string);
    Ok(match name {
        "CancelImageLaunchPermission" => Ec2Action::CancelImageLaunchPermission { image_id: image_id()? },
        "DescribeImageReferences" => image_references(p)?,
        "EnableImageBlockPublicAccess" => {
            Ec2Action::EnableImageBlockPublicAccess { state: p.required("ImageBlockPublicAccessState")?.to_string() }
        }
        "DisableImageBlockPublicAccess" => Ec2Action::DisableImageBlockPublicAccess,
        "GetImageBlockPublicAccessState" => Ec2Action::GetImageBlockPublicAccessState,
        "EnableSnapshotBlockPublicAccess" => {
            Ec2Action::EnableSnapshotBlockPublicAccess { state: p.required("State")?.to_string() }
        }
        "DisableSnapshotBlockPublicAccess" => Ec2Action::DisableSnapshotBlockPublicAccess,
        "GetSnapshotBlockPublicAccessState" => Ec2Action::GetSnapshotBlockPublicAccessState,
        "EnableImageDeprecation" => {
            Ec2Action::EnableImageDeprecation { image_id: image_id()?, deprecate_at: timestamp(p, "DeprecateAt")? }
        }
        "DisableImageDeprecation" => Ec2Action::DisableImageDeprecation { image_id: image_id()? },
        "DisableImage" => Ec2Action::DisableImage { image_id: image_id()? },
        "EnableImage" => Ec2Action::EnableImage { image_id: image_id()? },
        "EnableImageDeregistrationProtection" => Ec2Action::EnableImageDeregistrationProtection {
            image_id: image_id()?,
            with_cooldown: p.bool("WithCooldown")?.unwrap_or(false),
        },
        "DisableImageDeregistrationProtection" => {
            Ec2Action::DisableImageDeregistrationProtection { image_id: image_id()? }
        }
        other => return Err(ProtocolError::InvalidAction(other.to_string())),
    })
}

/// The most image ids one `DescribeImageReferences` call may name.
const MAX_REFERENCED_IMAGES: usize = 10;

/// `DescribeImageReferences`: `ImageId.N` (1 to 10), `IncludeAllResourceTypes`,
/// `ResourceType.N.ResourceType` with `ResourceType.N.ResourceTypeOption.M.OptionName` /
/// `.OptionValue.K`, and pagination. One of the first two must ask for something.
fn image_references(p: &Params) -> Result<Ec2Action, ProtocolError> {
    let image_ids = p.strings("ImageId")?;
    if image_ids.is_empty() {
        return Err(ProtocolError::MissingParameter("ImageId".into()));
    }
    if image_ids.len() > MAX_REFERENCED_IMAGES {
        return Err(ProtocolError::InvalidValue {
            param: "ImageId".into(),
            value: image_ids.len().to_string(),
            reason: format!("at most {MAX_REFERENCED_IMAGES} image ids may be checked at once"),
        });
    }
    let resource_types = p
        .structs("ResourceType")?
        .iter()
        .map(|t| {
            let options = t
                .structs("ResourceTypeOption")?
                .iter()
                .map(|o| {
                    let name = o.get("OptionName").filter(|n| !n.is_empty()).ok_or_else(|| {
                        ProtocolError::MissingParameter("ResourceType.N.ResourceTypeOption.N.OptionName".into())
                    })?;
                    Ok((name.to_string(), o.strings("OptionValue")?))
                })
                .collect::<Result<Vec<_>, ProtocolError>>()?;
            let resource_type = t
                .get("ResourceType")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ProtocolError::MissingParameter("ResourceType.N.ResourceType".into()))?;
            Ok(ResourceTypeRequest { resource_type: resource_type.to_string(), options })
        })
        .collect::<Result<Vec<_>, ProtocolError>>()?;
    let include_all_resource_types = p.bool("IncludeAllResourceTypes")?.unwrap_or(false);
    if !include_all_resource_types && resource_types.is_empty() {
        return Err(ProtocolError::MissingParameter("IncludeAllResourceTypes or ResourceType".into()));
    }
    Ok(Ec2Action::DescribeImageReferences {
        image_ids,
        include_all_resource_types,
        resource_types,
        page: page(p, 5, 1000)?,
    })
}

/// A required timestamp: ISO 8601 as the SDKs send it (`2030-10-15T13:17:12Z`, with or
/// without fractional seconds or an offset; no zone means UTC) or epoch seconds.
fn timestamp(p: &Params, key: &str) -> Result<DateTime<Utc>, ProtocolError> {
    let raw = p.required(key)?;
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
                .map(|t| t.and_utc())
        })
        .or_else(|| raw.parse::<f64>().ok().and_then(|s| DateTime::from_timestamp_millis((s * 1000.0) as i64)));
    parsed.ok_or_else(|| ProtocolError::InvalidValue {
        param: key.to_string(),
        value: raw.to_string(),
        reason: "expected a date and time such as 2030-10-15T13:17:00Z".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::known_actions;

    fn parse_query(q: &str) -> Result<Ec2Action, ProtocolError> {
        let mut p = Params::default();
        p.merge_urlencoded(q.as_bytes())?;
        let name = p.get("Action").unwrap_or_default().to_string();
        parse(&name, &p)
    }

    #[test]
    fn every_lifecycle_action_is_an_ec2_action() {
        for name in ACTIONS {
            assert!(known_actions::is_known(name), "{name}");
        }
    }

    #[test]
    fn deprecate_at_accepts_what_the_sdks_send() {
        let want = DateTime::parse_from_rfc3339("2030-10-15T13:17:12Z").unwrap().with_timezone(&Utc);
        for v in [
            "2030-10-15T13:17:12Z",
            "2030-10-15T13:17:12.000Z",
            "2030-10-15T15:17:12%2B02:00",
            "2030-10-15T13:17:12",
            "1918300632",
        ] {
            match parse_query(&format!("Action=EnableImageDeprecation&ImageId=ami-1&DeprecateAt={v}")).unwrap() {
                Ec2Action::EnableImageDeprecation { image_id, deprecate_at } => {
                    assert_eq!(image_id, "ami-1");
                    assert_eq!(deprecate_at, want, "{v}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse_query("Action=EnableImageDeprecation&ImageId=ami-1&DeprecateAt=next-tuesday"),
            Err(ProtocolError::InvalidValue { .. })
        ));
        assert_eq!(
            parse_query("Action=EnableImageDeprecation&ImageId=ami-1"),
            Err(ProtocolError::MissingParameter("DeprecateAt".into()))
        );
    }

    #[test]
    fn image_references_decode_botocore_shapes() {
        let got = parse_query(
            "Action=DescribeImageReferences&ImageId.1=ami-1&ImageId.2=ami-2&IncludeAllResourceTypes=true\
             &ResourceType.1.ResourceType=ec2:Instance&ResourceType.1.ResourceTypeOption.1.OptionName=state-name\
             &ResourceType.1.ResourceTypeOption.1.OptionValue.1=running\
             &ResourceType.1.ResourceTypeOption.1.OptionValue.2=stopped\
             &ResourceType.2.ResourceType=ssm:Parameter&MaxResults=5&NextToken=abc",
        )
        .unwrap();
        assert_eq!(
            got,
            Ec2Action::DescribeImageReferences {
                image_ids: vec!["ami-1".into(), "ami-2".into()],
                include_all_resource_types: true,
                resource_types: vec![
                    ResourceTypeRequest {
                        resource_type: "ec2:Instance".into(),
                        options: vec![("state-name".into(), vec!["running".into(), "stopped".into()])],
                    },
                    ResourceTypeRequest { resource_type: "ssm:Parameter".into(), options: vec![] },
                ],
                page: kiln_types::Page { max_results: Some(5), next_token: Some("abc".into()) },
            }
        );
    }

    #[test]
    fn image_references_need_images_and_something_to_check() {
        assert_eq!(
            parse_query("Action=DescribeImageReferences&IncludeAllResourceTypes=true"),
            Err(ProtocolError::MissingParameter("ImageId".into()))
        );
        assert_eq!(
            parse_query("Action=DescribeImageReferences&ImageId.1=ami-1"),
            Err(ProtocolError::MissingParameter("IncludeAllResourceTypes or ResourceType".into()))
        );
        assert_eq!(
            parse_query("Action=DescribeImageReferences&ImageId.1=ami-1&IncludeAllResourceTypes=false"),
            Err(ProtocolError::MissingParameter("IncludeAllResourceTypes or ResourceType".into()))
        );
        let eleven: String = (1..=11).map(|n| format!("&ImageId.{n}=ami-{n}")).collect();
        assert!(matches!(
            parse_query(&format!("Action=DescribeImageReferences&IncludeAllResourceTypes=true{eleven}")),
            Err(ProtocolError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse_query("Action=DescribeImageReferences&ImageId.1=ami-1&IncludeAllResourceTypes=true&MaxResults=4"),
            Err(ProtocolError::InvalidValue { .. })
        ));
        assert_eq!(
            parse_query(
                "Action=DescribeImageReferences&ImageId.1=ami-1&ResourceType.1.ResourceTypeOption.1.OptionName=x"
            ),
            Err(ProtocolError::MissingParameter("ResourceType.N.ResourceType".into()))
        );
    }

    #[test]
    fn required_parameters_and_defaults() {
        assert_eq!(parse_query("Action=DisableImage"), Err(ProtocolError::MissingParameter("ImageId".into())));
        assert_eq!(
            parse_query("Action=EnableImageDeregistrationProtection&ImageId=ami-1"),
            Ok(Ec2Action::EnableImageDeregistrationProtection { image_id: "ami-1".into(), with_cooldown: false })
        );
        assert_eq!(
            parse_query("Action=EnableImageDeregistrationProtection&ImageId=ami-1&WithCooldown=true"),
            Ok(Ec2Action::EnableImageDeregistrationProtection { image_id: "ami-1".into(), with_cooldown: true })
        );
        assert_eq!(
            parse_query("Action=EnableSnapshotBlockPublicAccess"),
            Err(ProtocolError::MissingParameter("State".into()))
        );
        assert_eq!(
            parse_query("Action=EnableImageBlockPublicAccess&ImageBlockPublicAccessState=block-new-sharing"),
            Ok(Ec2Action::EnableImageBlockPublicAccess { state: "block-new-sharing".into() })
        );
        assert_eq!(
            parse_query("Action=GetSnapshotBlockPublicAccessState"),
            Ok(Ec2Action::GetSnapshotBlockPublicAccessState)
        );
    }
}
