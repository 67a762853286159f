//! A key pair's record.

use kiln_types::ResourceKind;
use serde::{Deserialize, Serialize};

use crate::records::item::Body;

/// A key pair's stored fields (its name is the record name).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeyPairData {
    /// `rsa` or `ed25519`.
    pub key_type: String,
    /// Fingerprint as EC2 computes it.
    pub fingerprint: String,
    /// OpenSSH public key line.
    pub public_key: String,
}

impl Body for KeyPairData {
    const KIND: ResourceKind = ResourceKind::KeyPair;
}
