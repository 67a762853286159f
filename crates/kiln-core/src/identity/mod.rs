//! Who calls: accounts and their access keys, the key material Kiln generates and imports, and
//! EC2 key pairs.

pub mod accounts;
pub mod key_pairs;
pub mod keys;
