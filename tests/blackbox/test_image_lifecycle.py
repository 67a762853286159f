"""Image and snapshot lifecycle: cancelling a share, block public access for images and
snapshots, deprecation, disabling, deregistration protection, the last launch time, and
DeregisterImage keeping snapshots other images use. No VM is booted: launches are only
checked up to the point where RunInstances refuses them."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, wait_until
from storage_helpers import account_id, describe_snapshot, new_volume, snapshot_of

A, B, C = account_id("a"), account_id("b"), account_id("c")
EC2_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def make_snapshot(c, region="us-east-1"):
    return snapshot_of(c, new_volume(c, size=1, region=region)["VolumeId"])["SnapshotId"]


@pytest.fixture(scope="module")
def snap(server):
    """A completed snapshot of account a that the tests register images over."""
    return make_snapshot(server.client("a"))


def register(c, name, snap_id):
    return c.register_image(Name=name, RootDeviceName="/dev/xvda",
                            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap_id}}])["ImageId"]


def ids(c, **kw):
    return {i["ImageId"] for i in c.describe_images(**kw)["Images"]}


def describe(c, image, **kw):
    return c.describe_images(ImageIds=[image], **kw)["Images"][0]


def launch_permissions(c, image):
    return c.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]


def share(c, image, *grantees):
    c.modify_image_attribute(ImageId=image, LaunchPermission={"Add": list(grantees)})


def refused(code, call, *args, **kw):
    with pytest.raises(ClientError) as e:
        call(*args, **kw)
    assert error_code(e) == code, e.value.response["Error"]
    return e.value.response["Error"]["Message"]


def launch_check(c, image):
    """Runs RunInstances with a key pair that does not exist: the image checks come first, so a
    launchable image fails on the key (and nothing is launched). Returns the error code."""
    with pytest.raises(ClientError) as e:
        c.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName="no-such-key-for-lifecycle")
    code = error_code(e)
    if code == "UnsupportedOperation":
        pytest.skip(f"instances cannot run on this server: {e.value.response['Error']['Message']}")
    return code


def test_a_recipient_cancels_its_launch_permission(server, ec2, snap, unique):
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    image = register(a, unique("shared"), snap)
    share(a, image, {"UserId": B}, {"UserId": C})
    assert image in ids(b, ExecutableUsers=["self"])

    assert b.cancel_image_launch_permission(ImageId=image)["Return"] is True
    assert image not in ids(b)
    assert image not in ids(b, ExecutableUsers=["self"])
    refused("InvalidAMIID.NotFound", b.describe_images, ImageIds=[image])
    assert launch_permissions(a, image) == [{"UserId": C}], "the others keep theirs"
    # Not shared with the caller any more, never shared, unknown: all alike, as in EC2.
    refused("InvalidAMIID.NotFound", b.cancel_image_launch_permission, ImageId=image)
    refused("InvalidAMIID.NotFound", b.cancel_image_launch_permission, ImageId="ami-0123456789abcdef0")
    refused("InvalidAMIID.Malformed", b.cancel_image_launch_permission, ImageId="ami-nope")
    refused("OperationNotPermitted", a.cancel_image_launch_permission, ImageId=image)

    # A public image is not shared with the caller's account: there is nothing to cancel.
    share(a, image, {"Group": "all"})
    refused("InvalidAMIID.NotFound", b.cancel_image_launch_permission, ImageId=image)
    assert server.cli("cancel-image-launch-permission", "--image-id", image, account="c") == {"Return": True}
    assert launch_permissions(a, image) == [{"Group": "all"}]
    assert image in ids(c), "still public"
    # The owner can share it again.
    share(a, image, {"UserId": B})
    assert image in ids(b, ExecutableUsers=["self"])


@pytest.fixture
def image_bpa(ec2):
    """Account c's image block public access, switched off again whatever the test does."""
    c = ec2("c")
    yield c
    c.disable_image_block_public_access()


