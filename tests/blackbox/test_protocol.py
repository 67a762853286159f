"""The EC2 Query protocol: SigV4, the error envelope, DryRun, and robustness against garbage."""

import datetime
import random
import urllib.parse
import xml.etree.ElementTree as ET
from unittest import mock

import boto3
import botocore
import botocore.auth
import botocore.config
import pytest
import requests
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, error_code

NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def creds(account="a"):
    _, _, key, secret = ACCOUNTS[account]
    return Credentials(key, secret)


def encode(params):
    """Form-encodes a dict or a list of pairs; raw strings/bytes pass through untouched."""
    if isinstance(params, (str, bytes)):
        return params.encode() if isinstance(params, str) else params
    return urllib.parse.urlencode(params).encode()


def signed(server, params, method="POST", account="a", region="us-east-1", when=None, session=None):
    """Sends a SigV4-signed request (header form) with a raw body or query string."""
    raw = encode(params)
    url = server.endpoint + "/"
    if method == "GET":
        req = AWSRequest(method="GET", url=f"{url}?{raw.decode('latin-1')}")
    else:
        req = AWSRequest(method=method, url=url, data=raw, headers={"Content-Type": FORM})
    if when is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            SigV4Auth(creds(account), "ec2", region).add_auth(req)
    else:
        SigV4Auth(creds(account), "ec2", region).add_auth(req)
    prepared = req.prepare()
    return (session or requests).request(method, prepared.url, headers=dict(prepared.headers), data=prepared.body,
                                         timeout=60)


def presigned_url(server, params, expires=60, account="a", when=None):
    query = urllib.parse.urlencode(params)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/?{query}")
    signer = SigV4QueryAuth(creds(account), "ec2", "us-east-1", expires=expires)
    if when is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return req.prepare().url


def error_of(resp):
    """(code, message, request id) from an EC2 error envelope, checking its shape."""
    root = ET.fromstring(resp.content)
    assert root.tag == "Response", resp.text
    errors = root.find("Errors")
    assert errors is not None and len(errors) == 1, resp.text
    err = errors.find("Error")
    code, message, rid = err.findtext("Code"), err.findtext("Message"), root.findtext("RequestID")
    assert code and message and rid, resp.text
    return code, message, rid


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# --- Authentication ------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(server):
    c = server.client("a", secret="not-the-secret")
    with pytest.raises(ClientError) as e:
        c.describe_regions()
    assert error_code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_another_accounts_secret_does_not_work(server):
    _, _, _, secret_b = ACCOUNTS["b"]
    with pytest.raises(ClientError) as e:
        server.client("a", secret=secret_b).describe_regions()
    assert error_code(e) == "SignatureDoesNotMatch"


def test_unknown_access_key_is_auth_failure(server):
    c = boto3.client("ec2", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id="AKIAUNKNOWNKEY000001", aws_secret_access_key="whatever",
                     config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        c.describe_regions()
    assert error_code(e) == "AuthFailure"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_unknown_region_is_auth_failure(server):
    with pytest.raises(ClientError) as e:
        server.client("a", region="xx-nowhere-1").describe_regions()
    assert error_code(e) == "AuthFailure"
    assert "xx-nowhere-1" in e.value.response["Error"]["Message"]


def test_wrong_service_scope_is_refused(server):
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=b"Action=DescribeRegions&Version=2016-11-15",
                     headers={"Content-Type": FORM})
    SigV4Auth(creds(), "s3", "us-east-1").add_auth(req)
    p = req.prepare()
    r = requests.post(p.url, headers=dict(p.headers), data=p.body, timeout=30)
    assert (r.status_code, error_of(r)[0]) == (401, "AuthFailure")
    assert "'s3'" in error_of(r)[1]


def test_stale_date_is_request_expired(server):
    stale = utcnow() - datetime.timedelta(minutes=20)
    r = signed(server, {"Action": "DescribeRegions", "Version": "2016-11-15"}, when=stale)
    assert r.status_code == 400
    assert error_of(r)[0] == "RequestExpired"
    future = utcnow() + datetime.timedelta(minutes=20)
    assert error_of(signed(server, {"Action": "DescribeRegions", "Version": "2016-11-15"}, when=future))[0] == "RequestExpired"
    # Within the 15-minute window is fine.
    recent = utcnow() - datetime.timedelta(minutes=5)
    assert signed(server, {"Action": "DescribeRegions", "Version": "2016-11-15"}, when=recent).status_code == 200


