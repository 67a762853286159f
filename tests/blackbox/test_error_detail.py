"""Error detail as EC2 gives it: every missing id named, the wire parameter named."""

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import error_code


def message(excinfo):
    return excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize("call, param, ids, code, text", [
    ("describe_images", "ImageIds", ["ami-00000000000000001", "ami-00000000000000002"], "InvalidAMIID.NotFound",
     "The image ids '[ami-00000000000000001, ami-00000000000000002]' do not exist"),
    ("describe_volumes", "VolumeIds", ["vol-00000000000000001", "vol-00000000000000002"], "InvalidVolume.NotFound",
     "The volumes 'vol-00000000000000001, vol-00000000000000002' do not exist."),
    ("describe_snapshots", "SnapshotIds", ["snap-00000000000000001", "snap-00000000000000002"],
     "InvalidSnapshot.NotFound", "The snapshots 'snap-00000000000000001, snap-00000000000000002' do not exist."),
    ("describe_instances", "InstanceIds", ["i-00000000000000001", "i-00000000000000002"],
     "InvalidInstanceID.NotFound", "The instance IDs 'i-00000000000000001, i-00000000000000002' do not exist"),
])
def test_a_describe_of_several_missing_ids_names_them_all(ec2, call, param, ids, code, text):
    with pytest.raises(ClientError) as e:
        getattr(ec2(), call)(**{param: ids})
    assert error_code(e) == code
    assert message(e) == text


def test_one_missing_among_existing_ids_is_named_alone(ec2):
    c = ec2()
    vol = c.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    with pytest.raises(ClientError) as e:
        c.describe_volumes(VolumeIds=[vol, "vol-00000000000000003"])
    assert message(e) == "The volume 'vol-00000000000000003' does not exist."


def test_tags_without_resources_name_the_wire_parameter(server):
    # boto3 refuses to send a call without its required ResourceIds, so sign one by hand.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    c = server.client()
    creds = c._request_signer._credentials
    for action in ("CreateTags", "DeleteTags"):
        req = AWSRequest(method="POST", url=server.endpoint + "/",
                         data=f"Action={action}&Version=2016-11-15&Tag.1.Key=a&Tag.1.Value=b",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        SigV4Auth(creds, "ec2", "us-east-1").add_auth(req)
        r = requests.post(req.url, data=req.data, headers=dict(req.headers), timeout=10)
        assert r.status_code == 400
        assert "<Code>MissingParameter</Code>" in r.text
        assert "The request must contain the parameter resourceIdSet" in r.text
