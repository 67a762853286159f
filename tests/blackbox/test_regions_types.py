"""Regions, availability zones and the instance type catalogue."""

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, CONFIG, KilnServer, error_code

REGIONS = {"us-east-1": "use1", "us-west-2": "usw2", "eu-west-1": "euw1"}
FAMILIES = ["t2", "t3", "m5", "c5", "r5", "i3"]


def raw_client(server, region="us-east-1"):
    """A client that skips botocore's parameter validation, to send what SDKs would refuse."""
    _, _, key, secret = ACCOUNTS["a"]
    return boto3.client("ec2", endpoint_url=server.endpoint, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


def f(name, *values):
    return {"Name": name, "Values": list(values)}


# --- regions ----------------------------------------------------------------------------------

def test_describe_regions(ec2):
    regions = ec2().describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == list(REGIONS)
    for r in regions:
        assert r["Endpoint"]
        assert r["OptInStatus"] == "opt-in-not-required"
    # Every region answers the same list.
    assert [r["RegionName"] for r in ec2("b", "eu-west-1").describe_regions()["Regions"]] == list(REGIONS)


def test_describe_regions_by_name_and_filters(ec2):
    c = ec2()
    assert [r["RegionName"] for r in c.describe_regions(RegionNames=["eu-west-1"])["Regions"]] == ["eu-west-1"]
    assert sorted(r["RegionName"] for r in c.describe_regions(RegionNames=["us-west-2", "us-east-1"])["Regions"]) == [
        "us-east-1", "us-west-2"]
    assert [r["RegionName"] for r in c.describe_regions(Filters=[f("region-name", "us-*")])["Regions"]] == [
        "us-east-1", "us-west-2"]
    assert c.describe_regions(Filters=[f("region-name", "ap-*")])["Regions"] == []
    endpoint = c.describe_regions(RegionNames=["us-west-2"])["Regions"][0]["Endpoint"]
    by_endpoint = c.describe_regions(Filters=[f("endpoint", endpoint), f("region-name", "us-west-2")])["Regions"]
    assert [r["RegionName"] for r in by_endpoint] == ["us-west-2"]
    assert c.describe_regions(Filters=[f("endpoint", "no-such-endpoint")])["Regions"] == []
    assert len(c.describe_regions(AllRegions=True)["Regions"]) == 3


def test_describe_unknown_region(ec2):
    c = ec2()
    with pytest.raises(ClientError) as e:
        c.describe_regions(RegionNames=["mars-north-1"])
    assert error_code(e) == "InvalidParameterValue"
    assert "mars-north-1" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        c.describe_regions(RegionNames=["us-east-1", "mars-north-1"])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_regions(Filters=[f("no-such-filter", "x")])
    assert error_code(e) == "InvalidParameterValue"


# --- availability zones -----------------------------------------------------------------------

@pytest.mark.parametrize("region, short", list(REGIONS.items()))
def test_zones_of_each_region(ec2, region, short):
    zones = ec2("c", region).describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == [f"{region}{s}" for s in "abc"]
    assert [z["ZoneId"] for z in zones] == [f"{short}-az{i}" for i in (1, 2, 3)]
    for z in zones:
        assert z["State"] == "available"
        assert z["RegionName"] == region
        assert z["ZoneType"] == "availability-zone"
        assert z["OptInStatus"] == "opt-in-not-required"
        assert z["GroupName"] == region and z["NetworkBorderGroup"] == region
        assert z["Messages"] == []


def test_zones_by_name_id_and_filters(ec2):
    c = ec2()
    assert [z["ZoneName"] for z in c.describe_availability_zones(ZoneNames=["us-east-1b"])["AvailabilityZones"]] == ["us-east-1b"]
    assert [z["ZoneName"] for z in c.describe_availability_zones(ZoneIds=["use1-az3"])["AvailabilityZones"]] == ["us-east-1c"]
    both = c.describe_availability_zones(ZoneNames=["us-east-1a", "us-east-1c"])["AvailabilityZones"]
    assert sorted(z["ZoneName"] for z in both) == ["us-east-1a", "us-east-1c"]

    def names(*filters):
        return [z["ZoneName"] for z in c.describe_availability_zones(Filters=list(filters))["AvailabilityZones"]]

    assert names(f("zone-name", "us-east-1a")) == ["us-east-1a"]
    assert names(f("zone-name", "*b", "*c")) == ["us-east-1b", "us-east-1c"]
    assert names(f("zone-id", "use1-az2")) == ["us-east-1b"]
    assert names(f("state", "available")) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert names(f("state", "impaired")) == []
    assert names(f("region-name", "us-east-1")) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    # Zones are those of the request's region only.
    assert names(f("region-name", "eu-west-1")) == []
    assert names(f("zone-name", "eu-west-1a")) == []


def test_unknown_zones(ec2):
    c = ec2()
    for kw in ({"ZoneNames": ["us-east-1z"]}, {"ZoneNames": ["eu-west-1a"]}, {"ZoneIds": ["use1-az9"]},
               {"ZoneNames": ["us-east-1a", "us-east-1q"]}):
        with pytest.raises(ClientError) as e:
            c.describe_availability_zones(**kw)
        assert error_code(e) == "InvalidParameterValue", kw
    with pytest.raises(ClientError) as e:
        c.describe_availability_zones(Filters=[f("no-such-filter", "x")])
    assert error_code(e) == "InvalidParameterValue"


# --- instance types ---------------------------------------------------------------------------

def all_types(c, **kw):
    return [t for p in c.get_paginator("describe_instance_types").paginate(**kw) for t in p["InstanceTypes"]]


@pytest.fixture(scope="module")
def catalogue(server):
    return {t["InstanceType"]: t for t in all_types(server.client())}


def test_catalogue_families(catalogue):
    for family in FAMILIES:
        assert any(name.startswith(f"{family}.") for name in catalogue), family
    arm = [n for n, t in catalogue.items() if t["ProcessorInfo"]["SupportedArchitectures"] == ["arm64"]]
    assert arm, "an arm64 family"
    t3 = catalogue["t3.micro"]
    assert t3["VCpuInfo"]["DefaultVCpus"] == 2
    assert t3["MemoryInfo"]["SizeInMiB"] == 1024
    assert t3["BurstablePerformanceSupported"] is True
    assert t3["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    assert t3["InstanceStorageSupported"] is False and "InstanceStorageInfo" not in t3
    m5 = catalogue["m5.large"]
    assert (m5["VCpuInfo"]["DefaultVCpus"], m5["MemoryInfo"]["SizeInMiB"], m5["BurstablePerformanceSupported"]) == (2, 8192, False)
    i3 = catalogue["i3.large"]
    assert i3["InstanceStorageSupported"] is True
    assert i3["InstanceStorageInfo"]["TotalSizeInGB"] > 0
    assert i3["InstanceStorageInfo"]["Disks"][0]["Type"] == "ssd"
    for name, t in catalogue.items():
        assert t["InstanceType"] == name
        vcpu = t["VCpuInfo"]
        assert vcpu["DefaultCores"] * vcpu["DefaultThreadsPerCore"] == vcpu["DefaultVCpus"], name


def test_paginator_covers_every_type_once(server, catalogue):
    c = server.client()
    unpaged = [t["InstanceType"] for t in c.describe_instance_types()["InstanceTypes"]]
    for size in (5, 7, 100):
        names = [t["InstanceType"] for t in all_types(c, PaginationConfig={"PageSize": size})]
        assert len(names) == len(set(names)), size
        assert sorted(names) == sorted(catalogue) == sorted(unpaged), size
    first = c.describe_instance_types(MaxResults=5)
    assert len(first["InstanceTypes"]) == 5 and first["NextToken"]
    second = c.describe_instance_types(MaxResults=5, NextToken=first["NextToken"])
    assert {t["InstanceType"] for t in first["InstanceTypes"]}.isdisjoint(t["InstanceType"] for t in second["InstanceTypes"])


def test_max_results_range(server):
    c = raw_client(server)
    for bad in (4, 101):
        with pytest.raises(ClientError) as e:
            c.describe_instance_types(MaxResults=bad)
        assert error_code(e) == "InvalidParameterValue", bad
    assert len(c.describe_instance_types(MaxResults=100)["InstanceTypes"]) <= 100


def test_instance_type_filters(ec2, catalogue):
    c = ec2()

    def names(*filters):
        return sorted(t["InstanceType"] for t in all_types(c, Filters=list(filters)))

    arm = names(f("processor-info.supported-architecture", "arm64"))
    assert arm and arm == sorted(n for n, t in catalogue.items() if "arm64" in t["ProcessorInfo"]["SupportedArchitectures"])
    assert not set(arm) & set(names(f("processor-info.supported-architecture", "x86_64")))
    assert all(n.startswith("t3.") for n in names(f("instance-type", "t3.*")))
    assert names(f("instance-type", "t3.*")) == sorted(n for n in catalogue if n.startswith("t3."))
    assert names(f("instance-type", "t3.micro", "m5.large")) == ["m5.large", "t3.micro"]
    four = names(f("vcpu-info.default-vcpus", "4"))
    assert four and all(catalogue[n]["VCpuInfo"]["DefaultVCpus"] == 4 for n in four)
    assert "m5.xlarge" in four and "m5.large" not in four
    mem = names(f("memory-info.size-in-mib", "16384"))
    assert "r5.large" in mem and all(catalogue[n]["MemoryInfo"]["SizeInMiB"] == 16384 for n in mem)
    storage = names(f("instance-storage-supported", "true"))
    assert storage == sorted(n for n, t in catalogue.items() if t["InstanceStorageSupported"])
    assert {n.split(".")[0] for n in storage} == {"i3", "m1", "m2", "m3", "c1", "c3", "r3"}
    assert not set(storage) & set(names(f("instance-storage-supported", "false")))
    burst = names(f("burstable-performance-supported", "true"))
    assert {n.split(".")[0] for n in burst} >= {"t2", "t3"}
    assert all(catalogue[n]["BurstablePerformanceSupported"] for n in burst)
    assert not any(n.startswith(("m5.", "c5.", "r5.", "i3.")) for n in burst)
    # Filters AND together.
    assert names(f("instance-type", "t3.*"), f("vcpu-info.default-vcpus", "8")) == ["t3.2xlarge"]
    assert names(f("instance-type", "t3.*"), f("processor-info.supported-architecture", "arm64")) == []
    with pytest.raises(ClientError) as e:
        c.describe_instance_types(Filters=[f("no-such-filter", "x")])
    assert error_code(e) == "InvalidParameterValue"


def test_instance_types_by_name(ec2):
    c = ec2()
    got = c.describe_instance_types(InstanceTypes=["t3.micro", "c5.xlarge"])["InstanceTypes"]
    assert sorted(t["InstanceType"] for t in got) == ["c5.xlarge", "t3.micro"]
    for bad in (["t3.enormous"], ["t3.micro", "x9.large"]):
        with pytest.raises(ClientError) as e:
            c.describe_instance_types(InstanceTypes=bad)
        assert error_code(e) == "InvalidInstanceType"
        assert bad[-1] in e.value.response["Error"]["Message"]


# --- instance type offerings ------------------------------------------------------------------

def offerings(c, **kw):
    return [o for p in c.get_paginator("describe_instance_type_offerings").paginate(**kw) for o in p["InstanceTypeOfferings"]]


def test_offerings_by_region(ec2, catalogue):
    for region in ("us-east-1", "eu-west-1"):
        rows = offerings(ec2("a", region))
        assert {o["LocationType"] for o in rows} == {"region"}
        assert {o["Location"] for o in rows} == {region}
        assert sorted(o["InstanceType"] for o in rows) == sorted(catalogue)
    explicit = offerings(ec2(), LocationType="region")
    assert len(explicit) == len(catalogue)


def test_offerings_by_zone_and_zone_id(ec2, catalogue):
    c = ec2("a", "us-west-2")
    rows = offerings(c, LocationType="availability-zone")
    assert {o["LocationType"] for o in rows} == {"availability-zone"}
    assert {o["Location"] for o in rows} == {"us-west-2a", "us-west-2b", "us-west-2c"}
    assert len(rows) == 3 * len(catalogue)
    assert len({(o["InstanceType"], o["Location"]) for o in rows}) == len(rows)
    ids = offerings(c, LocationType="availability-zone-id")
    assert {o["Location"] for o in ids} == {"usw2-az1", "usw2-az2", "usw2-az3"}
    assert {o["LocationType"] for o in ids} == {"availability-zone-id"}


def test_offerings_filters_and_pagination(ec2, server):
    c = ec2()
    rows = offerings(c, LocationType="availability-zone",
                     Filters=[f("location", "us-east-1b"), f("instance-type", "t3.*")])
    assert rows and {o["Location"] for o in rows} == {"us-east-1b"}
    assert all(o["InstanceType"].startswith("t3.") for o in rows)
    one = offerings(c, Filters=[f("instance-type", "m5.large")])
    assert one == [{"InstanceType": "m5.large", "LocationType": "region", "Location": "us-east-1"}]
    assert offerings(c, Filters=[f("location", "eu-west-1")]) == []

    everything = offerings(c, LocationType="availability-zone")
    first = c.describe_instance_type_offerings(LocationType="availability-zone", MaxResults=5)
    assert len(first["InstanceTypeOfferings"]) == 5 and first["NextToken"]
    paged = offerings(c, LocationType="availability-zone", PaginationConfig={"PageSize": 7})
    key = [(o["InstanceType"], o["Location"]) for o in paged]
    assert len(key) == len(set(key)) and sorted(key) == sorted((o["InstanceType"], o["Location"]) for o in everything)

    with pytest.raises(ClientError) as e:
        c.describe_instance_type_offerings(LocationType="planet")
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        c.describe_instance_type_offerings(Filters=[f("no-such-filter", "x")])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        raw_client(server).describe_instance_type_offerings(MaxResults=4)
    assert error_code(e) == "InvalidParameterValue"


def test_cli_regions_zones_and_types(server):
    zones = server.cli("describe-availability-zones", region="eu-west-1")["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    out = server.cli("describe-instance-types", "--filters", "Name=instance-type,Values=t3.*")
    assert sorted(t["InstanceType"] for t in out["InstanceTypes"]) == [
        "t3.2xlarge", "t3.large", "t3.medium", "t3.micro", "t3.nano", "t3.small", "t3.xlarge"]


# --- configured regions -----------------------------------------------------------------------

AWS_REGION_COUNT = 33


def test_by_default_every_aws_region_works_and_is_made_on_first_use():
    s = KilnServer(aws_regions=True).start()
    try:
        c = s.client("a", "us-east-1")
        names = [r["RegionName"] for r in c.describe_regions()["Regions"]]
        assert len(names) == AWS_REGION_COUNT and len(set(names)) == len(names)
        assert {"us-east-1", "us-east-2", "ap-southeast-2", "sa-east-1", "eu-central-1"} <= set(names)
        zones = c.describe_availability_zones()["AvailabilityZones"]
        assert [(z["ZoneName"], z["ZoneId"]) for z in zones] == [
            (f"us-east-1{l}", f"use1-az{i}") for i, l in enumerate("abcdef", 1)]
        # A region nobody has used yet is made, with the account's default network, on first use.
        assert not (s.data_dir / "regions" / "ap-southeast-2").exists()
        syd = s.client("b", "ap-southeast-2")
        vpcs = syd.describe_vpcs(Filters=[f("is-default", "true")])["Vpcs"]
        assert len(vpcs) == 1
        assert sorted(n["AvailabilityZone"] for n in syd.describe_subnets()["Subnets"]) == [
            "ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"]
        vol = syd.create_volume(AvailabilityZone="ap-southeast-2b", Size=1)
        assert syd.describe_volumes(VolumeIds=[vol["VolumeId"]])["Volumes"][0]["AvailabilityZone"] == "ap-southeast-2b"
        assert (s.data_dir / "regions" / "ap-southeast-2").exists()
        assert [z["ZoneId"] for z in syd.describe_availability_zones(ZoneNames=["ap-southeast-2c"])["AvailabilityZones"]] == [
            "apse2-az3"]
    finally:
        s.stop()


def test_previous_generation_types_are_known(ec2):
    c = ec2()
    old = c.describe_instance_types(InstanceTypes=["t1.micro", "m1.small", "m3.medium", "c1.medium"])["InstanceTypes"]
    assert sorted(t["InstanceType"] for t in old) == ["c1.medium", "m1.small", "m3.medium", "t1.micro"]
    assert all(t["CurrentGeneration"] is False for t in old)
    m1 = next(t for t in old if t["InstanceType"] == "m1.small")
    assert m1["InstanceStorageSupported"] is True
    previous = [t["InstanceType"] for t in c.get_paginator("describe_instance_types").paginate(
        Filters=[f("current-generation", "false")]).build_full_result()["InstanceTypes"]]
    assert {"t1.micro", "m1.small"} <= set(previous)
    assert "t3.micro" not in previous

def test_configured_regions_replace_the_defaults():
    config = '[[regions]]\nname = "eu-west-2"\nzones = ["eu-west-2a", "eu-west-2b"]\n\n' + CONFIG
    s = KilnServer(config_text=config).start()
    try:
        c = s.client("a", "eu-west-2")
        assert [r["RegionName"] for r in c.describe_regions()["Regions"]] == ["eu-west-2"]
        zones = c.describe_availability_zones()["AvailabilityZones"]
        assert [(z["ZoneName"], z["ZoneId"], z["RegionName"]) for z in zones] == [
            ("eu-west-2a", "euw2-az1", "eu-west-2"), ("eu-west-2b", "euw2-az2", "eu-west-2")]
        # Every account gets its default network in the configured region.
        for account in "abc":
            b = s.client(account, "eu-west-2")
            assert len(b.describe_vpcs(Filters=[f("is-default", "true")])["Vpcs"]) == 1
            assert sorted(n["AvailabilityZone"] for n in b.describe_subnets()["Subnets"]) == ["eu-west-2a", "eu-west-2b"]
        with pytest.raises(ClientError) as e:
            c.describe_regions(RegionNames=["us-east-1"])
        assert error_code(e) == "InvalidParameterValue"
        # A region that is not configured is not a region at all.
        with pytest.raises(ClientError) as e:
            s.client("a", "us-east-1").describe_regions()
        assert error_code(e) == "AuthFailure"
    finally:
        s.cleanup()


def test_instance_store_root_only_where_types_have_local_disks(ec2):
    c = ec2()
    store = c.describe_instance_types(Filters=[{"Name": "supported-root-device-type", "Values": ["instance-store"]}])
    names = {t["InstanceType"] for t in store["InstanceTypes"]}
    assert names and all(t["InstanceStorageSupported"] for t in store["InstanceTypes"])
    assert "m5.large" not in names and "t3.micro" not in names
    [m5] = c.describe_instance_types(InstanceTypes=["m5.large"])["InstanceTypes"]
    assert m5["SupportedRootDeviceTypes"] == ["ebs"]
    [i3] = c.describe_instance_types(InstanceTypes=["i3.large"])["InstanceTypes"]
    assert i3["SupportedRootDeviceTypes"] == ["ebs", "instance-store"]
    assert i3["InstanceStorageInfo"]["TotalSizeInGB"] == 475
