//! Root disks: a directory tree made into a raw ext4 image with `mkfs.ext4 -d`, so no loop
//! mount is needed, with everything that would differ between builds pinned.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::apt::run;
use crate::files::FIXED_TIME;
use crate::ImageError;

/// The file system label of every Kiln root disk.
pub(crate) const LABEL: &str = "kiln-root";

/// A UUID-shaped value derived from `seed`, for the file system UUID and hash seed.
pub(crate) fn derived_uuid(seed: &str) -> String {
    let digest = Sha256::digest(seed);
    let mut b: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout, as random UUIDs have
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Makes `image`, a `size_mib` ext4 file system holding `tree`, with UUID and hash seed
/// `uuid`, a fixed creation time and every file time pinned to [`FIXED_TIME`].
pub(crate) fn make_ext4(tree: &Path, image: &Path, size_mib: u64, uuid: &str) -> Result<(), ImageError> {
    // mkfs copies each file's times; pin them (links and directories too, which std cannot).
    run(Command::new("find").arg(tree).args(["-exec", "touch", "-h", "-d", &format!("@{FIXED_TIME}"), "{}", "+"]))?;
    run(Command::new("mkfs.ext4")
        .env("E2FSPROGS_FAKE_TIME", FIXED_TIME.to_string())
        // 4 KiB blocks even though the file system may be small (mke2fs would pick 1 KiB), so
        // it can be grown to a large volume later and matches what distribution images use.
        .args(["-q", "-F", "-b", "4096", "-L", LABEL, "-U", uuid])
        .arg(format!("-Ehash_seed={uuid},root_owner=0:0"))
        .arg("-d")
        .arg(tree)
        .arg(image)
        .arg(format!("{size_mib}M")))
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuid_is_stable_and_well_formed() {
        let a = derived_uuid("kiln-minimal-root 6.1.192-2.abc");
        assert_eq!(a, derived_uuid("kiln-minimal-root 6.1.192-2.abc"));
        assert_ne!(a, derived_uuid("kiln-minimal-root 6.1.192-2.abd"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
