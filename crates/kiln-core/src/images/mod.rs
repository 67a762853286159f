//! Machine images over storage's snapshots: the registry (register, describe, deregister,
//! attributes), their retirement (deprecation, disabling, deregistration protection), quotas,
//! aliases, references, copies between regions and the images Kiln provides.

pub mod aliases;
pub mod copies;
pub mod provided;
pub mod quotas;
pub mod references;
pub mod registry;
pub mod retirement;
