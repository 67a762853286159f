"""Security groups and their rules, through boto3 and the AWS CLI."""

import concurrent.futures
import json
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from conftest import ACCOUNTS, error_code

REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]
ALL_OUT = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [],
           "UserIdGroupPairs": []}
MISSING_SG = "sg-0123456789abcdef0"


def strip(resp):
    resp = dict(resp)
    resp.pop("ResponseMetadata", None)
    return resp


def make_group(c, unique, tags=None, **kw):
    """Creates a group in the caller's default VPC; returns (id, name)."""
    name = kw.pop("GroupName", None) or unique("grp")
    args = {"GroupName": name, "Description": kw.pop("Description", "test group"), **kw}
    if tags:
        args["TagSpecifications"] = [{"ResourceType": "security-group",
                                      "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return c.create_security_group(**args)["GroupId"], name


def describe(c, gid):
    return c.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]


def default_vpc(c):
    return c.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def tcp(port, *cidrs, to=None):
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": to if to is not None else port,
            "IpRanges": [{"CidrIp": c} for c in cidrs]}


def raw_client(server, account="a", region="us-east-1"):
    """A client that skips botocore's parameter validation, to send what SDKs would refuse."""
    _, _, key, secret = ACCOUNTS[account]
    return boto3.client("ec2", endpoint_url=server.endpoint, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


def cli_error(p):
    assert p.returncode != 0, p.stdout
    return p.stderr


# --- default groups ---------------------------------------------------------------------------

@pytest.mark.parametrize("account", ["a", "b", "c"])
@pytest.mark.parametrize("region", REGIONS)
def test_every_account_and_region_has_a_default_group(ec2, account, region):
    c = ec2(account, region)
    vpc = default_vpc(c)
    groups = c.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert len(groups) == 1
    g = groups[0]
    assert g["VpcId"] == vpc
    assert g["OwnerId"] == ACCOUNTS[account][0]
    assert g["GroupId"].startswith("sg-")
    assert g["Description"] == "default VPC security group"
    assert g["IpPermissions"] == [{
        "IpProtocol": "-1", "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
        "UserIdGroupPairs": [{"GroupId": g["GroupId"], "UserId": ACCOUNTS[account][0]}],
    }]
    assert g["IpPermissionsEgress"] == [ALL_OUT]
    assert "Tags" not in g
    assert g["SecurityGroupArn"] == f"arn:aws:ec2:{region}:{ACCOUNTS[account][0]}:security-group/{g['GroupId']}"


def test_default_groups_differ_between_accounts_and_regions(ec2):
    ids = set()
    for account in "ab":
        for region in ["us-east-1", "eu-west-1"]:
            ids.add(ec2(account, region).describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"])
    assert len(ids) == 4


def test_default_group_cannot_be_deleted(ec2):
    c = ec2()
    gid = c.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupId=gid)
    assert error_code(e) == "CannotDelete"
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupName="default")
    assert error_code(e) == "CannotDelete"
    assert describe(c, gid)["GroupName"] == "default"


# --- create -----------------------------------------------------------------------------------

def test_create_in_default_vpc_gets_allow_all_egress(ec2, unique):
    c = ec2()
    name = unique("web")
    resp = c.create_security_group(GroupName=name, Description="web servers")
    gid = resp["GroupId"]
    assert gid.startswith("sg-") and len(gid) == len("sg-") + 17
    assert resp["SecurityGroupArn"].endswith(f":111111111111:security-group/{gid}")
    assert "Tags" not in resp
    g = describe(c, gid)
    assert g["GroupName"] == name
    assert g["Description"] == "web servers"
    assert g["VpcId"] == default_vpc(c)
    assert g["OwnerId"] == "111111111111"
    assert g["IpPermissions"] == []
    assert g["IpPermissionsEgress"] == [ALL_OUT]
    assert "Tags" not in g
    rules = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    assert len(rules) == 1
    r = rules[0]
    assert r["IsEgress"] is True and r["IpProtocol"] == "-1" and r["CidrIpv4"] == "0.0.0.0/0"
    assert r["FromPort"] == -1 and r["ToPort"] == -1


def test_create_with_explicit_vpc_and_tags(ec2, unique):
    c = ec2()
    vpc = default_vpc(c)
    gid, _ = make_group(c, unique, VpcId=vpc, tags={"Name": "tagged", "env": "test"})
    g = describe(c, gid)
    assert g["VpcId"] == vpc
    assert g["Tags"] == [{"Key": "Name", "Value": "tagged"}, {"Key": "env", "Value": "test"}]
    resp = c.create_security_group(GroupName=unique("t"), Description="d", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert resp["Tags"] == [{"Key": "k", "Value": "v"}]


def test_create_tag_specification_for_another_type_is_refused(ec2, unique):
    with pytest.raises(ClientError) as e:
        ec2().create_security_group(GroupName=unique(), Description="d", TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert error_code(e) == "InvalidParameterValue"


def test_duplicate_name_in_same_vpc(ec2, unique):
    c = ec2()
    gid, name = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=name, Description="again")
    assert error_code(e) == "InvalidGroup.Duplicate"
    assert name in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName="default", Description="again")
    assert error_code(e) == "InvalidGroup.Duplicate"
    assert len(c.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]) == 1


