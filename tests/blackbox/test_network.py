"""Default VPCs and subnets, and the account attributes that point at them."""

import ipaddress
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, CONFIG, KilnServer, error_code

REGIONS = {"us-east-1": "use1", "us-west-2": "usw2", "eu-west-1": "euw1"}


def default_vpc(c):
    [vpc] = c.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpc


@pytest.mark.parametrize("account", ["a", "b", "c"])
@pytest.mark.parametrize("region", list(REGIONS))
def test_one_default_vpc_per_account_and_region(ec2, account, region):
    c = ec2(account, region)
    [vpc] = [v for v in c.describe_vpcs()["Vpcs"] if v["IsDefault"]]
    assert vpc["CidrBlock"] == "172.31.0.0/16"
    assert vpc["State"] == "available"
    assert vpc["OwnerId"] == ACCOUNTS[account][0]
    assert vpc["VpcId"].startswith("vpc-") and len(vpc["VpcId"]) == len("vpc-") + 17
    assert vpc["InstanceTenancy"] == "default"
    assert vpc["DhcpOptionsId"].startswith("dopt-")
    [assoc] = vpc["CidrBlockAssociationSet"]
    assert assoc["CidrBlock"] == "172.31.0.0/16" and assoc["CidrBlockState"] == {"State": "associated"}
    assert assoc["AssociationId"].startswith("vpc-cidr-assoc-")


def test_default_vpcs_differ_between_accounts_and_regions(ec2):
    ids = [default_vpc(ec2(a, r))["VpcId"] for a in "abc" for r in REGIONS]
    assert len(set(ids)) == len(ids) == 9


def test_describe_vpcs_by_id_and_filters(ec2):
    c = ec2("a")
    vpc = default_vpc(c)
    vid = vpc["VpcId"]
    assert c.describe_vpcs(VpcIds=[vid])["Vpcs"] == [vpc]

    def ids(*filters):
        return [v["VpcId"] for v in c.describe_vpcs(Filters=[{"Name": n, "Values": list(vals)} for n, vals in filters])["Vpcs"]]

    assert ids(("vpc-id", [vid])) == [vid]
    assert ids(("vpc-id", ["vpc-0123456789abcdef0"])) == []
    assert ids(("is-default", ["true"])) == [vid]
    assert ids(("is-default", ["false"])) == []
    assert ids(("cidr", ["172.31.0.0/16"])) == [vid]
    assert ids(("cidr", ["10.0.0.0/16"])) == []
    assert ids(("cidr-block-association.cidr-block", ["172.31.*"])) == [vid]
    assert ids(("owner-id", ["111111111111"])) == [vid]
    assert ids(("owner-id", ["222222222222"])) == []
    assert ids(("state", ["available"])) == [vid]
    assert ids(("state", ["pending"])) == []
    assert ids(("dhcp-options-id", [vpc["DhcpOptionsId"]])) == [vid]
    assert ids(("is-default", ["true"]), ("state", ["pending", "available"])) == [vid]
    with pytest.raises(ClientError) as e:
        c.describe_vpcs(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_vpc_tag_filters(ec2):
    # Account c's us-west-2 VPC, with a key nobody else uses.
    c = ec2("c", "us-west-2")
    vid = default_vpc(c)["VpcId"]
    key, value = f"net-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    c.create_tags(Resources=[vid], Tags=[{"Key": key, "Value": value}])
    try:
        [vpc] = c.describe_vpcs(Filters=[{"Name": f"tag:{key}", "Values": [value]}])["Vpcs"]
        assert vpc["VpcId"] == vid and {"Key": key, "Value": value} in vpc["Tags"]
        assert c.describe_vpcs(Filters=[{"Name": f"tag:{key}", "Values": ["other"]}])["Vpcs"] == []
        assert [v["VpcId"] for v in c.describe_vpcs(Filters=[{"Name": "tag-key", "Values": [key]}])["Vpcs"]] == [vid]
        # Another account's VPC with the same filter: nothing.
        assert ec2("a", "us-west-2").describe_vpcs(Filters=[{"Name": f"tag:{key}", "Values": [value]}])["Vpcs"] == []
    finally:
        c.delete_tags(Resources=[vid], Tags=[{"Key": key}])


def test_unknown_and_malformed_vpc_ids(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.describe_vpcs(VpcIds=["vpc-0123456789abcdef0"])
    assert error_code(e) == "InvalidVpcID.NotFound"
    assert "vpc-0123456789abcdef0" in e.value.response["Error"]["Message"]
    for bad in ["vpc-xyz", "sg-0123456789abcdef0", "vpc-0123456789ABCDEF0"]:
        with pytest.raises(ClientError) as e:
            c.describe_vpcs(VpcIds=[bad])
        assert error_code(e) == "InvalidVpcID.Malformed", bad
    # Another account's and another region's default VPC look exactly like missing ones.
    for other in (default_vpc(ec2("b"))["VpcId"], default_vpc(ec2("a", "eu-west-1"))["VpcId"]):
        with pytest.raises(ClientError) as e:
            c.describe_vpcs(VpcIds=[other])
        assert error_code(e) == "InvalidVpcID.NotFound"
        assert c.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [other]}])["Vpcs"] == []


