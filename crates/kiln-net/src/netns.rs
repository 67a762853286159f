//! A named network namespace (`ip netns`, a file under `/run/netns`) that holds one server's
//! TAPs, firewall table, metadata address and DHCP sockets, so several Kilns share a host
//! without seeing each other's guests.
//!
//! Work inside the namespace runs on a short-lived thread moved into it ([`Netns::run`]):
//! Linux keeps the network namespace per thread, and everything that thread creates (sockets,
//! child processes such as `ip` and `nft`, `/proc/sys/net` files it opens) belongs to the
//! namespace, while the rest of the process stays where it was.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::cmd::run;
use crate::NetError;

/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A network namespace, open by file descriptor.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Opens the namespace `name`, creating it (with `ip netns add`) when it does not exist.
    /// A namespace left by a previous run is reused as it is; the caller repairs what is in it.
    pub fn open_or_create(name: &str) -> Result<Netns, NetError> {
        validate_name(name)?;
        let path = Path::new(NETNS_DIR).join(name);
        if !path.exists() {
            run("ip", &["netns", "add", name])?;
        }
        let file = File::open(&path).map_err(|source| NetError::Io { path: path.display().to_string(), source })?;
        Ok(Netns { name: name.to_owned(), file })
    }

    /// The default name of the namespace of a server keyed by `key` (its data directory's
    /// path): the same on every start, and another key almost surely gives another name.
    pub fn default_name(key: &[u8]) -> String {
        format!("kiln-{:08x}", crate::stable_hash(key) as u32)
    }

    /// The namespace's name (`ip -n <name>`, `ip netns exec <name>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, for processes that must start inside it (QEMU opens its TAP there).
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `f` on a thread inside the namespace and returns what it returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T, NetError> + Send) -> Result<T, NetError> {
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("kiln-netns".into())
                .spawn_scoped(scope, || {
                    enter(self.file.as_fd())
                        .map_err(|source| NetError::Io { path: self.path().display().to_string(), source })?;
                    f()
                })
                .map_err(|source| NetError::Io { path: "thread kiln-netns".into(), source })?;
            // A panic inside the namespace is a bug in `f`; carry it to the caller.
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Deletes the namespace: its interfaces (TAPs, the host side of its uplink), routes and
    /// firewall go with it once no process, socket or descriptor holds it any more.
    pub fn delete(self) -> Result<(), NetError> {
        let name = self.name.clone();
        drop(self);
        run("ip", &["netns", "delete", &name]).map(drop)
    }
}

/// Moves the calling thread into the namespace behind `fd`.
pub fn enter(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    rustix::thread::move_into_link_name_space(fd, Some(rustix::thread::LinkNameSpaceType::Network))
        .map_err(std::io::Error::from)
}

/// Names as `ip netns` accepts them and as a file name: letters, digits, `-`, `_`, `.`.
fn validate_name(name: &str) -> Result<(), NetError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(NetError::InvalidNetns(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_stable_and_valid() {
        // Fixed: a changed hash would strand the namespace a running server made.
        assert_eq!(Netns::default_name(b"/var/lib/kiln"), "kiln-0118eba2");
        assert_ne!(Netns::default_name(b"/var/lib/kiln"), Netns::default_name(b"/var/lib/kiln-2"));
        assert!(validate_name(&Netns::default_name(b"/srv/k")).is_ok());
    }

    #[test]
    fn names_are_plain_file_names() {
        assert!(validate_name("kiln-0123abcd").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