def test_no_auth_is_missing_authentication_token(server):
    r = requests.post(server.endpoint + "/", data={"Action": "DescribeRegions", "Version": "2016-11-15"}, timeout=30)
    assert error_of(r)[0] == "MissingAuthenticationToken"
    assert r.status_code == 401
    r = requests.get(server.endpoint + "/?Action=DescribeRegions&Version=2016-11-15", timeout=30)
    assert error_of(r)[0] == "MissingAuthenticationToken"
    unsigned = boto3.client("ec2", endpoint_url=server.endpoint, region_name="us-east-1",
                            config=botocore.config.Config(signature_version=botocore.UNSIGNED,
                                                          retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unsigned.describe_regions()
    assert error_code(e) == "MissingAuthenticationToken"


def test_garbled_authorization_header(server):
    for header in ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=x", "Basic dXNlcjpwYXNz",
                   "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLETEAMA0001/20200101/us-east-1/ec2/aws4_request, "
                   "SignedHeaders=host, Signature=zz"):
        r = requests.post(server.endpoint + "/", data={"Action": "DescribeRegions"}, headers={"Authorization": header},
                          timeout=30)
        assert 400 <= r.status_code < 500, (header, r.status_code)
        error_of(r)


def test_presigned_get_works_and_tampering_or_expiry_fails(server):
    params = {"Action": "DescribeRegions", "Version": "2016-11-15"}
    url = presigned_url(server, params, expires=60)
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}DescribeRegionsResponse"
    assert [e.text for e in root.iter(f"{NS}regionName")] == ["us-east-1", "us-west-2", "eu-west-1"]

    tampered = url.replace("Action=DescribeRegions", "Action=DescribeVpcs")
    assert tampered != url
    r = requests.get(tampered, timeout=30)
    assert r.status_code == 403 and error_of(r)[0] == "SignatureDoesNotMatch"
    r = requests.get(url + "&RegionName.1=eu-west-1", timeout=30)
    assert r.status_code == 403 and error_of(r)[0] == "SignatureDoesNotMatch"

    old = presigned_url(server, params, expires=60, when=utcnow() - datetime.timedelta(minutes=2))
    r = requests.get(old, timeout=30)
    assert (r.status_code, error_of(r)[0]) == (400, "RequestExpired")
    # A presigned URL may not be used with a different method or body.
    r = requests.post(url, data=b"Action=DescribeVpcs", headers={"Content-Type": FORM}, timeout=30)
    assert (r.status_code, error_of(r)[0]) == (403, "SignatureDoesNotMatch")


def test_get_and_post_both_work(server):
    params = {"Action": "DescribeAvailabilityZones", "Version": "2016-11-15", "ZoneName.1": "us-east-1b"}
    for method in ("GET", "POST"):
        r = signed(server, params, method=method)
        assert r.status_code == 200, (method, r.text)
        root = ET.fromstring(r.content)
        assert root.tag == f"{NS}DescribeAvailabilityZonesResponse"
        assert [e.text for e in root.iter(f"{NS}zoneName")] == ["us-east-1b"]


def test_other_methods_are_refused_cleanly(server):
    r = signed(server, {"Action": "DescribeRegions", "Version": "2016-11-15"}, method="PUT")
    assert 400 <= r.status_code < 500
    error_of(r)


# --- Actions and parameters ----------------------------------------------------------------


def test_unknown_action_is_invalid_action(server):
    r = signed(server, {"Action": "FrobnicateWidgets", "Version": "2016-11-15"})
    code, message, _ = error_of(r)
    assert (r.status_code, code) == (400, "InvalidAction")
    assert "FrobnicateWidgets" in message


def test_missing_action(server):
    r = signed(server, {"Version": "2016-11-15"})
    assert (r.status_code, error_of(r)[0]) == (400, "MissingAction")


