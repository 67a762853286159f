//! The EC2 Query protocol, with no domain logic: SigV4 request verification, the flattened
//! parameter decoder, the typed [`Ec2Action`] enum, and XML rendering of responses and errors.
//!
//! The contract is botocore's EC2 service model (API version 2016-11-15).

pub mod action;
pub mod known_actions;
pub mod params;
pub mod sigv4;
pub mod xml;

pub use action::{Ec2Action, Ec2Request, RuleChange};
pub use params::Params;

/// A request that could not be decoded into an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// No `Action` parameter.
    #[error("The request must contain the parameter Action")]
    MissingAction,
    /// An action name EC2 does not have.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// An EC2 action that Kiln does not implement.
    #[error("The action {0} is not supported by this Kiln server yet.")]
    Unsupported(String),
    /// A `Version` other than 2016-11-15.
    #[error("The requested version ({0}) is not valid. Kiln supports 2016-11-15.")]
    UnsupportedVersion(String),
    /// A required parameter is absent.
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    /// A parameter could not be decoded.
    #[error("Value ({value}) for parameter {param} is invalid: {reason}")]
    InvalidValue {
        /// Parameter name.
        param: String,
        /// Offending value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// Parameters that may not be combined.
    #[error("{0}")]
    InvalidCombination(String),
    /// More parameters than any real request carries.
    #[error("The request has too many parameters")]
    TooManyParameters,
}
