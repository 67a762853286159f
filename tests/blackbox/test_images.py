"""Images: RegisterImage, DescribeImages, DeregisterImage, the image attributes and who may
see and launch what."""

import re

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, error_code
from storage_helpers import account_id, describe_snapshot, new_volume, snapshot_of

A, B, C = account_id("a"), account_id("b"), account_id("c")


def make_snapshot(c, region="us-east-1"):
    return snapshot_of(c, new_volume(c, size=1, region=region)["VolumeId"])["SnapshotId"]


@pytest.fixture(scope="module")
def snaps(server):
    """One completed snapshot per (account, region) the tests register images from."""
    out = {}
    for account in ("a", "b"):
        for region in ("us-east-1", "eu-west-1"):
            out[(account, region)] = make_snapshot(server.client(account, region), region)
    return out


def register(c, name, snap, **kw):
    kw.setdefault("RootDeviceName", "/dev/xvda")
    kw.setdefault("BlockDeviceMappings", [{"DeviceName": kw["RootDeviceName"], "Ebs": {"SnapshotId": snap}}])
    return c.register_image(Name=name, **kw)["ImageId"]


def describe_image(c, image_id):
    return c.describe_images(ImageIds=[image_id])["Images"][0]


def visible(c, image_id, **kw):
    return image_id in {i["ImageId"] for i in c.describe_images(**kw)["Images"]}


def test_register_ebs_image_with_every_mapping_kind(ec2, snaps, unique):
    c = ec2()
    name = unique("full image")
    snap = snaps[("a", "us-east-1")]
    image = c.register_image(
        Name=name, Description="the works", Architecture="arm64", RootDeviceName="/dev/xvda",
        VirtualizationType="hvm", BootMode="uefi", EnaSupport=True, ImdsSupport="v2.0",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda",
             "Ebs": {"SnapshotId": snap, "VolumeSize": 2, "VolumeType": "gp3", "DeleteOnTermination": False}},
            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
            {"DeviceName": "/dev/sdc", "NoDevice": ""},
        ],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "team", "Value": "a"}]}],
    )["ImageId"]
    assert re.fullmatch(r"ami-[0-9a-f]{17}", image)
    got = describe_image(c, image)
    assert got["Name"] == name and got["Description"] == "the works"
    assert got["State"] == "available" and got["OwnerId"] == A and got["Public"] is False
    assert got["Architecture"] == "arm64" and got["ImageType"] == "machine"
    assert got["RootDeviceType"] == "ebs" and got["RootDeviceName"] == "/dev/xvda"
    assert got["VirtualizationType"] == "hvm" and got["BootMode"] == "uefi"
    assert got["EnaSupport"] is True and got["ImdsSupport"] == "v2.0"
    assert "Platform" not in got and got["PlatformDetails"] == "Linux/UNIX"
    assert got["Tags"] == [{"Key": "team", "Value": "a"}]
    bdm = {m["DeviceName"]: m for m in got["BlockDeviceMappings"]}
    assert set(bdm) == {"/dev/xvda", "/dev/sdb", "/dev/sdc"}
    ebs = bdm["/dev/xvda"]["Ebs"]
    assert ebs["SnapshotId"] == snap and ebs["VolumeSize"] == 2 and ebs["VolumeType"] == "gp3"
    assert ebs["DeleteOnTermination"] is False
    assert bdm["/dev/sdb"]["VirtualName"] == "ephemeral0" and "Ebs" not in bdm["/dev/sdb"]
    assert "NoDevice" in bdm["/dev/sdc"] and "Ebs" not in bdm["/dev/sdc"]


def test_register_defaults(ec2, snaps, unique):
    c = ec2()
    image = register(c, unique("defaults"), snaps[("a", "us-east-1")])
    got = describe_image(c, image)
    assert got["Architecture"] == "x86_64" and got["VirtualizationType"] == "hvm"
    ebs = got["BlockDeviceMappings"][0]["Ebs"]
    assert ebs["SnapshotId"] == snaps[("a", "us-east-1")]
    assert ebs["DeleteOnTermination"] is True
    assert "ImdsSupport" not in got


@pytest.mark.parametrize("arch", ["x86_64", "arm64", "i386"])
def test_architectures(ec2, snaps, unique, arch):
    c = ec2()
    image = register(c, unique(arch), snaps[("a", "us-east-1")], Architecture=arch)
    assert describe_image(c, image)["Architecture"] == arch


