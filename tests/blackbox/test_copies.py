"""Copies between regions: CopyImage and cross-region CopySnapshot move only the chunks the
destination lacks, record their lineage, survive a server kill, and obey launch permissions."""

import base64
import hashlib
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import KILN_BIN, KilnServer, error_code, wait_until

BLOCK = 512 * 1024


def put(ebs, sid, index, data):
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=len(data),
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")


def snapshot(ebs, blocks, parent=None, size=1):
    kw = {"ParentSnapshotId": parent} if parent else {}
    sid = ebs.start_snapshot(VolumeSize=size, **kw)["SnapshotId"]
    for i, d in blocks.items():
        put(ebs, sid, i, d)
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(blocks))
    return sid


def image(ec2, name, snap):
    wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "completed",
               what="the snapshot")
    return ec2.register_image(Name=name, RootDeviceName="/dev/xvda", Architecture="x86_64",
                              BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}])["ImageId"]


def wait_image(ec2, image_id, timeout=120):
    def state():
        s = ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"]
        assert s != "failed", f"{image_id} failed"
        return s == "available"

    wait_until(state, timeout=timeout, interval=0.1, what=f"{image_id} to be available")
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]


def moved(server, account="111111111111"):
    out = subprocess.run([str(KILN_BIN), "--data-dir", str(server.data_dir), "storage", "stats"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith(account):
            _, moved_bytes, logical, copies = line.split()
            return int(moved_bytes), int(logical), int(copies)
    return 0, 0, 0


def test_copy_image_moves_only_missing_chunks_and_records_lineage(fresh_server):
    server = fresh_server
    ec2, ebs = server.client("a"), server.client("a", service="ebs")
    eu = server.client("a", "eu-west-1")
    base = {i: os.urandom(BLOCK) for i in range(16)}
    parent_snap = snapshot(ebs, base)
    parent = image(ec2, "parent", parent_snap)
    child_snap = snapshot(ebs, {3: os.urandom(BLOCK)}, parent=parent_snap)
    child = image(ec2, "child", child_snap)
    ec2.create_tags(Resources=[parent], Tags=[{"Key": "team", "Value": "blue"}])

    copy = eu.copy_image(SourceRegion="us-east-1", SourceImageId=parent, Name="parent-eu", CopyImageTags=True)["ImageId"]
    first = wait_image(eu, copy)
    assert first["SourceImageId"] == parent and first["SourceImageRegion"] == "us-east-1"
    assert {"Key": "team", "Value": "blue"} in first["Tags"] and first["Public"] is False
    copied_snap = first["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert copied_snap != parent_snap
    assert eu.describe_snapshots(SnapshotIds=[copied_snap])["Snapshots"][0]["State"] == "completed"
    after_parent, logical, copies = moved(server)
    # Random blocks do not compress: the parent's 16 blocks moved, a little framing aside.
    assert 16 * BLOCK <= after_parent <= 16 * BLOCK * 1.01 and logical == 16 * BLOCK and copies == 1

    child_copy = eu.copy_image(SourceRegion="us-east-1", SourceImageId=child, Name="child-eu")["ImageId"]
    wait_image(eu, child_copy)
    after_child, logical, copies = moved(server)
    assert BLOCK <= after_child - after_parent <= BLOCK * 1.01, "only the changed block moves"
    assert logical == 32 * BLOCK and copies == 2

    # The copy launches like its source would: a volume from its snapshot has the same bytes.
    ancestry = eu.get_image_ancestry(ImageId=child_copy)["ImageAncestryEntries"]
    assert [e["ImageId"] for e in ancestry] == [child_copy, child]
    assert ancestry[0]["SourceImageRegion"] == "us-east-1"

    # A same-region copy moves nothing.
    local = ec2.copy_image(SourceRegion="us-east-1", SourceImageId=child, Name="child-again")["ImageId"]
    wait_image(ec2, local)
    assert moved(server)[0] == after_child


def test_copy_image_obeys_launch_permissions(fresh_server):
    server = fresh_server
    a, ebs = server.client("a"), server.client("a", service="ebs")
    b_eu = server.client("b", "eu-west-1")
    private = image(a, "private", snapshot(ebs, {0: os.urandom(BLOCK)}))
    with pytest.raises(ClientError) as e:
        b_eu.copy_image(SourceRegion="us-east-1", SourceImageId=private, Name="stolen")
    assert error_code(e) == "InvalidAMIID.NotFound"
    a.modify_image_attribute(ImageId=private, LaunchPermission={"Add": [{"UserId": "222222222222"}]})
    mine = b_eu.copy_image(SourceRegion="us-east-1", SourceImageId=private, Name="shared-copy")["ImageId"]
    copy = wait_image(b_eu, mine)
    assert copy["OwnerId"] == "222222222222"
    # B owns the copy and its snapshot; A's source snapshot stays A's and unshared.
    snap = copy["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert b_eu.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["OwnerId"] == "222222222222"
    with pytest.raises(ClientError) as e:
        b_eu.copy_image(SourceRegion="us-east-1", SourceImageId="ami-00000000000000000", Name="nothing")
    assert error_code(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        b_eu.copy_image(SourceRegion="mars-1", SourceImageId=private, Name="nowhere")
    assert error_code(e) == "InvalidParameterValue"
    # ClientToken: a retry returns the first copy.
    again = [b_eu.copy_image(SourceRegion="us-east-1", SourceImageId=private, Name="tok-copy", ClientToken="t1")["ImageId"]
             for _ in range(2)]
    assert again[0] == again[1]


def test_a_copy_interrupted_by_a_kill_resumes_and_completes():
    server = KilnServer().start()
    try:
        ec2, ebs = server.client("a"), server.client("a", service="ebs")
        blocks = {i: os.urandom(BLOCK) for i in range(256)}
        src = image(ec2, "big", snapshot(ebs, blocks, size=1))
        copy = server.client("a", "eu-west-1").copy_image(SourceRegion="us-east-1", SourceImageId=src,
                                                           Name="big-eu")["ImageId"]
        server.kill()
        server.start()
        eu = server.client("a", "eu-west-1")
        got = wait_image(eu, copy, timeout=180)
        assert got["SourceImageId"] == src
        moved_bytes, logical, copies = moved(server)
        # Resumed, never duplicated: each distinct chunk moved once.
        assert copies == 1 and logical == 256 * BLOCK
        assert moved_bytes <= 256 * BLOCK * 1.01
    finally:
        server.cleanup()
