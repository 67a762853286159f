"""The EBS direct API through boto3's `ebs` client: write a snapshot block by block, read it back."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

BLOCK = 512 * 1024


def checksum(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def put(ebs, sid, index, data):
    return ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=len(data),
                                  Checksum=checksum(data), ChecksumAlgorithm="SHA256")


def chunk_files(server, region="us-east-1"):
    root = server.data_dir / "regions" / region / "chunks" / "chunks"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def test_write_complete_list_and_read_back(server):
    ebs = server.client("a", service="ebs")
    start = ebs.start_snapshot(VolumeSize=1, Description="direct upload", Tags=[{"Key": "k", "Value": "v"}])
    sid = start["SnapshotId"]
    assert start["Status"] == "pending" and start["BlockSize"] == BLOCK and start["VolumeSize"] == 1
    blocks = {0: os.urandom(BLOCK), 7: b"\x07" * BLOCK, 2047: os.urandom(BLOCK), 9: b"\x00" * BLOCK}
    for i, d in blocks.items():
        r = put(ebs, sid, i, d)
        assert r["Checksum"] == checksum(d) and r["ChecksumAlgorithm"] == "SHA256"
    assert ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=4)["Status"] == "completed"

    listed = ebs.list_snapshot_blocks(SnapshotId=sid)
    # An all-zero block is a hole: not listed.
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 7, 2047]
    assert listed["VolumeSize"] == 1 and listed["BlockSize"] == BLOCK
    for b in listed["Blocks"]:
        got = ebs.get_snapshot_block(SnapshotId=sid, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        data = got["BlockData"].read()
        assert data == blocks[b["BlockIndex"]]
        assert got["Checksum"] == checksum(data) and got["DataLength"] == BLOCK

    # The snapshot is an ordinary EC2 snapshot now.
    snap = server.client("a").describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    assert snap["State"] == "completed" and snap["Description"] == "direct upload"
    assert snap["Tags"] == [{"Key": "k", "Value": "v"}]


def test_incremental_snapshot_shares_unchanged_blocks(server):
    ebs = server.client("a", service="ebs")
    parent = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = [os.urandom(BLOCK) for _ in range(4)]
    for i, d in enumerate(data):
        put(ebs, parent, i, d)
    ebs.complete_snapshot(SnapshotId=parent, ChangedBlocksCount=4)
    before = chunk_files(server)
    child = ebs.start_snapshot(VolumeSize=2, ParentSnapshotId=parent)["SnapshotId"]
    changed = os.urandom(BLOCK)
    put(ebs, child, 2, changed)
    ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=1)
    assert chunk_files(server) == before + 1, "only the changed block is stored"

    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]] == [0, 1, 2, 3]
    diff = ebs.list_changed_blocks(FirstSnapshotId=parent, SecondSnapshotId=child)["ChangedBlocks"]
    assert [b["BlockIndex"] for b in diff] == [2]
    b = diff[0]
    first = ebs.get_snapshot_block(SnapshotId=parent, BlockIndex=2, BlockToken=b["FirstBlockToken"])["BlockData"].read()
    second = ebs.get_snapshot_block(SnapshotId=child, BlockIndex=2, BlockToken=b["SecondBlockToken"])["BlockData"].read()
    assert first == data[2] and second == changed
    # Unchanged blocks read through the child are the parent's.
    tok = {x["BlockIndex"]: x["BlockToken"] for x in ebs.list_snapshot_blocks(SnapshotId=child)["Blocks"]}
    assert ebs.get_snapshot_block(SnapshotId=child, BlockIndex=3, BlockToken=tok[3])["BlockData"].read() == data[3]
    # Without a first snapshot, every block with data is "changed".
    assert len(ebs.list_changed_blocks(SecondSnapshotId=child)["ChangedBlocks"]) == 4


def test_pagination_of_blocks(server):
    ebs = server.client("a", service="ebs")
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for i in range(150):
        put(ebs, sid, i, (i + 1).to_bytes(2, "big") * (BLOCK // 2))
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=150)
    seen, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ebs.list_snapshot_blocks(SnapshotId=sid, MaxResults=100, **kw)
        seen += [b["BlockIndex"] for b in page["Blocks"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == list(range(150))
    assert [b["BlockIndex"] for b in ebs.list_snapshot_blocks(SnapshotId=sid, StartingBlockIndex=140)["Blocks"]] == list(range(140, 150))


def test_errors(server):
    ebs = server.client("a", service="ebs")
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    d = os.urandom(BLOCK)
    with pytest.raises(ClientError) as e:
        ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=d, DataLength=BLOCK,
                               Checksum=checksum(b"other"), ChecksumAlgorithm="SHA256")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        put(ebs, sid, 2048, d)  # one past the last block of a 1 GiB volume
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        put(ebs, sid, 0, d[:1000])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    put(ebs, sid, 0, d)
    with pytest.raises(ClientError) as e:
        ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=5)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    with pytest.raises(ClientError) as e:
        put(ebs, sid, 1, d)  # completed snapshots take no more blocks
    assert e.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        ebs.start_snapshot(VolumeSize=70000)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    token = ebs.list_snapshot_blocks(SnapshotId=sid)["Blocks"][0]["BlockToken"]
    with pytest.raises(ClientError) as e:
        ebs.get_snapshot_block(SnapshotId=sid, BlockIndex=1, BlockToken=token)
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_other_accounts_and_wrong_secrets_are_refused(server):
    ebs_a = server.client("a", service="ebs")
    sid = ebs_a.start_snapshot(VolumeSize=1)["SnapshotId"]
    put(ebs_a, sid, 0, os.urandom(BLOCK))
    ebs_a.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    ebs_b = server.client("b", service="ebs")
    with pytest.raises(ClientError) as e:
        ebs_b.list_snapshot_blocks(SnapshotId=sid)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Sharing the snapshot lets b read it, as createVolumePermission does for volumes.
    server.client("a").modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission",
                                                 CreateVolumePermission={"Add": [{"UserId": "222222222222"}]})
    assert len(ebs_b.list_snapshot_blocks(SnapshotId=sid)["Blocks"]) == 1
    # b still cannot write into a's pending snapshot.
    pending = ebs_a.start_snapshot(VolumeSize=1)["SnapshotId"]
    with pytest.raises(ClientError) as e:
        put(ebs_b, pending, 0, os.urandom(BLOCK))
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    bad = server.client("a", service="ebs", secret="wrong-secret")
    with pytest.raises(ClientError) as e:
        bad.start_snapshot(VolumeSize=1)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # Region isolation: the snapshot does not exist in eu-west-1.
    with pytest.raises(ClientError) as e:
        server.client("a", region="eu-west-1", service="ebs").list_snapshot_blocks(SnapshotId=sid)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
