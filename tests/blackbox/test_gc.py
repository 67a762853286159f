"""Garbage collection frees exactly the chunks no snapshot references any more."""

import base64
import hashlib
import os

from conftest import CONFIG, KilnServer, wait_until

BLOCK = 512 * 1024


def put(ebs, sid, index, data):
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=len(data),
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")


def snapshot_of(ebs, blocks):
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for i, d in enumerate(blocks):
        put(ebs, sid, i, d)
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(blocks))
    return sid


def test_deleted_snapshots_free_only_their_own_chunks():
    server = KilnServer(config_text="gc_grace_secs = 0\ngc_interval_secs = 1\n" + CONFIG).start()
    try:
        chunks = server.data_dir / "regions" / "us-east-1" / "chunks" / "chunks"
        count = lambda: sum(1 for p in chunks.rglob("*") if p.is_file())  # noqa: E731
        ebs, ec2 = server.client("a", service="ebs"), server.client("a")
        shared, only_a, only_b = os.urandom(BLOCK), os.urandom(BLOCK), os.urandom(BLOCK)
        a = snapshot_of(ebs, [shared, only_a])
        b = snapshot_of(ebs, [shared, only_b])
        assert count() == 3
        ec2.delete_snapshot(SnapshotId=a)
        # only_a goes; shared stays because b still references it.
        wait_until(lambda: count() == 2, timeout=30, what="garbage collection")
        tokens = {x["BlockIndex"]: x["BlockToken"] for x in ebs.list_snapshot_blocks(SnapshotId=b)["Blocks"]}
        assert ebs.get_snapshot_block(SnapshotId=b, BlockIndex=0, BlockToken=tokens[0])["BlockData"].read() == shared
        assert ebs.get_snapshot_block(SnapshotId=b, BlockIndex=1, BlockToken=tokens[1])["BlockData"].read() == only_b
        ec2.delete_snapshot(SnapshotId=b)
        wait_until(lambda: count() == 0, timeout=30, what="garbage collection")
        # A chunk that comes back after being collected is stored again.
        c = snapshot_of(ebs, [shared])
        assert count() == 1
        tok = ebs.list_snapshot_blocks(SnapshotId=c)["Blocks"][0]["BlockToken"]
        assert ebs.get_snapshot_block(SnapshotId=c, BlockIndex=0, BlockToken=tok)["BlockData"].read() == shared
    finally:
        server.cleanup()
