#!/usr/bin/env python3
"""Storage benchmark, all measured side by side in one run against a release `kiln serve`:

1. Import a 2 GiB ext4 disk image holding ~1 GiB of real files: `kiln image import` time vs
   `qemu-img convert -O qcow2` of the same file; stored bytes vs the qcow2's size.
2. Change 1% of a volume's blocks and snapshot it: time and new stored bytes, vs importing the
   whole changed volume again.
3. Create 20 volumes from one snapshot: total time until all are available, and disk added.
4. Two images that differ by a few packages: stored bytes of both vs one.

Usage: cargo build --release && python3 benches/storage_bench.py [--keep DIR]
Needs: root (a loop mount), mkfs.ext4, qemu-img, qemu-io; ~6 GiB of free disk in $TMPDIR.
"""

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
os.environ.setdefault("KILN_BIN", str(ROOT / "target" / "release" / "kiln"))
os.environ.setdefault("KILN_LOG", "warn")

from conftest import ACCOUNTS, KILN_BIN, KilnServer, wait_until  # noqa: E402

GIB = 1 << 30
BLOCK = 512 * 1024
# ~1 GiB of real files: shared libraries and a compiler toolchain.
TREE_SOURCES = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/llvm-14"]
# "A few packages" more for the second image.
EXTRA_SOURCES = ["/usr/lib/postgresql", "/usr/lib/python3"]


def du(path):
    """Bytes allocated on disk under a path (sparse-aware)."""
    total = 0
    for p in pathlib.Path(path).rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_blocks * 512
    return total


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def build_image(tree, sources, path, size="2G"):
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for s in sources:
        if os.path.exists(s):
            run("cp", "-a", s, str(tree / pathlib.Path(s).name))
    run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", str(tree), str(path), size)
    return du(tree)


def fmt(n):
    return f"{n / 2**20:,.1f} MiB"


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="kiln-storage-bench-"))
    server = KilnServer().start()
    _, _, key, secret = ACCOUNTS["a"]

    def kiln(*args):
        api = ["--endpoint", server.endpoint, "--access-key", key, "--secret-key", secret] if args[0] == "image" else []
        return run(str(KILN_BIN), "--config", str(server.config_path), "--data-dir", str(server.data_dir), *args, *api,
                   env={**os.environ, "RUST_BACKTRACE": "0"}).stdout

    chunks_dir = server.data_dir / "regions" / "us-east-1" / "chunks"
    ec2 = server.client("a")
    rows = []
    try:
        img_a = work / "a.ext4"
        files = build_image(work / "tree", TREE_SOURCES, img_a)
        print(f"image A: 2 GiB ext4 holding {fmt(files)} of files")

        # 1. Import vs qemu-img convert.
        qcow2 = work / "a.qcow2"
        t_qemu, _ = timed(lambda: run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(img_a), str(qcow2)))
        before = du(chunks_dir)
        t_import, out = timed(lambda: kiln("image", "import", str(img_a), "--name", "bench-a"))
        image_a, snap_a = out.split()
        stored_a = du(chunks_dir) - before
        rows.append(("import 2 GiB image (1 GiB files)", f"{t_import:.1f} s", fmt(stored_a),
                     f"qemu-img convert -O qcow2: {t_qemu:.1f} s, {fmt(qcow2.stat().st_size)}"))

        # 2. Change 1% of a volume's blocks and snapshot it.
        vol = ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap_a)["VolumeId"]
        wait_until(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available", timeout=300)
        vol_path = server.data_dir / "regions" / "us-east-1" / "volumes" / f"{vol}.qcow2"
        blocks = 2 * GIB // BLOCK
        rnd = random.Random(1)
        changed = rnd.sample(range(blocks), blocks // 100)
        # Random bytes, so neither compression nor dedup flatters the result.
        cmds = []
        for n, b in enumerate(changed):
            src = work / f"rand-{n}.bin"
            src.write_bytes(rnd.randbytes(BLOCK))
            cmds += ["-c", f"write -s {src} {b * BLOCK} {BLOCK}"]
        run("qemu-io", "-f", "qcow2", *cmds, str(vol_path))
        before = du(chunks_dir)
        t0 = time.perf_counter()
        snap_b = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
        wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[snap_b])["Snapshots"][0]["State"] == "completed",
                   timeout=600, interval=0.02)
        t_snap = time.perf_counter() - t0
        stored_snap = du(chunks_dir) - before
        changed_raw = work / "changed.raw"
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(vol_path), str(changed_raw))
        before = du(chunks_dir)
        t_reimport, _ = timed(lambda: kiln("image", "import", str(changed_raw), "--name", "bench-reimport"))
        stored_reimport = du(chunks_dir) - before
        changed_raw.unlink()
        rows.append((f"snapshot after changing 1% ({len(changed)} blocks)", f"{t_snap:.2f} s", fmt(stored_snap),
                     f"re-import whole volume: {t_reimport:.1f} s, {fmt(stored_reimport)} new"))

        # 3. Twenty volumes from one snapshot.
        vols_dir = server.data_dir / "regions" / "us-east-1"
        vols_before, bases_before = du(vols_dir / "volumes"), du(vols_dir / "bases")
        t0 = time.perf_counter()
        vols = [ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap_b)["VolumeId"] for _ in range(20)]
        wait_until(lambda: all(v["State"] == "available" for v in ec2.describe_volumes(VolumeIds=vols)["Volumes"]),
                   timeout=600, interval=0.02)
        t_vols = time.perf_counter() - t0
        overlays = du(vols_dir / "volumes") - vols_before
        base = du(vols_dir / "bases") - bases_before
        rows.append(("create 20 volumes from one snapshot", f"{t_vols:.2f} s",
                     f"{fmt(overlays)} overlays + {fmt(base)} base (once per snapshot)",
                     f"20 full copies: {fmt(20 * files)} of data"))
        t0 = time.perf_counter()
        more = [ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap_b)["VolumeId"] for _ in range(20)]
        wait_until(lambda: all(v["State"] == "available" for v in ec2.describe_volumes(VolumeIds=more)["Volumes"]),
                   timeout=600, interval=0.02)
        rows.append(("20 more volumes (base already built)", f"{time.perf_counter() - t0:.2f} s",
                     fmt(du(vols_dir / "volumes") - vols_before - overlays), "-"))

        # 4. Two images that differ by a few packages: B is A with packages installed into its
        # filesystem (loop-mounted), as an image made from an updated instance would be.
        img_b = work / "b.ext4"
        run("cp", "--sparse=always", str(img_a), str(img_b))
        mnt = work / "mnt"
        mnt.mkdir()
        run("mount", "-o", "loop", str(img_b), str(mnt))
        try:
            for s in EXTRA_SOURCES:
                run("cp", "-a", s, str(mnt / ("extra-" + pathlib.Path(s).name)))
            extra = sum(du(mnt / ("extra-" + pathlib.Path(s).name)) for s in EXTRA_SOURCES)
        finally:
            run("umount", str(mnt))
        before = du(chunks_dir)
        kiln("image", "import", str(img_b), "--name", "bench-b")
        delta = du(chunks_dir) - before
        rows.append((f"image B = image A + {fmt(extra)} of packages", "-",
                     f"both: {fmt(stored_a + delta)} (B adds {fmt(delta)})",
                     f"A alone: {fmt(stored_a)}; as two qcow2 files: ~{fmt(2 * qcow2.stat().st_size)}"))

        print()
        print("| case | time | stored / added | compared with |")
        print("|---|---:|---:|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print()
        print(kiln("storage", "stats"))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
