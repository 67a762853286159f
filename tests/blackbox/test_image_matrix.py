"""The security test for images: three accounts × private/shared/public × every action that reads
or uses an image. Each cell is allowed or refused as EC2 does it:

- the owner may do everything;
- an account the image is shared with, or anyone for a public image, may see, launch and copy it,
  but may neither read nor change its attributes, nor use its snapshots for anything else;
- everyone else cannot tell the image exists.

Launch permission is checked without booting anything: `RunInstances` with a key pair that does
not exist fails on the image first when the image is refused, and on the key pair when it is not.
"""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, error_code, wait_until

BLOCK = 512 * 1024
A, B, C = (ACCOUNTS[k][0] for k in "abc")
GONE = "InvalidAMIID.NotFound"


def outcome(call):
    try:
        call()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"]


def make_image(server, name, visibility):
    ec2, ebs = server.client("a"), server.client("a", service="ebs")
    data = os.urandom(BLOCK)
    sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=data, DataLength=BLOCK,
                           Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(), ChecksumAlgorithm="SHA256")
    ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
    wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed")
    image = ec2.register_image(Name=name, RootDeviceName="/dev/xvda", Architecture="x86_64",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}])["ImageId"]
    if visibility == "shared":
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": B}]})
    elif visibility == "public":
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"Group": "all"}]})
    return image, sid


# Expected outcome per (visibility, account) for each action; "ok" or an EC2 error code.
MAY_USE = {("private", "a"), ("shared", "a"), ("shared", "b"), ("public", "a"), ("public", "b"), ("public", "c")}


def expect(visibility, account, owner_only=False, refused_code="AuthFailure"):
    if account == "a":
        return "ok"
    if (visibility, account) not in MAY_USE:
        return GONE
    return refused_code if owner_only else "ok"


@pytest.mark.parametrize("visibility", ["private", "shared", "public"])
def test_image_access_matrix(server, unique, visibility):
    image, snap = make_image(server, unique(f"matrix-{visibility}"), visibility)
    for account in "abc":
        ec2 = server.client(account)
        eu = server.client(account, "eu-west-1")
        results = {
            "describe by id": outcome(lambda: ec2.describe_images(ImageIds=[image])),
            "launch": outcome(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                                                        KeyName="matrix-no-such-key")),
            "copy to another region": outcome(lambda: eu.copy_image(SourceRegion="us-east-1", SourceImageId=image,
                                                                    Name=unique("copy"))),
            "read launch permissions": outcome(lambda: ec2.describe_image_attribute(ImageId=image,
                                                                                    Attribute="launchPermission")),
            "change description": outcome(lambda: ec2.modify_image_attribute(ImageId=image,
                                                                             Description={"Value": "mine"})),
            "create volume from its snapshot": outcome(lambda: ec2.create_volume(AvailabilityZone="us-east-1a",
                                                                                 SnapshotId=snap)),
            "describe its snapshot": outcome(lambda: ec2.describe_snapshots(SnapshotIds=[snap])),
        }
        # A refused launch names the image; an allowed one gets as far as the missing key pair.
        if results["launch"] == "InvalidKeyPair.NotFound":
            results["launch"] = "ok"
        expected = {
            "describe by id": expect(visibility, account),
            "launch": expect(visibility, account),
            "copy to another region": expect(visibility, account),
            "read launch permissions": expect(visibility, account, owner_only=True),
            "change description": expect(visibility, account, owner_only=True),
            "create volume from its snapshot": "ok" if account == "a" else "InvalidSnapshot.NotFound",
            "describe its snapshot": "ok" if account == "a" else "InvalidSnapshot.NotFound",
        }
        assert results == expected, f"account {account}, {visibility} image"

        # Listing: exactly what the account may launch.
        listed = {i["ImageId"] for i in ec2.describe_images(Owners=[A])["Images"]}
        assert (image in listed) == ((visibility, account) in MAY_USE), (account, visibility)
        # ExecutableUsers=self: images shared with the caller explicitly (not its own, not public ones).
        executable = {i["ImageId"] for i in ec2.describe_images(ExecutableUsers=["self"])["Images"]}
        assert (image in executable) == (visibility == "shared" and account == "b"), (account, visibility)
        everyone = {i["ImageId"] for i in ec2.describe_images(ExecutableUsers=["all"])["Images"]}
        assert (image in everyone) == (visibility == "public"), (account, visibility)
        [public] = [ec2.describe_images(ImageIds=[image])["Images"][0]["Public"]] if (visibility, account) in MAY_USE \
            else [visibility == "public"]
        assert public == (visibility == "public")


def test_a_recipient_can_drop_a_share(server, unique):
    image, _ = make_image(server, unique("dropped"), "shared")
    b = server.client("b")
    assert b.describe_images(ImageIds=[image])["Images"]
    b.cancel_image_launch_permission(ImageId=image)
    with pytest.raises(ClientError) as e:
        b.describe_images(ImageIds=[image])
    assert error_code(e) == GONE
    perms = server.client("a").describe_image_attribute(ImageId=image, Attribute="launchPermission")
    assert perms["LaunchPermissions"] == []
