"""Tags: CreateTags, DeleteTags, DescribeTags and tag filters, on every taggable kind."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code

def new_key(c, unique, tags=None):
    """A cheap key pair (ed25519 is generated in microseconds); returns its id."""
    kwargs = {}
    if tags:
        kwargs["TagSpecifications"] = [{"ResourceType": "key-pair", "Tags": tags}]
    return c.create_key_pair(KeyName=unique("tk"), KeyType="ed25519", **kwargs)["KeyPairId"]


def tags_of(c, resource_id):
    """The resource's tags in DescribeTags order (insertion order)."""
    rows = c.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return [(t["Key"], t["Value"]) for t in rows]


def kv(*pairs):
    return [{"Key": k, "Value": v} for k, v in pairs]


@pytest.fixture
def resources(ec2, unique):
    """One resource of every taggable kind in account a / us-east-1."""
    c = ec2()
    key_id = new_key(c, unique)
    sg_id = c.create_security_group(GroupName=unique("tsg"), Description="tags")["GroupId"]
    rules = c.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])["SecurityGroupRules"]
    vpc_id = c.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet_id = c.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"][0]["SubnetId"]
    return {"key-pair": key_id, "security-group": sg_id, "security-group-rule": rules[0]["SecurityGroupRuleId"],
            "vpc": vpc_id, "subnet": subnet_id}


def test_create_describe_delete_on_every_kind(ec2, unique, resources):
    c = ec2()
    marker = unique("m")
    ids = list(resources.values())
    c.create_tags(Resources=ids, Tags=kv((marker, "v1"), ("Name", marker)))
    rows = c.describe_tags(Filters=[{"Name": "key", "Values": [marker]}])["Tags"]
    assert sorted((r["ResourceId"], r["ResourceType"], r["Value"]) for r in rows) == sorted(
        (rid, kind, "v1") for kind, rid in resources.items())
    for kind, rid in resources.items():
        got = c.describe_tags(Filters=[{"Name": "resource-type", "Values": [kind]},
                                       {"Name": "resource-id", "Values": [rid]}])["Tags"]
        assert [(t["Key"], t["ResourceType"]) for t in got if t["Key"] == marker] == [(marker, kind)]

    # The tags show up in each kind's own Describe.
    assert c.describe_key_pairs(KeyPairIds=[resources["key-pair"]])["KeyPairs"][0]["Tags"][-2:] == kv((marker, "v1"), ("Name", marker))
    sg = c.describe_security_groups(GroupIds=[resources["security-group"]])["SecurityGroups"][0]
    assert {"Key": marker, "Value": "v1"} in sg["Tags"]
    rule = c.describe_security_group_rules(SecurityGroupRuleIds=[resources["security-group-rule"]])["SecurityGroupRules"][0]
    assert {"Key": marker, "Value": "v1"} in rule["Tags"]
    vpc = c.describe_vpcs(VpcIds=[resources["vpc"]])["Vpcs"][0]
    assert {"Key": marker, "Value": "v1"} in vpc["Tags"]
    sub = c.describe_subnets(SubnetIds=[resources["subnet"]])["Subnets"][0]
    assert {"Key": marker, "Value": "v1"} in sub["Tags"]

    c.delete_tags(Resources=ids, Tags=[{"Key": marker}, {"Key": "Name", "Value": marker}])
    assert c.describe_tags(Filters=[{"Name": "key", "Values": [marker]}])["Tags"] == []
    for rid in ids:
        assert ("Name", marker) not in tags_of(c, rid)


def test_insertion_order_is_kept_and_overwrite_keeps_position(ec2, unique):
    c = ec2()
    kid = new_key(c, unique, tags=kv(("zeta", "1"), ("alpha", "2")))
    c.create_tags(Resources=[kid], Tags=kv(("mid", "3"), ("Beta", "4")))
    c.create_tags(Resources=[kid], Tags=kv(("alpha", "changed"), ("omega", "5")))
    expected = [("zeta", "1"), ("alpha", "changed"), ("mid", "3"), ("Beta", "4"), ("omega", "5")]
    assert tags_of(c, kid) == expected
    assert [(t["Key"], t["Value"]) for t in c.describe_key_pairs(KeyPairIds=[kid])["KeyPairs"][0]["Tags"]] == expected