def test_real_but_unbuilt_action_is_unsupported_operation(ec2):
    with pytest.raises(ClientError) as e:
        ec2().allocate_address(Domain="vpc")
    assert error_code(e) == "UnsupportedOperation"
    assert "AllocateAddress" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ec2().describe_addresses()
    assert error_code(e) == "UnsupportedOperation"
    assert "DescribeAddresses" in e.value.response["Error"]["Message"]


def test_missing_parameter(server):
    for params, name in (({"Action": "CreateKeyPair"}, "KeyName"),
                         ({"Action": "ImportKeyPair", "KeyName": "x"}, "PublicKeyMaterial"),
                         ({"Action": "CreateSecurityGroup", "GroupName": "x"}, "GroupDescription"),
                         ({"Action": "CreateTags", "Tag.1.Key": "a"}, "resourceIdSet")):
        r = signed(server, {**params, "Version": "2016-11-15"})
        code, message, _ = error_of(r)
        assert (r.status_code, code) == (400, "MissingParameter"), params
        assert name in message, (params, message)


def test_wrong_version_is_refused(server):
    r = signed(server, {"Action": "DescribeRegions", "Version": "2012-01-01"})
    assert r.status_code == 400
    error_of(r)


def test_lowercase_location_names_are_accepted(server):
    # Hand-written clients send the model's locationName (camelCase) instead of the member name.
    r = signed(server, {"Action": "DescribeRegions", "Version": "2016-11-15", "regionName.1": "eu-west-1"})
    assert r.status_code == 200
    assert [e.text for e in ET.fromstring(r.content).iter(f"{NS}regionName")] == ["eu-west-1"]


def test_dry_run(ec2, unique):
    c = ec2()
    name = unique("dry")
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=name, KeyType="ed25519", DryRun=True)
    assert error_code(e) == "DryRunOperation"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"

    sg_name = unique("drysg")
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=sg_name, Description="d", DryRun=True)
    assert error_code(e) == "DryRunOperation"
    assert c.describe_security_groups(Filters=[{"Name": "group-name", "Values": [sg_name]}])["SecurityGroups"] == []

    kid = c.create_key_pair(KeyName=name, KeyType="ed25519")["KeyPairId"]
    with pytest.raises(ClientError) as e:
        c.delete_key_pair(KeyName=name, DryRun=True)
    assert error_code(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[kid], Tags=[{"Key": "a", "Value": "b"}], DryRun=True)
    assert error_code(e) == "DryRunOperation"
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(DryRun=True)
    assert error_code(e) == "DryRunOperation"
    kp = c.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]
    assert kp["KeyPairId"] == kid and kp["Tags"] == []


def test_dry_run_via_cli(server, unique):
    name = unique("drycli")
    p = server.cli("create-key-pair", "--key-name", name, "--key-type", "ed25519", "--dry-run", check=False)
    assert p.returncode != 0 and "DryRunOperation" in p.stderr
    p = server.cli("describe-key-pairs", "--key-names", name, check=False)
    assert p.returncode != 0 and "InvalidKeyPair.NotFound" in p.stderr


# --- Response documents --------------------------------------------------------------------


