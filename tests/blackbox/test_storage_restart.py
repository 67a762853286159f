"""Background storage work survives SIGKILL: a snapshot left `pending` is taken again at
start-up and completes with the volume's bytes; a volume left `creating` is built again."""

from conftest import wait_until
from storage_helpers import (BLOCK, describe_volume, new_volume, qemu_matches, qemu_write, volume_path,
                             wait_snapshot, wait_volume)

# Enough data that taking the snapshot outlasts the moment between its response and the kill.
BLOCKS = 48


def restart(server):
    server.kill()
    server.start()
    return server.client()


def test_pending_snapshot_resumes_after_kill(fresh_server):
    server = fresh_server
    c = server.client()
    vol = new_volume(c, size=1)["VolumeId"]
    path = volume_path(server, vol)
    qemu_write(path, 0xE1, 0, BLOCKS * BLOCK)
    qemu_write(path, 0xE2, (BLOCKS + 3) * BLOCK, 4096)
    snap = c.create_snapshot(VolumeId=vol, Description="interrupted")
    assert snap["State"] == "pending"
    c = restart(server)

    got = wait_snapshot(c, snap["SnapshotId"], timeout=60)
    assert got["Progress"] == "100%"
    assert got["Description"] == "interrupted" and got["VolumeId"] == vol
    assert got["FullSnapshotSizeInBytes"] == (BLOCKS + 1) * BLOCK
    restored = new_volume(c, size=None, SnapshotId=snap["SnapshotId"])["VolumeId"]
    rpath = volume_path(server, restored)
    assert qemu_matches(rpath, 0xE1, 0, BLOCKS * BLOCK)
    assert qemu_matches(rpath, 0x00, BLOCKS * BLOCK, 3 * BLOCK)
    assert qemu_matches(rpath, 0xE2, (BLOCKS + 3) * BLOCK, 4096)
    # The source volume is intact and usable after the restart.
    assert describe_volume(c, vol)["State"] == "available"
    assert qemu_matches(path, 0xE2, (BLOCKS + 3) * BLOCK, 4096)


def test_creating_volumes_become_available_after_kill(fresh_server):
    server = fresh_server
    c = server.client()
    src = new_volume(c, size=1)["VolumeId"]
    qemu_write(volume_path(server, src), 0xC3, 0, BLOCKS * BLOCK)
    snap = c.create_snapshot(VolumeId=src)["SnapshotId"]
    wait_snapshot(c, snap, timeout=60)
    # Restoring builds the snapshot's base first, so this volume is still `creating` for a while.
    from_snap = c.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap)
    empty = c.create_volume(AvailabilityZone="us-east-1b", Size=2)
    assert from_snap["State"] == "creating" and empty["State"] == "creating"
    c = restart(server)

    for v in (from_snap, empty):
        wait_volume(c, v["VolumeId"], timeout=60)
    assert describe_volume(c, empty["VolumeId"])["Size"] == 2
    rpath = volume_path(server, from_snap["VolumeId"])
    assert qemu_matches(rpath, 0xC3, 0, BLOCKS * BLOCK)
    assert qemu_matches(rpath, 0x00, BLOCKS * BLOCK, BLOCK)
    # And they work: snapshot the rebuilt volume.
    again = c.create_snapshot(VolumeId=from_snap["VolumeId"])["SnapshotId"]
    assert wait_snapshot(c, again, timeout=60)["FullSnapshotSizeInBytes"] == BLOCKS * BLOCK
    wait_until(lambda: volume_path(server, empty["VolumeId"]).exists(), what="empty volume file")
