"""Accounts made with `kiln account create` work at once against a running server."""

import configparser
import subprocess

import boto3
import botocore.config

from conftest import ACCOUNTS, KILN_BIN


def kiln_cli(server, *args):
    return subprocess.run([str(KILN_BIN), "--config", str(server.config_path), "--data-dir", str(server.data_dir), *args],
                          capture_output=True, text=True, timeout=60)


def test_account_create_prints_working_credentials(server, unique):
    name = unique("acct")
    p = kiln_cli(server, "account", "create", name)
    assert p.returncode == 0, p.stderr
    creds = configparser.ConfigParser()
    creds.read_string(p.stdout)
    section = creds[name]
    key, secret = section["aws_access_key_id"], section["aws_secret_access_key"]
    assert key.startswith("AKIA") and len(key) == 20 and len(secret) == 40

    for region in ("us-east-1", "eu-west-1"):
        c = boto3.client("ec2", endpoint_url=server.endpoint, region_name=region, aws_access_key_id=key,
                         aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 1}))
        vpcs = c.describe_vpcs()["Vpcs"]
        assert len(vpcs) == 1 and vpcs[0]["IsDefault"]
        owner = vpcs[0]["OwnerId"]
        assert len(owner) == 12 and owner.isdigit()
        assert owner not in {a[0] for a in ACCOUNTS.values()}
        groups = c.describe_security_groups()["SecurityGroups"]
        assert [g["GroupName"] for g in groups] == ["default"]

    listed = kiln_cli(server, "account", "list")
    assert listed.returncode == 0
    assert any(line.split("\t")[1] == name for line in listed.stdout.splitlines())


def test_duplicate_and_invalid_account_names_are_refused(server, unique):
    name = unique("dup")
    assert kiln_cli(server, "account", "create", name).returncode == 0
    again = kiln_cli(server, "account", "create", name)
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = kiln_cli(server, "account", "create", "no spaces allowed")
    assert bad.returncode != 0 and "account name" in bad.stderr


def test_configured_accounts_have_their_fixed_ids(ec2):
    for label, (account_id, _, _, _) in ACCOUNTS.items():
        vpc = ec2(label).describe_vpcs()["Vpcs"][0]
        assert vpc["OwnerId"] == account_id


def test_instance_type_prices_per_region_and_overrides(tmp_path):
    config = tmp_path / "kiln.toml"
    config.write_text('[prices.us-west-2]\n"t3.micro" = 0.5\n')

    def prices(region):
        p = subprocess.run([str(KILN_BIN), "--config", str(config), "--data-dir", str(tmp_path / "data"),
                            "instance-types", "--region", region], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        rows = [line.split() for line in p.stdout.splitlines()[1:]]
        return {r[0]: float(r[4]) for r in rows}

    east, west, eu = prices("us-east-1"), prices("us-west-2"), prices("eu-west-1")
    assert east["t3.micro"] == 0.0104
    assert west["t3.micro"] == 0.5 and west["m5.large"] == east["m5.large"]
    assert abs(eu["m5.large"] - east["m5.large"] * 1.1) < 1e-6
    assert {"t2.micro", "m5.large", "c5.large", "r5.large", "i3.large", "t4g.micro"} <= set(east)


def test_doctor_reports_the_host(server):
    p = subprocess.run([str(KILN_BIN), "--data-dir", str(server.data_dir), "doctor"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    fields = dict(line.split(":", 1) for line in p.stdout.splitlines())
    for key in ("accelerator", "qemu-system-x86_64", "qemu-img", "qemu-nbd", "host kernel", "networking", "cpus",
                "memory available", "disk free"):
        assert key in fields, p.stdout
    assert fields["accelerator"].strip().split()[0] in ("kvm", "tcg")
    # On a PVM host the reason says so; a plain TCG host names the missing piece.
    if fields["accelerator"].strip().startswith("tcg"):
        assert "(" in fields["accelerator"]