def test_error_envelope_shape(server):
    r = signed(server, {"Action": "DescribeKeyPairs", "Version": "2016-11-15", "KeyName.1": "no-such-key-<&>"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "Response"
    assert [c.tag for c in root] == ["Errors", "RequestID"]
    err = root.find("Errors/Error")
    assert err.findtext("Code") == "InvalidKeyPair.NotFound"
    assert "no-such-key-<&>" in err.findtext("Message")
    rid = root.findtext("RequestID")
    assert rid and rid == r.headers.get("x-amzn-requestid")


def test_success_document_has_namespace_and_request_id(server):
    r = signed(server, {"Action": "DescribeKeyPairs", "Version": "2016-11-15"})
    assert r.status_code == 200
    root = ET.fromstring(r.content)
    assert root.tag == f"{NS}DescribeKeyPairsResponse"
    rid = root.findtext(f"{NS}requestId")
    assert rid and rid == r.headers.get("x-amzn-requestid")
    assert root.find(f"{NS}keySet") is not None
    # Each response gets its own id.
    r2 = signed(server, {"Action": "DescribeKeyPairs", "Version": "2016-11-15"})
    assert ET.fromstring(r2.content).findtext(f"{NS}requestId") != rid


def test_boto3_sees_request_ids(ec2):
    resp = ec2().describe_regions()
    assert resp["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as e:
        ec2().describe_key_pairs(KeyNames=["surely-not-there-xyz"])
    assert e.value.response["ResponseMetadata"]["RequestId"]


# --- Garbage in ----------------------------------------------------------------------------


ACTIONS = ["DescribeRegions", "DescribeKeyPairs", "DescribeTags", "CreateTags", "DeleteTags", "ImportKeyPair",
           "CreateKeyPair", "DescribeSecurityGroups", "AuthorizeSecurityGroupIngress", "DescribeVpcs",
           "DescribeSubnets", "DescribeInstanceTypes", "DeleteKeyPair", "DescribeSecurityGroupRules",
           "RevokeSecurityGroupEgress", "CreateSecurityGroup", "DescribeAvailabilityZones", "RunInstances", ""]

KEYS = ["KeyName", "KeyName.1", "KeyPairId.1", "Filter.1.Name", "Filter.1.Value.1", "Filter.x.Name",
        "Filter.0.Name", "Filter.-1.Name", "Filter.99999999999999999999.Name", "Filter.4294967297.Value.1",
        "Filter.1.Value.100001", "Filter.1.Value.1.Extra", "MaxResults", "NextToken", "ResourceId.1", "Tag.1.Key",
        "Tag.1.Value", "Tag.2", "TagSpecification.1.ResourceType", "TagSpecification.1.Tag.1.Key",
        "TagSpecification.1.Tag.99999.Value", "IpPermissions.1.IpProtocol", "IpPermissions.1.FromPort",
        "IpPermissions.1.ToPort", "IpPermissions.1.IpRanges.1.CidrIp", "IpPermissions.1.Groups.1.GroupId",
        "GroupId", "GroupName", "GroupId.1", "DryRun", "PublicKeyMaterial", "KeyType", "KeyFormat", "Version",
        "IncludePublicKey", "AllRegions", "...", ".", "a..b", "Ünïcödé", "%", "KeyName.", "Filter..Name"]

VALUES = ["", "x", "*", "?", "true", "maybe", "-1", "0", "5", "1001", "99999999999999999999", "1e3", "NaN",
          "sg-12345678", "key-0123456789abcdef0", "vpc-zzz", "aws:foo", "ssh-rsa AAAA", "ssh-ed25519 " + "A" * 70,
          "10.0.0.0/33", "::/129", "tcp", "-1", "65536", "\x00", "\x01\x02", "ünï", "\ud7ff", "<x>&amp;", "]]>",
          "A" * 70_000]


def garbage_bodies(rng):
    """~200 malformed request bodies, as raw bytes (some not even valid UTF-8 once decoded)."""
    out = []
    for _ in range(160):
        pairs = [("Action", rng.choice(ACTIONS))]
        if rng.random() < 0.9:
            pairs.append(("Version", "2016-11-15"))
        for _ in range(rng.randint(0, 12)):
            pairs.append((rng.choice(KEYS), rng.choice(VALUES)))
        # Never spend time on RSA generation in this loop.
        pairs.append(("KeyType", "ed25519"))
        body = urllib.parse.urlencode(pairs).encode()
        if rng.random() < 0.3:
            body += rng.choice([b"&KeyName.1=%ff%fe", b"&%C3%28=1", b"&Filter.1.Name=%80", b"&%=%", b"&&&==&",
                                b"&KeyName=%zz", b"&Action", b"&=x", b"&Filter.1.Value.1=%ED%A0%80"])
        out.append(body)
    out += [
        b"",
        b"Action=DescribeRegions&Version=2016-11-15&" + b"&".join(b"RegionName.%d=r" % i for i in range(1, 3000)),
        b"Action=DescribeTags&Version=2016-11-15&" + b"&".join(b"Filter.1.Value.%d=v" % i for i in range(1, 2000)),
        b"Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name=key-name&Filter.1.Value.1=" + b"*" * 20_000 + b"a",
        b"Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name=key-name&Filter.1.Value.1=" + b"*?" * 10_000,
        b"Action=CreateTags&Version=2016-11-15&ResourceId.1=sg-12345678&" + b"&".join(
            b"Tag.%d.Key=k%d" % (i, i) for i in range(1, 600)),
        b"Action=DescribeKeyPairs&Version=2016-11-15&" + b"&".join(b"k%d=v" % i for i in range(12_000)),
        b"Action=DescribeKeyPairs&Version=2016-11-15&" + b"a." * 20_000 + b"=1",
        b"Action=DescribeKeyPairs&Version=2016-11-15&Filter.1.Name=" + b"%00" * 1000,
        b"Action=DescribeRegions&Version=2016-11-15&DryRun=true&DryRun=false",
        b"\xff\xfe\x00garbage\x00",
        b"Action=%ff&Version=2016-11-15",
        b"Action=ImportKeyPair&Version=2016-11-15&KeyName=k&PublicKeyMaterial=" + b"%ff" * 3000,
        b"Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-12345678&IpPermissions.1.IpProtocol=tcp"
        b"&IpPermissions.1.FromPort=99999999999999999999999&IpPermissions.1.ToPort=-99999999999999999999",
        b"Action=DescribeTags&Version=2016-11-15&MaxResults=5&NextToken=" + b"A" * 50_000,
    ]
    return out


def test_garbage_never_yields_a_server_error(server):
    rng = random.Random(20161115)
    session = requests.Session()
    seen = {}
    for body in garbage_bodies(rng):
        r = signed(server, body, account="c", session=session)
        assert r.status_code < 500, (body[:200], r.status_code, r.text[:500])
        if r.status_code != 200:
            code = error_of(r)[0]
            seen[code] = seen.get(code, 0) + 1
        else:
            ET.fromstring(r.content)
    # The loop really exercised the error paths.
    assert seen.get("InvalidParameterValue", 0) > 10, seen
    assert "InvalidAction" in seen or "MissingAction" in seen, seen
    # Garbage in GET query strings too (signature checks may refuse some; none may crash).
    for q in ("Action=DescribeRegions&Filter.x.Name=1", "Action=DescribeRegions&%ff=%fe", "Action=Describe%00Regions",
              "Action=DescribeRegions&RegionName.99999999999=x", "&&&", "Action=DescribeRegions&a=%"):
        r = signed(server, q, method="GET", account="c", session=session)
        assert r.status_code < 500, (q, r.text)
        error_of(r) if r.status_code != 200 else ET.fromstring(r.content)
    # Still serving.
    assert server.client("c").describe_regions()["Regions"]


def test_oversized_body_is_a_clear_error(server):
    body = b"Action=DescribeRegions&Version=2016-11-15&Pad=" + b"x" * (5 << 20)
    try:
        r = requests.post(server.endpoint + "/", data=body, headers={"Content-Type": FORM}, timeout=60)
    except requests.ConnectionError:
        r = None  # the server may close the connection once the limit is hit
    # The answer comes before the body is read through, so the connection may close under the
    # sender; when the answer arrives it is the one right answer.
    if r is not None:
        assert (r.status_code, error_of(r)[0]) == (413, "InvalidParameterValue")
    # A signed oversized body gets the same treatment.
    try:
        r = signed(server, body)
    except requests.ConnectionError:
        r = None
    if r is not None:
        assert (r.status_code, error_of(r)[0]) == (413, "InvalidParameterValue")
    assert server.client().describe_regions()["Regions"]


def test_secrets_never_reach_the_log(server):
    # Make sure the server has logged plenty: successes, auth failures, errors.
    server.client("a").describe_regions()
    with pytest.raises(ClientError):
        server.client("a", secret="team-b-secret").describe_regions()
    with pytest.raises(ClientError):
        server.client("b").describe_key_pairs(KeyNames=["nope-nope"])
    text = server.log_path.read_bytes()
    assert len(text) > 0
    for _, _, _, secret in ACCOUNTS.values():
        assert secret.encode() not in text, secret