def test_keys_are_case_sensitive_and_values_may_be_empty(ec2, unique):
    c = ec2()
    kid = new_key(c, unique)
    c.create_tags(Resources=[kid], Tags=kv(("env", "a"), ("Env", ""), ("ENV", "c")))
    assert tags_of(c, kid) == [("env", "a"), ("Env", ""), ("ENV", "c")]


def test_fifty_tag_limit(ec2, unique):
    c = ec2()
    kid = new_key(c, unique)
    c.create_tags(Resources=[kid], Tags=kv(*[(f"k{i:02}", str(i)) for i in range(50)]))
    assert len(tags_of(c, kid)) == 50
    # Overwriting an existing key at the limit is fine.
    c.create_tags(Resources=[kid], Tags=kv(("k07", "new")))
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[kid], Tags=kv(("one-too-many", "x")))
    assert error_code(e) == "TagLimitExceeded"
    tags = tags_of(c, kid)
    assert len(tags) == 50 and ("k07", "new") in tags and "one-too-many" not in dict(tags)
    # 51 at once on a fresh resource, and 51 in a TagSpecification.
    fresh = new_key(c, unique)
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[fresh], Tags=kv(*[(f"k{i}", "") for i in range(51)]))
    assert error_code(e) == "TagLimitExceeded"
    assert tags_of(c, fresh) == []
    name = unique("too-many")
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": kv(*[(f"k{i}", "") for i in range(51)])}])
    assert error_code(e) == "TagLimitExceeded"
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"


def test_create_tags_is_all_or_nothing(ec2, unique):
    c = ec2()
    ok = new_key(c, unique)
    full = new_key(c, unique)
    c.create_tags(Resources=[full], Tags=kv(*[(f"k{i}", "") for i in range(49)]))
    # `ok` comes first, so a partial implementation would have tagged it before failing on `full`.
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[ok, full], Tags=kv(("a", "1"), ("b", "2")))
    assert error_code(e) == "TagLimitExceeded"
    assert tags_of(c, ok) == []
    assert len(tags_of(c, full)) == 49

    # An unknown resource in the list: nothing is applied either.
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[ok, "key-0123456789abcdef0"], Tags=kv(("a", "1")))
    assert error_code(e) == "InvalidKeyPair.NotFound"
    assert tags_of(c, ok) == []
    # An invalid tag anywhere in the list: nothing is applied.
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[ok], Tags=kv(("fine", "1"), ("aws:bad", "2")))
    assert error_code(e) == "InvalidParameterValue"
    assert tags_of(c, ok) == []
    # DeleteTags likewise.
    c.create_tags(Resources=[ok], Tags=kv(("keep", "1")))
    with pytest.raises(ClientError) as e:
        c.delete_tags(Resources=[ok, "sg-0123456789abcdef0"], Tags=[{"Key": "keep"}])
    assert error_code(e) == "InvalidGroup.NotFound"
    assert tags_of(c, ok) == [("keep", "1")]


@pytest.mark.parametrize("key", ["aws:name", "AWS:Name", "aws:"])
def test_aws_prefix_is_reserved(ec2, unique, key):
    c = ec2()
    kid = new_key(c, unique)
    with pytest.raises(ClientError) as e:
        c.create_tags(Resources=[kid], Tags=kv((key, "x")))
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=unique("res"), KeyType="ed25519",
                          TagSpecifications=[{"ResourceType": "key-pair", "Tags": kv((key, "x"))}])
    assert error_code(e) == "InvalidParameterValue"
    # "aws" without the colon is an ordinary key.
    c.create_tags(Resources=[kid], Tags=kv(("awsome", "x")))
    assert tags_of(c, kid) == [("awsome", "x")]


def test_key_and_value_lengths(ec2, unique):
    c = ec2()
    kid = new_key(c, unique)
    c.create_tags(Resources=[kid], Tags=kv(("k" * 128, "v" * 256)))
    for bad in (("k" * 129, ""), ("k", "v" * 257), ("", "v")):
        with pytest.raises(ClientError) as e:
            c.create_tags(Resources=[kid], Tags=kv(bad))
        assert error_code(e) == "InvalidParameterValue"
    assert tags_of(c, kid) == [("k" * 128, "v" * 256)]