@pytest.mark.parametrize("name", ["sg-web", "sg-0123456789abcdef0"])
def test_names_starting_with_sg_are_refused(ec2, name):
    with pytest.raises(ClientError) as e:
        ec2().create_security_group(GroupName=name, Description="d")
    assert error_code(e) == "InvalidParameterValue"


def test_missing_description(server, unique):
    c = raw_client(server)
    with pytest.raises(ParamValidationError):
        boto3.client("ec2", region_name="us-east-1").create_security_group(GroupName="x")
    name = unique()
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=name)
    assert error_code(e) == "MissingParameter"
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=name, Description="")
    assert error_code(e) == "MissingParameter"
    with pytest.raises(ClientError) as e:
        c.create_security_group(Description="no name")
    assert error_code(e) == "MissingParameter"
    assert c.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"] == []


def test_unknown_and_malformed_vpc(ec2, unique):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=unique(), Description="d", VpcId="vpc-0123456789abcdef0")
    assert error_code(e) == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=unique(), Description="d", VpcId="vpc-zz")
    assert error_code(e) == "InvalidVpcID.Malformed"
    other = default_vpc(ec2("b"))
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=unique(), Description="d", VpcId=other)
    assert error_code(e) == "InvalidVpcID.NotFound"


# --- delete -----------------------------------------------------------------------------------

def test_delete_by_id_and_by_name(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    resp = c.delete_security_group(GroupId=gid)
    assert resp["Return"] is True and resp["GroupId"] == gid
    with pytest.raises(ClientError) as e:
        describe(c, gid)
    assert error_code(e) == "InvalidGroup.NotFound"
    # Its rules went with it.
    assert c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"] == []

    gid2, name2 = make_group(c, unique)
    assert c.delete_security_group(GroupName=name2)["GroupId"] == gid2
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupNames=[name2])
    assert error_code(e) == "InvalidGroup.NotFound"
    # The name is free again.
    c.create_security_group(GroupName=name2, Description="again")


def test_delete_unknown_and_malformed(ec2, unique):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupId=MISSING_SG)
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupName=unique("nope"))
    assert error_code(e) == "InvalidGroup.NotFound"
    for bad in ["sg-xyz", "vpc-0123456789abcdef0", "sg-0123456789ABCDEF0"]:
        with pytest.raises(ClientError) as e:
            c.delete_security_group(GroupId=bad)
        assert error_code(e) == "InvalidGroupId.Malformed", bad


def test_delete_referenced_group_is_a_dependency_violation(ec2, unique):
    c = ec2()
    target, _ = make_group(c, unique)
    referrer, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=referrer, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": target}]}])
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupId=target)
    assert error_code(e) == "DependencyViolation"
    assert describe(c, target)["GroupId"] == target
    # A group that only references itself can go.
    c.authorize_security_group_ingress(GroupId=target, IpPermissions=[
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": target}]}])
    # Egress references count too.
    egress_ref, _ = make_group(c, unique)
    c.authorize_security_group_egress(GroupId=egress_ref, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2, "UserIdGroupPairs": [{"GroupId": target}]}])
    c.delete_security_group(GroupId=referrer)
    with pytest.raises(ClientError) as e:
        c.delete_security_group(GroupId=target)
    assert error_code(e) == "DependencyViolation"
    c.delete_security_group(GroupId=egress_ref)
    c.delete_security_group(GroupId=target)


# --- authorize --------------------------------------------------------------------------------

def test_authorize_response_lists_created_rules(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    resp = c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "office"}, {"CidrIp": "192.168.1.1/32"}],
         "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32", "Description": "v6"}]},
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "UserIdGroupPairs": [{"GroupId": gid, "Description": "self"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "PrefixListIds": [{"PrefixListId": "pl-63a5400a"}]},
    ])
    assert resp["Return"] is True
    rules = resp["SecurityGroupRules"]
    assert len(rules) == 5
    assert len({r["SecurityGroupRuleId"] for r in rules}) == 5
    for r in rules:
        assert r["SecurityGroupRuleId"].startswith("sgr-")
        assert r["GroupId"] == gid and r["GroupOwnerId"] == "111111111111" and r["IsEgress"] is False
        assert r["SecurityGroupRuleArn"] == f"arn:aws:ec2:us-east-1:111111111111:security-group-rule/{r['SecurityGroupRuleId']}"
        assert r["Tags"] == []
    by_peer = {r.get("CidrIpv4") or r.get("CidrIpv6") or r.get("PrefixListId") or r["ReferencedGroupInfo"]["GroupId"]: r
               for r in rules}
    office = by_peer["10.0.0.0/8"]
    assert (office["IpProtocol"], office["FromPort"], office["ToPort"], office["Description"]) == ("tcp", 22, 22, "office")
    assert "Description" not in by_peer["192.168.1.1/32"]
    assert by_peer["2001:db8::/32"]["Description"] == "v6" and "CidrIpv4" not in by_peer["2001:db8::/32"]
    assert by_peer[gid]["ReferencedGroupInfo"] == {"GroupId": gid, "UserId": "111111111111"}
    assert by_peer[gid]["IpProtocol"] == "udp" and by_peer[gid]["Description"] == "self"
    assert by_peer["pl-63a5400a"]["FromPort"] == 443
    # DescribeSecurityGroupRules reports the same rules.
    described = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    ingress = {r["SecurityGroupRuleId"]: r for r in described if not r["IsEgress"]}
    assert ingress == {r["SecurityGroupRuleId"]: r for r in rules}


