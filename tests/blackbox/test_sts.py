"""STS on the EC2 endpoint: GetCallerIdentity and GetAccessKeyInfo, as Terraform and Ansible
call them first; and declared accounts with the short keys people use with local endpoints."""

import json
import os
import subprocess

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, CONFIG, KilnServer, error_code


def test_get_caller_identity_names_the_signing_account(server):
    for account in "ab":
        account_id = ACCOUNTS[account][0]
        who = server.client(account, service="sts").get_caller_identity()
        assert who["Account"] == account_id
        assert who["Arn"] == f"arn:aws:iam::{account_id}:root"
        assert who["UserId"] == account_id
        assert who["ResponseMetadata"]["RequestId"]


def test_sts_is_global_and_answers_in_any_region(server):
    assert server.client(region="ap-southeast-2", service="sts").get_caller_identity()["Account"] == ACCOUNTS["a"][0]


def test_get_access_key_info_gives_the_keys_account(server):
    sts = server.client("a", service="sts")
    assert sts.get_access_key_info(AccessKeyId=ACCOUNTS["b"][2])["Account"] == ACCOUNTS["b"][0]
    with pytest.raises(ClientError) as e:
        sts.get_access_key_info(AccessKeyId="AKIANOSUCHKEY0000000")
    assert error_code(e) == "InvalidParameterValue"


def test_sts_refuses_bad_credentials_with_its_codes(server):
    with pytest.raises(ClientError) as e:
        server.client(service="sts", secret="wrong").get_caller_identity()
    assert error_code(e) == "SignatureDoesNotMatch"
    unknown = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key="x",
                           config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unknown.get_caller_identity()
    assert error_code(e) == "InvalidClientTokenId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_aws_cli_sts(server):
    _, _, key, secret = ACCOUNTS["a"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    p = subprocess.run(["aws", "--endpoint-url", server.endpoint, "--output", "json", "sts", "get-caller-identity"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Account"] == ACCOUNTS["a"][0]


def test_declared_accounts_take_short_keys():
    short = CONFIG + '\n[[accounts]]\nid = "444444444444"\nname = "local"\naccess_keys = [{ id = "test", secret = "test" }]\n'
    srv = KilnServer(config_text=short).start()
    try:
        kw = dict(endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
        assert boto3.client("sts", **kw).get_caller_identity()["Account"] == "444444444444"
        assert boto3.client("ec2", **kw).describe_vpcs()["Vpcs"][0]["OwnerId"] == "444444444444"
    finally:
        srv.cleanup()


def test_a_key_too_short_is_refused_with_the_rule():
    bad = '[[accounts]]\nid = "444444444444"\nname = "local"\naccess_keys = [{ id = "ab", secret = "test" }]\n'
    srv = KilnServer(config_text=bad)
    with pytest.raises(RuntimeError) as e:
        srv.start()
    assert "at least 3 printable ASCII characters" in str(e.value)
    srv.cleanup()