@pytest.mark.parametrize("region, short", list(REGIONS.items()))
def test_default_subnets(ec2, region, short):
    c = ec2("b", region)
    vid = default_vpc(c)["VpcId"]
    subnets = c.describe_subnets()["Subnets"]
    assert len(subnets) == 3
    assert sorted(s["AvailabilityZone"] for s in subnets) == [f"{region}{z}" for z in "abc"]
    zones = {z["ZoneName"]: z["ZoneId"] for z in c.describe_availability_zones()["AvailabilityZones"]}
    vpc_net = ipaddress.ip_network("172.31.0.0/16")
    nets = []
    for s in subnets:
        net = ipaddress.ip_network(s["CidrBlock"])
        nets.append(net)
        assert net.prefixlen == 20 and net.subnet_of(vpc_net)
        assert s["VpcId"] == vid
        assert s["AvailableIpAddressCount"] == 4091
        assert s["DefaultForAz"] is True
        assert s["MapPublicIpOnLaunch"] is True
        assert s["State"] == "available"
        assert s["OwnerId"] == "222222222222"
        assert s["AvailabilityZoneId"] == zones[s["AvailabilityZone"]]
        assert s["AvailabilityZoneId"].startswith(f"{short}-az")
        assert s["SubnetId"].startswith("subnet-")
        assert s["SubnetArn"] == f"arn:aws:ec2:{region}:222222222222:subnet/{s['SubnetId']}"
        assert "Tags" not in s
    # The /20s do not overlap.
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    assert by_zone[f"{region}a"]["AvailabilityZoneId"] == f"{short}-az1"


