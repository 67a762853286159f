"""Volumes: CreateVolume, DescribeVolumes, DeleteVolume, ModifyVolume,
DescribeVolumesModifications and AttachVolume, against a real server."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, wait_until
from storage_helpers import (ZONE, describe_volume, new_volume, qemu_matches, qemu_write,
                             virtual_size, volume_path, wait_volume)

GIB = 1 << 30


def tag_spec(key, value, kind="volume"):
    return [{"ResourceType": kind, "Tags": [{"Key": key, "Value": value}]}]


def test_create_empty_volume_moves_to_available_with_its_file(ec2, server, unique):
    c = ec2()
    run = unique("vol")
    vol = c.create_volume(Size=1, AvailabilityZone="us-east-1b", VolumeType="gp3", Encrypted=True,
                          TagSpecifications=tag_spec("run", run))
    assert vol["VolumeId"].startswith("vol-") and len(vol["VolumeId"]) == 21
    assert vol["State"] == "creating"
    assert vol["Size"] == 1 and vol["AvailabilityZone"] == "us-east-1b"
    assert {"Key": "run", "Value": run} in vol["Tags"]
    got = wait_volume(c, vol["VolumeId"])
    assert got["VolumeType"] == "gp3" and got["Iops"] == 3000 and got["Throughput"] == 125
    assert got["Encrypted"] is True
    assert got.get("SnapshotId", "") == ""
    assert got["Attachments"] == []
    assert got["Tags"] == [{"Key": "run", "Value": run}]
    path = volume_path(server, vol["VolumeId"])
    assert path.exists()
    assert virtual_size(path) == GIB


def test_default_type_is_gp2_unencrypted(ec2):
    got = new_volume(ec2(), size=2)
    assert got["VolumeType"] == "gp2"
    assert got["Encrypted"] is False
    assert got["Iops"] == 100
    assert "Throughput" not in got


@pytest.mark.parametrize("kwargs, iops, throughput", [
    ({"VolumeType": "gp2", "Size": 50}, 150, None),             # 3 IOPS per GiB
    ({"VolumeType": "gp2", "Size": 1}, 100, None),              # at least 100
    ({"VolumeType": "gp3", "Size": 1, "Iops": 3000, "Throughput": 250}, 3000, 250),
    ({"VolumeType": "gp3", "Size": 10, "Iops": 5000}, 5000, 125),
    ({"VolumeType": "io1", "Size": 4, "Iops": 200}, 200, None),
    ({"VolumeType": "io2", "Size": 4, "Iops": 1000}, 1000, None),
    ({"VolumeType": "st1", "Size": 125}, None, None),
    ({"VolumeType": "sc1", "Size": 125}, None, None),
    ({"VolumeType": "standard", "Size": 1}, None, None),
])
def test_volume_type_rules_accept(ec2, kwargs, iops, throughput):
    c = ec2()
    vol = c.create_volume(AvailabilityZone="us-east-1a", **kwargs)
    assert vol["VolumeType"] == kwargs["VolumeType"]
    assert vol.get("Iops") == iops
    assert vol.get("Throughput") == throughput
    wait_volume(c, vol["VolumeId"])
    c.delete_volume(VolumeId=vol["VolumeId"])


@pytest.mark.parametrize("kwargs, code", [
    ({"VolumeType": "io1", "Size": 10}, "MissingParameter"),
    ({"VolumeType": "io2", "Size": 10}, "MissingParameter"),
    ({"VolumeType": "gp2", "Size": 10, "Iops": 300}, "InvalidParameterCombination"),
    ({"VolumeType": "st1", "Size": 100}, "InvalidParameterValue"),
    ({"VolumeType": "sc1", "Size": 1}, "InvalidParameterValue"),
    ({"VolumeType": "standard", "Size": 1025}, "InvalidParameterValue"),
    ({"VolumeType": "io1", "Size": 4, "Iops": 201}, "InvalidParameterValue"),   # 50:1 at most
    ({"VolumeType": "io1", "Size": 4, "Iops": 99}, "InvalidParameterValue"),
    ({"VolumeType": "gp3", "Size": 1, "Iops": 4000}, "InvalidParameterValue"),  # 500:1 at most
    ({"VolumeType": "gp3", "Size": 10, "Throughput": 2000}, "InvalidParameterValue"),
    ({"VolumeType": "gp2", "Size": 10, "Throughput": 200}, "InvalidParameterCombination"),
    ({"VolumeType": "gp9", "Size": 10}, "InvalidParameterValue"),
    ({"VolumeType": "gp2", "Size": 0}, "InvalidParameterValue"),
    ({"VolumeType": "gp2", "Size": 16385}, "InvalidParameterValue"),
    ({"VolumeType": "gp2", "Size": 4, "MultiAttachEnabled": True}, "InvalidParameterCombination"),
    ({"Size": 4, "KmsKeyId": "alias/aws/ebs"}, "InvalidParameterDependency"),
    ({"Size": 4, "KmsKeyId": "alias/aws/ebs", "Encrypted": False}, "InvalidParameterDependency"),
    ({"Size": 4, "TagSpecifications": [{"ResourceType": "volume", "Tags": []}]}, "InvalidParameterValue"),
])
def test_volume_type_rules_refuse(ec2, kwargs, code):
    c = ec2()
    before = {v["VolumeId"] for v in c.describe_volumes()["Volumes"]}
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", **kwargs)
    assert error_code(e) == code
    assert {v["VolumeId"] for v in c.describe_volumes()["Volumes"]} == before, "a refused volume was recorded"


def test_missing_size_is_refused(ec2):
    with pytest.raises(ClientError) as e:
        ec2().create_volume(AvailabilityZone="us-east-1a")
    assert error_code(e) == "MissingParameter"


@pytest.mark.parametrize("zone", ["us-east-1z", "eu-west-1a", "nowhere"])
def test_unknown_or_foreign_zone_is_refused(ec2, zone):
    with pytest.raises(ClientError) as e:
        ec2().create_volume(Size=1, AvailabilityZone=zone)
    assert error_code(e) == "InvalidParameterValue"
    assert zone in e.value.response["Error"]["Message"]


def test_client_token_makes_creation_idempotent(ec2, unique):
    c = ec2()
    token = unique("tok")
    first = c.create_volume(Size=1, AvailabilityZone="us-east-1a", ClientToken=token)
    again = c.create_volume(Size=1, AvailabilityZone="us-east-1a", ClientToken=token)
    assert again["VolumeId"] == first["VolumeId"]
    with pytest.raises(ClientError) as e:
        c.create_volume(Size=2, AvailabilityZone="us-east-1a", ClientToken=token)
    assert error_code(e) == "IdempotentParameterMismatch"
    # Another account's identical token is its own.
    other = ec2("b").create_volume(Size=1, AvailabilityZone="us-east-1a", ClientToken=token)
    assert other["VolumeId"] != first["VolumeId"]
    wait_volume(c, first["VolumeId"])
    wait_volume(ec2("b"), other["VolumeId"])


def test_describe_volumes_filters(ec2, unique):
    c = ec2()
    run = unique("filt")
    a = new_volume(c, size=1, AvailabilityZone="us-east-1a", VolumeType="gp3", TagSpecifications=tag_spec("run", run))
    b = new_volume(c, size=2, AvailabilityZone="us-east-1b", Encrypted=True,
                   TagSpecifications=[{"ResourceType": "volume",
                                       "Tags": [{"Key": "run", "Value": run}, {"Key": "role", "Value": "db"}]}])
    snap = c.create_snapshot(VolumeId=a["VolumeId"])["SnapshotId"]
    wait_until(lambda: c.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "completed")
    d = new_volume(c, size=None, AvailabilityZone="us-east-1a", SnapshotId=snap,
                   TagSpecifications=tag_spec("run", run))
    mine = {"Name": "tag:run", "Values": [run]}

    def ids(*filters):
        return sorted(v["VolumeId"] for v in c.describe_volumes(Filters=[mine, *filters])["Volumes"])

    assert ids() == sorted([a["VolumeId"], b["VolumeId"], d["VolumeId"]])
    assert ids({"Name": "volume-id", "Values": [b["VolumeId"]]}) == [b["VolumeId"]]
    assert ids({"Name": "size", "Values": ["2"]}) == [b["VolumeId"]]
    assert ids({"Name": "status", "Values": ["available"]}) == sorted([a["VolumeId"], b["VolumeId"], d["VolumeId"]])
    assert ids({"Name": "status", "Values": ["creating", "in-use"]}) == []
    assert ids({"Name": "availability-zone", "Values": ["us-east-1b"]}) == [b["VolumeId"]]
    assert ids({"Name": "volume-type", "Values": ["gp3"]}) == [a["VolumeId"]]
    assert ids({"Name": "volume-type", "Values": ["gp2"]}) == sorted([b["VolumeId"], d["VolumeId"]])
    assert ids({"Name": "snapshot-id", "Values": [snap]}) == [d["VolumeId"]]
    assert ids({"Name": "encrypted", "Values": ["true"]}) == [b["VolumeId"]]
    assert ids({"Name": "encrypted", "Values": ["false"]}) == sorted([a["VolumeId"], d["VolumeId"]])
    assert ids({"Name": "tag:role", "Values": ["db"]}) == [b["VolumeId"]]
    assert ids({"Name": "tag-key", "Values": ["role"]}) == [b["VolumeId"]]
    assert ids({"Name": "create-time", "Values": [a["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"]}) \
        == [a["VolumeId"]]
    assert ids({"Name": "attachment.instance-id", "Values": ["i-0123456789abcdef0"]}) == []
    assert d["SnapshotId"] == snap and d["Size"] == 1
    with pytest.raises(ClientError) as e:
        c.describe_volumes(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_volumes_pagination(ec2, unique):
    c = ec2()
    run = unique("page")
    made = [c.create_volume(Size=1, AvailabilityZone="us-east-1c", TagSpecifications=tag_spec("run", run))["VolumeId"]
            for _ in range(7)]
    for v in made:
        wait_volume(c, v)
    mine = [{"Name": "tag:run", "Values": [run]}]
    first = c.describe_volumes(Filters=mine, MaxResults=5)
    assert len(first["Volumes"]) == 5 and first.get("NextToken")
    second = c.describe_volumes(Filters=mine, MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Volumes"]) == 2 and not second.get("NextToken")
    seen = [v["VolumeId"] for v in first["Volumes"] + second["Volumes"]]
    assert sorted(seen) == sorted(made)
    pages = list(c.get_paginator("describe_volumes").paginate(Filters=mine, PaginationConfig={"PageSize": 5}))
    assert len(pages) == 2
    assert sorted(v["VolumeId"] for p in pages for v in p["Volumes"]) == sorted(made)
    for bad in (4, 501):
        with pytest.raises(ClientError) as e:
            c.describe_volumes(MaxResults=bad)
        assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_volumes(VolumeIds=made[:1], MaxResults=5)
    assert error_code(e) == "InvalidParameterCombination"
    with pytest.raises(ClientError) as e:
        c.describe_volumes(MaxResults=5, NextToken="garbage")
    assert error_code(e) in {"InvalidPaginationToken", "InvalidParameterValue"}


def test_describe_unknown_and_malformed_ids(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.describe_volumes(VolumeIds=["vol-0123456789abcdef0"])
    assert error_code(e) == "InvalidVolume.NotFound"
    assert "vol-0123456789abcdef0" in e.value.response["Error"]["Message"]
    for bad in ("vol-xyz", "snap-0123456789abcdef0", "volume"):
        with pytest.raises(ClientError) as e:
            c.describe_volumes(VolumeIds=[bad])
        assert error_code(e) == "InvalidVolumeID.Malformed", bad
    with pytest.raises(ClientError) as e:
        c.delete_volume(VolumeId="vol-0123456789abcdef0")
    assert error_code(e) == "InvalidVolume.NotFound"


def test_delete_volume_removes_record_and_file(ec2, server):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    path = volume_path(server, vol)
    assert path.exists()
    assert c.delete_volume(VolumeId=vol)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert not path.exists()
    with pytest.raises(ClientError) as e:
        c.describe_volumes(VolumeIds=[vol])
    assert error_code(e) == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        c.delete_volume(VolumeId=vol)
    assert error_code(e) == "InvalidVolume.NotFound"


def test_cli_create_describe_delete(server, unique):
    run = unique("cli")
    vol = server.cli("create-volume", "--size", "1", "--availability-zone", "us-east-1a", "--volume-type", "gp3",
                     "--tag-specifications", f"ResourceType=volume,Tags=[{{Key=run,Value={run}}}]")
    assert vol["State"] == "creating" and vol["VolumeType"] == "gp3"

    def available():
        got = server.cli("describe-volumes", "--filters", f"Name=tag:run,Values={run}")["Volumes"]
        return got and got[0]["State"] == "available" and got[0]
    got = wait_until(available, what="CLI volume")
    assert got["VolumeId"] == vol["VolumeId"] and got["Iops"] == 3000
    server.cli("delete-volume", "--volume-id", vol["VolumeId"])
    assert server.cli("describe-volumes", "--filters", f"Name=tag:run,Values={run}")["Volumes"] == []
    p = server.cli("describe-volumes", "--volume-ids", vol["VolumeId"], check=False)
    assert p.returncode != 0 and "InvalidVolume.NotFound" in p.stderr


def test_modify_volume_grows_the_file_and_keeps_data(ec2, server):
    c = ec2()
    vol = new_volume(c, size=1)["VolumeId"]
    path = volume_path(server, vol)
    qemu_write(path, 0x5c, 0, 4096)
    mod = c.modify_volume(VolumeId=vol, Size=2)["VolumeModification"]
    assert mod["VolumeId"] == vol and mod["OriginalSize"] == 1 and mod["TargetSize"] == 2
    assert mod["ModificationState"] in {"modifying", "optimizing", "completed"}
    assert virtual_size(path) == 2 * GIB
    assert describe_volume(c, vol)["Size"] == 2
    assert qemu_matches(path, 0x5c, 0, 4096)
    for smaller in (1,):
        with pytest.raises(ClientError) as e:
            c.modify_volume(VolumeId=vol, Size=smaller)
        assert error_code(e) == "InvalidParameterValue"
    assert virtual_size(path) == 2 * GIB


def test_modify_volume_type_is_recorded_and_described(ec2):
    c = ec2()
    vol = new_volume(c, size=1)["VolumeId"]
    mod = c.modify_volume(VolumeId=vol, VolumeType="gp3")["VolumeModification"]
    assert mod["OriginalVolumeType"] == "gp2" and mod["TargetVolumeType"] == "gp3"
    assert mod["TargetIops"] == 3000 and mod["TargetThroughput"] == 125
    got = describe_volume(c, vol)
    assert got["VolumeType"] == "gp3" and got["Iops"] == 3000 and got["Throughput"] == 125
    mods = c.describe_volumes_modifications(VolumeIds=[vol])["VolumesModifications"]
    assert len(mods) == 1
    assert mods[0]["VolumeId"] == vol
    assert mods[0]["OriginalVolumeType"] == "gp2" and mods[0]["TargetVolumeType"] == "gp3"
    assert mods[0]["ModificationState"] in {"modifying", "optimizing", "completed"}
    filtered = c.describe_volumes_modifications(
        Filters=[{"Name": "volume-id", "Values": [vol]}, {"Name": "target-volume-type", "Values": ["gp3"]}])
    assert [m["VolumeId"] for m in filtered["VolumesModifications"]] == [vol]
    with pytest.raises(ClientError) as e:
        c.modify_volume(VolumeId=vol, VolumeType="io1")  # io1 needs Iops
    assert error_code(e) in {"MissingParameter", "InvalidParameterValue"}
    with pytest.raises(ClientError) as e:
        c.modify_volume(VolumeId="vol-0123456789abcdef0", Size=5)
    assert error_code(e) == "InvalidVolume.NotFound"


def test_attach_to_unknown_instance(ec2):
    c = ec2()
    vol = new_volume(c)["VolumeId"]
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId=vol, InstanceId="i-0123456789abcdef0", Device="/dev/sdf")
    assert error_code(e) == "InvalidInstanceID.NotFound"
    assert describe_volume(c, vol)["State"] == "available"
    with pytest.raises(ClientError) as e:
        c.attach_volume(VolumeId="vol-0123456789abcdef0", InstanceId="i-0123456789abcdef0", Device="/dev/sdf")
    assert error_code(e) == "InvalidVolume.NotFound"


def test_accounts_cannot_touch_each_others_volumes(ec2, server):
    a, b = ec2("a"), ec2("b")
    vol = new_volume(a)["VolumeId"]
    assert vol not in {v["VolumeId"] for v in b.describe_volumes()["Volumes"]}
    calls = [
        lambda: b.describe_volumes(VolumeIds=[vol]),
        lambda: b.delete_volume(VolumeId=vol),
        lambda: b.modify_volume(VolumeId=vol, Size=5),
        lambda: b.create_snapshot(VolumeId=vol),
        lambda: b.attach_volume(VolumeId=vol, InstanceId="i-0123456789abcdef0", Device="/dev/sdf"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "InvalidVolume.NotFound"
    got = describe_volume(a, vol)
    assert got["Size"] == 1 and got["State"] == "available"
    assert volume_path(server, vol).exists()
    assert a.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"] == []
    assert b.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"] == []
    assert b.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vol]}])["Volumes"] == []


def test_volumes_are_regional(ec2, server):
    us, eu = ec2("a", "us-east-1"), ec2("a", "eu-west-1")
    vol = new_volume(us)["VolumeId"]
    with pytest.raises(ClientError) as e:
        eu.describe_volumes(VolumeIds=[vol])
    assert error_code(e) == "InvalidVolume.NotFound"
    assert vol not in {v["VolumeId"] for v in eu.describe_volumes()["Volumes"]}
    with pytest.raises(ClientError) as e:
        eu.delete_volume(VolumeId=vol)
    assert error_code(e) == "InvalidVolume.NotFound"
    euvol = new_volume(eu, region="eu-west-1")
    assert euvol["AvailabilityZone"] == ZONE["eu-west-1"]
    assert volume_path(server, euvol["VolumeId"], "eu-west-1").exists()
    assert not volume_path(server, euvol["VolumeId"], "us-east-1").exists()


def test_new_volumes_are_usable_as_soon_as_create_volume_returns(ec2, server):
    """What EC2 scripts and test suites do: use the volume with no wait, a hundred times."""
    from storage_helpers import wait_snapshot
    c = ec2()
    snaps = []
    for i in range(100):
        vol = c.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
        if i % 2 == 0:
            snaps.append(c.create_snapshot(VolumeId=vol)["SnapshotId"])
        else:
            c.delete_volume(VolumeId=vol)
            assert not volume_path(server, vol).exists()
    for snap in snaps[:5]:
        wait_snapshot(c, snap)
    # A volume from a snapshot whose base is already on the host is usable at once too.
    first = c.create_volume(SnapshotId=snaps[0], AvailabilityZone="us-east-1a")["VolumeId"]
    wait_volume(c, first)
    for _ in range(10):
        vol = c.create_volume(SnapshotId=snaps[0], AvailabilityZone="us-east-1a")["VolumeId"]
        assert describe_volume(c, vol)["State"] == "available"
        c.delete_volume(VolumeId=vol)


def test_a_volume_still_building_takes_snapshots_and_deletes(ec2, server):
    from storage_helpers import volume_with_data, wait_snapshot
    c = ec2()
    src = volume_with_data(c, server, [(0xA7, 0, 4 << 20)])
    snap = c.create_snapshot(VolumeId=src["VolumeId"])["SnapshotId"]
    wait_snapshot(c, snap)
    # The first volume from a new snapshot materialises its base in the background.
    vol = c.create_volume(SnapshotId=snap, AvailabilityZone="us-east-1a")["VolumeId"]
    again = c.create_snapshot(VolumeId=vol)["SnapshotId"]
    done = wait_snapshot(c, again)
    assert done["VolumeId"] == vol and done["FullSnapshotSizeInBytes"] == 8 * 512 * 1024
    wait_volume(c, vol)
    # Deleting one mid-build cancels it: the record goes at once and no file is left behind.
    snap2 = c.create_snapshot(VolumeId=src["VolumeId"], Description="second")["SnapshotId"]
    wait_snapshot(c, snap2)
    doomed = c.create_volume(SnapshotId=snap2, AvailabilityZone="us-east-1a")["VolumeId"]
    c.delete_volume(VolumeId=doomed)
    with pytest.raises(ClientError) as e:
        c.describe_volumes(VolumeIds=[doomed])
    assert error_code(e) == "InvalidVolume.NotFound"
    base = server.data_dir / "regions" / "us-east-1" / "bases" / f"{snap2}.raw"
    wait_until(base.exists, what="the cancelled build's base")
    # Built at once now that the base is there, by which time the cancelled build has ended.
    kept = c.create_volume(SnapshotId=snap2, AvailabilityZone="us-east-1a")["VolumeId"]
    assert describe_volume(c, kept)["State"] == "available"
    wait_until(lambda: not volume_path(server, doomed).exists(), what="the cancelled volume's file to go")
    assert volume_path(server, kept).exists()


def test_errors_say_what_ec2_says(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", Size=4, KmsKeyId="alias/aws/ebs")
    assert e.value.response["Error"]["Message"] == "The parameter KmsKeyId requires the parameter Encrypted to be set."
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", Size=4, VolumeType="gp2", Throughput=200)
    assert e.value.response["Error"]["Message"] == "throughput can only be specified for volumeType gp3."
    with pytest.raises(ClientError) as e:
        c.create_volume(AvailabilityZone="us-east-1a", Size=4, TagSpecifications=[{"ResourceType": "volume"}])
    assert e.value.response["Error"]["Message"] == "Tag specification must have at least one tag"
    encrypted = c.create_volume(AvailabilityZone="us-east-1a", Size=4, Encrypted=True, KmsKeyId="alias/aws/ebs")
    assert encrypted["Encrypted"] is True and encrypted["KmsKeyId"] == "alias/aws/ebs"
