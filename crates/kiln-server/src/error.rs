//! The one place errors become EC2 wire errors: `(HTTP status, Code, Message)`.

use kiln_core::CoreError;
use kiln_ec2::sigv4::SigV4Error;
use kiln_ec2::ProtocolError;
use kiln_types::ResourceKind;

/// Everything a request can fail with, from any layer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Signature missing, malformed, wrong or stale.
    #[error(transparent)]
    SigV4(#[from] SigV4Error),
    /// The access key id is not known.
    #[error("unknown access key")]
    UnknownAccessKey,
    /// The credential scope names a region this server does not have.
    #[error("unknown region {0}")]
    UnknownRegion(String),
    /// The credential scope names another service.
    #[error("wrong service {0}")]
    WrongService(String),
    /// The request could not be decoded.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A use case refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// `DryRun=true` and the call would have succeeded.
    #[error("dry run")]
    DryRun,
    /// The body exceeded the configured limit.
    #[error("body too large")]
    BodyTooLarge(usize),
    /// Anything else; details go to the log, not the client.
    #[error("internal: {0}")]
    Internal(String),
}

/// A rendered wire error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// EC2 error code.
    pub code: String,
    /// Human message.
    pub message: String,
}

fn w(status: u16, code: &str, message: impl Into<String>) -> WireError {
    WireError { status, code: code.to_string(), message: message.into() }
}

/// EC2's code and wording for an id or name that names nothing the caller can see.
fn not_found(kind: ResourceKind, id: &str) -> (&'static str, String) {
    match kind {
        ResourceKind::KeyPair if id.starts_with("key-") => {
            ("InvalidKeyPair.NotFound", format!("The key pair ID '{id}' does not exist"))
        }
        ResourceKind::KeyPair => ("InvalidKeyPair.NotFound", format!("The key pair '{id}' does not exist")),
        ResourceKind::Vpc => ("InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist")),
        ResourceKind::Subnet => ("InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist")),
        ResourceKind::SecurityGroup => ("InvalidGroup.NotFound", format!("The security group '{id}' does not exist")),
        ResourceKind::SecurityGroupRule => {
            ("InvalidSecurityGroupRuleId.NotFound", format!("The security group rule ID '{id}' does not exist"))
        }
        ResourceKind::Volume => ("InvalidVolume.NotFound", format!("The volume '{id}' does not exist.")),
        ResourceKind::Snapshot => ("InvalidSnapshot.NotFound", format!("The snapshot '{id}' does not exist.")),
        ResourceKind::Image => ("InvalidAMIID.NotFound", format!("The image id '[{id}]' does not exist")),
        ResourceKind::Instance => ("InvalidInstanceID.NotFound", format!("The instance ID '{id}' does not exist")),
    }
}

/// EC2's code and message when several ids of one call are missing: every id is named.
fn not_found_many(kind: ResourceKind, ids: &[String]) -> (&'static str, String) {
    let list = ids.join(", ");
    let (code, _) = not_found(kind, &list);
    let message = match kind {
        ResourceKind::Image => format!("The image ids '[{list}]' do not exist"),
        ResourceKind::Instance => format!("The instance IDs '{list}' do not exist"),
        ResourceKind::Volume => format!("The volumes '{list}' do not exist."),
        ResourceKind::Snapshot => format!("The snapshots '{list}' do not exist."),
        ResourceKind::KeyPair => format!("The key pairs '{list}' do not exist"),
        ResourceKind::Vpc => format!("The vpc IDs '{list}' do not exist"),
        ResourceKind::Subnet => format!("The subnet IDs '{list}' do not exist"),
        ResourceKind::SecurityGroup => format!("The security groups '{list}' do not exist"),
        ResourceKind::SecurityGroupRule => format!("The security group rule IDs '{list}' do not exist"),
    };
    (code, message)
}

fn malformed_code(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::KeyPair => "InvalidKeyPair.Malformed",
        ResourceKind::Vpc => "InvalidVpcID.Malformed",
        ResourceKind::Subnet => "InvalidSubnetID.Malformed",
        ResourceKind::SecurityGroup => "InvalidGroupId.Malformed",
        ResourceKind::SecurityGroupRule => "InvalidSecurityGroupRuleId.Malformed",
        ResourceKind::Volume => "InvalidVolumeID.Malformed",
        ResourceKind::Snapshot => "InvalidSnapshotID.Malformed",
        ResourceKind::Image => "InvalidAMIID.Malformed",
        ResourceKind::Instance => "InvalidInstanceID.Malformed",
    }
}

