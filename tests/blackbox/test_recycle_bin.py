"""The Recycle Bin: retention rules through the `rbin` API keep deregistered images and deleted
snapshots restorable until their retention ends, then they are purged for good."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from conftest import CONFIG, KilnServer, error_code, wait_until

BLOCK = 512 * 1024
# One retention "day" lasts two seconds here.
DAY = 2


@pytest.fixture(scope="module")
def server():
    s = KilnServer(config_text=f"recycle_bin_day_secs = {DAY}\ngc_grace_secs = 0\ngc_interval_secs = 1\n" + CONFIG)
    s.start()
    yield s
    s.cleanup()


def put(ebs, sid, index, data):
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=index, BlockData=data, DataLength=len(data),
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")


def snapshot(ebs, ec2):
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    put(ebs, sid, 0, os.urandom(BLOCK))
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed",
               what="the snapshot")
    return sid


def image(ec2, ebs, name):
    snap = snapshot(ebs, ec2)
    iid = ec2.register_image(Name=name, RootDeviceName="/dev/xvda", Architecture="x86_64",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}])["ImageId"]
    return iid, snap


def rule(rbin, resource_type, days):
    return rbin.create_rule(ResourceType=resource_type, Description="keep",
                            RetentionPeriod={"RetentionPeriodValue": days, "RetentionPeriodUnit": "DAYS"})


def image_ids(ec2):
    return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}


def test_rules_api(server):
    rbin = server.client("b", service="rbin")
    created = rule(rbin, "EC2_IMAGE", 7)
    rid = created["Identifier"]
    assert created["ResourceType"] == "EC2_IMAGE" and created["Status"] == "available"
    assert created["RetentionPeriod"] == {"RetentionPeriodValue": 7, "RetentionPeriodUnit": "DAYS"}
    assert [r["Identifier"] for r in rbin.list_rules(ResourceType="EC2_IMAGE")["Rules"]] == [rid]
    assert rbin.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"] == []
    got = rbin.get_rule(Identifier=rid)
    assert got["Description"] == "keep" and got["RuleArn"].endswith(f":222222222222:rule/{rid}")
    # Rules are per account and region.
    assert server.client("c", service="rbin").list_rules(ResourceType="EC2_IMAGE")["Rules"] == []
    assert server.client("b", "eu-west-1", service="rbin").list_rules(ResourceType="EC2_IMAGE")["Rules"] == []
    rbin.delete_rule(Identifier=rid)
    with pytest.raises(ClientError) as e:
        rbin.get_rule(Identifier=rid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        rbin.delete_rule(Identifier=rid)
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        rule(rbin, "VOLUME", 1)
    assert error_code(e) == "ValidationException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_without_a_rule_deletion_is_immediate(server):
    ec2, ebs = server.client("c"), server.client("c", service="ebs")
    iid, snap = image(ec2, ebs, "no-rule")
    ec2.deregister_image(ImageId=iid)
    assert ec2.list_images_in_recycle_bin()["Images"] == []
    with pytest.raises(ClientError) as e:
        ec2.restore_image_from_recycle_bin(ImageId=iid)
    assert error_code(e) == "InvalidAMIID.NotFound"
    ec2.delete_snapshot(SnapshotId=snap)
    assert ec2.list_snapshots_in_recycle_bin()["Snapshots"] == []
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_deregistered_image_and_deleted_snapshot_are_restorable(server):
    ec2, ebs, rbin = server.client("a"), server.client("a", service="ebs"), server.client("a", service="rbin")
    rule(rbin, "EC2_IMAGE", 3650)
    rule(rbin, "EBS_SNAPSHOT", 3650)
    iid, snap = image(ec2, ebs, "binned-image")
    ec2.deregister_image(ImageId=iid)
    assert iid not in image_ids(ec2)
    listed = ec2.list_images_in_recycle_bin(ImageIds=[iid])["Images"]
    assert [i["ImageId"] for i in listed] == [iid] and listed[0]["Name"] == "binned-image"
    stay = (listed[0]["RecycleBinExitTime"] - listed[0]["RecycleBinEnterTime"]).total_seconds()
    assert abs(stay - 3650 * DAY) <= 1
    # The binned image keeps its snapshot in use.
    with pytest.raises(ClientError) as e:
        ec2.delete_snapshot(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.InUse"
    assert ec2.restore_image_from_recycle_bin(ImageId=iid)["Return"] is True
    assert iid in image_ids(ec2)
    assert ec2.list_images_in_recycle_bin()["Images"] == []
    with pytest.raises(ClientError) as e:
        ec2.restore_image_from_recycle_bin(ImageId=iid)
    assert error_code(e) == "InvalidAMIID.NotFound"

    # Snapshots: deleted into the bin, restored with their blocks.
    ec2.deregister_image(ImageId=iid)
    other = snapshot(ebs, ec2)
    ec2.delete_snapshot(SnapshotId=other)
    with pytest.raises(ClientError) as e:
        ec2.describe_snapshots(SnapshotIds=[other])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    binned = ec2.list_snapshots_in_recycle_bin(SnapshotIds=[other])["Snapshots"]
    assert [s["SnapshotId"] for s in binned] == [other] and binned[0]["VolumeId"] == "vol-ffffffff"
    restored = ec2.restore_snapshot_from_recycle_bin(SnapshotId=other)
    assert restored["SnapshotId"] == other and restored["State"] == "completed" and restored["VolumeSize"] == 1
    assert ec2.describe_snapshots(SnapshotIds=[other])["Snapshots"][0]["State"] == "completed"
    assert len(ebs.list_snapshot_blocks(SnapshotId=other)["Blocks"]) == 1
    assert ec2.restore_image_from_recycle_bin(ImageId=iid)["Return"] is True


def test_expired_items_are_purged_for_good(server):
    region = "eu-west-1"
    ec2, ebs = server.client("a", region), server.client("a", region, service="ebs")
    rbin = server.client("a", region, service="rbin")
    chunks = server.data_dir / "regions" / region / "chunks" / "chunks"
    count = lambda: sum(1 for p in chunks.rglob("*") if p.is_file())  # noqa: E731
    iid, snap = image(ec2, ebs, "short-lived")
    loose = snapshot(ebs, ec2)
    assert count() == 2
    rule(rbin, "EC2_IMAGE", 1)
    rule(rbin, "EBS_SNAPSHOT", 2)
    ec2.deregister_image(ImageId=iid)
    ec2.delete_snapshot(SnapshotId=loose)
    assert [i["ImageId"] for i in ec2.list_images_in_recycle_bin()["Images"]] == [iid]
    assert [s["SnapshotId"] for s in ec2.list_snapshots_in_recycle_bin()["Snapshots"]] == [loose]
    # Binned chunks stay referenced: two whole collection passes after the deletes keep them.
    passes = lambda: server.log_path.read_text().count("garbage collection pass region=eu-west-1")  # noqa: E731
    seen = passes()
    wait_until(lambda: passes() >= seen + 2, timeout=10, what="two garbage collection passes")
    assert count() == 2
    wait_until(lambda: ec2.list_images_in_recycle_bin()["Images"] == [], timeout=10, what="the image to expire")
    with pytest.raises(ClientError) as e:
        ec2.restore_image_from_recycle_bin(ImageId=iid)
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert iid not in image_ids(ec2)
    # With the image gone for good, its snapshot is free to delete (into the bin in turn).
    ec2.delete_snapshot(SnapshotId=snap)
    wait_until(lambda: ec2.list_snapshots_in_recycle_bin()["Snapshots"] == [], timeout=15,
               what="the snapshots to expire")
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=loose)
    assert error_code(e) == "InvalidSnapshot.NotFound"
    # Garbage collection reclaims the purged snapshots' chunks.
    wait_until(lambda: count() == 0, timeout=30, what="garbage collection")