@pytest.mark.parametrize("kwargs", [
    {"Architecture": "sparc"},
    {"BootMode": "bios"},
    {"ImdsSupport": "v1.0"},
    {"VirtualizationType": "container"},
])
def test_invalid_enumerations_are_refused(ec2, snaps, unique, kwargs):
    c = ec2()
    name = unique("bad-enum")
    with pytest.raises(ClientError) as e:
        register(c, name, snaps[("a", "us-east-1")], **kwargs)
    assert error_code(e) == "InvalidParameterValue"
    assert c.describe_images(Filters=[{"Name": "name", "Values": [name]}])["Images"] == []


def test_names_are_unique_per_account_and_region(ec2, snaps, unique):
    name = unique("dup")
    first = register(ec2("a"), name, snaps[("a", "us-east-1")])
    with pytest.raises(ClientError) as e:
        register(ec2("a"), name, snaps[("a", "us-east-1")])
    assert error_code(e) == "InvalidAMIName.Duplicate"
    assert name in e.value.response["Error"]["Message"]
    other_account = register(ec2("b"), name, snaps[("b", "us-east-1")])
    other_region = register(ec2("a", "eu-west-1"), name, snaps[("a", "eu-west-1")])
    assert len({first, other_account, other_region}) == 3
    # Once deregistered, the name is free again.
    ec2("a").deregister_image(ImageId=first)
    register(ec2("a"), name, snaps[("a", "us-east-1")])


@pytest.mark.parametrize("name", ["bad*name", "a" * 129, "tab\there", "semi;colon"])
def test_malformed_names(ec2, snaps, name):
    with pytest.raises(ClientError) as e:
        register(ec2(), name, snaps[("a", "us-east-1")])
    assert error_code(e) == "InvalidAMIName.Malformed"