def test_delete_tags_semantics(ec2, unique):
    c = ec2()
    kid = new_key(c, unique, tags=kv(("a", "1"), ("b", "2"), ("c", ""), ("d", "4")))
    # A value that does not match leaves the tag.
    c.delete_tags(Resources=[kid], Tags=[{"Key": "a", "Value": "nope"}])
    assert tags_of(c, kid) == [("a", "1"), ("b", "2"), ("c", ""), ("d", "4")]
    # A matching value removes it.
    c.delete_tags(Resources=[kid], Tags=[{"Key": "a", "Value": "1"}])
    assert tags_of(c, kid) == [("b", "2"), ("c", ""), ("d", "4")]
    # An empty value matches only an empty value.
    c.delete_tags(Resources=[kid], Tags=[{"Key": "b", "Value": ""}, {"Key": "c", "Value": ""}])
    assert tags_of(c, kid) == [("b", "2"), ("d", "4")]
    # No value removes the key whatever its value; unknown keys are ignored.
    c.delete_tags(Resources=[kid], Tags=[{"Key": "b"}, {"Key": "never-there"}])
    assert tags_of(c, kid) == [("d", "4")]
    # No tags at all removes every tag.
    c.create_tags(Resources=[kid], Tags=kv(("e", "5"), ("f", "6")))
    c.delete_tags(Resources=[kid])
    assert tags_of(c, kid) == []
    # Deleted keys can be re-added, at the end.
    c.create_tags(Resources=[kid], Tags=kv(("x", "1"), ("y", "2")))
    c.delete_tags(Resources=[kid], Tags=[{"Key": "x"}])
    c.create_tags(Resources=[kid], Tags=kv(("x", "3")))
    assert tags_of(c, kid) == [("y", "2"), ("x", "3")]