def test_describe_subnets_filters(ec2):
    c = ec2()
    vid = default_vpc(c)["VpcId"]
    subnets = c.describe_subnets()["Subnets"]
    first = subnets[0]

    def ids(name, *values):
        return sorted(s["SubnetId"] for s in c.describe_subnets(Filters=[{"Name": name, "Values": list(values)}])["Subnets"])

    everything = sorted(s["SubnetId"] for s in subnets)
    assert ids("availability-zone", first["AvailabilityZone"]) == [first["SubnetId"]]
    assert ids("availability-zone", "us-east-1a", "us-east-1b") == sorted(
        s["SubnetId"] for s in subnets if s["AvailabilityZone"] in ("us-east-1a", "us-east-1b"))
    assert ids("availability-zone", "us-west-2a") == []
    assert ids("availability-zone-id", first["AvailabilityZoneId"]) == [first["SubnetId"]]
    assert ids("vpc-id", vid) == everything
    assert ids("vpc-id", "vpc-0123456789abcdef0") == []
    assert ids("default-for-az", "true") == everything
    assert ids("default-for-az", "false") == []
    assert ids("subnet-id", first["SubnetId"]) == [first["SubnetId"]]
    assert ids("cidr-block", first["CidrBlock"]) == [first["SubnetId"]]
    assert ids("cidr-block", "172.31.*") == everything
    assert ids("owner-id", "111111111111") == everything
    assert ids("state", "available") == everything
    assert [s["SubnetId"] for s in c.describe_subnets(SubnetIds=[first["SubnetId"]])["Subnets"]] == [first["SubnetId"]]
    with pytest.raises(ClientError) as e:
        c.describe_subnets(SubnetIds=["subnet-0123456789abcdef0"])
    assert error_code(e) == "InvalidSubnetID.NotFound"
    with pytest.raises(ClientError) as e:
        c.describe_subnets(SubnetIds=["subnet-xyz"])
    assert error_code(e) == "InvalidSubnetID.Malformed"
    with pytest.raises(ClientError) as e:
        c.describe_subnets(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_subnets_are_per_account(ec2):
    a_subnets = {s["SubnetId"] for s in ec2("a").describe_subnets()["Subnets"]}
    b_subnets = {s["SubnetId"] for s in ec2("b").describe_subnets()["Subnets"]}
    assert a_subnets.isdisjoint(b_subnets)
    with pytest.raises(ClientError) as e:
        ec2("b").describe_subnets(SubnetIds=[sorted(a_subnets)[0]])
    assert error_code(e) == "InvalidSubnetID.NotFound"


@pytest.fixture(scope="module")
def many_zones():
    """A server with a region of seven zones, so subnet pages can be cut."""
    zones = ", ".join(f'"ap-southeast-2{z}"' for z in "abcdefg")
    s = KilnServer(config_text=f'[[regions]]\nname = "ap-southeast-2"\nzones = [{zones}]\n\n{CONFIG}').start()
    yield s
    s.cleanup()


def test_subnet_pagination(many_zones):
    c = many_zones.client("a", "ap-southeast-2")
    everything = c.describe_subnets()["Subnets"]
    assert len(everything) == 7
    # Seven distinct, non-overlapping /20s inside the VPC, zone ids apse2-az1..7.
    assert len({s["CidrBlock"] for s in everything}) == 7
    nets = [ipaddress.ip_network(s["CidrBlock"]) for s in everything]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    assert sorted(s["AvailabilityZoneId"] for s in everything) == [f"apse2-az{i}" for i in range(1, 8)]
    first = c.describe_subnets(MaxResults=5)
    assert len(first["Subnets"]) == 5 and first["NextToken"]
    second = c.describe_subnets(MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Subnets"]) == 2 and "NextToken" not in second
    assert sorted(s["SubnetId"] for s in first["Subnets"] + second["Subnets"]) == sorted(s["SubnetId"] for s in everything)
    paged = [s["SubnetId"] for p in c.get_paginator("describe_subnets").paginate(PaginationConfig={"PageSize": 5})
             for s in p["Subnets"]]
    assert sorted(paged) == sorted(s["SubnetId"] for s in everything)
    # Filters apply before the page is cut.
    filtered = c.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["ap-southeast-2g"]}], MaxResults=5)
    assert [s["AvailabilityZone"] for s in filtered["Subnets"]] == ["ap-southeast-2g"]
    assert "NextToken" not in filtered
    vpc_pages = c.describe_vpcs(MaxResults=5)
    assert len(vpc_pages["Vpcs"]) == 1 and "NextToken" not in vpc_pages


def test_account_attributes(ec2):
    for account, region in [("a", "us-east-1"), ("b", "eu-west-1")]:
        c = ec2(account, region)
        attrs = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
                 for a in c.describe_account_attributes()["AccountAttributes"]}
        assert attrs["default-vpc"] == [default_vpc(c)["VpcId"]]
        assert attrs["supported-platforms"] == ["VPC"]
        for numeric in ("max-instances", "vpc-max-security-groups-per-interface", "max-elastic-ips", "vpc-max-elastic-ips"):
            assert [int(v) for v in attrs[numeric]] and int(attrs[numeric][0]) > 0
    c = ec2()
    [only] = c.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert only["AttributeName"] == "default-vpc"
    assert only["AttributeValues"] == [{"AttributeValue": default_vpc(c)["VpcId"]}]
    names = [a["AttributeName"] for a in c.describe_account_attributes(
        AttributeNames=["supported-platforms", "max-instances"])["AccountAttributes"]]
    assert sorted(names) == ["max-instances", "supported-platforms"]


def test_cli_describe_vpcs_and_subnets(server, ec2):
    out = server.cli("describe-vpcs", "--filters", "Name=is-default,Values=true", account="b")
    assert [v["VpcId"] for v in out["Vpcs"]] == [default_vpc(ec2("b"))["VpcId"]]
    out = server.cli("describe-subnets", "--filters", "Name=availability-zone,Values=us-east-1b", account="b")
    [s] = out["Subnets"]
    assert s["AvailabilityZone"] == "us-east-1b" and s["AvailableIpAddressCount"] == 4091 and s["DefaultForAz"] is True