def test_describe_folds_rules_by_protocol_and_ports(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    peer, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "172.16.0.0/12", "Description": "vpn"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0"}], "UserIdGroupPairs": [{"GroupId": peer}],
         "PrefixListIds": [{"PrefixListId": "pl-12345678", "Description": "s3"}]},
        tcp(80, "0.0.0.0/0", to=81),
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.9.0.0/16"}]},
    ])
    perms = describe(c, gid)["IpPermissions"]
    assert perms == [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
         "IpRanges": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "172.16.0.0/12", "Description": "vpn"}],
         "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
         "PrefixListIds": [{"PrefixListId": "pl-12345678", "Description": "s3"}],
         "UserIdGroupPairs": [{"GroupId": peer, "UserId": "111111111111"}]},
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 81, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
         "PrefixListIds": [], "UserIdGroupPairs": []},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
         "PrefixListIds": [], "UserIdGroupPairs": []},
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.9.0.0/16"}], "Ipv6Ranges": [], "PrefixListIds": [],
         "UserIdGroupPairs": []},
    ]


def test_all_traffic_ignores_ports(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    rule = c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "-1", "FromPort": 5, "ToPort": 10, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])["SecurityGroupRules"][0]
    assert (rule["FromPort"], rule["ToPort"]) == (-1, -1)
    perm = describe(c, gid)["IpPermissions"][0]
    assert "FromPort" not in perm and "ToPort" not in perm


def test_legacy_flat_form(ec2, unique):
    c = ec2()
    gid, name = make_group(c, unique)
    resp = c.authorize_security_group_ingress(GroupName=name, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0")
    assert resp["Return"] is True
    [rule] = resp["SecurityGroupRules"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]) == ("tcp", 22, 22, "0.0.0.0/0")
    c.authorize_security_group_ingress(GroupId=gid, IpProtocol="udp", FromPort=1000, ToPort=2000, CidrIp="10.0.0.0/8")
    assert describe(c, gid)["IpPermissions"] == [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [],
         "PrefixListIds": [], "UserIdGroupPairs": []},
        {"IpProtocol": "udp", "FromPort": 1000, "ToPort": 2000, "IpRanges": [{"CidrIp": "10.0.0.0/8"}], "Ipv6Ranges": [],
         "PrefixListIds": [], "UserIdGroupPairs": []},
    ]
    # Same rule again, in the structured form: a duplicate.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "0.0.0.0/0")])
    assert error_code(e) == "InvalidPermission.Duplicate"
    # The legacy form revokes too.
    c.revoke_security_group_ingress(GroupName=name, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0")
    assert [p["IpProtocol"] for p in describe(c, gid)["IpPermissions"]] == ["udp"]


def test_legacy_and_structured_forms_cannot_be_mixed(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, CidrIp="10.0.0.0/8", IpProtocol="tcp", FromPort=1, ToPort=1,
                                           IpPermissions=[tcp(2, "10.0.0.0/8")])
    assert error_code(e) == "InvalidParameterCombination"
    assert describe(c, gid)["IpPermissions"] == []


def test_egress_rules(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    resp = c.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, "192.0.2.0/24")])
    [rule] = resp["SecurityGroupRules"]
    assert rule["IsEgress"] is True and rule["CidrIpv4"] == "192.0.2.0/24"
    g = describe(c, gid)
    assert g["IpPermissions"] == []
    assert g["IpPermissionsEgress"] == [ALL_OUT, {
        "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "192.0.2.0/24"}],
        "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}]
    # The default allow-all egress rule can be revoked, and re-adding it is not a duplicate then.
    c.revoke_security_group_egress(GroupId=gid, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert [p["IpProtocol"] for p in describe(c, gid)["IpPermissionsEgress"]] == ["tcp"]
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(443, "192.0.2.0/24")])
    assert error_code(e) == "InvalidPermission.Duplicate"
    c.authorize_security_group_egress(GroupId=gid, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def test_egress_needs_group_id(server):
    with pytest.raises(ClientError) as e:
        raw_client(server).authorize_security_group_egress(IpPermissions=[tcp(1, "10.0.0.0/8")])
    assert error_code(e) == "MissingParameter"


def test_source_group_by_user_id_group_pair(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    src, _ = make_group(c, unique)
    rule = c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
         "UserIdGroupPairs": [{"GroupId": src, "UserId": "111111111111", "Description": "app"}]}])["SecurityGroupRules"][0]
    assert rule["ReferencedGroupInfo"] == {"GroupId": src, "UserId": "111111111111"}
    assert describe(c, gid)["IpPermissions"][0]["UserIdGroupPairs"] == [
        {"GroupId": src, "UserId": "111111111111", "Description": "app"}]
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": MISSING_SG}]}])
    assert error_code(e) == "InvalidGroup.NotFound"


def test_duplicates(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidPermission.Duplicate"
    # A description does not make a rule different.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "x"}]}])
    assert error_code(e) == "InvalidPermission.Duplicate"
    # A batch with one duplicate adds nothing.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(23, "10.0.0.0/8"), tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidPermission.Duplicate"
    # A duplicate within one request.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(24, "10.0.0.0/8", "10.0.0.0/8")])
    assert error_code(e) == "InvalidPermission.Duplicate"
    assert len(describe(c, gid)["IpPermissions"]) == 1
    # The same peer on other ports, or the same rule as egress, is not a duplicate.
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8", to=23)])
    c.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])


