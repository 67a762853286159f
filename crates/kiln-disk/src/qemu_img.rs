//! Image metadata and whole-file operations through `qemu-img`: overlays, empty volumes,
//! growth, `info`, `map` and `convert`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::argv::{self, ToolCommand};
use crate::error::{io_err, DiskError, Result};
use crate::run::run;
use crate::{sync_dir, Format};

/// Deadline for `qemu-img` metadata commands (create, resize, info, map). They take
/// milliseconds; one that runs for a minute is stuck on a lock or a dead filesystem.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// `convert` is given this long plus [`CONVERT_FLOOR_BYTES_PER_SEC`] worth of time per byte of
/// the source's virtual size, so only a conversion far slower than any healthy disk is killed.
pub const CONVERT_BASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The slowest conversion rate that is not treated as hung (16 MiB/s).
pub const CONVERT_FLOOR_BYTES_PER_SEC: u64 = 16 << 20;

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format name as QEMU reports it (`"raw"`, `"qcow2"`, `"vmdk"`, ...).
    pub format: String,
    /// Size of the disk the guest sees, in bytes.
    pub virtual_size: u64,
    /// Bytes the file occupies on the host filesystem, when QEMU can tell.
    pub actual_size: Option<u64>,
    /// The backing file name as stored in the image, if any.
    pub backing_file: Option<PathBuf>,
    /// The backing file's format as stored in the image, if any.
    pub backing_format: Option<String>,
    /// A qcow2 external data file, if any.
    pub data_file: Option<String>,
    /// The format's cluster size, for formats that have one.
    pub cluster_size: Option<u64>,
}

impl ImageInfo {
    /// The format as one this crate handles, or `None` for any other.
    pub fn known_format(&self) -> Option<Format> {
        Format::parse(&self.format)
    }
}

/// One run of guest bytes with the same allocation status, from `qemu-img map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the guest-visible disk.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// Which layer of the backing chain holds these bytes: 0 is the image itself, 1 its
    /// backing file, and so on.
    pub depth: u32,
    /// Whether some layer allocates this range. Ranges no layer allocates read as zeros and are
    /// reported with depth 0 and `present: false`.
    pub present: bool,
    /// Whether the range is stored as data (false for holes and zero clusters).
    pub data: bool,
    /// Whether the range reads as zeros.
    pub zero: bool,
}

/// Creates a qcow2 overlay at `overlay` backed by `base` (which must be absolute and is never
/// written). Refuses to replace an existing file, because `qemu-img create` would truncate it.
pub fn create_overlay(base: &Path, base_format: Format, overlay: &Path, size_bytes: u64) -> Result<()> {
    if !base.is_absolute() {
        return Err(DiskError::Invalid(format!("backing file {} must be an absolute path", base.display())));
    }
    refuse_existing(overlay)?;
    run(&argv::create_overlay(base, base_format, overlay, size_bytes), COMMAND_TIMEOUT)?;
    Ok(())
}

/// Creates an empty qcow2 volume with Kiln's volume options. Refuses to replace a file.
pub fn create_empty(path: &Path, size_bytes: u64) -> Result<()> {
    refuse_existing(path)?;
    run(&argv::create_empty(path, size_bytes), COMMAND_TIMEOUT)?;
    Ok(())
}

/// Grows a qcow2 volume to `new_size` bytes. The same size is a no-op; a smaller one is refused.
pub fn resize(path: &Path, new_size: u64) -> Result<()> {
    let current = info_with_format(path, Format::Qcow2)?.virtual_size;
    if new_size < current {
        return Err(DiskError::Invalid(format!(
            "{} is {current} bytes; shrinking to {new_size} is not supported",
            path.display()
        )));
    }
    if new_size > current {
        run(&argv::resize(path, Format::Qcow2, new_size), COMMAND_TIMEOUT)?;
    }
    Ok(())
}

/// `qemu-img info` letting QEMU probe the format. Only for files whose header Kiln wrote (its
/// own qcow2 volumes): a raw image written by a guest can imitate any format header, backing
/// file included. Use [`info_with_format`] when the format is known.
pub fn info(path: &Path) -> Result<ImageInfo> {
    info_cmd(&argv::info(path, None))
}

/// `qemu-img info` with the format stated, so the contents are never probed.
pub fn info_with_format(path: &Path, format: Format) -> Result<ImageInfo> {
    info_cmd(&argv::info(path, Some(format)))
}

fn info_cmd(cmd: &ToolCommand) -> Result<ImageInfo> {
    let out = run(cmd, COMMAND_TIMEOUT)?;
    parse_info(&out).map_err(|source| DiskError::Parse { program: cmd.program.to_string(), source })
}

