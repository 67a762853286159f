"""Per-account quotas from the `[quotas]` configuration section: images per region (RegisterImage,
CopyImage), public images per region and accounts an image is shared with (ModifyImageAttribute).
No VM is booted: images are registered over snapshots written through the EBS direct API."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, CONFIG, KilnServer, error_code, wait_until

BLOCK = 512 * 1024
B = ACCOUNTS["b"][0]
QUOTAS = "\n[quotas]\nimages_per_region = 2\npublic_images_per_region = 1\nlaunch_permission_targets_per_image = 2\n"


@pytest.fixture(scope="module")
def server():
    s = KilnServer(config_text=CONFIG + QUOTAS).start()
    yield s
    s.cleanup()


def snapshot(server, account="a"):
    """A completed one-block snapshot written through the EBS direct API."""
    ec2, ebs = server.client(account), server.client(account, service="ebs")
    data = os.urandom(BLOCK)
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=data, DataLength=BLOCK,
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed",
               what="the snapshot")
    return sid


def register(ec2, name, sid):
    return ec2.register_image(Name=name, RootDeviceName="/dev/xvda", Architecture="x86_64",
                              BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}])["ImageId"]


def refused(call, *args, **kw):
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    assert error_code(e) == "ResourceLimitExceeded", e.value.response["Error"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e.value.response["Error"]["Message"]


def test_images_per_region_limits_register_and_copy(server):
    a, a_eu, b = server.client("a"), server.client("a", "eu-west-1"), server.client("b")
    sid = snapshot(server)
    first = register(a, "quota-one", sid)
    register(a, "quota-two", sid)
    message = refused(register, a, "quota-three", sid)
    assert "quota of 2" in message and "images" in message
    refused(a.copy_image, SourceRegion="us-east-1", SourceImageId=first, Name="quota-copy")
    assert "quota-three" not in {i["Name"] for i in a.describe_images(Owners=["self"])["Images"]}

    # The quota is per account and per region: a copy into another region and another account's
    # images still fit.
    copy = a_eu.copy_image(SourceRegion="us-east-1", SourceImageId=first, Name="quota-copy")["ImageId"]
    wait_until(lambda: a_eu.describe_images(ImageIds=[copy])["Images"][0]["State"] == "available",
               what="the copy")
    register(b, "quota-b-one", snapshot(server, "b"))

    # Deregistering frees a place.
    a.deregister_image(ImageId=first)
    register(a, "quota-three", sid)
    refused(register, a, "quota-four", sid)


def test_public_images_and_share_targets_are_limited(server):
    # Account c, so the image count of the other test does not interfere.
    c = server.client("c")
    sid = snapshot(server, "c")
    one, two = register(c, "public-one", sid), register(c, "public-two", sid)

    c.modify_image_attribute(ImageId=one, LaunchPermission={"Add": [{"Group": "all"}]})
    message = refused(c.modify_image_attribute, ImageId=two, LaunchPermission={"Add": [{"Group": "all"}]})
    assert "public images" in message
    # The legacy form is refused alike; the AWS CLI shows the code.
    refused(c.modify_image_attribute, ImageId=two, Attribute="launchPermission", OperationType="add",
            UserGroups=["all"])
    p = server.cli("modify-image-attribute", "--image-id", two, "--launch-permission", "Add=[{Group=all}]",
                   account="c", check=False)
    assert p.returncode != 0 and "ResourceLimitExceeded" in p.stderr
    assert c.describe_images(ImageIds=[two])["Images"][0]["Public"] is False
    # Making the first private frees the place.
    c.modify_image_attribute(ImageId=one, LaunchPermission={"Remove": [{"Group": "all"}]})
    c.modify_image_attribute(ImageId=two, LaunchPermission={"Add": [{"Group": "all"}]})

    # Two accounts per image; public does not count as one.
    c.modify_image_attribute(ImageId=two, LaunchPermission={"Add": [{"UserId": B}, {"UserId": "444444444444"}]})
    message = refused(c.modify_image_attribute, ImageId=two, LaunchPermission={"Add": [{"UserId": "555555555555"}]})
    assert "shared with" in message
    refused(c.modify_image_attribute, ImageId=one,
            LaunchPermission={"Add": [{"UserId": B}, {"UserId": "444444444444"}, {"UserId": "555555555555"}]})
    # Swapping one account for another keeps the count.
    c.modify_image_attribute(ImageId=two, LaunchPermission={"Add": [{"UserId": "555555555555"}],
                                                          "Remove": [{"UserId": "444444444444"}]})
    perms = c.describe_image_attribute(ImageId=two, Attribute="launchPermission")["LaunchPermissions"]
    assert sorted(perms, key=str) == sorted([{"Group": "all"}, {"UserId": B}, {"UserId": "555555555555"}], key=str)


def test_unknown_quota_keys_stop_the_server():
    s = KilnServer(config_text=CONFIG + "\n[quotas]\nimages = 3\n")
    try:
        with pytest.raises(RuntimeError, match="unknown field"):
            s.start()
    finally:
        s.cleanup()