@pytest.mark.parametrize("perm, codes", [
    (tcp(70000, "10.0.0.0/8"), {"InvalidParameterValue", "InvalidPermission.Malformed"}),
    (tcp(-5, "10.0.0.0/8", to=22), {"InvalidParameterValue", "InvalidPermission.Malformed"}),
    (tcp(30, "10.0.0.0/8", to=20), {"InvalidParameterValue", "InvalidPermission.Malformed"}),
    ({"IpProtocol": "udp", "FromPort": 53, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, {"InvalidParameterValue"}),
    ({"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, {"InvalidParameterValue"}),
    ({"IpProtocol": "icmp", "FromPort": 300, "ToPort": 0, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
     {"InvalidParameterValue", "InvalidPermission.Malformed"}),
    ({"IpProtocol": "bogus", "FromPort": 1, "ToPort": 1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, {"InvalidParameterValue"}),
    ({"IpProtocol": "256", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, {"InvalidParameterValue"}),
    (tcp(22, "10.0.0.0/33"), {"InvalidParameterValue"}),
    (tcp(22, "10.0.0/8"), {"InvalidParameterValue"}),
    (tcp(22, "not-a-cidr"), {"InvalidParameterValue"}),
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/129"}]},
     {"InvalidParameterValue"}),
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "10.0.0.0/8"}]},
     {"InvalidParameterValue"}),
    ({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "x" * 256}]},
     {"InvalidParameterValue"}),
], ids=["port-too-big", "negative-port", "from-after-to", "udp-missing-to", "tcp-no-ports", "icmp-type",
        "unknown-protocol", "protocol-number-too-big", "prefix-too-long", "short-address", "garbage-cidr",
        "ipv6-prefix-too-long", "ipv4-as-ipv6", "long-description"])
def test_bad_permissions_are_refused(ec2, unique, perm, codes):
    c = ec2()
    gid, _ = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(9999, "10.1.0.0/16"), perm])
    assert error_code(e) in codes, e.value.response["Error"]
    assert e.value.response["Error"]["Message"]
    # All or nothing: the good permission in the same call was not added.
    assert describe(c, gid)["IpPermissions"] == []


def test_permission_without_peer_is_refused(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1}])
    assert error_code(e) in {"MissingParameter", "InvalidParameterValue", "InvalidPermission.Malformed"}


def test_authorize_unknown_group(ec2, unique):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=MISSING_SG, IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupName=unique("nope"), IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_egress(GroupId="sg-nope", IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidGroupId.Malformed"


def test_rule_limit_per_direction(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    sixty = [f"10.0.{i}.0/24" for i in range(60)]
    # 61 at once: refused whole.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, *sixty, "10.1.0.0/24")])
    assert error_code(e) == "RulesPerSecurityGroupLimitExceeded"
    assert describe(c, gid)["IpPermissions"] == []
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, *sixty)])
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(23, "10.1.0.0/24")])
    assert error_code(e) == "RulesPerSecurityGroupLimitExceeded"
    # The quota is per direction: egress still has room (59 besides the default rule).
    c.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(22, *sixty[:59])])
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_egress(GroupId=gid, IpPermissions=[tcp(23, "10.1.0.0/24")])
    assert error_code(e) == "RulesPerSecurityGroupLimitExceeded"
    # IPv4 and IPv6 rules have separate quotas; a group reference counts against both.
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/64"}]}])
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": gid}]}])
    assert error_code(e) == "RulesPerSecurityGroupLimitExceeded"
    # Revoking one makes room again.
    c.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, sixty[0])])
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(23, "10.1.0.0/24")])


# --- revoke -----------------------------------------------------------------------------------

def test_revoke_by_permissions(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8", "192.168.0.0/16"), tcp(80, "0.0.0.0/0")])
    resp = c.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert resp["Return"] is True
    [revoked] = resp["RevokedSecurityGroupRules"]
    assert revoked["SecurityGroupRuleId"].startswith("sgr-") and revoked["GroupId"] == gid and revoked["IsEgress"] is False
    assert (revoked["IpProtocol"], revoked["FromPort"], revoked["ToPort"], revoked["CidrIpv4"]) == ("tcp", 22, 22, "10.0.0.0/8")
    perms = describe(c, gid)["IpPermissions"]
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in perms] == [(22, ["192.168.0.0/16"]), (80, ["0.0.0.0/0"])]
    # Gone means gone: revoking again fails and changes nothing.
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidPermission.NotFound"
    # A batch naming one missing rule revokes nothing.
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=gid, IpPermissions=[tcp(80, "0.0.0.0/0"), tcp(81, "0.0.0.0/0")])
    assert error_code(e) == "InvalidPermission.NotFound"
    assert len(describe(c, gid)["IpPermissions"]) == 2
    # An ingress rule cannot be revoked as egress.
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_egress(GroupId=gid, IpPermissions=[tcp(80, "0.0.0.0/0")])
    assert error_code(e) == "InvalidPermission.NotFound"


