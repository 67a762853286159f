"""`kiln image import` / `kiln image export`: a real ext4 disk image in, the same bytes out."""

import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import ACCOUNTS, KILN_BIN


def kiln(server, *args, account="a"):
    _, _, key, secret = ACCOUNTS[account]
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    api = ["--endpoint", server.endpoint, "--access-key", key, "--secret-key", secret] if args[0] == "image" else []
    p = subprocess.run([str(KILN_BIN), "--config", str(server.config_path), "--data-dir", str(server.data_dir), *args,
                        *api],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def ext4_image(tmp_path_factory):
    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed")
    d = tmp_path_factory.mktemp("ext4")
    tree = d / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("kiln-test\n")
    (tree / "bin").mkdir()
    (tree / "bin" / "blob").write_bytes(os.urandom(3 << 20))
    (tree / "README").write_text("a small root filesystem\n" * 1000)
    image = d / "root.ext4"
    # An odd size (not a whole number of 512 KiB blocks) so export must trim exactly.
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "40001k"], check=True, capture_output=True)
    return image


def test_raw_import_then_export_is_byte_identical(server, ext4_image, tmp_path, unique):
    name = unique("ext4")
    image_id, snapshot_id = kiln(server, "image", "import", str(ext4_image), "--name", name,
                                 "--description", "imported ext4").split()
    assert image_id.startswith("ami-") and snapshot_id.startswith("snap-")
    ec2 = server.client("a")
    [img] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert img["Name"] == name and img["State"] == "available" and img["RootDeviceType"] == "ebs"
    assert img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snapshot_id
    [snap] = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snap["State"] == "completed" and snap["VolumeSize"] == 1

    out = tmp_path / "out.raw"
    kiln(server, "image", "export", image_id, str(out), "--format", "raw")
    assert out.stat().st_size == ext4_image.stat().st_size
    assert sha(out) == sha(ext4_image)
    # The exported file is still a valid filesystem.
    fsck = subprocess.run(["e2fsck", "-n", "-f", str(out)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_qcow2_import_and_export(server, ext4_image, tmp_path, unique):
    qcow2 = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(ext4_image), str(qcow2)], check=True)
    image_id, _ = kiln(server, "image", "import", str(qcow2), "--name", unique("q")).split()
    out = tmp_path / "out.qcow2"
    kiln(server, "image", "export", image_id, str(out), "--format", "qcow2")
    info = subprocess.run(["qemu-img", "info", "--output=json", str(out)], capture_output=True, text=True, check=True)
    assert '"format": "qcow2"' in info.stdout
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(ext4_image), str(out)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_importing_the_same_image_twice_stores_nothing_new(server, ext4_image, unique):
    chunks = server.data_dir / "regions" / "us-east-1" / "chunks" / "chunks"
    kiln(server, "image", "import", str(ext4_image), "--name", unique("first"))
    before = sum(1 for p in chunks.rglob("*") if p.is_file())
    kiln(server, "image", "import", str(ext4_image), "--name", unique("second"))
    assert sum(1 for p in chunks.rglob("*") if p.is_file()) == before
    stats = kiln(server, "storage", "stats")
    row = next(line.split() for line in stats.splitlines() if line.startswith("us-east-1"))
    logical, stored = int(row[1]), int(row[2])
    assert logical > stored > 0, stats


def test_a_volume_from_an_imported_image_holds_the_filesystem(server, ext4_image, tmp_path, unique):
    _, snapshot_id = kiln(server, "image", "import", str(ext4_image), "--name", unique("vol")).split()
    ec2 = server.client("a")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snapshot_id)["VolumeId"]
    from conftest import wait_until
    wait_until(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available", what="volume")
    path = server.data_dir / "regions" / "us-east-1" / "volumes" / f"{vol}.qcow2"
    raw = tmp_path / "vol.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(path), str(raw)], check=True)
    size = ext4_image.stat().st_size
    with open(raw, "rb") as f:
        head = f.read(size)
    assert hashlib.sha256(head).hexdigest() == sha(ext4_image)