/// Maps any error to its EC2 code. Internal errors never leak their detail.
pub fn to_wire(e: &ApiError) -> WireError {
    match e {
        ApiError::SigV4(s) => match s {
            SigV4Error::Missing => w(401, "MissingAuthenticationToken", "Request is missing Authentication Token"),
            SigV4Error::Malformed(_) | SigV4Error::UnsupportedAlgorithm(_) => {
                w(400, "IncompleteSignature", s.to_string())
            }
            SigV4Error::SignatureMismatch | SigV4Error::ScopeMismatch(_) => {
                w(403, "SignatureDoesNotMatch", s.to_string())
            }
            SigV4Error::Expired(_) => w(400, "RequestExpired", s.to_string()),
        },
        ApiError::UnknownAccessKey => {
            w(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
        }
        ApiError::UnknownRegion(r) => {
            w(401, "AuthFailure", format!("Credential should be scoped to a valid region, not '{r}'."))
        }
        ApiError::WrongService(s) => {
            w(401, "AuthFailure", format!("Credential should be scoped to correct service: 'ec2', not '{s}'."))
        }
        ApiError::Protocol(p) => match p {
            ProtocolError::MissingAction => w(400, "MissingAction", p.to_string()),
            ProtocolError::InvalidAction(_) => w(400, "InvalidAction", p.to_string()),
            ProtocolError::Unsupported(_) => w(400, "UnsupportedOperation", p.to_string()),
            ProtocolError::UnsupportedVersion(_) => w(400, "InvalidParameterValue", p.to_string()),
            ProtocolError::MissingParameter(_) => w(400, "MissingParameter", p.to_string()),
            ProtocolError::InvalidValue { .. } | ProtocolError::TooManyParameters => {
                w(400, "InvalidParameterValue", p.to_string())
            }
            ProtocolError::InvalidCombination(_) => w(400, "InvalidParameterCombination", p.to_string()),
        },
        ApiError::Core(c) => core_to_wire(c),
        ApiError::DryRun => w(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."),
        ApiError::BodyTooLarge(limit) => {
            w(413, "InvalidParameterValue", format!("The request body exceeds the limit of {limit} bytes."))
        }
        ApiError::Internal(_) => w(500, "InternalError", "An internal error has occurred"),
    }
}

fn core_to_wire(c: &CoreError) -> WireError {
    let m = c.to_string();
    match c {
        CoreError::NotFound { kind, id } => {
            let (code, message) = not_found(*kind, id);
            w(400, code, message)
        }
        CoreError::NotFoundMany { kind, ids } => {
            let (code, message) = not_found_many(*kind, ids);
            w(400, code, message)
        }
        CoreError::GroupNameNotFound { .. } => w(400, "InvalidGroup.NotFound", m),
        CoreError::Malformed { kind, .. } => w(400, malformed_code(*kind), m),
        CoreError::InvalidId(_) => w(400, "InvalidID", m),
        CoreError::Duplicate { kind, name, scope } => match kind {
            ResourceKind::KeyPair if scope == "account" => {
                w(400, "InvalidParameterValue", format!("An account named '{name}' already exists."))
            }
            ResourceKind::KeyPair => {
                w(400, "InvalidKeyPair.Duplicate", format!("The keypair '{name}' already exists."))
            }
            ResourceKind::SecurityGroup => w(
                400,
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{scope}'"),
            ),
            other => w(400, "InvalidParameterValue", format!("A {other} named '{name}' already exists.")),
        },
        CoreError::AccountExists(_) => w(400, "InvalidParameterValue", m),
        CoreError::KeyFormat(_) => w(400, "InvalidKeyPair.Format", m),
        CoreError::InvalidParameterValue(_) | CoreError::InvalidBlockArgument { .. } | CoreError::InvalidFilter(_) => {
            w(400, "InvalidParameterValue", m)
        }
        CoreError::InvalidParameterCombination(_) => w(400, "InvalidParameterCombination", m),
        CoreError::MissingParameter(_) => w(400, "MissingParameter", m),
        CoreError::InvalidParameterDependency(_) => w(400, "InvalidParameterDependency", m),
        CoreError::InvalidNextToken(_) => w(400, "InvalidPaginationToken", m),
        CoreError::TagLimitExceeded => w(400, "TagLimitExceeded", m),
        CoreError::PermissionDuplicate(_) => w(400, "InvalidPermission.Duplicate", m),
        CoreError::PermissionNotFound => w(400, "InvalidPermission.NotFound", m),
        CoreError::PermissionMalformed(_) => w(400, "InvalidPermission.Malformed", m),
        CoreError::RulesPerGroupLimitExceeded => w(400, "RulesPerSecurityGroupLimitExceeded", m),
        CoreError::CannotDelete(_) => w(400, "CannotDelete", m),
        CoreError::DependencyViolation(_) => w(400, "DependencyViolation", m),
        CoreError::InvalidInstanceType(_) => w(400, "InvalidInstanceType", m),
        CoreError::IdempotentParameterMismatch(_) => w(400, "IdempotentParameterMismatch", m),
        CoreError::IncorrectState(_) => w(400, "IncorrectState", m),
        CoreError::IncorrectInstanceState(_) => w(400, "IncorrectInstanceState", m),
        CoreError::InsufficientCapacity(_) => w(500, "InsufficientInstanceCapacity", m),
        CoreError::OperationNotPermitted(_) => w(400, "OperationNotPermitted", m),
        CoreError::VolumeInUse(_) => w(400, "VolumeInUse", m),
        CoreError::SnapshotInUse { .. } => w(400, "InvalidSnapshot.InUse", m),
        CoreError::Unsupported(_) => w(400, "UnsupportedOperation", m),
        CoreError::NotOwner(id) => w(401, "AuthFailure", format!("Not authorized for {}:{id}", owner_noun(id))),
        CoreError::ImageNameDuplicate { .. } => w(400, "InvalidAMIName.Duplicate", m),
        CoreError::ImageNameMalformed(_) => w(400, "InvalidAMIName.Malformed", m),
        CoreError::InvalidBlockDeviceMapping(_) => w(400, "InvalidBlockDeviceMapping", m),
        CoreError::ImageUnavailable(_) => w(400, "InvalidAMIID.Unavailable", m),
        CoreError::ResourceLimitExceeded(_) => w(400, "ResourceLimitExceeded", m),
        CoreError::Meta(_) | CoreError::Internal(_) | CoreError::Storage(_) => {
            w(500, "InternalError", "An internal error has occurred")
        }
    }
}

fn owner_noun(id: &str) -> &'static str {
    match ResourceKind::of_id(id) {
        Some(ResourceKind::Image) => "image",
        Some(ResourceKind::Snapshot) => "snapshot",
        _ => "resource",
    }
}

impl ApiError {
    /// True for errors that are the server's fault and must be logged.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            ApiError::Internal(_) | ApiError::Core(CoreError::Meta(_) | CoreError::Internal(_) | CoreError::Storage(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_ec2() {
        let nf = ApiError::Core(CoreError::NotFound { kind: ResourceKind::KeyPair, id: "nope".into() });
        assert_eq!(to_wire(&nf), w(400, "InvalidKeyPair.NotFound", "The key pair 'nope' does not exist"));
        let mal = ApiError::Core(CoreError::Malformed { kind: ResourceKind::SecurityGroup, id: "x".into() });
        assert_eq!(to_wire(&mal).code, "InvalidGroupId.Malformed");
        assert_eq!(to_wire(&ApiError::DryRun).status, 412);
        assert_eq!(to_wire(&ApiError::UnknownAccessKey).code, "AuthFailure");
        assert_eq!(to_wire(&ApiError::SigV4(SigV4Error::SignatureMismatch)).code, "SignatureDoesNotMatch");
        assert_eq!(to_wire(&ApiError::SigV4(SigV4Error::Expired("x".into()))).code, "RequestExpired");
        assert_eq!(to_wire(&ApiError::Protocol(ProtocolError::InvalidAction("X".into()))).code, "InvalidAction");
        assert_eq!(
            to_wire(&ApiError::Protocol(ProtocolError::Unsupported("RunInstances".into()))).code,
            "UnsupportedOperation"
        );
        assert_eq!(
            to_wire(&ApiError::Core(CoreError::ImageUnavailable("disabled".into()))),
            w(400, "InvalidAMIID.Unavailable", "disabled")
        );
        assert_eq!(
            to_wire(&ApiError::Core(CoreError::OperationNotPermitted("x".into()))).code,
            "OperationNotPermitted"
        );
        assert_eq!(
            to_wire(&ApiError::Core(CoreError::ResourceLimitExceeded("quota".into()))),
            w(400, "ResourceLimitExceeded", "quota")
        );
    }

    #[test]
    fn internal_errors_do_not_leak() {
        let e = ApiError::Core(CoreError::Internal("secret path /var/lib/x".into()));
        let wire = to_wire(&e);
        assert_eq!(wire.code, "InternalError");
        assert!(!wire.message.contains("/var/lib"));
        assert!(e.is_internal());
    }
}