def test_revoke_by_rule_ids(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    rules = c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8"), tcp(80, "0.0.0.0/0")])["SecurityGroupRules"]
    ids = [r["SecurityGroupRuleId"] for r in rules]
    resp = c.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[ids[0]])
    assert [r["SecurityGroupRuleId"] for r in resp["RevokedSecurityGroupRules"]] == [ids[0]]
    remaining = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    assert ids[0] not in {r["SecurityGroupRuleId"] for r in remaining}
    assert ids[1] in {r["SecurityGroupRuleId"] for r in remaining}
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[ids[0]])
    assert error_code(e) == "InvalidSecurityGroupRuleId.NotFound"
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=["sgr-nope"])
    assert error_code(e) == "InvalidSecurityGroupRuleId.Malformed"
    # The default egress rule is egress: not revocable through the ingress call.
    egress_id = [r["SecurityGroupRuleId"] for r in remaining if r["IsEgress"]][0]
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=gid, SecurityGroupRuleIds=[egress_id])
    assert error_code(e) == "InvalidSecurityGroupRuleId.NotFound"
    resp = c.revoke_security_group_egress(GroupId=gid, SecurityGroupRuleIds=[egress_id])
    assert resp["RevokedSecurityGroupRules"][0]["IsEgress"] is True
    assert describe(c, gid)["IpPermissionsEgress"] == []
    # Another group's rule id is not found through this group.
    other, _ = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.revoke_security_group_ingress(GroupId=other, SecurityGroupRuleIds=[ids[1]])
    assert error_code(e) == "InvalidSecurityGroupRuleId.NotFound"


def test_revoke_needs_something_to_revoke(server, ec2, unique):
    gid, _ = make_group(ec2(), unique)
    with pytest.raises(ClientError) as e:
        raw_client(server).revoke_security_group_ingress(GroupId=gid)
    assert error_code(e) == "MissingParameter"


# --- describe ---------------------------------------------------------------------------------

def test_describe_by_ids_and_names(ec2, unique):
    c = ec2()
    g1, n1 = make_group(c, unique)
    g2, n2 = make_group(c, unique)
    assert {g["GroupId"] for g in c.describe_security_groups(GroupIds=[g1, g2])["SecurityGroups"]} == {g1, g2}
    assert [g["GroupId"] for g in c.describe_security_groups(GroupNames=[n2])["SecurityGroups"]] == [g2]
    both = c.describe_security_groups(GroupNames=[n1, "default"])["SecurityGroups"]
    assert {g["GroupName"] for g in both} == {n1, "default"}
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupIds=[g1, MISSING_SG])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert MISSING_SG in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupIds=["sg-12"])
    assert error_code(e) == "InvalidGroupId.Malformed"
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupNames=[n1, unique("nope")])
    assert error_code(e) == "InvalidGroup.NotFound"
    everything = {g["GroupId"] for g in c.describe_security_groups()["SecurityGroups"]}
    assert {g1, g2} <= everything


def test_describe_filters(ec2, unique):
    c = ec2()
    mark = uuid.uuid4().hex
    web, web_name = make_group(c, unique, tags={"suite": mark, "role": "web"}, GroupName=f"web-{mark}",
                               Description=f"web tier {mark}")
    db, _ = make_group(c, unique, tags={"suite": mark, "role": "db"}, Description=f"db tier {mark}")
    c.authorize_security_group_ingress(GroupId=web, IpPermissions=[tcp(8080, "10.20.0.0/16"),
                                                                   {"IpProtocol": "udp", "FromPort": 500, "ToPort": 4500,
                                                                    "Ipv6Ranges": [{"CidrIpv6": "2001:db8:1::/48"}]}])
    c.authorize_security_group_ingress(GroupId=db, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web}]}])
    c.authorize_security_group_egress(GroupId=db, IpPermissions=[tcp(25, "198.51.100.0/24")])
    mine = {"Name": "tag:suite", "Values": [mark]}

    def ids(*filters):
        return {g["GroupId"] for g in c.describe_security_groups(Filters=[mine, *filters])["SecurityGroups"]}

    def f(name, *values):
        return {"Name": name, "Values": list(values)}

    assert ids() == {web, db}
    assert ids(f("group-name", web_name)) == {web}
    assert ids(f("group-name", "web-*")) == {web}
    assert ids(f("group-name", "*" + mark[-4:])) == {web}
    assert ids(f("group-name", "w?b-*")) == {web}
    assert ids(f("group-id", db)) == {db}
    assert ids(f("group-id", db, web)) == {web, db}
    assert ids(f("description", f"db tier {mark}")) == {db}
    assert ids(f("description", "*tier*")) == {web, db}
    assert ids(f("vpc-id", default_vpc(c))) == {web, db}
    assert ids(f("vpc-id", "vpc-0123456789abcdef0")) == set()
    assert ids(f("owner-id", "111111111111")) == {web, db}
    assert ids(f("owner-id", "222222222222")) == set()
    assert ids(f("tag:role", "db")) == {db}
    assert ids(f("tag-key", "role")) == {web, db}
    assert ids(f("tag-value", "web")) == {web}
    assert ids(f("ip-permission.from-port", "8080")) == {web}
    assert ids(f("ip-permission.to-port", "4500")) == {web}
    assert ids(f("ip-permission.protocol", "udp")) == {web}
    assert ids(f("ip-permission.protocol", "tcp")) == {web, db}
    assert ids(f("ip-permission.cidr", "10.20.0.0/16")) == {web}
    assert ids(f("ip-permission.cidr", "10.20.*")) == {web}
    assert ids(f("ip-permission.ipv6-cidr", "2001:db8:1::/48")) == {web}
    assert ids(f("ip-permission.group-id", web)) == {db}
    assert ids(f("ip-permission.user-id", "111111111111")) == {db}
    assert ids(f("egress.ip-permission.cidr", "198.51.100.0/24")) == {db}
    assert ids(f("egress.ip-permission.cidr", "0.0.0.0/0")) == {web, db}
    assert ids(f("egress.ip-permission.to-port", "25")) == {db}
    assert ids(f("egress.ip-permission.protocol", "-1")) == {web, db}
    assert ids(f("ip-permission.cidr", "198.51.100.0/24")) == set()
    # Filters AND, values OR.
    assert ids(f("tag:role", "web", "db"), f("ip-permission.from-port", "5432")) == {db}
    # The default group matches the default group's own self-reference.
    defaults = c.describe_security_groups(Filters=[f("group-name", "default")])["SecurityGroups"]
    assert len(defaults) == 1


