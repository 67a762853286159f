//! `kiln image import` and `kiln image export`: a disk image file in, a registered image
//! out, and back, through the server's EBS direct API (so the server stays the only writer of
//! its chunk store).
//!
//! Import streams the file (raw or qcow2) block by block: nothing is copied to a temporary
//! file, all-zero blocks are never sent, and every block carries its SHA-256. The source's
//! exact byte size is kept as the snapshot tag `kiln:source-size`, so export writes back a
//! file of the same size and bytes.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use kiln_disk::{Format, ImageSource, RawWriter, BLOCK_SIZE};
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::xml;

/// The tag that records an imported file's exact size.
pub const SOURCE_SIZE_TAG: &str = "kiln:source-size";
const GIB: u64 = 1 << 30;
/// Concurrent block uploads during an import.
const UPLOADERS: usize = 4;

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn checksum(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// What `kiln image import` registers.
pub struct ImportSpec<'a> {
    /// Image name.
    pub name: &'a str,
    /// Description.
    pub description: Option<&'a str>,
    /// Architecture.
    pub architecture: &'a str,
    /// Boot mode, if any.
    pub boot_mode: Option<&'a str>,
}

/// Imports `file` as a snapshot and registers an image over it; returns `(image id, snapshot id)`.
pub fn import(client: &Client, file: &Path, spec: &ImportSpec<'_>) -> anyhow::Result<(String, String)> {
    let source = ImageSource::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = source.size();
    let gib = size.div_ceil(GIB).max(1);
    let start = serde_json::json!({
        "VolumeSize": gib,
        "Description": format!("Imported from {}", file.file_name().and_then(|n| n.to_str()).unwrap_or("a file")),
        "Tags": [{ "Key": SOURCE_SIZE_TAG, "Value": size.to_string() }],
    });
    let reply = client.ebs(
        "POST",
        "/snapshots",
        "",
        &[("content-type", "application/json".into())],
        start.to_string().as_bytes(),
    )?;
    let started: serde_json::Value = serde_json::from_slice(&reply.body)?;
    let snapshot_id =
        started["SnapshotId"].as_str().ok_or_else(|| anyhow!("StartSnapshot returned no SnapshotId"))?.to_string();

    let pb = bar(size, &format!("importing {} ({})", file.display(), source.format().as_str()));
    // The file is read in order on this thread; a few uploaders keep the server's per-block
    // durability work (chunk fsync, metadata commit) overlapping instead of serial.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(UPLOADERS * 2);
    let rx = std::sync::Mutex::new(rx);
    let written = std::sync::atomic::AtomicU64::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let read_result = std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        for _ in 0..UPLOADERS {
            workers.push(scope.spawn(|| -> anyhow::Result<()> {
                let mut first_error = None;
                loop {
                    let next = rx.lock().map_err(|_| anyhow!("upload queue poisoned"))?.recv();
                    let Ok((index, data)) = next else { return first_error.map_or(Ok(()), Err) };
                    // After a failure keep draining, so the reader never blocks on a full queue.
                    if failed.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    let put = client.ebs(
                        "PUT",
                        &format!("/snapshots/{snapshot_id}/blocks/{index}"),
                        "",
                        &[
                            ("x-amz-data-length", data.len().to_string()),
                            ("x-amz-checksum", checksum(&data)),
                            ("x-amz-checksum-algorithm", "SHA256".into()),
                            ("content-type", "application/octet-stream".into()),
                        ],
                        &data,
                    );
                    match put {
                        Ok(_) => {
                            written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }));
        }
        let mut result = Ok(());
        for item in source {
            let (index, mut data) = match item.with_context(|| format!("reading {}", file.display())) {
                Ok(v) => v,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            // The last block of a file that is not a multiple of the block size is padded: the
            // snapshot's volume is whole GiB, and the recorded size trims it again on export.
            data.resize(BLOCK_SIZE as usize, 0);
            if failed.load(std::sync::atomic::Ordering::Relaxed) || tx.send((index, data)).is_err() {
                break; // an upload failed; its error is reported below
            }
            pb.set_position(((index + 1) * BLOCK_SIZE).min(size));
        }
        drop(tx);
        for w in workers {
            w.join().map_err(|_| anyhow!("an uploader panicked"))??;
        }
        result
    });
    read_result?;
    let written = written.into_inner();
    pb.finish_with_message(format!("imported {written} blocks holding data"));
    client.ebs(
        "POST",
        &format!("/snapshots/completion/{snapshot_id}"),
        "",
        &[("x-amz-changedblockscount", written.to_string())],
        b"",
    )?;
    let mut params = vec![
        ("Name", spec.name.to_string()),
        ("Architecture", spec.architecture.to_string()),
        ("RootDeviceName", "/dev/xvda".to_string()),
        ("VirtualizationType", "hvm".to_string()),
        ("BlockDeviceMapping.1.DeviceName", "/dev/xvda".to_string()),
        ("BlockDeviceMapping.1.Ebs.SnapshotId", snapshot_id.clone()),
        ("BlockDeviceMapping.1.Ebs.VolumeSize", gib.to_string()),
        ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true".to_string()),
    ];
    if let Some(d) = spec.description {
        params.push(("Description", d.to_string()));
    }
    if let Some(b) = spec.boot_mode {
        params.push(("BootMode", b.to_string()));
    }
    let doc = client.ec2("RegisterImage", &params)?;
    let image_id = xml::text_of(&doc, "imageId").ok_or_else(|| anyhow!("RegisterImage returned no imageId"))?;
    Ok((image_id, snapshot_id))
}

/// The value of a tag of the snapshot in a `DescribeSnapshots` answer.
fn tag_value(doc: &str, key: &str) -> Option<String> {
    let doc = xml::parse(doc).ok()?;
    xml::tag(xml::find(doc.root_element(), "snapshotSet").and_then(|l| xml::find(l, "item"))?, key)
}

/// Writes the root volume of `image_id` to `file` as raw or qcow2.
pub fn export(client: &Client, image_id: &str, file: &Path, format: Format) -> anyhow::Result<u64> {
    let doc = client.ec2("DescribeImages", &[("ImageId.1", image_id.to_string())])?;
    let root = xml::text_of(&doc, "rootDeviceName").ok_or_else(|| anyhow!("{image_id} has no root device"))?;
    let snapshot_id =
        root_snapshot(&doc, &root).ok_or_else(|| anyhow!("{image_id}'s root device {root} has no snapshot"))?;
    let snap_doc = client.ec2("DescribeSnapshots", &[("SnapshotId.1", snapshot_id.clone())])?;
    let gib: u64 =
        xml::text_of(&snap_doc, "volumeSize").and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("no volumeSize"))?;
    let size = tag_value(&snap_doc, SOURCE_SIZE_TAG).and_then(|v| v.parse().ok()).unwrap_or(gib * GIB);

    let raw_path = match format {
        Format::Raw => file.to_path_buf(),
        Format::Qcow2 => file.with_extension("raw.partial"),
    };
    let mut writer = RawWriter::create(&raw_path, size)?;
    let pb = bar(size, &format!("exporting {image_id}"));
    let mut token: Option<String> = None;
    loop {
        let query = match &token {
            Some(t) => format!("pageToken={}", form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()),
            None => String::new(),
        };
        let reply = client.ebs("GET", &format!("/snapshots/{snapshot_id}/blocks"), &query, &[], b"")?;
        let page: serde_json::Value = serde_json::from_slice(&reply.body)?;
        for b in page["Blocks"].as_array().cloned().unwrap_or_default() {
            let index = b["BlockIndex"].as_u64().ok_or_else(|| anyhow!("bad BlockIndex"))?;
            let block_token = b["BlockToken"].as_str().ok_or_else(|| anyhow!("bad BlockToken"))?;
            let q =
                format!("blockToken={}", form_urlencoded::byte_serialize(block_token.as_bytes()).collect::<String>());
            let data = client.ebs("GET", &format!("/snapshots/{snapshot_id}/blocks/{index}"), &q, &[], b"")?;
            if data.header("x-amz-checksum") != Some(checksum(&data.body).as_str()) {
                bail!("block {index} of {snapshot_id} arrived with a wrong checksum");
            }
            let offset = index * BLOCK_SIZE;
            if offset >= size {
                continue;
            }
            let keep = (size - offset).min(BLOCK_SIZE) as usize;
            writer.write_block(index, &data.body[..keep])?;
            pb.set_position((offset + keep as u64).min(size));
        }
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    writer.finish()?;
    if format == Format::Qcow2 {
        let converted = kiln_disk::convert(&raw_path, Format::Raw, file, Format::Qcow2);
        let _ = std::fs::remove_file(&raw_path);
        converted?;
    }
    pb.finish_with_message(format!("exported {image_id}"));
    Ok(size)
}

/// The snapshot of the mapping whose device is the root device.
fn root_snapshot(doc: &str, root: &str) -> Option<String> {
    let doc = xml::parse(doc).ok()?;
    xml::items(doc.root_element(), "blockDeviceMapping")
        .into_iter()
        .find(|m| xml::text(*m, "deviceName").as_deref() == Some(root))
        .and_then(|m| xml::text(m, "snapshotId"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tags_and_root_snapshots() {
        let doc = "<x><snapshotSet><item><snapshotId>snap-1</snapshotId><tagSet><item><key>kiln:source-size</key>\
                   <value>1234</value></item></tagSet></item></snapshotSet></x>";
        assert_eq!(tag_value(doc, SOURCE_SIZE_TAG).as_deref(), Some("1234"));
        let img = "<imagesSet><item><blockDeviceMapping><item><deviceName>/dev/sdb</deviceName><ebs><snapshotId>snap-b</snapshotId></ebs></item><item><deviceName>/dev/xvda</deviceName><ebs><snapshotId>snap-a</snapshotId></ebs></item></blockDeviceMapping></item></imagesSet>";
        assert_eq!(root_snapshot(img, "/dev/xvda").as_deref(), Some("snap-a"));
    }
}
