"""Snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot, the
createVolumePermission attribute, and volumes restored from snapshots reading back the bytes
that were written."""

import random
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, wait_until
from storage_helpers import (BLOCK, account_id, chunk_count, describe_snapshot, new_volume, qemu_matches,
                             qemu_write, snapshot_of, virtual_size, volume_path, volume_with_data, wait_snapshot,
                             wait_volume)

GIB = 1 << 30


def unique_block(path, block, pattern):
    """Fills one block with `pattern` plus a random sector of 0x5a, so its content is new to the
    chunk store; returns the sector's offset."""
    qemu_write(path, pattern, block * BLOCK, BLOCK)
    sector = block * BLOCK + random.randrange(BLOCK // 512) * 512
    qemu_write(path, 0x5A, sector, 512)
    return sector


def test_snapshot_round_trip(ec2, server):
    c = ec2()
    # Block 0 full of 0xab; block 3 mostly zero with 8 KiB of 0xcd; nothing else.
    vol = volume_with_data(c, server, [(0xAB, 0, BLOCK), (0xCD, 3 * BLOCK + 4096, 8192)], size=2)["VolumeId"]
    snap = c.create_snapshot(VolumeId=vol, Description="round trip")
    assert snap["SnapshotId"].startswith("snap-") and len(snap["SnapshotId"]) == 22
    assert snap["State"] == "pending"
    assert snap["VolumeId"] == vol and snap["VolumeSize"] == 2
    assert snap["OwnerId"] == account_id("a")
    got = wait_snapshot(c, snap["SnapshotId"])
    assert got["Progress"] == "100%"
    assert got["FullSnapshotSizeInBytes"] == 2 * BLOCK
    assert got["Description"] == "round trip"
    assert got["Encrypted"] is False
    assert got["StartTime"] <= got["CompletionTime"]

    restored = new_volume(c, size=None, SnapshotId=snap["SnapshotId"])
    assert restored["Size"] == 2 and restored["SnapshotId"] == snap["SnapshotId"]
    path = volume_path(server, restored["VolumeId"])
    assert virtual_size(path) == 2 * GIB
    assert qemu_matches(path, 0xAB, 0, BLOCK)
    assert qemu_matches(path, 0x00, BLOCK, 2 * BLOCK)
    assert qemu_matches(path, 0x00, 3 * BLOCK, 4096)
    assert qemu_matches(path, 0xCD, 3 * BLOCK + 4096, 8192)
    assert qemu_matches(path, 0x00, 3 * BLOCK + 4096 + 8192, BLOCK - 4096 - 8192)
    assert qemu_matches(path, 0x00, 4 * BLOCK, 64 * BLOCK)
    assert qemu_matches(path, 0x00, 2 * GIB - BLOCK, BLOCK)
    assert not qemu_matches(path, 0xAB, BLOCK, 4096), "the read check must be able to fail"

    # The whole disk, byte for byte, equals the source.
    same = subprocess.run(["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2", str(volume_path(server, vol)),
                           str(path)], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0, same.stdout + same.stderr

    bigger = new_volume(c, size=3, SnapshotId=snap["SnapshotId"])
    assert bigger["Size"] == 3
    bpath = volume_path(server, bigger["VolumeId"])
    assert virtual_size(bpath) == 3 * GIB
    assert qemu_matches(bpath, 0xCD, 3 * BLOCK + 4096, 8192)
    assert qemu_matches(bpath, 0x00, 2 * GIB, BLOCK)
    with pytest.raises(ClientError) as e:
        c.create_volume(Size=1, AvailabilityZone="us-east-1a", SnapshotId=snap["SnapshotId"])
    assert error_code(e) == "InvalidParameterValue"


def test_writes_to_a_restored_volume_stay_its_own(ec2, server):
    c = ec2()
    vol = volume_with_data(c, server, [(0x11, 0, BLOCK)])["VolumeId"]
    snap = snapshot_of(c, vol)["SnapshotId"]
    one = new_volume(c, size=None, SnapshotId=snap)["VolumeId"]
    two = new_volume(c, size=None, SnapshotId=snap)["VolumeId"]
    qemu_write(volume_path(server, one), 0x22, 0, 4096)
    assert qemu_matches(volume_path(server, one), 0x22, 0, 4096)
    assert qemu_matches(volume_path(server, two), 0x11, 0, BLOCK)
    assert qemu_matches(volume_path(server, vol), 0x11, 0, BLOCK)


def test_incremental_snapshot_stores_only_the_new_block(ec2, server):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    path = volume_path(server, vol)
    s1 = unique_block(path, 0, 0x31)
    s2 = unique_block(path, 2, 0x32)
    before = chunk_count(server)
    first = snapshot_of(c, vol)
    assert chunk_count(server) == before + 2
    assert first["FullSnapshotSizeInBytes"] == 2 * BLOCK

    child = new_volume(c, size=None, SnapshotId=first["SnapshotId"])["VolumeId"]
    cpath = volume_path(server, child)
    s3 = unique_block(cpath, 5, 0x33)
    before = chunk_count(server)
    second = snapshot_of(c, child)
    assert chunk_count(server) == before + 1, "only the block written since the base snapshot is new"
    assert second["FullSnapshotSizeInBytes"] == 3 * BLOCK
    assert second["VolumeId"] == child

    check = volume_path(server, new_volume(c, size=None, SnapshotId=second["SnapshotId"])["VolumeId"])
    for block, pattern, sector in ((0, 0x31, s1), (2, 0x32, s2), (5, 0x33, s3)):
        assert qemu_matches(check, 0x5A, sector, 512)
        head = sector - block * BLOCK
        if head:
            assert qemu_matches(check, pattern, block * BLOCK, head)
        tail = (block + 1) * BLOCK - sector - 512
        if tail:
            assert qemu_matches(check, pattern, sector + 512, tail)
    assert qemu_matches(check, 0x00, BLOCK, BLOCK)
    assert qemu_matches(check, 0x00, 6 * BLOCK, BLOCK)


def test_identical_data_shares_chunks(ec2, server):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    sector = unique_block(volume_path(server, vol), 1, 0x41)
    snapshot_of(c, vol)
    after_first = chunk_count(server)
    again = snapshot_of(c, vol)
    assert chunk_count(server) == after_first, "a second snapshot of unchanged data stores nothing"
    assert again["FullSnapshotSizeInBytes"] == BLOCK
    # Another volume holding the same bytes at another offset shares them too.
    twin = new_volume(c)["VolumeId"]
    tpath = volume_path(server, twin)
    qemu_write(tpath, 0x41, 7 * BLOCK, BLOCK)
    qemu_write(tpath, 0x5A, 7 * BLOCK + (sector - BLOCK), 512)
    snapshot_of(c, twin)
    assert chunk_count(server) == after_first


def test_snapshot_of_an_empty_volume_is_empty(ec2):
    c = ec2()
    vol = new_volume(c, size=1)["VolumeId"]
    snap = snapshot_of(c, vol)
    assert snap["FullSnapshotSizeInBytes"] == 0 and snap["VolumeSize"] == 1


def test_create_snapshot_errors(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.create_snapshot(VolumeId="vol-0123456789abcdef0")
    assert error_code(e) == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        c.create_snapshot(VolumeId="vol-nope")
    assert error_code(e) == "InvalidVolumeID.Malformed"
    vol = new_volume(c)["VolumeId"]
    with pytest.raises(ClientError) as e:
        c.create_snapshot(VolumeId=vol, Description="x" * 256)
    assert error_code(e) == "InvalidParameterValue"


def test_describe_snapshots(ec2, unique):
    c = ec2()
    run = unique("snaps")
    me = account_id("a")
    vol1 = new_volume(c, size=1)["VolumeId"]
    vol2 = new_volume(c, size=2, Encrypted=True)["VolumeId"]
    made = []
    for i in range(6):
        vol = vol1 if i < 4 else vol2
        made.append(c.create_snapshot(VolumeId=vol, Description=f"{run} number {i}",
                                      TagSpecifications=[{"ResourceType": "snapshot",
                                                          "Tags": [{"Key": "run", "Value": run},
                                                                   {"Key": "n", "Value": str(i)}]}])["SnapshotId"])
    for s in made:
        wait_snapshot(c, s)
    mine = {"Name": "tag:run", "Values": [run]}

    def ids(*filters, **kw):
        return sorted(s["SnapshotId"] for s in c.describe_snapshots(Filters=[mine, *filters], **kw)["Snapshots"])

    everything = sorted(made)
    assert ids() == everything
    assert ids(OwnerIds=["self"]) == everything
    assert ids(OwnerIds=[me]) == everything
    assert ids(OwnerIds=[account_id("b")]) == []
    assert ids(RestorableByUserIds=[me]) == everything
    assert sorted(s["SnapshotId"] for s in c.describe_snapshots(SnapshotIds=made[:2])["Snapshots"]) \
        == sorted(made[:2])
    assert ids({"Name": "description", "Values": [f"{run} number 3"]}) == [made[3]]
    assert ids({"Name": "description", "Values": [f"{run} number *"]}) == everything
    assert ids({"Name": "snapshot-id", "Values": [made[1]]}) == [made[1]]
    assert ids({"Name": "volume-id", "Values": [vol2]}) == sorted(made[4:])
    assert ids({"Name": "volume-size", "Values": ["2"]}) == sorted(made[4:])
    assert ids({"Name": "owner-id", "Values": [me]}) == everything
    assert ids({"Name": "status", "Values": ["completed"]}) == everything
    assert ids({"Name": "status", "Values": ["pending", "error"]}) == []
    assert ids({"Name": "encrypted", "Values": ["true"]}) == sorted(made[4:])
    assert ids({"Name": "tag:n", "Values": ["0", "5"]}) == sorted([made[0], made[5]])
    start = describe_snapshot(c, made[2])["StartTime"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert made[2] in ids({"Name": "start-time", "Values": [start]})

    first = c.describe_snapshots(Filters=[mine], MaxResults=5)
    assert len(first["Snapshots"]) == 5 and first.get("NextToken")
    second = c.describe_snapshots(Filters=[mine], MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Snapshots"]) == 1 and not second.get("NextToken")
    assert sorted(s["SnapshotId"] for s in first["Snapshots"] + second["Snapshots"]) == everything
    pages = list(c.get_paginator("describe_snapshots").paginate(Filters=[mine], PaginationConfig={"PageSize": 5}))
    assert sorted(s["SnapshotId"] for p in pages for s in p["Snapshots"]) == everything


def test_describe_snapshots_cli(server, ec2, unique):
    c = ec2()
    run = unique("snapcli")
    vol = new_volume(c)["VolumeId"]
    snap = server.cli("create-snapshot", "--volume-id", vol, "--description", run)
    assert snap["State"] == "pending"
    wait_snapshot(c, snap["SnapshotId"])
    got = server.cli("describe-snapshots", "--owner-ids", "self", "--filters", f"Name=description,Values={run}")
    assert [s["SnapshotId"] for s in got["Snapshots"]] == [snap["SnapshotId"]]
    assert got["Snapshots"][0]["State"] == "completed"
    server.cli("delete-snapshot", "--snapshot-id", snap["SnapshotId"])
    p = server.cli("describe-snapshots", "--snapshot-ids", snap["SnapshotId"], check=False)
    assert p.returncode != 0 and "InvalidSnapshot.NotFound" in p.stderr


def test_describe_unknown_and_malformed_snapshots(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=["snap-0123456789abcdef0"])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=["snap-zz"])
    assert error_code(e) == "InvalidSnapshotID.Malformed"


def test_delete_snapshot(ec2, unique):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    snap = snapshot_of(c, vol)["SnapshotId"]
    with pytest.raises(ClientError) as e:
        c.delete_snapshot(SnapshotId="snap-0123456789abcdef0")
    assert error_code(e) == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as e:
        ec2("b").delete_snapshot(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"
    image = c.register_image(Name=unique("uses-snap"), RootDeviceName="/dev/xvda",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}])["ImageId"]
    with pytest.raises(ClientError) as e:
        c.delete_snapshot(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.InUse"
    assert image in e.value.response["Error"]["Message"]
    c.deregister_image(ImageId=image)
    c.delete_snapshot(SnapshotId=snap)
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=[snap])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"
    # The volume it was taken from is untouched.
    assert c.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available"


def test_deleting_a_snapshot_keeps_volumes_made_from_it_readable(ec2, server):
    c = ec2()
    vol = volume_with_data(c, server, [(0x77, BLOCK, BLOCK)])["VolumeId"]
    snap = snapshot_of(c, vol)["SnapshotId"]
    restored = new_volume(c, size=None, SnapshotId=snap)["VolumeId"]
    c.delete_snapshot(SnapshotId=snap)
    assert qemu_matches(volume_path(server, restored), 0x77, BLOCK, BLOCK)


def test_copy_snapshot_within_the_region(ec2, server):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    sector = unique_block(volume_path(server, vol), 0, 0x61)
    src = snapshot_of(c, vol, Description="original")
    before = chunk_count(server)
    copy = c.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=src["SnapshotId"],
                           TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert copy["SnapshotId"] != src["SnapshotId"]
    got = describe_snapshot(c, copy["SnapshotId"])
    assert got["State"] == "completed" and got["Progress"] == "100%"
    assert src["SnapshotId"] in got["Description"] and "us-east-1" in got["Description"]
    assert got["VolumeSize"] == src["VolumeSize"]
    assert got["FullSnapshotSizeInBytes"] == src["FullSnapshotSizeInBytes"]
    assert got["Tags"] == [{"Key": "k", "Value": "v"}]
    assert chunk_count(server) == before, "a copy shares the source's chunks"
    named = c.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId=src["SnapshotId"], Description="mine")
    assert describe_snapshot(c, named["SnapshotId"])["Description"] == "mine"

    # The copy stands alone: deleting the source leaves it restorable.
    c.delete_snapshot(SnapshotId=src["SnapshotId"])
    restored = new_volume(c, size=None, SnapshotId=copy["SnapshotId"])["VolumeId"]
    assert qemu_matches(volume_path(server, restored), 0x5A, sector, 512)
    if sector + 512 < BLOCK:
        assert qemu_matches(volume_path(server, restored), 0x61, sector + 512, BLOCK - sector - 512)

    with pytest.raises(ClientError) as e:
        c.copy_snapshot(SourceRegion="us-east-1", SourceSnapshotId="snap-0123456789abcdef0")
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_copy_snapshot_from_another_region(ec2, server):
    c = ec2("a", "us-east-1")
    eu = ec2("a", "eu-west-1")
    vol = new_volume(eu, region="eu-west-1")["VolumeId"]
    snap = snapshot_of(eu, vol)["SnapshotId"]
    copy = c.copy_snapshot(SourceRegion="eu-west-1", SourceSnapshotId=snap)["SnapshotId"]
    wait_until(lambda: c.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]["State"] == "completed",
               timeout=60, what="the cross-region copy")
    [s] = c.describe_snapshots(SnapshotIds=[copy])["Snapshots"]
    assert f"[Copied {snap} from eu-west-1]" in s["Description"]
    with pytest.raises(ClientError) as e:
        ec2("b", "us-east-1").copy_snapshot(SourceRegion="eu-west-1", SourceSnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_snapshots_are_regional(ec2):
    us, eu = ec2("a", "us-east-1"), ec2("a", "eu-west-1")
    snap = snapshot_of(us, new_volume(us)["VolumeId"])["SnapshotId"]
    with pytest.raises(ClientError) as e:
        eu.describe_snapshots(SnapshotIds=[snap])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    with pytest.raises(ClientError) as e:
        eu.create_volume(AvailabilityZone="eu-west-1a", SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"


def permissions(c, snap):
    return c.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")[
        "CreateVolumePermissions"]


def restore_refused(c, snap, code="InvalidSnapshot.NotFound"):
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=[snap])
    assert error_code(e) == code
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", SnapshotId=snap)
    assert error_code(e) == code


def test_create_volume_permission(ec2, server):
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    vol = volume_with_data(a, server, [(0x99, 0, 4096)])["VolumeId"]
    snap = snapshot_of(a, vol)["SnapshotId"]
    assert permissions(a, snap) == []
    restore_refused(b, snap)
    assert snap not in {s["SnapshotId"] for s in b.describe_snapshots()["Snapshots"]}

    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                CreateVolumePermission={"Add": [{"UserId": account_id("b")}]})
    assert permissions(a, snap) == [{"UserId": account_id("b")}]
    seen = b.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert seen["OwnerId"] == account_id("a")
    assert snap in {s["SnapshotId"] for s in b.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]}
    assert snap not in {s["SnapshotId"] for s in b.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert snap in {s["SnapshotId"] for s in b.describe_snapshots(OwnerIds=[account_id("a")])["Snapshots"]}
    bvol = new_volume(b, size=None, SnapshotId=snap)
    assert bvol["SnapshotId"] == snap
    assert qemu_matches(volume_path(server, bvol["VolumeId"]), 0x99, 0, 4096)
    restore_refused(c, snap)
    # Shared is not owned: b may not change who else gets it.
    with pytest.raises(ClientError) as e:
        b.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                    CreateVolumePermission={"Add": [{"UserId": account_id("c")}]})
    assert error_code(e) in {"AuthFailure", "InvalidSnapshot.NotFound"}
    with pytest.raises(ClientError) as e:
        b.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert error_code(e) in {"AuthFailure", "InvalidSnapshot.NotFound"}
    with pytest.raises(ClientError) as e:
        b.delete_snapshot(SnapshotId=snap)
    assert error_code(e) in {"AuthFailure", "InvalidSnapshot.NotFound"}
    restore_refused(c, snap)

    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert sorted(permissions(a, snap), key=str) == sorted([{"UserId": account_id("b")}, {"Group": "all"}], key=str)
    assert describe_snapshot(c, snap)["SnapshotId"] == snap
    assert snap in {s["SnapshotId"] for s in c.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]}
    new_volume(c, size=None, SnapshotId=snap)

    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                CreateVolumePermission={"Remove": [{"Group": "all"}, {"UserId": account_id("b")}]})
    assert permissions(a, snap) == []
    restore_refused(b, snap)
    restore_refused(c, snap)
    # Volumes already made from it stay theirs.
    assert b.describe_volumes(VolumeIds=[bvol["VolumeId"]])["Volumes"][0]["State"] == "available"