/// Every extent of the image and where its bytes come from (`qemu-img map`).
pub fn allocated_extents(path: &Path, format: Format) -> Result<Vec<Extent>> {
    let cmd = argv::map(path, format);
    let out = run(&cmd, COMMAND_TIMEOUT)?;
    parse_map(&out).map_err(|source| DiskError::Parse { program: cmd.program.to_string(), source })
}

/// The sorted indices of the `block_size` blocks a qcow2 overlay itself has written (data or
/// zeroes), ignoring what it reads through from its backing file.
pub fn changed_blocks(path: &Path, block_size: u64) -> Result<Vec<u64>> {
    Ok(top_layer_blocks(&allocated_extents(path, Format::Qcow2)?, block_size))
}

/// The sorted block indices that extents allocated in the top layer (depth 0) touch.
pub fn top_layer_blocks(extents: &[Extent], block_size: u64) -> Vec<u64> {
    blocks_covering(extents.iter().filter(|e| e.depth == 0 && e.present), block_size)
}

/// The sorted block indices that extents which may hold non-zero bytes touch.
pub fn nonzero_blocks(extents: &[Extent], block_size: u64) -> Vec<u64> {
    blocks_covering(extents.iter().filter(|e| !e.zero), block_size)
}

fn blocks_covering<'a>(extents: impl Iterator<Item = &'a Extent>, block_size: u64) -> Vec<u64> {
    assert!(block_size > 0, "block size must be positive");
    let mut blocks: Vec<u64> = Vec::new();
    for extent in extents.filter(|e| e.length > 0) {
        let first = extent.offset / block_size;
        let last = (extent.offset + extent.length - 1) / block_size;
        // Extents arrive sorted, so only the previous extent's last block can repeat.
        let start = match blocks.last() {
            Some(&prev) if prev >= first => prev + 1,
            _ => first,
        };
        blocks.extend(start..=last);
    }
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// Converts `src` into a new file `dst` (written beside it under a temporary name, synced, then
/// renamed into place, replacing any file already there).
pub fn convert(src: &Path, src_format: Format, dst: &Path, dst_format: Format) -> Result<()> {
    let size = info_with_format(src, src_format)?.virtual_size;
    let timeout = CONVERT_BASE_TIMEOUT + Duration::from_secs(size / CONVERT_FLOOR_BYTES_PER_SEC);
    let dir = parent_dir(dst);
    let temp = tempfile::Builder::new()
        .prefix(".kiln-convert-")
        .tempfile_in(dir)
        .map_err(io_err("create temporary file in", dir))?
        .into_temp_path();
    run(&argv::convert(src, src_format, &temp, dst_format), timeout)?;
    File::open(&temp).and_then(|f| f.sync_all()).map_err(io_err("sync", &temp))?;
    temp.persist(dst).map_err(|e| DiskError::Io {
        op: "rename into place",
        path: dst.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir)
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn refuse_existing(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(_) => Err(DiskError::Invalid(format!("{} already exists", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DiskError::Io { op: "stat", path: path.to_path_buf(), source: e }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct InfoJson {
    format: String,
    virtual_size: u64,
    actual_size: Option<u64>,
    backing_filename: Option<PathBuf>,
    backing_filename_format: Option<String>,
    cluster_size: Option<u64>,
    format_specific: Option<FormatSpecificJson>,
}

#[derive(Deserialize)]
struct FormatSpecificJson {
    data: Option<serde_json::Value>,
}

fn parse_info(json: &[u8]) -> Result<ImageInfo, serde_json::Error> {
    let raw: InfoJson = serde_json::from_slice(json)?;
    let data_file = raw
        .format_specific
        .and_then(|f| f.data)
        .and_then(|d| d.get("data-file").and_then(|v| v.as_str()).map(str::to_string));
    Ok(ImageInfo {
        format: raw.format,
        virtual_size: raw.virtual_size,
        actual_size: raw.actual_size,
        backing_file: raw.backing_filename,
        backing_format: raw.backing_filename_format,
        data_file,
        cluster_size: raw.cluster_size,
    })
}

#[derive(Deserialize)]
struct MapJson {
    start: u64,
    length: u64,
    #[serde(default)]
    depth: u32,
    #[serde(default = "yes")]
    present: bool,
    data: bool,
    zero: bool,
}

fn yes() -> bool {
    true
}

fn parse_map(json: &[u8]) -> Result<Vec<Extent>, serde_json::Error> {
    let raw: Vec<MapJson> = serde_json::from_slice(json)?;
    Ok(raw
        .into_iter()
        .map(|m| Extent {
            offset: m.start,
            length: m.length,
            depth: m.depth,
            present: m.present,
            data: m.data,
            zero: m.zero,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Output of qemu-img 10.0.2 for an 8 MiB overlay over a 4 MiB raw base after writing
    // 512 KiB at 1 MiB and zeroes (4 KiB) at 3 MiB.
    const OVERLAY_MAP: &str = r#"[{ "start": 0, "length": 1048576, "depth": 1, "present": true, "zero": false, "data": true, "compressed": false, "offset": 0},
{ "start": 1048576, "length": 524288, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 655360},
{ "start": 1572864, "length": 1572864, "depth": 1, "present": true, "zero": false, "data": true, "compressed": false, "offset": 1572864},
{ "start": 3145728, "length": 4096, "depth": 0, "present": true, "zero": true, "data": false, "compressed": false},
{ "start": 3149824, "length": 1044480, "depth": 1, "present": true, "zero": false, "data": true, "compressed": false, "offset": 3149824},
{ "start": 4194304, "length": 4194304, "depth": 0, "present": false, "zero": true, "data": false, "compressed": false}]"#;

    const OVERLAY_INFO: &str = r#"{
    "children": [{"name": "file", "info": {"children": [], "virtual-size": 1179648, "filename": "ov.qcow2",
        "format": "file", "actual-size": 1052672, "format-specific": {"type": "file", "data": {}}, "dirty-flag": false}}],
    "backing-filename-format": "raw",
    "virtual-size": 8388608,
    "filename": "ov.qcow2",
    "cluster-size": 131072,
    "format": "qcow2",
    "actual-size": 1052672,
    "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "compression-type": "zlib", "lazy-refcounts": false,
        "refcount-bits": 16, "corrupt": false, "extended-l2": true}},
    "full-backing-filename": "/tmp/qx/base.raw",
    "backing-filename": "/tmp/qx/base.raw",
    "dirty-flag": false
}"#;

    const KIB: u64 = 1024;
    const BLOCK: u64 = 512 * KIB;

    fn extent(offset: u64, length: u64, depth: u32, present: bool, zero: bool) -> Extent {
        Extent { offset, length, depth, present, data: !zero, zero }
    }

    #[test]
    fn map_output_parses_into_extents() {
        let extents = parse_map(OVERLAY_MAP.as_bytes()).unwrap();
        assert_eq!(extents.len(), 6);
        assert_eq!(extents[1], extent(1 << 20, BLOCK, 0, true, false));
        assert_eq!(extents[3], extent(3 << 20, 4 * KIB, 0, true, true));
        assert_eq!(extents[5], extent(4 << 20, 4 << 20, 0, false, true));
    }

    #[test]
    fn top_layer_blocks_count_written_data_and_zeroes_but_not_unallocated_tail() {
        let extents = parse_map(OVERLAY_MAP.as_bytes()).unwrap();
        assert_eq!(top_layer_blocks(&extents, BLOCK), vec![2, 6]);
    }

    #[test]
    fn nonzero_blocks_skip_zero_ranges() {
        let extents = parse_map(OVERLAY_MAP.as_bytes()).unwrap();
        assert_eq!(nonzero_blocks(&extents, BLOCK), vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn blocks_merge_extents_sharing_a_block_and_split_straddling_ones() {
        let extents = [
            extent(0, 4 * KIB, 0, true, false),
            extent(100 * KIB, 4 * KIB, 0, true, false),
            extent(BLOCK - 4 * KIB, 8 * KIB, 0, true, false),
            extent(10 * BLOCK, 0, 0, true, false),
            extent(5 * BLOCK, 2 * BLOCK, 0, true, false),
        ];
        assert_eq!(top_layer_blocks(&extents, BLOCK), vec![0, 1, 5, 6]);
    }

    #[test]
    fn info_output_parses() {
        let info = parse_info(OVERLAY_INFO.as_bytes()).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                format: "qcow2".into(),
                virtual_size: 8 << 20,
                actual_size: Some(1052672),
                backing_file: Some("/tmp/qx/base.raw".into()),
                backing_format: Some("raw".into()),
                data_file: None,
                cluster_size: Some(128 * KIB),
            }
        );
        assert_eq!(info.known_format(), Some(Format::Qcow2));
    }

    #[test]
    fn info_reports_external_data_file() {
        let json = r#"{"format": "qcow2", "virtual-size": 1048576,
            "format-specific": {"type": "qcow2", "data": {"data-file": "/etc/shadow", "data-file-raw": false}}}"#;
        let info = parse_info(json.as_bytes()).unwrap();
        assert_eq!(info.data_file.as_deref(), Some("/etc/shadow"));
        assert_eq!(info.actual_size, None);
    }

    #[test]
    fn relative_backing_file_is_refused_before_running_anything() {
        let err = create_overlay(Path::new("base.raw"), Format::Raw, Path::new("/nonexistent/x.qcow2"), 1 << 20);
        assert!(matches!(err, Err(DiskError::Invalid(_))));
    }
}