def test_image_block_public_access(server, ec2, image_bpa, unique):
    c, a = image_bpa, ec2("a")
    snap_c = make_snapshot(c)
    public = register(c, unique("public-before"), snap_c)
    private = register(c, unique("private"), snap_c)
    share(c, public, {"Group": "all"})

    got = c.get_image_block_public_access_state()
    assert got["ImageBlockPublicAccessState"] == "unblocked" and got["ManagedBy"] == "account"
    refused("InvalidParameterValue", c.enable_image_block_public_access, ImageBlockPublicAccessState="block-all-sharing")
    out = c.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    assert out["ImageBlockPublicAccessState"] == "block-new-sharing"
    assert c.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "block-new-sharing"
    assert ec2("c", "eu-west-1").get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "unblocked"
    assert a.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "unblocked"

    message = refused("OperationNotPermitted", share, c, private, {"Group": "all"})
    assert "DisableImageBlockPublicAccess" in message
    refused("OperationNotPermitted", c.modify_image_attribute, ImageId=private, Attribute="launchPermission",
            OperationType="add", UserGroups=["all"])
    assert launch_permissions(c, private) == []
    share(c, private, {"UserId": A})
    assert private in ids(a), "sharing with an account is still allowed"
    assert describe(a, public)["Public"] is True, "images already public stay public"

    assert c.disable_image_block_public_access()["ImageBlockPublicAccessState"] == "unblocked"
    share(c, private, {"Group": "all"})
    assert describe(ec2("b"), private)["Public"] is True
    got = server.cli("get-image-block-public-access-state", account="c")
    assert got == {"ImageBlockPublicAccessState": "unblocked", "ManagedBy": "account"}


@pytest.fixture
def snapshot_bpa(ec2):
    c = ec2("c")
    yield c
    c.disable_snapshot_block_public_access()


def test_snapshot_block_public_access(server, ec2, snapshot_bpa, unique):
    c, a, b = snapshot_bpa, ec2("a"), ec2("b")
    public, shared, private = make_snapshot(c), make_snapshot(c), make_snapshot(c)
    for s in (public, shared):
        c.modify_snapshot_attribute(SnapshotId=s, CreateVolumePermission={"Add": [{"Group": "all"}]})
    c.modify_snapshot_attribute(SnapshotId=shared, CreateVolumePermission={"Add": [{"UserId": B}]})

    def visible(who, s):
        return s in {x["SnapshotId"] for x in who.describe_snapshots(OwnerIds=[C])["Snapshots"]}

    got = c.get_snapshot_block_public_access_state()
    assert got["State"] == "unblocked" and got["ManagedBy"] == "account"
    refused("InvalidParameterValue", c.enable_snapshot_block_public_access, State="unblocked")
    refused("InvalidParameterValue", c.enable_snapshot_block_public_access, State="block-everything")

    # block-new-sharing: nothing new goes public; what is public stays public.
    assert c.enable_snapshot_block_public_access(State="block-new-sharing")["State"] == "block-new-sharing"
    message = refused("OperationNotPermitted", c.modify_snapshot_attribute, SnapshotId=private,
                      CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert "DisableSnapshotBlockPublicAccess" in message
    c.modify_snapshot_attribute(SnapshotId=private, CreateVolumePermission={"Add": [{"UserId": A}]})
    assert visible(a, public) and visible(a, private)

    # block-all-sharing: public snapshots are private for everyone else, explicit shares are not.
    assert c.enable_snapshot_block_public_access(State="block-all-sharing")["State"] == "block-all-sharing"
    assert c.get_snapshot_block_public_access_state()["State"] == "block-all-sharing"
    assert not visible(a, public)
    refused("InvalidSnapshot.NotFound", a.describe_snapshots, SnapshotIds=[public])
    assert public not in {x["SnapshotId"] for x in a.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]}
    refused("InvalidSnapshot.NotFound", a.create_volume, SnapshotId=public, AvailabilityZone="us-east-1a")
    refused("InvalidSnapshot.NotFound", register, a, unique("borrowed"), public)
    assert visible(b, shared) and not visible(b, public)
    assert visible(a, private), "shared with a by id"
    # The owner still sees it, and its attribute still says it is public.
    assert describe_snapshot(c, public)["State"] == "completed"
    perms = c.describe_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"Group": "all"}]

    assert c.disable_snapshot_block_public_access()["State"] == "unblocked"
    assert visible(a, public)
    c.modify_snapshot_attribute(SnapshotId=private, CreateVolumePermission={"Add": [{"Group": "all"}]})
    got = server.cli("get-snapshot-block-public-access-state", account="c")
    assert got == {"State": "unblocked", "ManagedBy": "account"}


def deprecate_now(c, image):
    """Deprecates `image` with immediate effect. EC2 refuses a DeprecateAt in the past but rounds
    it to the nearest minute, so a time a few seconds ahead, early in a minute, lands on that
    minute's start."""
    wait_until(lambda: datetime.now(timezone.utc).second < 20, timeout=45, interval=0.2, what="early in a minute")
    at = datetime.now(timezone.utc) + timedelta(seconds=5)
    assert c.enable_image_deprecation(ImageId=image, DeprecateAt=at)["Return"] is True
    return at.replace(second=0, microsecond=0)


