//! Tests against the real `qemu-img`, `qemu-io`, `qemu-nbd` and `qemu-storage-daemon`, in a
//! temporary directory. Each test skips, saying why, when a tool is missing.

#[path = "../../../tests/support/host_tools.rs"]
mod host_tools;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kiln_disk::{
    allocated_extents, changed_blocks, convert, create_empty, create_overlay, info, info_with_format, resize,
    BlockReader, DiskError, Format, ImageSource, NbdClient, NbdError, RawWriter, BLOCK_SIZE,
};
use rustix::process::{Pid, Signal};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// True when every tool is installed; otherwise prints why the test is skipped.
fn tools(names: &[&str]) -> bool {
    for name in names {
        let found = Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !matches!(found, Ok(s) if s.success()) {
            host_tools::cannot_run(&format!("{name} is not installed"));
            return false;
        }
    }
    true
}

macro_rules! require {
    ($($tool:literal),+) => {
        if !tools(&[$($tool),+]) {
            return;
        }
    };
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// 512 KiB block `k` of the base image: every byte is `0x10 + k`.
fn base_block(k: u64) -> Vec<u8> {
    vec![0x10 + k as u8; BLOCK_SIZE as usize]
}

fn write_base(dir: &Path, blocks: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join("base.raw");
    let bytes: Vec<u8> = (0..blocks).flat_map(base_block).collect();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

fn qemu_io(path: &Path, format: Format, command: &str) {
    let out = Command::new("qemu-io").args(["-f", format.as_str(), "-c", command]).arg(path).output().unwrap();
    assert!(out.status.success(), "qemu-io {command}: {}", String::from_utf8_lossy(&out.stderr));
}

fn read_all(reader: &mut BlockReader) -> Vec<u8> {
    let mut all = vec![0u8; reader.size() as usize];
    reader.read_at(0, &mut all).unwrap();
    all
}

fn kill(signal: Signal, pid: u32) {
    rustix::process::kill_process(Pid::from_raw(pid as i32).expect("a real pid"), signal).expect("kill");
}

#[test]
fn overlay_reports_written_blocks_and_reads_base_through_holes() {
    require!("qemu-img", "qemu-io", "qemu-nbd");
    let dir = temp();
    let (base, base_bytes) = write_base(dir.path(), 8);
    let overlay = dir.path().join("vol.qcow2");
    create_overlay(&base, Format::Raw, &overlay, 8 * MIB).unwrap();

    let meta = info(&overlay).unwrap();
    assert_eq!((meta.known_format(), meta.virtual_size), (Some(Format::Qcow2), 8 * MIB));
    assert_eq!(meta.backing_file.as_deref(), Some(base.as_path()));
    assert_eq!(meta.backing_format.as_deref(), Some("raw"));
    assert_eq!(meta.cluster_size, Some(128 * KIB));
    assert_eq!(changed_blocks(&overlay, BLOCK_SIZE).unwrap(), Vec::<u64>::new());

    // Block 2 whole; 8 KiB straddling blocks 5 and 6; zeroes inside block 7; 4 KiB past the base in block 12.
    qemu_io(&overlay, Format::Qcow2, "write -P 0xab 1M 512k");
    qemu_io(&overlay, Format::Qcow2, "write -P 0xcd 3068k 8k");
    qemu_io(&overlay, Format::Qcow2, "write -z 3600k 4k");
    qemu_io(&overlay, Format::Qcow2, "write -P 0xef 6M 4k");
    let mut expected = base_bytes.clone();
    expected.resize(8 * MIB as usize, 0);
    expected[MIB as usize..(MIB + 512 * KIB) as usize].fill(0xab);
    expected[(3068 * KIB) as usize..(3076 * KIB) as usize].fill(0xcd);
    expected[(3600 * KIB) as usize..(3604 * KIB) as usize].fill(0);
    expected[(6 * MIB) as usize..(6 * MIB + 4 * KIB) as usize].fill(0xef);

    assert_eq!(changed_blocks(&overlay, BLOCK_SIZE).unwrap(), vec![2, 5, 6, 7, 12]);
    let extents = allocated_extents(&overlay, Format::Qcow2).unwrap();
    assert!(extents.iter().any(|e| e.depth == 1 && e.data), "base shows through: {extents:?}");

    let mut reader = BlockReader::open(&overlay, Format::Qcow2).unwrap();
    assert_eq!(reader.size(), 8 * MIB);
    for k in 0..16 {
        let block = reader.read_block(k, BLOCK_SIZE).unwrap();
        let at = (k * BLOCK_SIZE) as usize;
        assert!(block == expected[at..at + BLOCK_SIZE as usize], "block {k} differs");
    }
    assert_eq!(read_all(&mut reader), expected);
    let mut straddle = vec![0u8; 10_000];
    reader.read_at(3068 * KIB - 1234, &mut straddle).unwrap();
    let at = (3068 * KIB - 1234) as usize;
    assert_eq!(straddle, expected[at..at + 10_000]);
    assert!(matches!(reader.read_block(16, BLOCK_SIZE), Err(DiskError::Invalid(_))));
    drop(reader);

    // The base itself is untouched and readable as raw.
    let mut base_reader = BlockReader::open(&base, Format::Raw).unwrap();
    assert_eq!(read_all(&mut base_reader), base_bytes);
}

#[test]
fn overlay_refuses_relative_backing_path_and_existing_target() {
    require!("qemu-img");
    let dir = temp();
    let (base, _) = write_base(dir.path(), 1);
    let overlay = dir.path().join("vol.qcow2");
    assert!(matches!(create_overlay(Path::new("base.raw"), Format::Raw, &overlay, MIB), Err(DiskError::Invalid(_))));
    create_overlay(&base, Format::Raw, &overlay, MIB).unwrap();
    assert!(matches!(create_overlay(&base, Format::Raw, &overlay, MIB), Err(DiskError::Invalid(_))));
}

#[test]
fn empty_volume_grows_but_never_shrinks() {
    require!("qemu-img");
    let dir = temp();
    let vol = dir.path().join("vol.qcow2");
    create_empty(&vol, MIB).unwrap();
    assert!(matches!(create_empty(&vol, MIB), Err(DiskError::Invalid(_))));
    let meta = info_with_format(&vol, Format::Qcow2).unwrap();
    assert_eq!((meta.virtual_size, meta.backing_file, meta.cluster_size), (MIB, None, Some(128 * KIB)));
    resize(&vol, 3 * MIB).unwrap();
    resize(&vol, 3 * MIB).unwrap();
    assert_eq!(info(&vol).unwrap().virtual_size, 3 * MIB);
    assert!(matches!(resize(&vol, 2 * MIB), Err(DiskError::Invalid(_))));
}

#[test]
fn tool_failure_carries_qemu_stderr() {
    require!("qemu-img");
    let err = info_with_format(Path::new("/nonexistent/kiln.qcow2"), Format::Qcow2).unwrap_err();
    match err {
        DiskError::ToolFailed { program, stderr, .. } => {
            assert_eq!(program, "qemu-img");
            assert!(stderr.contains("No such file"), "{stderr}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn raw_writer_skips_zero_blocks_and_writes_exact_bytes() {
    let dir = temp();
    let path = dir.path().join("out.raw");
    let size = 64 * MIB + 4 * KIB;
    let blocks = size.div_ceil(BLOCK_SIZE);
    let mut expected = vec![0u8; size as usize];
    let mut writer = RawWriter::create(&path, size).unwrap();
    for k in 0..blocks {
        let at = (k * BLOCK_SIZE) as usize;
        let len = BLOCK_SIZE.min(size - k * BLOCK_SIZE) as usize;
        if k == 3 || k == 100 || k == blocks - 1 {
            expected[at..at + len].iter_mut().enumerate().for_each(|(i, b)| *b = (i % 253) as u8 + 1);
        }
        writer.write_block(k, &expected[at..at + len]).unwrap();
    }
    // A zero block over earlier data must really be written.
    writer.write_block(7, &vec![9u8; BLOCK_SIZE as usize]).unwrap();
    writer.write_block(7, &vec![0u8; BLOCK_SIZE as usize]).unwrap();
    assert!(matches!(writer.write_block(blocks, &[1]), Err(DiskError::Invalid(_))));
    assert!(matches!(writer.write_block(0, &[1; 10]), Err(DiskError::Invalid(_))));
    assert!(!path.exists(), "nothing appears before finish");
    writer.finish().unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), size);
    let allocated = meta.blocks() * 512;
    assert!(allocated <= 4 * BLOCK_SIZE, "{allocated} bytes allocated for 4 non-zero blocks");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("out.raw")]);
}

#[test]
fn unfinished_raw_writer_leaves_nothing_behind() {
    let dir = temp();
    let mut writer = RawWriter::create(&dir.path().join("out.raw"), 4 * MIB).unwrap();
    writer.write_block(1, &vec![1u8; BLOCK_SIZE as usize]).unwrap();
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A raw image of 5 MiB + 4 KiB: data in blocks 0, 3 and the short last block, zeroes
/// elsewhere, and a hole in block 6.
fn write_mixed_raw(path: &Path) -> Vec<u8> {
    let size = 5 * MIB + 4 * KIB;
    let mut bytes = vec![0u8; size as usize];
    bytes[..4096].fill(0x5a);
    bytes[(3 * BLOCK_SIZE + 7) as usize] = 1;
    bytes[(size - 1) as usize] = 0x77;
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn convert_raw_to_qcow2_and_back_is_byte_identical() {
    require!("qemu-img");
    let dir = temp();
    let raw = dir.path().join("a.raw");
    let bytes = write_mixed_raw(&raw);
    let qcow2 = dir.path().join("a.qcow2");
    let back = dir.path().join("b.raw");
    convert(&raw, Format::Raw, &qcow2, Format::Qcow2).unwrap();
    assert_eq!(info(&qcow2).unwrap().known_format(), Some(Format::Qcow2));
    convert(&qcow2, Format::Qcow2, &back, Format::Raw).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    assert!(std::fs::metadata(&back).unwrap().blocks() * 512 < 2 * MIB, "converted raw is sparse");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "no temporary files left: {names:?}");
}

fn collect(source: ImageSource) -> Vec<(u64, Vec<u8>)> {
    source.map(|r| r.unwrap()).collect()
}

#[test]
fn image_source_yields_the_same_nonzero_blocks_from_raw_and_qcow2() {
    require!("qemu-img", "qemu-nbd");
    let dir = temp();
    let raw = dir.path().join("a.raw");
    let bytes = write_mixed_raw(&raw);
    let qcow2 = dir.path().join("a.qcow2");
    convert(&raw, Format::Raw, &qcow2, Format::Qcow2).unwrap();

    let from_raw = ImageSource::open(&raw).unwrap();
    assert_eq!((from_raw.format(), from_raw.size()), (Format::Raw, bytes.len() as u64));
    let from_raw = collect(from_raw);
    let from_qcow2 = ImageSource::open(&qcow2).unwrap();
    assert_eq!((from_qcow2.format(), from_qcow2.size()), (Format::Qcow2, bytes.len() as u64));
    let from_qcow2 = collect(from_qcow2);

    assert_eq!(from_raw.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![0, 3, 10]);
    assert!(from_raw == from_qcow2, "raw and qcow2 sources differ");
    assert_eq!(from_raw[2].1.len(), 4096, "short last block");

    // Import then rebuild: the blocks are the whole image.
    let rebuilt = dir.path().join("rebuilt.raw");
    let mut writer = RawWriter::create(&rebuilt, bytes.len() as u64).unwrap();
    for (k, block) in from_qcow2 {
        writer.write_block(k, &block).unwrap();
    }
    writer.finish().unwrap();
    assert_eq!(std::fs::read(&rebuilt).unwrap(), bytes);
}

#[test]
fn image_source_refuses_qcow2_naming_other_host_files() {
    require!("qemu-img");
    let dir = temp();
    let (base, _) = write_base(dir.path(), 1);
    let overlay = dir.path().join("evil.qcow2");
    create_overlay(&base, Format::Raw, &overlay, MIB).unwrap();
    assert!(matches!(ImageSource::open(&overlay), Err(DiskError::UnsafeImage { .. })));

    let with_data_file = dir.path().join("df.qcow2");
    let data_file = dir.path().join("df.raw");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-o"])
        .arg(format!("data_file={}", data_file.display()))
        .arg(&with_data_file)
        .arg("1M")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(matches!(ImageSource::open(&with_data_file), Err(DiskError::UnsafeImage { .. })));
}

#[test]
fn missing_image_makes_qemu_nbd_exit_with_its_reason() {
    require!("qemu-nbd");
    let err = BlockReader::open(Path::new("/nonexistent/kiln.raw"), Format::Raw).unwrap_err();
    match err {
        DiskError::NbdServerExited { stderr, .. } => assert!(stderr.contains("No such file"), "{stderr}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn killed_qemu_nbd_fails_the_read_instead_of_hanging() {
    require!("qemu-nbd");
    let dir = temp();
    let (base, _) = write_base(dir.path(), 8);
    let mut reader = BlockReader::open(&base, Format::Raw).unwrap();
    assert_eq!(reader.read_block(0, BLOCK_SIZE).unwrap(), base_block(0));
    kill(Signal::KILL, reader.server_pid());
    let started = Instant::now();
    let err = reader.read_block(1, BLOCK_SIZE).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(err, DiskError::NbdServerExited { .. } | DiskError::Nbd(NbdError::Closed | NbdError::Io(_))),
        "{err:?}"
    );
    assert!(reader.read_block(2, BLOCK_SIZE).is_err());
}

#[test]
fn stopped_qemu_nbd_times_out_and_poisons_the_reader() {
    require!("qemu-nbd");
    let dir = temp();
    let (base, _) = write_base(dir.path(), 8);
    let mut reader = BlockReader::open(&base, Format::Raw).unwrap();
    reader.set_timeout(Duration::from_millis(300)).unwrap();
    kill(Signal::STOP, reader.server_pid());
    let started = Instant::now();
    let err = reader.read_block(1, BLOCK_SIZE).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, DiskError::Nbd(NbdError::TimedOut(_))), "{err:?}");
    assert!(matches!(reader.read_block(1, BLOCK_SIZE), Err(DiskError::Nbd(NbdError::Poisoned))));
    // Drop kills a stopped child too; the test finishing shows it was reaped without hanging.
}

/// `qemu-storage-daemon` runs the same NBD server as a running QEMU's `nbd-server-start`.
struct StorageDaemon(Child);

impl Drop for StorageDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(Instant::now() < deadline, "qemu-storage-daemon did not create its socket");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn nbd_client_reads_a_named_export_of_qemu_storage_daemon() {
    require!("qemu-storage-daemon");
    let dir = temp();
    let (base, base_bytes) = write_base(dir.path(), 4);
    let socket = dir.path().join("qsd.sock");
    let daemon = Command::new("qemu-storage-daemon")
        .arg("--blockdev")
        .arg(format!("driver=file,node-name=file0,filename={},read-only=on", base.display()))
        .arg("--blockdev")
        .arg("driver=raw,node-name=disk0,file=file0,read-only=on")
        .arg("--nbd-server")
        .arg(format!("addr.type=unix,addr.path={}", socket.display()))
        .arg("--export")
        .arg("type=nbd,id=exp0,node-name=disk0,name=vol-1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _daemon = StorageDaemon(daemon);
    wait_for_socket(&socket);

    let err = NbdClient::connect_unix(&socket, "no-such-export").unwrap_err();
    assert!(matches!(err, NbdError::OptionRefused { option: 7, .. }), "{err:?}");

    let mut client = NbdClient::connect_unix(&socket, "vol-1").unwrap();
    assert_eq!(client.size(), 4 * BLOCK_SIZE);
    let mut all = vec![0u8; base_bytes.len()];
    client.read_at(0, &mut all).unwrap();
    assert_eq!(all, base_bytes);
    client.disconnect().unwrap();
}

#[test]
fn raw_source_of_an_odd_size_yields_its_exact_tail() {
    if !tools(&["qemu-img"]) {
        return;
    }
    let dir = temp();
    let path = dir.path().join("odd.raw");
    // Not a multiple of 512: qemu-img rounds the virtual size up, the file must not be.
    let size = 3 * BLOCK_SIZE + 12_345;
    let mut bytes = vec![0u8; size as usize];
    bytes[..100].fill(1);
    bytes[size as usize - 5..].copy_from_slice(b"tail!");
    std::fs::write(&path, &bytes).unwrap();
    let source = ImageSource::open(&path).unwrap();
    assert_eq!(source.size(), size);
    let blocks = collect(source);
    assert_eq!(blocks.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(blocks[1].1.len(), 12_345);
    assert!(blocks[1].1.ends_with(b"tail!"));
}