def test_too_short_name(server, snaps):
    # botocore itself refuses names under 3 characters, so send it unvalidated.
    _, _, key, secret = ACCOUNTS["a"]
    c = boto3.client("ec2", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id=key,
                     aws_secret_access_key=secret,
                     config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        register(c, "ab", snaps[("a", "us-east-1")])
    assert error_code(e) == "InvalidAMIName.Malformed"


def test_allowed_name_characters(ec2, snaps, unique):
    name = unique("ok (v1) [x] @2026_01.02/a'b")
    image = register(ec2(), name, snaps[("a", "us-east-1")])
    assert describe_image(ec2(), image)["Name"] == name


def test_root_device_must_map_a_snapshot(ec2, snaps, unique):
    c = ec2()
    snap = snaps[("a", "us-east-1")]
    bad = [
        [{"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": snap}}],
        [{"DeviceName": "/dev/xvda", "VirtualName": "ephemeral0"}],
        [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    ]
    for mappings in bad:
        with pytest.raises(ClientError) as e:
            c.register_image(Name=unique("noroot"), RootDeviceName="/dev/xvda", BlockDeviceMappings=mappings)
        assert error_code(e) == "InvalidBlockDeviceMapping", mappings
    with pytest.raises(ClientError) as e:
        c.register_image(Name=unique("small"), RootDeviceName="/dev/xvda",
                         BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap, "VolumeSize": 0}}])
    assert error_code(e) in {"InvalidBlockDeviceMapping", "InvalidParameterValue"}
    with pytest.raises(ClientError) as e:
        c.register_image(Name=unique("twice"), RootDeviceName="/dev/xvda",
                         BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}},
                                              {"DeviceName": "/dev/xvda", "VirtualName": "ephemeral0"}])
    assert error_code(e) == "InvalidBlockDeviceMapping"
    with pytest.raises(ClientError) as e:
        register(c, unique("ghost"), "snap-0123456789abcdef0")
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_another_accounts_snapshot_needs_sharing(ec2, unique):
    a, b = ec2("a"), ec2("b")
    snap = make_snapshot(a)
    with pytest.raises(ClientError) as e:
        register(b, unique("borrowed"), snap)
    assert error_code(e) == "InvalidSnapshot.NotFound"
    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                CreateVolumePermission={"Add": [{"UserId": B}]})
    image = register(b, unique("borrowed"), snap)
    got = describe_image(b, image)
    assert got["OwnerId"] == B and got["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == snap
    # a's snapshot is now in use by b's image.
    with pytest.raises(ClientError) as e:
        a.delete_snapshot(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.InUse"


def test_instance_store_image_from_a_snapshot_location(ec2, snaps, unique):
    c = ec2()
    snap = make_snapshot(c)
    image = c.register_image(Name=unique("instore"), ImageLocation=f"kiln:snapshot/{snap}")["ImageId"]
    got = describe_image(c, image)
    assert got["RootDeviceType"] == "instance-store"
    assert got["ImageLocation"] == f"kiln:snapshot/{snap}"
    assert image in {i["ImageId"] for i in c.describe_images(
        Filters=[{"Name": "root-device-type", "Values": ["instance-store"]}], Owners=["self"])["Images"]}
    with pytest.raises(ClientError) as e:
        c.delete_snapshot(SnapshotId=snap)
    assert error_code(e) == "InvalidSnapshot.InUse"
    with pytest.raises(ClientError) as e:
        c.register_image(Name=unique("instore"), ImageLocation="kiln:snapshot/snap-0123456789abcdef0")
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_describe_images_filters_and_pages(ec2, snaps, unique):
    c = ec2()
    run = unique("run")
    snap = snaps[("a", "us-east-1")]
    other = make_snapshot(c)
    tags = [{"ResourceType": "image", "Tags": [{"Key": "run", "Value": run}]}]
    made = []
    for i in range(6):
        kw = {"TagSpecifications": tags, "Description": f"image {i}",
              "Architecture": "arm64" if i % 2 else "x86_64"}
        if i == 5:
            kw["BlockDeviceMappings"] = [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": other, "VolumeSize": 3}}]
            kw["RootDeviceName"] = "/dev/sda1"
        made.append(register(c, f"{run}-img-{i}", snap, **kw))
    mine = {"Name": "tag:run", "Values": [run]}

    def ids(*filters, **kw):
        return sorted(i["ImageId"] for i in c.describe_images(Filters=[mine, *filters], **kw)["Images"])

    everything = sorted(made)
    assert ids() == everything
    assert ids(Owners=["self"]) == everything
    assert ids(Owners=[A]) == everything
    assert ids(Owners=[B]) == []
    assert ids({"Name": "name", "Values": [f"{run}-img-*"]}) == everything
    assert ids({"Name": "name", "Values": [f"{run}-img-?"]}) == everything
    assert ids({"Name": "name", "Values": [f"{run}-img-3"]}) == [made[3]]
    assert ids({"Name": "name", "Values": [f"*-img-1"]}) == [made[1]]
    assert ids({"Name": "image-id", "Values": [made[2], made[4]]}) == sorted([made[2], made[4]])
    assert ids({"Name": "owner-id", "Values": [A]}) == everything
    assert ids({"Name": "state", "Values": ["available"]}) == everything
    assert ids({"Name": "architecture", "Values": ["arm64"]}) == sorted(made[1::2])
    assert ids({"Name": "root-device-type", "Values": ["ebs"]}) == everything
    assert ids({"Name": "root-device-type", "Values": ["instance-store"]}) == []
    assert ids({"Name": "virtualization-type", "Values": ["hvm"]}) == everything
    assert ids({"Name": "is-public", "Values": ["false"]}) == everything
    assert ids({"Name": "is-public", "Values": ["true"]}) == []
    assert ids({"Name": "platform", "Values": ["windows"]}) == []
    assert ids({"Name": "description", "Values": ["image 4"]}) == [made[4]]
    assert ids({"Name": "block-device-mapping.snapshot-id", "Values": [other]}) == [made[5]]
    assert ids({"Name": "block-device-mapping.volume-size", "Values": ["3"]}) == [made[5]]
    assert ids({"Name": "block-device-mapping.device-name", "Values": ["/dev/sda1"]}) == [made[5]]
    assert ids({"Name": "image-type", "Values": ["machine"]}) == everything
    assert ids({"Name": "image-type", "Values": ["kernel"]}) == []
    assert ids({"Name": "tag:run", "Values": ["other"]}) == []
    assert ids({"Name": "tag-key", "Values": ["run"]}) == everything

    first = c.describe_images(Filters=[mine], MaxResults=5)
    assert len(first["Images"]) == 5 and first.get("NextToken")
    second = c.describe_images(Filters=[mine], MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Images"]) == 1 and not second.get("NextToken")
    assert sorted(i["ImageId"] for i in first["Images"] + second["Images"]) == everything
    pages = list(c.get_paginator("describe_images").paginate(Filters=[mine], PaginationConfig={"PageSize": 5}))
    assert sorted(i["ImageId"] for p in pages for i in p["Images"]) == everything

    got = c.describe_images(ImageIds=made[:2])["Images"]
    assert sorted(i["ImageId"] for i in got) == sorted(made[:2])


def test_describe_images_cli(server, ec2, snaps, unique):
    name = unique("cli-img")
    image = register(ec2(), name, snaps[("a", "us-east-1")])
    got = server.cli("describe-images", "--owners", "self", "--filters", f"Name=name,Values={name}")
    assert [i["ImageId"] for i in got["Images"]] == [image]


def test_unknown_and_malformed_image_ids(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.describe_images(ImageIds=["ami-0123456789abcdef0"])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert e.value.response["Error"]["Message"] == "The image id '[ami-0123456789abcdef0]' does not exist"
    for bad in ("ami-zz", "image-1", "snap-0123456789abcdef0"):
        with pytest.raises(ClientError) as e:
            c.describe_images(ImageIds=[bad])
        assert error_code(e) == "InvalidAMIID.Malformed", bad
    with pytest.raises(ClientError) as e:
        c.deregister_image(ImageId="ami-0123456789abcdef0")
    assert error_code(e) == "InvalidAMIID.NotFound"


def test_deregister_image(ec2, snaps, unique):
    c = ec2()
    image = register(c, unique("gone"), snaps[("a", "us-east-1")])
    with pytest.raises(ClientError) as e:
        ec2("b").deregister_image(ImageId=image)
    assert error_code(e) == "InvalidAMIID.NotFound"
    c.deregister_image(ImageId=image)
    assert not visible(c, image, Owners=["self"])
    with pytest.raises(ClientError) as e:
        c.describe_images(ImageIds=[image])
    assert error_code(e) == "InvalidAMIID.NotFound"
    # Without DeleteAssociatedSnapshots the snapshot stays.
    assert describe_snapshot(c, snaps[("a", "us-east-1")])["State"] == "completed"


def test_deregister_deletes_associated_snapshots_unless_shared_by_another_image(ec2, unique):
    c = ec2()
    own = make_snapshot(c)
    shared = make_snapshot(c)
    image = c.register_image(
        Name=unique("with-snaps"), RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": own}},
                             {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": shared}}])["ImageId"]
    keeper = register(c, unique("keeper"), shared)
    out = c.deregister_image(ImageId=image, DeleteAssociatedSnapshots=True)
    assert out["Return"] is True
    results = {r["SnapshotId"]: r["ReturnCode"] for r in out["DeleteSnapshotResults"]}
    assert results[own] == "success"
    assert results[shared] == "skipped"
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=[own])
    assert error_code(e) == "InvalidSnapshot.NotFound"
    assert describe_snapshot(c, shared)["State"] == "completed"
    assert describe_image(c, keeper)["State"] == "available"
    # The last image using it takes it along.
    out = c.deregister_image(ImageId=keeper, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"] == [{"SnapshotId": shared, "ReturnCode": "success"}]
    with pytest.raises(ClientError) as e:
        c.describe_snapshots(SnapshotIds=[shared])
    assert error_code(e) == "InvalidSnapshot.NotFound"


def test_deregister_keeps_snapshots_of_other_accounts(ec2, unique):
    a, b = ec2("a"), ec2("b")
    snap = make_snapshot(a)
    a.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                CreateVolumePermission={"Add": [{"UserId": B}]})
    image = register(b, unique("not-mine"), snap)
    out = b.deregister_image(ImageId=image, DeleteAssociatedSnapshots=True)
    assert [r["SnapshotId"] for r in out["DeleteSnapshotResults"]] == [snap]
    assert out["DeleteSnapshotResults"][0]["ReturnCode"] != "success"
    assert describe_snapshot(a, snap)["State"] == "completed"


def attr(c, image, name):
    return c.describe_image_attribute(ImageId=image, Attribute=name)


def test_image_attributes(ec2, server, snaps, unique):
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    snap = snaps[("a", "us-east-1")]
    image = register(a, unique("attrs"), snap, Description="first")
    assert attr(a, image, "description")["Description"] == {"Value": "first"}
    bdm = attr(a, image, "blockDeviceMapping")["BlockDeviceMappings"]
    assert bdm[0]["DeviceName"] == "/dev/xvda" and bdm[0]["Ebs"]["SnapshotId"] == snap
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == []
    with pytest.raises(ClientError) as e:
        attr(b, image, "description")
    assert error_code(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        attr(a, image, "nonsense")
    assert error_code(e) == "InvalidParameterValue"

    a.modify_image_attribute(ImageId=image, Description={"Value": "second"})
    assert attr(a, image, "description")["Description"] == {"Value": "second"}
    assert describe_image(a, image)["Description"] == "second"

    a.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": B}]})
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == [{"UserId": B}]
    # b sees the image but not who else may launch it, and may not change it.
    assert attr(b, image, "description")["Description"] == {"Value": "second"}
    with pytest.raises(ClientError) as e:
        attr(b, image, "launchPermission")
    assert error_code(e) == "AuthFailure"
    with pytest.raises(ClientError) as e:
        b.modify_image_attribute(ImageId=image, Description={"Value": "hijack"})
    assert error_code(e) == "AuthFailure"
    with pytest.raises(ClientError) as e:
        b.deregister_image(ImageId=image)
    assert error_code(e) == "AuthFailure"
    with pytest.raises(ClientError) as e:
        attr(c, image, "launchPermission")
    assert error_code(e) == "InvalidAMIID.NotFound"

    a.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    assert sorted(attr(a, image, "launchPermission")["LaunchPermissions"], key=str) == \
        sorted([{"UserId": B}, {"Group": "all"}], key=str)
    a.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"Group": "all"}, {"UserId": B}]})
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == []

    # The AWS CLI's shorthand and its legacy flags.
    server.cli("modify-image-attribute", "--image-id", image, "--launch-permission", f"Add=[{{UserId={B}}}]")
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == [{"UserId": B}]
    server.cli("modify-image-attribute", "--image-id", image, "--attribute", "launchPermission",
               "--operation-type", "add", "--user-ids", C)
    assert sorted(p["UserId"] for p in attr(a, image, "launchPermission")["LaunchPermissions"]) == [B, C]
    assert describe_image(c, image)["ImageId"] == image
    got = server.cli("describe-image-attribute", "--image-id", image, "--attribute", "launchPermission")
    assert sorted(p["UserId"] for p in got["LaunchPermissions"]) == [B, C]

    a.reset_image_attribute(ImageId=image, Attribute="launchPermission")
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == []
    assert not visible(b, image)
    with pytest.raises(ClientError) as e:
        a.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": "12345"}]})
    assert error_code(e) == "InvalidParameterValue"
    assert attr(a, image, "launchPermission")["LaunchPermissions"] == []


def test_visibility_matrix(ec2, snaps, unique):
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    image = register(a, unique("matrix"), snaps[("a", "us-east-1")])
    for other in (b, c):
        with pytest.raises(ClientError) as e:
            other.describe_images(ImageIds=[image])
        assert error_code(e) == "InvalidAMIID.NotFound"
        assert not visible(other, image, Owners=[A])
        assert not visible(other, image)
        assert not visible(other, image, ExecutableUsers=["all"])

    a.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": B}]})
    assert describe_image(b, image)["Public"] is False
    assert visible(b, image, Owners=[A])
    assert visible(b, image, ExecutableUsers=["self"])
    assert visible(b, image, ExecutableUsers=[B])
    assert not visible(b, image, Owners=["self"])
    assert not visible(b, image, ExecutableUsers=["all"])
    assert visible(a, image, ExecutableUsers=[B])
    assert not visible(a, image, ExecutableUsers=[C])
    assert not visible(a, image, ExecutableUsers=["self"]), "the owner's own images are not 'shared with self'"
    assert not visible(a, image, ExecutableUsers=[A]), "an own account id means the same as self"
    assert not visible(b, image, ExecutableUsers=[A]), "an image owned by A is not shared with A"
    with pytest.raises(ClientError) as e:
        c.describe_images(ImageIds=[image])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert not visible(c, image, Owners=[A])

    a.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    for who in (a, b, c):
        got = describe_image(who, image)
        assert got["Public"] is True and got["OwnerId"] == A
        assert visible(who, image, ExecutableUsers=["all"])
        assert visible(who, image, Owners=[A])
    assert visible(c, image, Filters=[{"Name": "is-public", "Values": ["true"]}])
    assert not visible(c, image, Owners=["self"])

    a.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"Group": "all"}]})
    with pytest.raises(ClientError) as e:
        c.describe_images(ImageIds=[image])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert visible(b, image)


def test_images_are_regional(ec2, snaps, unique):
    us, eu = ec2("a", "us-east-1"), ec2("a", "eu-west-1")
    image = register(us, unique("regional"), snaps[("a", "us-east-1")])
    with pytest.raises(ClientError) as e:
        eu.describe_images(ImageIds=[image])
    assert error_code(e) == "InvalidAMIID.NotFound"
    assert not visible(eu, image, Owners=["self"])
    with pytest.raises(ClientError) as e:
        eu.deregister_image(ImageId=image)
    assert error_code(e) == "InvalidAMIID.NotFound"
    # A snapshot of another region cannot back an image here.
    with pytest.raises(ClientError) as e:
        register(eu, unique("cross"), snaps[("a", "us-east-1")])
    assert error_code(e) == "InvalidSnapshot.NotFound"
