"""Durability: state survives SIGKILL, acknowledged writes are never lost or half-applied,
SIGTERM is graceful, and the admin credentials file is written once."""

import configparser
import os
import stat
import threading
import uuid

import boto3
import botocore.config
import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, error_code, wait_until

REGIONS = ("us-east-1", "eu-west-1")
ACCTS = ("a", "b")


def strip(resp):
    resp = dict(resp)
    resp.pop("ResponseMetadata", None)
    return resp


def snapshot(server):
    """Every Describe output of both accounts in both regions."""
    out = {}
    for account in ACCTS:
        for region in REGIONS:
            c = server.client(account, region)
            out[(account, region)] = {
                "key_pairs": strip(c.describe_key_pairs(IncludePublicKey=True)),
                "groups": strip(c.describe_security_groups()),
                "rules": strip(c.describe_security_group_rules()),
                "tags": strip(c.describe_tags()),
                "vpcs": strip(c.describe_vpcs()),
                "subnets": strip(c.describe_subnets()),
            }
    return out


def populate(server):
    for account in ACCTS:
        for region in REGIONS:
            c = server.client(account, region)
            tag = lambda kind, *kv: [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in kv]}]  # noqa: E731
            c.create_key_pair(KeyName="deploy", KeyType="ed25519", TagSpecifications=tag("key-pair", ("env", region)))
            c.create_key_pair(KeyName=f"rsa-{account}", TagSpecifications=tag("key-pair", ("Name", "rsa")))
            web = c.create_security_group(GroupName="web", Description="web tier",
                                          TagSpecifications=tag("security-group", ("Name", "web"), ("tier", "1")))
            db = c.create_security_group(GroupName="db", Description="db tier")["GroupId"]
            c.authorize_security_group_ingress(GroupId=web["GroupId"], IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                 "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "https"}]},
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}]}])
            c.authorize_security_group_ingress(GroupId=db, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web["GroupId"]}]}],
                TagSpecifications=tag("security-group-rule", ("purpose", "pg")))
            c.create_tags(Resources=[db], Tags=[{"Key": "Name", "Value": "db"}, {"Key": "owner", "Value": account}])
            vpc = c.describe_vpcs()["Vpcs"][0]["VpcId"]
            c.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": f"default-{account}-{region}"}])
            c.create_key_pair(KeyName="to-delete", KeyType="ed25519")
            c.delete_key_pair(KeyName="to-delete")


def test_everything_survives_sigkill(fresh_server):
    populate(fresh_server)
    before = snapshot(fresh_server)
    # Sanity: the snapshot has the data we made, so comparing it means something.
    a_east = before[("a", "us-east-1")]
    assert sorted(k["KeyName"] for k in a_east["key_pairs"]["KeyPairs"]) == ["deploy", "rsa-a"]
    assert len(a_east["groups"]["SecurityGroups"]) == 3  # default, web, db
    assert any(t["Key"] == "purpose" for t in a_east["tags"]["Tags"])
    assert before[("a", "us-east-1")] != before[("b", "us-east-1")]

    assert fresh_server.kill() == -9
    fresh_server.start()
    after = snapshot(fresh_server)
    assert after == before

    # And the restarted server keeps working on that state.
    c = fresh_server.client("a", "us-east-1")
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName="deploy", KeyType="ed25519")
    assert error_code(e) == "InvalidKeyPair.Duplicate"
    c.create_key_pair(KeyName="to-delete", KeyType="ed25519")


def test_sigterm_is_graceful_and_state_is_kept(fresh_server):
    c = fresh_server.client()
    kp = c.create_key_pair(KeyName="k", KeyType="ed25519")
    assert fresh_server.stop() == 0
    assert "stopped" in fresh_server.log_path.read_text()
    fresh_server.start()
    got = fresh_server.client().describe_key_pairs(KeyNames=["k"])["KeyPairs"][0]
    assert got["KeyPairId"] == kp["KeyPairId"] and got["KeyFingerprint"] == kp["KeyFingerprint"]


def fast_client(server, account, region="us-east-1"):
    _, _, key, secret = ACCOUNTS[account]
    return boto3.client("ec2", endpoint_url=server.endpoint, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20))


CONNECTION_ERRORS = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)