def test_describe_tags_filters(ec2, unique):
    c = ec2()
    stem = unique("dt")
    k1 = new_key(c, unique, tags=kv((f"{stem}-env", "prod"), (f"{stem}-team", "red")))
    k2 = new_key(c, unique, tags=kv((f"{stem}-env", "dev"), (f"{stem}-tier", "web")))
    sg = c.create_security_group(GroupName=unique("dtsg"), Description="d", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": kv((f"{stem}-env", "prod"))}])["GroupId"]

    def rows(*filters):
        got = c.describe_tags(Filters=[{"Name": n, "Values": list(v)} for n, v in filters])["Tags"]
        return sorted((t["ResourceId"], t["Key"], t["Value"]) for t in got)

    assert rows(("key", [f"{stem}-env"])) == sorted([(k1, f"{stem}-env", "prod"), (k2, f"{stem}-env", "dev"),
                                                     (sg, f"{stem}-env", "prod")])
    assert rows(("key", [f"{stem}-*"]), ("value", ["prod"])) == sorted([(k1, f"{stem}-env", "prod"),
                                                                         (sg, f"{stem}-env", "prod")])
    assert rows(("key", [f"{stem}-*"]), ("resource-type", ["security-group"])) == [(sg, f"{stem}-env", "prod")]
    assert rows(("resource-id", [k2])) == sorted([(k2, f"{stem}-env", "dev"), (k2, f"{stem}-tier", "web")])
    assert rows(("resource-id", [k1, k2]), ("value", ["r?d", "w*"])) == sorted([(k1, f"{stem}-team", "red"),
                                                                                (k2, f"{stem}-tier", "web")])
    # tag:<key> selects resources, then every tag of those resources is listed.
    assert rows((f"tag:{stem}-team", ["red"])) == sorted([(k1, f"{stem}-env", "prod"), (k1, f"{stem}-team", "red")])
    assert rows(("key", [f"{stem}-nothing"])) == []
    with pytest.raises(ClientError) as e:
        c.describe_tags(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_tags_pagination(ec2, unique):
    c = ec2()
    stem = unique("pg")
    ids = [new_key(c, unique, tags=kv(*[(f"{stem}-{j:02}", str(i)) for j in range(9)])) for i in range(3)]
    want = [(rid, f"{stem}-{j:02}") for rid in ids for j in range(9)]
    flt = [{"Name": "key", "Values": [f"{stem}-*"]}]
    assert [(t["ResourceId"], t["Key"]) for t in c.describe_tags(Filters=flt)["Tags"]] == want

    for size in (5, 7, 27, 1000):
        seen, token, sizes = [], None, []
        while True:
            kw = {"Filters": flt, "MaxResults": size}
            if token:
                kw["NextToken"] = token
            resp = c.describe_tags(**kw)
            seen += [(t["ResourceId"], t["Key"]) for t in resp["Tags"]]
            sizes.append(len(resp["Tags"]))
            token = resp.get("NextToken")
            if not token:
                break
            assert len(sizes) < 20
        assert seen == want, size
        # Every page but the last is full.
        assert all(n == size for n in sizes[:-1]) and sizes[-1] <= size, sizes

    pager = c.get_paginator("describe_tags")
    paged = [(t["ResourceId"], t["Key"]) for p in pager.paginate(Filters=flt, PaginationConfig={"PageSize": 5})
             for t in p["Tags"]]
    assert paged == want

    for bad in (4, 1001, 0, -1):
        with pytest.raises(ClientError) as e:
            c.describe_tags(MaxResults=bad)
        assert error_code(e) == "InvalidParameterValue", bad
    with pytest.raises(ClientError) as e:
        c.describe_tags(MaxResults=5, NextToken="not-a-token")
    assert error_code(e) in ("InvalidParameterValue", "InvalidPaginationToken", "InvalidNextToken")


def test_pagination_survives_deletes_between_pages(ec2, unique):
    c = ec2()
    stem = unique("pd")
    ids = [new_key(c, unique, tags=kv((f"{stem}-k", str(i)))) for i in range(8)]
    flt = [{"Name": "key", "Values": [f"{stem}-k"]}]
    first = c.describe_tags(Filters=flt, MaxResults=5)
    assert [t["ResourceId"] for t in first["Tags"]] == ids[:5]
    c.delete_tags(Resources=[ids[2], ids[6]])
    rest = c.describe_tags(Filters=flt, MaxResults=5, NextToken=first["NextToken"])
    assert [t["ResourceId"] for t in rest["Tags"]] == [ids[5], ids[7]]
    assert "NextToken" not in rest


def test_tag_filters_on_key_pairs_and_security_groups(ec2, unique):
    c = ec2()
    stem = unique("tf")
    k_prod = c.create_key_pair(KeyName=f"{stem}-kp", KeyType="ed25519", TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": kv(("Name", f"{stem}-prod"), (f"{stem}-x", "1"))}])["KeyName"]
    k_dev = c.create_key_pair(KeyName=f"{stem}-kd", KeyType="ed25519", TagSpecifications=[
        {"ResourceType": "key-pair", "Tags": kv(("Name", f"{stem}-dev"))}])["KeyName"]
    g_prod = c.create_security_group(GroupName=f"{stem}-gp", Description="d", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": kv(("Name", f"{stem}-prod"), (f"{stem}-x", "1"))}])["GroupId"]
    g_dev = c.create_security_group(GroupName=f"{stem}-gd", Description="d", TagSpecifications=[
        {"ResourceType": "security-group", "Tags": kv(("Name", f"{stem}-dev"))}])["GroupId"]

    def keys(*filters):
        got = c.describe_key_pairs(Filters=[{"Name": n, "Values": v} for n, v in filters])["KeyPairs"]
        return sorted(k["KeyName"] for k in got)

    def groups(*filters):
        got = c.describe_security_groups(Filters=[{"Name": n, "Values": v} for n, v in filters])["SecurityGroups"]
        return sorted(g["GroupId"] for g in got)

    assert keys(("tag:Name", [f"{stem}-prod"])) == [k_prod]
    assert keys(("tag:Name", [f"{stem}-*"])) == sorted([k_prod, k_dev])
    assert keys(("tag-key", [f"{stem}-x"])) == [k_prod]
    assert keys(("tag-value", [f"{stem}-dev"])) == [k_dev]
    assert keys(("tag:Name", [f"{stem}-prod"]), ("tag-key", ["nope"])) == []
    assert groups(("tag:Name", [f"{stem}-prod"])) == [g_prod]
    assert groups(("tag:Name", [f"{stem}-prod", f"{stem}-dev"])) == sorted([g_prod, g_dev])
    assert groups(("tag-key", [f"{stem}-x"])) == [g_prod]
    assert groups(("tag-value", [f"{stem}-d?v"])) == [g_dev]
    # Tag keys are exact in tag:<key>: another case is another key.
    assert keys(("tag:name", [f"{stem}-prod"])) == []


def test_cross_account_and_cross_region_ids_are_not_found(ec2, unique):
    a, b = ec2("a"), ec2("b")
    kid = new_key(a, unique)
    sg = a.create_security_group(GroupName=unique("x"), Description="d")["GroupId"]
    for rid, code in ((kid, "InvalidKeyPair.NotFound"), (sg, "InvalidGroup.NotFound")):
        with pytest.raises(ClientError) as e:
            b.create_tags(Resources=[rid], Tags=kv(("x", "y")))
        assert error_code(e) == code
        with pytest.raises(ClientError) as e:
            ec2("a", "eu-west-1").create_tags(Resources=[rid], Tags=kv(("x", "y")))
        assert error_code(e) == code
        assert b.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"] == []
    assert tags_of(a, kid) == []


def test_describe_tags_only_shows_own_account_and_region(ec2, unique):
    marker = unique("own")
    a = ec2("a")
    kid = new_key(a, unique, tags=kv((marker, "a")))
    flt = [{"Name": "key", "Values": [marker]}]
    assert [t["ResourceId"] for t in a.describe_tags(Filters=flt)["Tags"]] == [kid]
    assert ec2("b").describe_tags(Filters=flt)["Tags"] == []
    assert ec2("a", "us-west-2").describe_tags(Filters=flt)["Tags"] == []


@pytest.mark.parametrize("rid", ["bogus", "sg"])
def test_unknown_prefix_is_invalid_id(ec2, rid):
    with pytest.raises(ClientError) as e:
        ec2().create_tags(Resources=[rid], Tags=kv(("a", "b")))
    assert error_code(e) == "InvalidID"


@pytest.mark.parametrize("rid, code", [("ami-12345678", "InvalidAMIID.NotFound"),
                                       ("i-0123456789abcdef0", "InvalidInstanceID.NotFound")])
def test_unknown_resource_of_a_known_kind_is_not_found(ec2, rid, code):
    # Images and instances are known kinds, so an unknown one is missing rather than an invalid id.
    with pytest.raises(ClientError) as e:
        ec2().create_tags(Resources=[rid], Tags=kv(("a", "b")))
    assert error_code(e) == code


def test_malformed_id_of_known_kind(ec2):
    with pytest.raises(ClientError) as e:
        ec2().create_tags(Resources=["sg-xyz"], Tags=kv(("a", "b")))
    assert error_code(e) in ("InvalidID", "InvalidGroupId.Malformed")


def test_tag_specification_with_wrong_resource_type(ec2, unique):
    c = ec2()
    name = unique("wrong")
    with pytest.raises(ClientError) as e:
        c.create_security_group(GroupName=name, Description="d", TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": kv(("a", "b"))}])
    assert error_code(e) == "InvalidParameterValue"
    assert c.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"] == []
    with pytest.raises(ClientError) as e:
        c.create_key_pair(KeyName=name, KeyType="ed25519", TagSpecifications=[
            {"ResourceType": "instance", "Tags": kv(("a", "b"))}])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_key_pairs(KeyNames=[name])
    assert error_code(e) == "InvalidKeyPair.NotFound"


def test_cli_tags_round_trip(server, ec2, unique):
    c = ec2()
    kid = new_key(c, unique)
    marker = unique("cli")
    server.cli("create-tags", "--resources", kid, "--tags", f"Key={marker},Value=one", "Key=Name,Value=cli")
    out = server.cli("describe-tags", "--filters", f"Name=resource-id,Values={kid}")
    assert [(t["Key"], t["Value"], t["ResourceType"]) for t in out["Tags"]] == [(marker, "one", "key-pair"),
                                                                                  ("Name", "cli", "key-pair")]
    server.cli("delete-tags", "--resources", kid, "--tags", f"Key={marker}")
    assert tags_of(c, kid) == [("Name", "cli")]


def test_concurrent_create_tags_lose_no_update(ec2, unique):
    from concurrent.futures import ThreadPoolExecutor

    c = ec2()
    kid = new_key(c, unique)

    def tag(i):
        ec2().create_tags(Resources=[kid], Tags=kv((f"t{i:02}", str(i))))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(tag, range(40)))
    assert sorted(tags_of(c, kid)) == sorted((f"t{i:02}", str(i)) for i in range(40))
