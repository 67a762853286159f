#!/usr/bin/env python3
"""Copy benchmark: `CopyImage` of a 2 GiB image (~1 GiB of real files) to an empty region, then of
a child image with 1% of its blocks changed to the same region: time and bytes moved for each,
next to a plain full copy of the image file (`cp --sparse=always`).

Usage: cargo build --release && python3 benches/copy_bench.py
Needs: mkfs.ext4, ~5 GiB free in $TMPDIR.
"""

import base64
import hashlib
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "blackbox"))
sys.path.insert(0, str(ROOT / "benches"))
os.environ.setdefault("KILN_BIN", str(ROOT / "target" / "release" / "kiln"))
os.environ.setdefault("KILN_LOG", "warn")

from conftest import ACCOUNTS, KILN_BIN, KilnServer, wait_until  # noqa: E402
from storage_bench import TREE_SOURCES, build_image, fmt  # noqa: E402

BLOCK = 512 * 1024
GIB = 1 << 30


def allocated(path):
    """Bytes a file occupies on disk (sparse-aware)."""
    return os.stat(path).st_blocks * 512


def moved(server):
    out = subprocess.run([str(KILN_BIN), "--data-dir", str(server.data_dir), "storage", "stats"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith(ACCOUNTS["a"][0]):
            return int(line.split()[1])
    return 0


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-copy-bench-"))
    server = KilnServer().start()
    _, _, key, secret = ACCOUNTS["a"]
    try:
        ec2, ebs, eu = server.client("a"), server.client("a", service="ebs"), server.client("a", "eu-west-1")
        raw = work / "parent.ext4"
        files = build_image(work / "tree", TREE_SOURCES, raw)
        out = subprocess.run([str(KILN_BIN), "image", "import", str(raw), "--name", "parent", "--endpoint",
                              server.endpoint, "--access-key", key, "--secret-key", secret],
                             capture_output=True, text=True, check=True).stdout
        parent, parent_snap = out.split()

        # The child: 1% of the 2 GiB disk's blocks rewritten with random bytes.
        rnd = random.Random(7)
        changed = rnd.sample(range(2 * GIB // BLOCK), 2 * GIB // BLOCK // 100)
        sid = ebs.start_snapshot(VolumeSize=2, ParentSnapshotId=parent_snap)["SnapshotId"]
        for b in changed:
            data = rnd.randbytes(BLOCK)
            ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=b, BlockData=data, DataLength=BLOCK,
                                   Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                                   ChecksumAlgorithm="SHA256")
        ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(changed))
        wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed")
        child = ec2.register_image(Name="child", RootDeviceName="/dev/xvda", Architecture="x86_64",
                                   BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}]
                                   )["ImageId"]

        rows = []
        for name, image in (("parent (2 GiB, empty region)", parent), ("child (1% changed)", child)):
            before = moved(server)
            start = time.perf_counter()
            copy = eu.copy_image(SourceRegion="us-east-1", SourceImageId=image, Name=f"copy-{image}")["ImageId"]
            wait_until(lambda: eu.describe_images(ImageIds=[copy])["Images"][0]["State"] == "available",
                       timeout=1200, interval=0.05)
            rows.append((name, time.perf_counter() - start, moved(server) - before))

        target = work / "plain-copy.ext4"
        start = time.perf_counter()
        subprocess.run(["cp", "--sparse=always", str(raw), str(target)], check=True)
        os.sync()
        plain = time.perf_counter() - start

        print(f"image: 2 GiB ext4 holding {fmt(files)} of files ({fmt(allocated(raw))} allocated)\n")
        print("| copy | time | bytes moved |")
        print("|---|---:|---:|")
        for name, took, nbytes in rows:
            print(f"| CopyImage {name} | {took:.1f} s | {fmt(nbytes)} |")
        print(f"| plain `cp --sparse=always` of the image file | {plain:.1f} s | {fmt(allocated(target))} |")
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