def test_deprecation(ec2, snap, unique):
    a, b = ec2("a"), ec2("b")
    image = register(a, unique("deprecating"), snap)
    share(a, image, {"UserId": B})
    assert "DeprecationTime" not in describe(a, image)

    now = datetime.now(timezone.utc)
    refused("InvalidParameterValue", a.enable_image_deprecation, ImageId=image, DeprecateAt=now - timedelta(hours=1))
    refused("InvalidParameterValue", a.enable_image_deprecation, ImageId=image,
            DeprecateAt=now + timedelta(days=365 * 11))
    refused("AuthFailure", b.enable_image_deprecation, ImageId=image, DeprecateAt=now + timedelta(days=1))
    refused("InvalidAMIID.NotFound", ec2("c").enable_image_deprecation, ImageId=image,
            DeprecateAt=now + timedelta(days=1))

    # In the future: rounded to the minute, reported, and not yet in effect.
    later = (now + timedelta(days=30)).replace(second=42, microsecond=0)
    a.enable_image_deprecation(ImageId=image, DeprecateAt=later)
    shown = describe(a, image)["DeprecationTime"]
    assert EC2_TIME.fullmatch(shown), shown
    assert shown == (later + timedelta(seconds=18)).strftime("%Y-%m-%dT%H:%M:00.000Z")
    assert describe(b, image)["DeprecationTime"] == shown
    assert image in ids(b, Owners=[A])

    when = deprecate_now(a, image)
    assert describe(a, image)["DeprecationTime"] == when.strftime("%Y-%m-%dT%H:%M:00.000Z")
    assert image not in ids(b, Owners=[A]), "deprecated images leave other accounts' listings"
    assert image not in ids(b, ExecutableUsers=["self"])
    assert image in ids(b, Owners=[A], IncludeDeprecated=True)
    assert describe(b, image)["ImageId"] == image, "asking by id still finds it"
    assert image in ids(a, Owners=["self"]), "owners always see their deprecated images"
    assert image in ids(a, Owners=["self"], IncludeDeprecated=False)
    assert launch_check(b, image) == "InvalidKeyPair.NotFound", "still launchable by id"

    assert a.disable_image_deprecation(ImageId=image)["Return"] is True
    assert "DeprecationTime" not in describe(a, image)
    assert image in ids(b, Owners=[A])
    refused("AuthFailure", b.disable_image_deprecation, ImageId=image)


def test_disable_and_enable_image(ec2, snap, unique):
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    image = register(a, unique("disabling"), snap)
    share(a, image, {"UserId": B}, {"Group": "all"})
    refused("AuthFailure", b.disable_image, ImageId=image)
    refused("DryRunOperation", a.disable_image, ImageId=image, DryRun=True)
    assert describe(a, image)["State"] == "available"

    assert a.disable_image(ImageId=image)["Return"] is True
    # Hidden by default, from its owner too, even by id; shown to the owner with IncludeDisabled.
    assert image not in ids(a, Owners=["self"])
    assert a.describe_images(ImageIds=[image])["Images"] == []
    got = describe(a, image, IncludeDisabled=True)
    assert got["State"] == "disabled" and got["Public"] is False
    assert image in ids(a, IncludeDisabled=True, Filters=[{"Name": "state", "Values": ["disabled"]}])
    # Made private: the accounts it was shared with, and everyone, lose it.
    assert launch_permissions(a, image) == []
    for other in (b, c):
        refused("InvalidAMIID.NotFound", other.describe_images, ImageIds=[image])
        assert image not in ids(other, IncludeDisabled=True)
    # Neither launchable nor shareable.
    assert launch_check(a, image) == "InvalidAMIID.Unavailable"
    refused("InvalidAMIID.Unavailable", share, a, image, {"UserId": B})
    refused("InvalidAMIID.Unavailable", share, a, image, {"Group": "all"})
    # Its snapshot stays in use.
    refused("InvalidSnapshot.InUse", a.delete_snapshot, SnapshotId=snap)

    assert a.enable_image(ImageId=image)["Return"] is True
    assert describe(a, image)["State"] == "available"
    assert launch_permissions(a, image) == [], "shares do not come back by themselves"
    refused("InvalidAMIID.NotFound", b.describe_images, ImageIds=[image])
    share(a, image, {"UserId": B})
    assert describe(b, image)["State"] == "available"
    assert launch_check(a, image) == "InvalidKeyPair.NotFound"


