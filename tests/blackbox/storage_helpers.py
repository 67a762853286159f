"""Helpers shared by the volume, snapshot and image tests: waiting on background jobs and
reading/writing volume bytes with qemu-io."""

import json
import subprocess

from conftest import ACCOUNTS, wait_until

BLOCK = 512 * 1024
ZONE = {"us-east-1": "us-east-1a", "eu-west-1": "eu-west-1a"}


def account_id(account):
    return ACCOUNTS[account][0]


def volume_path(server, volume_id, region="us-east-1"):
    return server.data_dir / "regions" / region / "volumes" / f"{volume_id}.qcow2"


def chunk_count(server, region="us-east-1"):
    root = server.data_dir / "regions" / region / "chunks" / "chunks"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def describe_volume(c, volume_id):
    return c.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def wait_volume(c, volume_id, state="available", timeout=30):
    return wait_until(lambda: (v := describe_volume(c, volume_id))["State"] == state and v,
                      timeout=timeout, what=f"{volume_id} to be {state}")


def new_volume(c, size=1, region="us-east-1", **kw):
    """Creates a volume and waits until it is available; returns its description."""
    kw.setdefault("AvailabilityZone", ZONE[region])
    vol = c.create_volume(Size=size, **kw) if size is not None else c.create_volume(**kw)
    return wait_volume(c, vol["VolumeId"])


def describe_snapshot(c, snapshot_id):
    return c.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def wait_snapshot(c, snapshot_id, timeout=30):
    def done():
        s = describe_snapshot(c, snapshot_id)
        assert s["State"] != "error", s
        return s["State"] == "completed" and s
    return wait_until(done, timeout=timeout, what=f"{snapshot_id} to complete")


def qemu_write(path, pattern, offset, length):
    p = subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern:#x} {offset} {length}", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "error" not in p.stdout.lower(), p.stdout + p.stderr


def qemu_matches(path, pattern, offset, length):
    """True when `length` bytes at `offset` all equal `pattern`."""
    p = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", f"read -P {pattern:#x} {offset} {length}", str(path)],
                       capture_output=True, text=True, timeout=60)
    return p.returncode == 0 and "Pattern verification failed" not in p.stdout + p.stderr


def virtual_size(path):
    p = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True,
                       timeout=60, check=True)
    return json.loads(p.stdout)["virtual-size"]


def volume_with_data(c, server, writes, size=1):
    """An available volume with `writes` ((pattern, offset, length), ...) written into it."""
    vol = new_volume(c, size=size)
    path = volume_path(server, vol["VolumeId"])
    for pattern, offset, length in writes:
        qemu_write(path, pattern, offset, length)
    return vol


def snapshot_of(c, volume_id, **kw):
    snap = c.create_snapshot(VolumeId=volume_id, **kw)
    return wait_snapshot(c, snap["SnapshotId"])