def test_create_volume_permission_cli_and_reset(ec2, server):
    a, b = ec2("a"), ec2("b")
    snap = snapshot_of(a, new_volume(a)["VolumeId"])["SnapshotId"]
    server.cli("modify-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission",
               "--operation-type", "add", "--user-ids", account_id("b"), account_id("c"))
    got = server.cli("describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission")
    assert sorted(p["UserId"] for p in got["CreateVolumePermissions"]) == [account_id("b"), account_id("c")]
    assert describe_snapshot(b, snap)["SnapshotId"] == snap
    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission", OperationType="remove",
                                UserIds=[account_id("c")])
    assert permissions(a, snap) == [{"UserId": account_id("b")}]
    restore_refused(ec2("c"), snap)
    a.reset_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert permissions(a, snap) == []
    restore_refused(b, snap)
    p = server.cli("modify-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission",
                   "--operation-type", "add", "--user-ids", "2222", check=False)
    assert p.returncode != 0 and "InvalidParameterValue" in p.stderr


def test_invalid_user_id_is_refused(ec2):
    a = ec2("a")
    snap = snapshot_of(a, new_volume(a)["VolumeId"])["SnapshotId"]
    for bad in ("12345", "abcdefghijkl", "2222222222222"):
        with pytest.raises(ClientError) as e:
            a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                        CreateVolumePermission={"Add": [{"UserId": bad}]})
        assert error_code(e) == "InvalidParameterValue", bad
    with pytest.raises(ClientError) as e:
        a.modify_snapshot_attribute(SnapshotId="snap-0123456789abcdef0", Attribute="createVolumePermission",
                                    CreateVolumePermission={"Add": [{"UserId": account_id("b")}]})
    assert error_code(e) == "InvalidSnapshot.NotFound"
    assert permissions(a, snap) == []