def test_deregistration_protection(server, ec2, snap, unique):
    a, b = ec2("a"), ec2("b")
    image = register(a, unique("protected"), snap)
    share(a, image, {"UserId": B})
    assert describe(a, image)["DeregistrationProtection"] == "disabled"

    out = a.enable_image_deregistration_protection(ImageId=image)
    assert out["Return"] == "enabled-without-cooldown"
    assert describe(a, image)["DeregistrationProtection"] == "enabled-without-cooldown"
    attr = a.describe_image_attribute(ImageId=image, Attribute="deregistrationProtection")
    assert attr["DeregistrationProtection"] == {"Value": "enabled-without-cooldown"}
    message = refused("OperationNotPermitted", a.deregister_image, ImageId=image)
    assert "DisableImageDeregistrationProtection" in message
    refused("OperationNotPermitted", a.deregister_image, ImageId=image, DeleteAssociatedSnapshots=True)
    refused("AuthFailure", b.enable_image_deregistration_protection, ImageId=image)
    refused("AuthFailure", b.disable_image_deregistration_protection, ImageId=image)
    assert a.disable_image_deregistration_protection(ImageId=image)["Return"] == "disabled"
    assert describe(a, image)["DeregistrationProtection"] == "disabled"

    # With a cooldown, disabling leaves the protection in force for 24 hours.
    got = server.cli("enable-image-deregistration-protection", "--image-id", image, "--with-cooldown")
    assert got == {"Return": "enabled-with-cooldown"}
    assert describe(b, image)["DeregistrationProtection"] == "enabled-with-cooldown"
    before = datetime.now(timezone.utc)
    status = a.disable_image_deregistration_protection(ImageId=image)["Return"]
    m = re.fullmatch(r"disabled-until (\S+)", status)
    assert m and EC2_TIME.fullmatch(m.group(1)), status
    until = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z")
    assert timedelta(hours=23, minutes=59) < until - before < timedelta(hours=24, minutes=1)
    assert describe(a, image)["DeregistrationProtection"] == status
    message = refused("OperationNotPermitted", a.deregister_image, ImageId=image)
    assert m.group(1) in message
    assert a.disable_image_deregistration_protection(ImageId=image)["Return"] == status, "the cooldown does not restart"

    # Enabling again (without a cooldown) replaces it; disabling that ends protection at once.
    a.enable_image_deregistration_protection(ImageId=image, WithCooldown=False)
    refused("OperationNotPermitted", a.deregister_image, ImageId=image)
    assert a.disable_image_deregistration_protection(ImageId=image)["Return"] == "disabled"
    assert a.deregister_image(ImageId=image)["Return"] is True
    refused("InvalidAMIID.NotFound", a.describe_images, ImageIds=[image])


def test_last_launched_time_is_the_owners_business(ec2, snap, unique):
    a, b = ec2("a"), ec2("b")
    image = register(a, unique("never-launched"), snap)
    share(a, image, {"UserId": B})
    assert "LastLaunchedTime" not in describe(a, image)
    attr = a.describe_image_attribute(ImageId=image, Attribute="lastLaunchedTime")
    assert attr["ImageId"] == image and not attr.get("LastLaunchedTime", {}).get("Value")
    refused("AuthFailure", b.describe_image_attribute, ImageId=image, Attribute="lastLaunchedTime")
    # A refused launch is no launch.
    launch_check(b, image)
    assert "LastLaunchedTime" not in describe(a, image)