def test_sigkill_during_a_write_burst_loses_nothing_acknowledged(fresh_server):
    """Each worker creates key pairs (with three tags each) and adds tag pairs to its own group.
    After a SIGKILL mid-burst: every acknowledged write is there, whole; nothing unattempted
    exists; an in-flight write is either fully there or fully absent."""
    workers = 4
    stop = threading.Event()
    lock = threading.Lock()
    log = {w: {"keys": [], "tags": []} for w in range(workers)}  # (name, outcome, id)
    acknowledged = [0]
    groups = {}
    for w in range(workers):
        account = ACCTS[w % 2]
        groups[w] = fresh_server.client(account).create_security_group(
            GroupName=f"burst-{w}", Description="burst")["GroupId"]

    def work(w):
        account = ACCTS[w % 2]
        c = fast_client(fresh_server, account)
        i = 0
        while not stop.is_set():
            i += 1
            name = f"w{w}-k{i}"
            tags = [{"Key": "worker", "Value": str(w)}, {"Key": "seq", "Value": str(i)}, {"Key": "name", "Value": name}]
            try:
                r = c.create_key_pair(KeyName=name, KeyType="ed25519",
                                      TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}])
                log[w]["keys"].append((name, "ok", r["KeyPairId"]))
            except CONNECTION_ERRORS:
                log[w]["keys"].append((name, "unknown", None))
                return
            with lock:
                acknowledged[0] += 1
            try:
                c.create_tags(Resources=[groups[w]], Tags=[{"Key": f"a{i}", "Value": name}, {"Key": f"b{i}", "Value": name}])
                log[w]["tags"].append((i, "ok"))
            except CONNECTION_ERRORS:
                log[w]["tags"].append((i, "unknown"))
                return

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    wait_until(lambda: acknowledged[0] >= 40, timeout=60, what="40 acknowledged writes")
    fresh_server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()

    fresh_server.start()
    total_ok = 0
    for w in range(workers):
        account = ACCTS[w % 2]
        c = fresh_server.client(account)
        stored = {k["KeyName"]: k for k in c.describe_key_pairs(
            Filters=[{"Name": "key-name", "Values": [f"w{w}-k*"]}])["KeyPairs"]}
        attempted = {name for name, _, _ in log[w]["keys"]}
        assert set(stored) <= attempted, set(stored) - attempted
        for name, outcome, kid in log[w]["keys"]:
            if outcome == "ok":
                total_ok += 1
                assert name in stored, f"acknowledged key pair {name} was lost"
                assert stored[name]["KeyPairId"] == kid
            if name in stored:
                assert [t["Key"] for t in stored[name]["Tags"]] == ["worker", "seq", "name"], name
                assert stored[name]["Tags"][2]["Value"] == name
        # Group tags: acknowledged pairs present, every pair whole, nothing unattempted.
        tags = {t["Key"]: t["Value"] for t in c.describe_tags(
            Filters=[{"Name": "resource-id", "Values": [groups[w]]}])["Tags"]}
        attempted_tags = {i for i, _ in log[w]["tags"]}
        for i, outcome in log[w]["tags"]:
            if outcome == "ok":
                assert f"a{i}" in tags and f"b{i}" in tags, f"acknowledged tags {i} of worker {w} lost"
            assert (f"a{i}" in tags) == (f"b{i}" in tags), f"tags {i} of worker {w} half-applied"
        for key in tags:
            assert int(key[1:]) in attempted_tags, key
        # Keys the other account made are not visible here.
        other = {k["KeyName"] for k in c.describe_key_pairs()["KeyPairs"]}
        assert not any(n.startswith(f"w{v}-") for v in range(workers) if ACCTS[v % 2] != account for n in other)
    assert total_ok >= 40
    # The restarted server accepts writes again, including names that were in flight.
    c = fresh_server.client("a")
    for w in range(0, workers, 2):
        name, outcome, _ = log[w]["keys"][-1]
        if outcome == "unknown":
            try:
                c.delete_key_pair(KeyName=name)
            except ClientError:
                pytest.fail("delete after restart failed")
            c.create_key_pair(KeyName=name, KeyType="ed25519")


def read_credentials(path):
    cp = configparser.ConfigParser()
    cp.read_string(path.read_text())
    return cp


def test_credentials_file_written_once(fresh_server, tmp_path, monkeypatch):
    path = fresh_server.data_dir / "credentials"
    assert path.exists()
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    cp = read_credentials(path)
    assert "default" in cp.sections()
    key, secret = cp["default"]["aws_access_key_id"], cp["default"]["aws_secret_access_key"]
    assert key and secret
    # The file itself must not be one of the configured accounts' keys.
    assert key not in {v[2] for v in ACCOUNTS.values()}

    # boto3 reads it as an ordinary shared-credentials file.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    session = boto3.Session(profile_name="default", region_name="us-east-1")
    admin = session.client("ec2", endpoint_url=fresh_server.endpoint,
                           config=botocore.config.Config(retries={"max_attempts": 1}))
    assert [r["RegionName"] for r in admin.describe_regions()["Regions"]] == ["us-east-1", "us-west-2", "eu-west-1"]
    name = f"admin-{uuid.uuid4().hex[:8]}"
    admin.create_key_pair(KeyName=name, KeyType="ed25519")
    # The admin is its own account: team a does not see its key pair.
    with pytest.raises(ClientError) as e:
        fresh_server.client("a").describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    text = path.read_bytes()

    # Neither a crash nor a clean restart rewrites it.
    fresh_server.kill()
    fresh_server.start()
    assert path.read_bytes() == text
    assert path.stat().st_ino == st.st_ino and path.stat().st_mtime_ns == st.st_mtime_ns
    assert fresh_server.stop() == 0
    fresh_server.start()
    assert path.read_bytes() == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin.describe_key_pairs(KeyNames=[name])["KeyPairs"][0]["KeyName"] == name
    # No stray temp files next to it.
    assert not [p.name for p in fresh_server.data_dir.iterdir() if p.name.endswith(".tmp")]
