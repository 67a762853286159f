//! Domain errors. `kiln-server` maps each variant to its EC2 code in one function.

use kiln_meta::MetaError;
use kiln_types::ResourceKind;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A well-formed id that names nothing the caller can see.
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// Kind of the missing resource.
        kind: ResourceKind,
        /// The id or name asked for.
        id: String,
    },
    /// Several well-formed ids of one call that name nothing the caller can see.
    #[error("{kind}s {} do not exist", ids.join(", "))]
    NotFoundMany {
        /// Kind of the missing resources.
        kind: ResourceKind,
        /// Every id asked for that is missing, in request order.
        ids: Vec<String>,
    },
    /// A security group name that does not exist in the VPC.
    #[error("The security group '{name}' does not exist in default VPC '{vpc_id}'")]
    GroupNameNotFound {
        /// Group name.
        name: String,
        /// VPC searched.
        vpc_id: String,
    },
    /// An id that cannot be of the expected kind.
    #[error("Invalid id: \"{id}\" (expecting \"{}-...\")", kind.prefix())]
    Malformed {
        /// Expected kind.
        kind: ResourceKind,
        /// The offending id.
        id: String,
    },
    /// An id whose prefix names no taggable kind.
    #[error("The ID '{0}' is not valid")]
    InvalidId(String),
    /// A name already taken in its scope.
    #[error("{kind} name {name} already exists")]
    Duplicate {
        /// Kind of the clashing resource.
        kind: ResourceKind,
        /// The name.
        name: String,
        /// Where it clashes (the VPC, for groups).
        scope: String,
    },
    /// An account name that is taken.
    #[error("An account named '{0}' already exists")]
    AccountExists(String),
    /// Public key material that is not an accepted OpenSSH key.
    #[error("{0}")]
    KeyFormat(String),
    /// A parameter value that is out of range or ill-formed.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// One argument of an EBS direct block request is wrong; the API names which.
    #[error("{message}")]
    InvalidBlockArgument {
        /// Which argument.
        argument: BlockArgument,
        /// What is wrong with it.
        message: String,
    },
    /// Parameters that may not be combined.
    #[error("{0}")]
    InvalidParameterCombination(String),
    /// A parameter that needs another one which is absent or false.
    #[error("{0}")]
    InvalidParameterDependency(String),
    /// A required parameter is absent.
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    /// A filter name the Describe call does not know.
    #[error("The filter '{0}' is invalid")]
    InvalidFilter(String),
    /// A `NextToken` that this server did not hand out.
    #[error("The pagination token '{0}' is invalid")]
    InvalidNextToken(String),
    /// More than 50 tags on one resource.
    #[error("The maximum number of Tags for a resource has been reached.")]
    TagLimitExceeded,
    /// A security group rule that already exists.
    #[error("the specified rule \"{0}\" already exists")]
    PermissionDuplicate(String),
    /// Revoking a rule that does not exist.
    #[error("The specified rule does not exist in this security group.")]
    PermissionNotFound,
    /// An ill-formed permission (ports, protocol, CIDR).
    #[error("{0}")]
    PermissionMalformed(String),
    /// Too many rules in one direction of a group.
    #[error("The maximum number of rules per security group has been reached.")]
    RulesPerGroupLimitExceeded,
    /// The resource may not be deleted (e.g. a default security group).
    #[error("{0}")]
    CannotDelete(String),
    /// Another resource still depends on this one.
    #[error("resource {0} has a dependent object")]
    DependencyViolation(String),
    /// Unknown instance types named explicitly.
    #[error("The following supplied instance types do not exist: [{}]", .0.join(", "))]
    InvalidInstanceType(Vec<String>),
    /// A `ClientToken` reused with different parameters.
    #[error("Client token {0} was already used with different parameters")]
    IdempotentParameterMismatch(String),
    /// The resource is not in a state that allows the call.
    #[error("{0}")]
    IncorrectState(String),
    /// A volume that is attached.
    #[error("Volume {0} is currently attached")]
    VolumeInUse(String),
    /// A snapshot an image uses.
    #[error("The snapshot {snapshot} is currently in use by {image}")]
    SnapshotInUse {
        /// The snapshot.
        snapshot: String,
        /// The image using it.
        image: String,
    },
    /// A valid request this server cannot carry out yet.
    #[error("{0}")]
    Unsupported(String),
    /// The caller can see the resource but does not own it.
    #[error("Not authorized for {0}")]
    NotOwner(String),
    /// An image name already used by the account in the region.
    #[error("AMI name {name} is already in use by AMI {existing}")]
    ImageNameDuplicate {
        /// The name.
        name: String,
        /// The image holding it.
        existing: String,
    },
    /// An image name outside EC2's rules.
    #[error("AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '[', ']', ' ', '.', '/', '-', ''', '@' and '_'; got '{0}'")]
    ImageNameMalformed(String),
    /// A block device mapping that cannot work.
    #[error("{0}")]
    InvalidBlockDeviceMapping(String),
    /// An image in a state that allows neither launching nor sharing (disabled, pending).
    #[error("{0}")]
    ImageUnavailable(String),
    /// The request would exceed one of the account's quotas ([`crate::images::quotas`]).
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// The instance is not in a state the call allows.
    #[error("{0}")]
    IncorrectInstanceState(String),
    /// The host cannot fit the instances asked for.
    #[error("{0}")]
    InsufficientCapacity(String),
    /// A protection forbids the call (termination protection).
    #[error("{0}")]
    OperationNotPermitted(String),
    /// Volume or chunk storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// A bug or an environment failure; logged, reported as `InternalError`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// The error for the ids of one call that were not found: all of them are named, as EC2
    /// does. `missing` must not be empty.
    pub fn not_found(kind: ResourceKind, mut missing: Vec<String>) -> CoreError {
        missing.dedup();
        if missing.len() == 1 {
            CoreError::NotFound { kind, id: missing.remove(0) }
        } else {
            CoreError::NotFoundMany { kind, ids: missing }
        }
    }
}

/// Shorthand for use-case results.
pub type CoreResult<T> = Result<T, CoreError>;

/// The argument of an EBS direct block request that [`CoreError::InvalidBlockArgument`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockArgument {
    /// A block token that is ill-formed or belongs to another block.
    Token,
    /// A block index past the volume's end, or not a number.
    Index,
    /// A snapshot's volume size.
    VolumeSize,
    /// `CompleteSnapshot`'s count of changed blocks.
    ChangedBlocksCount,
}

/// A name from one of EC2's closed sets (a state, type or architecture) as its enum. Callers
/// check names with their own, EC2-worded rule first; this refuses whatever slips past.
pub(crate) fn named<T: std::str::FromStr<Err = kiln_types::UnknownName>>(v: &str) -> CoreResult<T> {
    v.parse().map_err(|e: kiln_types::UnknownName| CoreError::InvalidParameterValue(e.to_string()))
}
