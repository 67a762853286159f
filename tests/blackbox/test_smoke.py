"""The server starts, authenticates, and answers both clients."""


def test_boto3_and_cli_see_the_same_regions(server, ec2):
    names = [r["RegionName"] for r in ec2().describe_regions()["Regions"]]
    assert names == ["us-east-1", "us-west-2", "eu-west-1"]
    out = server.cli("describe-regions")
    assert [r["RegionName"] for r in out["Regions"]] == names