def test_unknown_filter_is_refused(ec2):
    c = ec2()
    for filters in ([{"Name": "bogus", "Values": ["x"]}],
                    [{"Name": "group-name", "Values": ["no-such-group-*"]}, {"Name": "bogus", "Values": ["x"]}]):
        with pytest.raises(ClientError) as e:
            c.describe_security_groups(Filters=filters)
        assert error_code(e) == "InvalidParameterValue"
        with pytest.raises(ClientError) as e:
            c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [MISSING_SG]}, *filters])
        assert error_code(e) == "InvalidParameterValue"


def test_unknown_filter_is_refused_even_with_nothing_to_list(ec2):
    # Account c in us-west-2 has no key pairs; the filter name alone is wrong.
    c = ec2("c", "us-west-2")
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(Filters=[{"Name": "bogus", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupIds=[], Filters=[{"Name": "group-name", "Values": ["none"]},
                                                        {"Name": "not-a-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_filter_by_referenced_group_name(ec2, unique):
    c = ec2()
    src, src_name = make_group(c, unique)
    dst, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=dst, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": src}]}])
    found = c.describe_security_groups(Filters=[{"Name": "ip-permission.group-name", "Values": [src_name]}])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [dst]


def test_describe_pagination(ec2, unique):
    c = ec2()
    mark = uuid.uuid4().hex
    created = {make_group(c, unique, tags={"page": mark})[0] for _ in range(7)}
    mine = [{"Name": "tag:page", "Values": [mark]}]
    first = c.describe_security_groups(Filters=mine, MaxResults=5)
    assert len(first["SecurityGroups"]) <= 5 and first.get("NextToken")
    seen = [g["GroupId"] for g in first["SecurityGroups"]]
    token = first["NextToken"]
    while token:
        page = c.describe_security_groups(Filters=mine, MaxResults=5, NextToken=token)
        assert len(page["SecurityGroups"]) <= 5
        seen += [g["GroupId"] for g in page["SecurityGroups"]]
        token = page.get("NextToken")
    assert sorted(seen) == sorted(created)
    # The paginator covers every group exactly once, the default group included.
    pages = c.get_paginator("describe_security_groups").paginate(PaginationConfig={"PageSize": 5})
    all_ids = [g["GroupId"] for p in pages for g in p["SecurityGroups"]]
    assert len(all_ids) == len(set(all_ids))
    assert created <= set(all_ids)
    assert set(all_ids) == {g["GroupId"] for g in c.describe_security_groups()["SecurityGroups"]}


def test_describe_pagination_errors(server, ec2, unique):
    c = raw_client(server)
    gid, _ = make_group(c, unique)
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(GroupIds=[gid], MaxResults=5)
    assert error_code(e) == "InvalidParameterCombination"
    for bad in (4, 1001):
        with pytest.raises(ClientError) as e:
            c.describe_security_groups(MaxResults=bad)
        assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_security_groups(MaxResults=5, NextToken="not-a-token")
    assert error_code(e) in {"InvalidPaginationToken", "InvalidParameterValue"}


# --- security group rules ---------------------------------------------------------------------

def test_describe_security_group_rules(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    other, _ = make_group(c, unique)
    created = c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8"), tcp(80, "0.0.0.0/0")])["SecurityGroupRules"]
    rid = created[0]["SecurityGroupRuleId"]
    by_id = c.describe_security_group_rules(SecurityGroupRuleIds=[rid])["SecurityGroupRules"]
    assert by_id == [created[0]]
    both = c.describe_security_group_rules(SecurityGroupRuleIds=[r["SecurityGroupRuleId"] for r in created])["SecurityGroupRules"]
    assert len(both) == 2
    rules = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    assert len(rules) == 3 and {r["GroupId"] for r in rules} == {gid}
    two = c.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid, other]}])["SecurityGroupRules"]
    assert {r["GroupId"] for r in two} == {gid, other} and len(two) == 4
    assert [r["SecurityGroupRuleId"] for r in c.describe_security_group_rules(
        Filters=[{"Name": "security-group-rule-id", "Values": [rid]}])["SecurityGroupRules"]] == [rid]
    with pytest.raises(ClientError) as e:
        c.describe_security_group_rules(SecurityGroupRuleIds=["sgr-0123456789abcdef0"])
    assert error_code(e) == "InvalidSecurityGroupRuleId.NotFound"
    with pytest.raises(ClientError) as e:
        c.describe_security_group_rules(SecurityGroupRuleIds=["sgr-x"])
    assert error_code(e) == "InvalidSecurityGroupRuleId.Malformed"


def test_rule_tags(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    mark = uuid.uuid4().hex
    rules = c.authorize_security_group_ingress(
        GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8", "10.1.0.0/16")],
        TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": [{"Key": "rule-mark", "Value": mark}]}],
    )["SecurityGroupRules"]
    assert all(r["Tags"] == [{"Key": "rule-mark", "Value": mark}] for r in rules)
    found = c.describe_security_group_rules(Filters=[{"Name": "tag:rule-mark", "Values": [mark]}])["SecurityGroupRules"]
    assert {r["SecurityGroupRuleId"] for r in found} == {r["SecurityGroupRuleId"] for r in rules}
    # Tags added later through CreateTags show up too.
    c.create_tags(Resources=[rules[0]["SecurityGroupRuleId"]], Tags=[{"Key": "extra", "Value": "1"}])
    [tagged] = c.describe_security_group_rules(Filters=[{"Name": "tag:extra", "Values": ["1"]},
                                                        {"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"]
    assert tagged["Tags"] == [{"Key": "rule-mark", "Value": mark}, {"Key": "extra", "Value": "1"}]
    # The wrong resource type is refused.
    with pytest.raises(ClientError) as e:
        c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(23, "10.0.0.0/8")], TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_security_group_rules_pagination(ec2, unique):
    c = ec2()
    gid, _ = make_group(c, unique)
    c.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, *[f"10.0.{i}.0/24" for i in range(11)])])
    mine = [{"Name": "group-id", "Values": [gid]}]
    expected = {r["SecurityGroupRuleId"] for r in c.describe_security_group_rules(Filters=mine)["SecurityGroupRules"]}
    assert len(expected) == 12
    seen, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        page = c.describe_security_group_rules(Filters=mine, MaxResults=5, **kw)
        assert len(page["SecurityGroupRules"]) <= 5
        seen += [r["SecurityGroupRuleId"] for r in page["SecurityGroupRules"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == sorted(expected)
    paged = [r["SecurityGroupRuleId"] for p in c.get_paginator("describe_security_group_rules").paginate(
        Filters=mine, PaginationConfig={"PageSize": 5}) for r in p["SecurityGroupRules"]]
    assert sorted(paged) == sorted(expected)


# --- isolation --------------------------------------------------------------------------------

def test_other_accounts_cannot_touch_a_group(ec2, unique):
    a, b = ec2("a"), ec2("b")
    gid, name = make_group(a, unique, tags={"owner": "a"})
    rule = a.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])["SecurityGroupRules"][0]
    rid = rule["SecurityGroupRuleId"]

    def same_as_missing(call, **kw):
        """b's view of a's group is exactly that of a group that does not exist."""
        with pytest.raises(ClientError) as real:
            call(**kw)
        swapped = {k: (MISSING_SG if v is gid else v) for k, v in kw.items()}
        with pytest.raises(ClientError) as missing:
            call(**swapped)
        assert error_code(real) == error_code(missing)
        assert real.value.response["Error"]["Message"].replace(gid, MISSING_SG) == missing.value.response["Error"]["Message"]
        return error_code(real)

    with pytest.raises(ClientError) as e:
        b.describe_security_groups(GroupIds=[gid])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert gid not in {g["GroupId"] for g in b.describe_security_groups()["SecurityGroups"]}
    assert b.describe_security_groups(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroups"] == []
    assert b.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"] == []
    with pytest.raises(ClientError) as e:
        b.describe_security_groups(GroupNames=[name])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert same_as_missing(b.authorize_security_group_ingress, GroupId=gid,
                           IpPermissions=[tcp(80, "0.0.0.0/0")]) == "InvalidGroup.NotFound"
    assert same_as_missing(b.authorize_security_group_egress, GroupId=gid,
                           IpPermissions=[tcp(80, "0.0.0.0/0")]) == "InvalidGroup.NotFound"
    assert same_as_missing(b.revoke_security_group_ingress, GroupId=gid,
                           IpPermissions=[tcp(22, "10.0.0.0/8")]) == "InvalidGroup.NotFound"
    assert same_as_missing(b.delete_security_group, GroupId=gid) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        b.delete_security_group(GroupName=name)
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        b.create_tags(Resources=[gid], Tags=[{"Key": "owner", "Value": "b"}])
    assert error_code(e) == "InvalidGroup.NotFound"
    # Rules are invisible too.
    with pytest.raises(ClientError) as e:
        b.describe_security_group_rules(SecurityGroupRuleIds=[rid])
    assert error_code(e) == "InvalidSecurityGroupRuleId.NotFound"
    assert b.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"] == []
    # b cannot name a's group as a source without saying whose it is.
    b_gid, _ = make_group(b, unique)
    with pytest.raises(ClientError) as e:
        b.authorize_security_group_ingress(GroupId=b_gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": gid}]}])
    assert error_code(e) == "InvalidGroup.NotFound"
    # Nothing changed for a.
    g = describe(a, gid)
    assert g["Tags"] == [{"Key": "owner", "Value": "a"}]
    assert [r["CidrIp"] for r in g["IpPermissions"][0]["IpRanges"]] == ["10.0.0.0/8"]
    assert len(g["IpPermissions"]) == 1


def test_groups_are_regional(ec2, unique):
    east, west = ec2("a", "us-east-1"), ec2("a", "eu-west-1")
    gid, name = make_group(east, unique)
    with pytest.raises(ClientError) as e:
        west.describe_security_groups(GroupIds=[gid])
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        west.delete_security_group(GroupId=gid)
    assert error_code(e) == "InvalidGroup.NotFound"
    with pytest.raises(ClientError) as e:
        west.authorize_security_group_ingress(GroupId=gid, IpPermissions=[tcp(22, "10.0.0.0/8")])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert west.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"] == []
    # A peer must be in the same region.
    west_gid, _ = make_group(west, unique)
    with pytest.raises(ClientError) as e:
        west.authorize_security_group_ingress(GroupId=west_gid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 1, "ToPort": 1, "UserIdGroupPairs": [{"GroupId": gid}]}])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert describe(east, gid)["GroupName"] == name


def test_same_name_in_two_accounts_and_two_regions(ec2, unique):
    name = unique("shared")
    ids = set()
    for account, region in [("a", "us-east-1"), ("b", "us-east-1"), ("a", "eu-west-1"), ("c", "us-west-2")]:
        c = ec2(account, region)
        gid = c.create_security_group(GroupName=name, Description="shared")["GroupId"]
        ids.add(gid)
        [g] = c.describe_security_groups(GroupNames=[name])["SecurityGroups"]
        assert g["GroupId"] == gid and g["OwnerId"] == ACCOUNTS[account][0]
    assert len(ids) == 4


# --- AWS CLI ----------------------------------------------------------------------------------

def test_cli_main_flow(server, ec2, unique):
    # Each CLI call costs about a second, so one flow covers the main commands.
    c = ec2()
    name = unique("cli")
    gid = server.cli("create-security-group", "--group-name", name, "--description", "from the cli")["GroupId"]
    src, _ = make_group(c, unique)
    out = server.cli("authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp", "--port", "22",
                     "--cidr", "0.0.0.0/0")
    assert out["Return"] is True
    assert out["SecurityGroupRules"][0]["FromPort"] == 22 and out["SecurityGroupRules"][0]["CidrIpv4"] == "0.0.0.0/0"
    server.cli("authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp", "--port", "8000-8010",
               "--source-group", src)
    perms = [
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "dns"}],
         "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}]},
    ]
    out = server.cli("authorize-security-group-ingress", "--group-id", gid, "--ip-permissions", json.dumps(perms))
    assert len(out["SecurityGroupRules"]) == 2

    [g] = server.cli("describe-security-groups", "--filters", f"Name=group-name,Values={name}",
                     "Name=ip-permission.from-port,Values=8000")["SecurityGroups"]
    assert g["GroupId"] == gid and g["Description"] == "from the cli"
    ingress = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in g["IpPermissions"]}
    assert ingress[("tcp", 22, 22)]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    assert ingress[("tcp", 8000, 8010)]["UserIdGroupPairs"] == [{"GroupId": src, "UserId": "111111111111"}]
    assert ingress[("udp", 53, 53)]["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "dns"}]
    assert ingress[("udp", 53, 53)]["Ipv6Ranges"] == [{"CidrIpv6": "2001:db8::/32"}]
    assert g["IpPermissionsEgress"] == [ALL_OUT]
    # boto3 sees what the CLI made.
    assert describe(c, gid)["IpPermissions"] == g["IpPermissions"]

    rules = server.cli("describe-security-group-rules", "--filters", f"Name=group-id,Values={gid}")["SecurityGroupRules"]
    assert len(rules) == 5 and {r["GroupId"] for r in rules} == {gid}

    out = server.cli("revoke-security-group-ingress", "--group-id", gid, "--protocol", "tcp", "--port", "22",
                     "--cidr", "0.0.0.0/0")
    assert out["Return"] is True
    assert [p.get("FromPort") for p in describe(c, gid)["IpPermissions"]] == [8000, 53]

    # Error cases are independent of each other; run them side by side.
    failing = {
        "InvalidPermission.NotFound": (("revoke-security-group-ingress", "--group-id", gid, "--protocol", "tcp",
                                        "--port", "22", "--cidr", "0.0.0.0/0"), {}),
        "InvalidGroup.Duplicate": (("create-security-group", "--group-name", name, "--description", "d"), {}),
        "InvalidGroup.NotFound": (("describe-security-groups", "--group-ids", gid), {"account": "b"}),
        "InvalidParameterValue": (("authorize-security-group-ingress", "--group-id", gid, "--protocol", "tcp",
                                   "--port", "22", "--cidr", "10.0.0.0/33"), {}),
    }
    with concurrent.futures.ThreadPoolExecutor(len(failing)) as pool:
        results = {code: pool.submit(server.cli, *args, check=False, **kw) for code, (args, kw) in failing.items()}
        for code, fut in results.items():
            assert f"({code})" in cli_error(fut.result())

    server.cli("delete-security-group", "--group-id", gid)
    with pytest.raises(ClientError) as e:
        describe(c, gid)
    assert error_code(e) == "InvalidGroup.NotFound"