def test_deregister_keeps_snapshots_other_images_use(ec2, unique):
    a, b = ec2("a"), ec2("b")
    snap = make_snapshot(a)
    a.modify_snapshot_attribute(SnapshotId=snap, CreateVolumePermission={"Add": [{"UserId": B}]})
    mine = a.register_image(
        Name=unique("twice"), RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}},
                             {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snap}}])["ImageId"]
    theirs = register(b, unique("borrowed"), snap)

    # Another account's image uses it.
    out = a.deregister_image(ImageId=mine, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"] == [{"SnapshotId": snap, "ReturnCode": "skipped"}], "one result per snapshot"
    assert describe_snapshot(a, snap)["State"] == "completed"
    # A disabled image of the same account still uses it.
    disabled = register(a, unique("disabled-holder"), snap)
    a.disable_image(ImageId=disabled)
    out = b.deregister_image(ImageId=theirs, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"] == [{"SnapshotId": snap, "ReturnCode": "skipped"}], "not b's snapshot"
    other = register(a, unique("other"), snap)
    out = a.deregister_image(ImageId=other, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"] == [{"SnapshotId": snap, "ReturnCode": "skipped"}]
    assert describe_snapshot(a, snap)["State"] == "completed"
    refused("InvalidSnapshot.InUse", a.delete_snapshot, SnapshotId=snap)
    # A protected image keeps its snapshots too: nothing happens at all.
    a.enable_image(ImageId=disabled)
    a.enable_image_deregistration_protection(ImageId=disabled)
    refused("OperationNotPermitted", a.deregister_image, ImageId=disabled, DeleteAssociatedSnapshots=True)
    assert describe_snapshot(a, snap)["State"] == "completed"
    # The last image using it takes it along.
    a.disable_image_deregistration_protection(ImageId=disabled)
    out = a.deregister_image(ImageId=disabled, DeleteAssociatedSnapshots=True)
    assert out["DeleteSnapshotResults"] == [{"SnapshotId": snap, "ReturnCode": "success"}]
    refused("InvalidSnapshot.NotFound", a.describe_snapshots, SnapshotIds=[snap])


def test_lifecycle_actions_on_unknown_images(ec2):
    a = ec2("a")
    missing = "ami-0123456789abcdef0"
    for call, kw in [
        (a.disable_image, {}),
        (a.enable_image, {}),
        (a.disable_image_deprecation, {}),
        (a.enable_image_deregistration_protection, {}),
        (a.disable_image_deregistration_protection, {}),
        (a.enable_image_deprecation, {"DeprecateAt": datetime.now(timezone.utc) + timedelta(days=1)}),
    ]:
        refused("InvalidAMIID.NotFound", call, ImageId=missing, **kw)
        refused("InvalidAMIID.Malformed", call, ImageId="image-1", **kw)


def test_image_references_of_an_unused_image(server, ec2, snap, unique):
    """No instance runs here (that needs a VM; kiln-core's unit tests cover instance references),
    so the answer is empty; the call's shape, its options and its errors are what is checked."""
    a, b, c = ec2("a"), ec2("b"), ec2("c")
    image = register(a, unique("referenced"), snap)
    got = a.describe_image_references(ImageIds=[image], IncludeAllResourceTypes=True)
    assert got["ImageReferences"] == [] and "NextToken" not in got
    running_only = [{"ResourceType": "ec2:Instance",
                     "ResourceTypeOptions": [{"OptionName": "state-name", "OptionValues": ["running", "stopped"]}]},
                    {"ResourceType": "ssm:Parameter"},
                    {"ResourceType": "ec2:LaunchTemplate",
                     "ResourceTypeOptions": [{"OptionName": "version-depth", "OptionValues": ["5"]}]}]
    assert a.describe_image_references(ImageIds=[image, image], ResourceTypes=running_only,
                                       MaxResults=5)["ImageReferences"] == []
    pages = list(a.get_paginator("describe_image_references").paginate(ImageIds=[image], IncludeAllResourceTypes=True))
    assert [p["ImageReferences"] for p in pages] == [[]]
    out = server.cli("describe-image-references", "--image-ids", image, "--include-all-resource-types")
    assert out["ImageReferences"] == []

    # Any image the caller may see can be checked: shared with b, yes; not with c.
    share(a, image, {"UserId": B})
    assert b.describe_image_references(ImageIds=[image], IncludeAllResourceTypes=True)["ImageReferences"] == []
    refused("InvalidAMIID.NotFound", c.describe_image_references, ImageIds=[image], IncludeAllResourceTypes=True)
    refused("InvalidAMIID.NotFound", a.describe_image_references, ImageIds=[image, "ami-0123456789abcdef0"],
            IncludeAllResourceTypes=True)
    refused("InvalidAMIID.Malformed", a.describe_image_references, ImageIds=["image-1"], IncludeAllResourceTypes=True)

    refused("MissingParameter", a.describe_image_references, ImageIds=[image])
    refused("InvalidParameterValue", a.describe_image_references, ImageIds=[image],
            ResourceTypes=[{"ResourceType": "ec2:Volume"}])
    refused("InvalidParameterValue", a.describe_image_references, ImageIds=[image],
            ResourceTypes=[{"ResourceType": "ec2:Instance",
                            "ResourceTypeOptions": [{"OptionName": "state-name", "OptionValues": ["exploded"]}]}])
    refused("InvalidParameterValue", a.describe_image_references, ImageIds=[image],
            ResourceTypes=[{"ResourceType": "ssm:Parameter",
                            "ResourceTypeOptions": [{"OptionName": "state-name", "OptionValues": ["running"]}]}])
    refused("InvalidParameterValue", a.describe_image_references, ImageIds=[image] * 11, IncludeAllResourceTypes=True)
    refused("DryRunOperation", a.describe_image_references, ImageIds=[image], IncludeAllResourceTypes=True,
            DryRun=True)
