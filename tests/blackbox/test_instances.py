"""Instances: real VMs launched from images and images made from instances, driven with boto3.

One server with TAP networking and the minimal provided image serves the whole module, and the
few VMs are shared between tests (a boot under TCG costs seconds of the machine's two cores).
Needs root (TAP devices, nftables), qemu-system-x86_64 and ssh; skipped otherwise.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from conftest import CONFIG, ROOT, KilnServer, error_code, wait_until

IMAGE_CACHE = ROOT / "target" / "test-image-cache"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("qemu-system-x86_64") or not shutil.which("ssh")
    or not shutil.which("nft") or not shutil.which("apt-get"),
    reason="needs root, qemu-system-x86_64, nft, ssh and apt-get",
)

VM_CONFIG = f"""provided_images = ["minimal", "debian-12"]
image_cache_dir = "{IMAGE_CACHE}"
{CONFIG}
[instances]
network = "tap"
stop_timeout_secs = 10
terminated_retention_secs = 40
"""


def console(ec2, instance_id):
    # botocore decodes GetConsoleOutput's base64 itself.
    return ec2.get_console_output(InstanceId=instance_id).get("Output", "")


def describe(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def wait_state(ec2, ids, state, timeout=120):
    def done():
        found = [i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]]
        return all(i["State"]["Name"] == state for i in found) and found

    return wait_until(done, timeout=timeout, interval=0.3, what=f"{ids} to be {state}")


def wait_console(ec2, instance_id, text, timeout=120):
    try:
        return wait_until(lambda: text in console(ec2, instance_id) and console(ec2, instance_id), timeout=timeout,
                          interval=0.5, what=f"{text!r} on the console of {instance_id}")
    except TimeoutError as e:
        raise TimeoutError(f"{e}; the console ends with:\n{console(ec2, instance_id)[-2000:]}") from None


def tcp_open(address, port, timeout=1.0):
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64) or b"open"
    except OSError:
        return None


def ssh(address, key_path, command, timeout=60, user="root"):
    args = ["ssh", "-i", str(key_path), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", f"{user}@{address}", command]
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if p.returncode == 0 or time.monotonic() > deadline:
            assert p.returncode == 0, f"ssh {address} {command!r}: {p.stderr}"
            return p.stdout
        time.sleep(1)


@pytest.fixture(scope="module")
def vm():
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    server = KilnServer(config_text=VM_CONFIG).start()
    ec2 = server.client("a")
    wait_until(lambda: [i for i in ec2.describe_images(Owners=["kiln"])["Images"] if "minimal" in i["Name"]],
               timeout=600, interval=1, what="the minimal image to be published")
    yield server
    # Nothing a test launched may outlive the module.
    for account in "abc":
        c = server.client(account)
        ids = [i["InstanceId"] for r in c.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] != "terminated"]
        for i in ids:
            c.modify_instance_attribute(InstanceId=i, DisableApiTermination={"Value": False})
        if ids:
            c.terminate_instances(InstanceIds=ids)
            wait_state(c, ids, "terminated")
    server.cleanup()


@pytest.fixture(scope="module")
def minimal(vm):
    return [i for i in vm.client("a").describe_images(Owners=["kiln"])["Images"] if "minimal" in i["Name"]][0]


@pytest.fixture(scope="module")
def key(vm, tmp_path_factory):
    ec2 = vm.client("a")
    created = ec2.create_key_pair(KeyName="vm-key", KeyType="ed25519")
    path = tmp_path_factory.mktemp("keys") / "vm-key.pem"
    path.write_text(created["KeyMaterial"])
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def ssh_group(vm):
    ec2 = vm.client("a")
    gid = ec2.create_security_group(GroupName="ssh-in", Description="ssh")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return gid


IMDS_SCRIPT = r"""#!/bin/sh
echo "USERDATA-RAN"
# busybox nc stops at the end of its input; keep it open until the answer is in.
TOKEN=$( (printf 'PUT /latest/api/token HTTP/1.0\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n'; sleep 2) | nc 169.254.169.254 80 | tail -n 1)
echo "IMDSV2-ID=$( (printf 'GET /latest/meta-data/instance-id HTTP/1.0\r\nX-aws-ec2-metadata-token: %s\r\n\r\n' "$TOKEN"; sleep 2) | nc 169.254.169.254 80 | tail -n 1)"
echo "IMDSV1-AZ=$(wget -qO- http://169.254.169.254/latest/meta-data/placement/availability-zone)"
echo "IMDS-TYPE=$(wget -qO- http://169.254.169.254/latest/meta-data/instance-type)"
echo "IMDS-BADTOKEN=$(wget -qO- --header 'X-aws-ec2-metadata-token: forged' http://169.254.169.254/latest/meta-data/ami-id 2>/dev/null || echo refused)"
echo first-boot > /root/first-boot
"""


def test_seed_scenario(vm, minimal, key, ssh_group):
    """Launch with a key, user data and a security group; log in and write a file; make an image;
    launch five from it in one call; each has the file; terminate all; nothing is left behind."""
    ec2 = vm.client("a")
    r = ec2.run_instances(
        ImageId=minimal["ImageId"], InstanceType="t3.micro", MinCount=1, MaxCount=1, KeyName="vm-key",
        SecurityGroupIds=[ssh_group], UserData=IMDS_SCRIPT,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "first"}]},
                           {"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "root"}]}])
    [first] = r["Instances"]
    assert first["State"]["Name"] == "pending" and r["OwnerId"] == "111111111111"
    fid = first["InstanceId"]
    [inst] = wait_state(ec2, [fid], "running")
    assert inst["InstanceType"] == "t3.micro" and inst["KeyName"] == "vm-key"
    assert inst["SecurityGroups"][0]["GroupId"] == ssh_group
    assert inst["PrivateIpAddress"].startswith("172.31.") and inst["PublicIpAddress"]
    assert inst["RootDeviceType"] == "ebs" and inst["Tags"] == [{"Key": "Name", "Value": "first"}]
    root = inst["BlockDeviceMappings"][0]
    assert root["DeviceName"] == inst["RootDeviceName"] and root["Ebs"]["DeleteOnTermination"] is True
    [vol] = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"]
    assert vol["State"] == "in-use" and vol["Attachments"][0]["InstanceId"] == fid
    assert vol["SnapshotId"] == minimal["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert vol["Tags"] == [{"Key": "role", "Value": "root"}]

    # The guest booted the image's disk, ran the agent and the user data, which reached IMDS.
    out = wait_console(ec2, fid, "KILN-AGENT-DONE")
    assert "KILN-GUEST-READY" in out and "USERDATA-RAN" in out
    assert f"IMDSV2-ID={fid}" in out, out[-3000:]
    assert f"IMDSV1-AZ={inst['Placement']['AvailabilityZone']}" in out
    assert "IMDS-TYPE=t3.micro" in out and "IMDS-BADTOKEN=refused" in out

    public = inst["PublicIpAddress"]
    assert ssh(public, key, "cat /root/first-boot").strip() == "first-boot"
    ssh(public, key, "echo kiln-was-here > /root/marker && sync")

    # An image of the running instance: stop, snapshot, start.
    image_id = ec2.create_image(InstanceId=fid, Name="from-first", Description="seed",
                                TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "k", "Value": "v"}]}])["ImageId"]
    wait_until(lambda: ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available", timeout=180,
               interval=0.5, what="the new image to be available")
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["Tags"] == [{"Key": "k", "Value": "v"}] and image["RootDeviceType"] == "ebs"
    assert image.get("SourceInstanceId", fid) == fid
    snap_id = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    [snap] = ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"]
    assert snap["Description"] == f"Created by CreateImage({fid}) for {image_id}" and snap["State"] == "completed"
    wait_state(ec2, [fid], "running")

    # Five more from the new image in one call; each runs its own user data.
    second_gen = "#!/bin/sh\necho SECOND-GEN-$(wget -qO- http://169.254.169.254/latest/meta-data/instance-id)\n"
    r5 = ec2.run_instances(ImageId=image_id, InstanceType="t3.micro", MinCount=5, MaxCount=5, KeyName="vm-key",
                           SecurityGroupIds=[ssh_group], UserData=second_gen)
    ids = [i["InstanceId"] for i in r5["Instances"]]
    assert len(ids) == 5 and sorted(i["AmiLaunchIndex"] for i in r5["Instances"]) == [0, 1, 2, 3, 4]
    running = wait_state(ec2, ids, "running", timeout=180)
    for i in running:
        out = wait_console(ec2, i["InstanceId"], "KILN-AGENT-DONE", timeout=180)
        assert f"SECOND-GEN-{i['InstanceId']}" in out
        assert "USERDATA-RAN" not in out, "the first instance's user data must not run again"
        assert ssh(i["PublicIpAddress"], key, "cat /root/marker").strip() == "kiln-was-here"
    assert len({i["PrivateIpAddress"] for i in running}) == 5
    # Instances of one VPC reach each other where their groups allow (here: ssh from anywhere).
    peer = running[1]["PrivateIpAddress"]
    banner = ssh(running[0]["PublicIpAddress"], key, f"nc -w 3 {peer} 22 </dev/null | head -c 7")
    assert banner == "SSH-2.0", banner

    # Terminate everything: root volumes and overlay files go with the instances.
    all_ids = [fid] + ids
    volumes = [d["Ebs"]["VolumeId"] for i in running + [describe(ec2, fid)] for d in i["BlockDeviceMappings"]]
    changes = ec2.terminate_instances(InstanceIds=all_ids)["TerminatingInstances"]
    assert {c["CurrentState"]["Name"] for c in changes} <= {"shutting-down", "terminated"}
    wait_state(ec2, all_ids, "terminated")
    left = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": volumes}])["Volumes"]
    assert left == []
    volume_dir = vm.data_dir / "regions" / "us-east-1" / "volumes"
    assert not [v for v in volumes if (volume_dir / f"{v}.qcow2").exists()]
    for i in all_ids:
        assert not (vm.data_dir / "instances" / i / "qemu.pid").exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not [i for i in all_ids if f"kt{i[-13:]}" in links]
    # The image and its snapshot stay.
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available"


@pytest.fixture(scope="module")
def pet(vm, minimal, key):
    """One long-lived instance for the lifecycle tests, in a group with no ingress rules."""
    ec2 = vm.client("a")
    gid = ec2.create_security_group(GroupName="closed", Description="nothing in")["GroupId"]
    iid = ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, KeyName="vm-key",
                            SecurityGroupIds=[gid])["Instances"][0]["InstanceId"]
    wait_state(ec2, [iid], "running")
    wait_console(ec2, iid, "KILN-AGENT-DONE")
    return {"id": iid, "group": gid, "ip": describe(ec2, iid)["PublicIpAddress"]}


def test_security_group_rules_open_and_close_ports(vm, pet, key):
    ec2 = vm.client("a")
    assert tcp_open(pet["ip"], 22) is None, "no rule allows ssh yet"
    perm = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.authorize_security_group_ingress(GroupId=pet["group"], IpPermissions=perm)
    banner = wait_until(lambda: tcp_open(pet["ip"], 22), timeout=20, what="port 22 to open")
    assert banner.startswith(b"SSH-2.0")
    assert ssh(pet["ip"], key, "hostname").strip().startswith("ip-")
    ec2.revoke_security_group_ingress(GroupId=pet["group"], IpPermissions=perm)
    wait_until(lambda: tcp_open(pet["ip"], 22) is None, timeout=20, what="port 22 to close")


def test_stop_start_keeps_the_disk_and_type_changes_while_stopped(vm, pet, key):
    ec2 = vm.client("a")
    perm = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.authorize_security_group_ingress(GroupId=pet["group"], IpPermissions=perm)
    ssh(pet["ip"], key, "echo persisted > /root/kept && sync")
    with pytest.raises(Exception) as e:
        ec2.modify_instance_attribute(InstanceId=pet["id"], InstanceType={"Value": "t3.small"})
    assert error_code(e) == "IncorrectInstanceState"
    change = ec2.stop_instances(InstanceIds=[pet["id"]])["StoppingInstances"][0]
    assert change["PreviousState"]["Name"] == "running" and change["CurrentState"]["Name"] == "stopping"
    [inst] = wait_state(ec2, [pet["id"]], "stopped", timeout=60)
    assert inst["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    ec2.modify_instance_attribute(InstanceId=pet["id"], InstanceType={"Value": "t3.small"})
    assert ec2.describe_instance_attribute(InstanceId=pet["id"], Attribute="instanceType")["InstanceType"]["Value"] == "t3.small"
    ec2.start_instances(InstanceIds=[pet["id"]])
    [inst] = wait_state(ec2, [pet["id"]], "running")
    assert inst["InstanceType"] == "t3.small" and inst["PublicIpAddress"] == pet["ip"]
    assert ssh(pet["ip"], key, "cat /root/kept").strip() == "persisted"
    statuses = ec2.describe_instance_status(InstanceIds=[pet["id"]])["InstanceStatuses"]
    assert statuses[0]["InstanceState"]["Name"] == "running"


def test_volumes_hot_plug_into_a_running_instance(vm, pet, key):
    ec2 = vm.client("a")
    zone = describe(ec2, pet["id"])["Placement"]["AvailabilityZone"]
    vol = ec2.create_volume(Size=1, AvailabilityZone=zone)["VolumeId"]
    wait_until(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available", what="volume")
    before = set(ssh(pet["ip"], key, "ls /sys/block").split())
    attached = ec2.attach_volume(VolumeId=vol, InstanceId=pet["id"], Device="/dev/sdf")
    assert attached["State"] == "attached" and attached["Device"] == "/dev/sdf"

    def new_disks():
        return set(ssh(pet["ip"], key, "ls /sys/block").split()) - before

    [disk] = wait_until(new_disks, timeout=30, interval=0.5, what="the hot-plugged disk in the guest")
    assert ssh(pet["ip"], key, f"cat /sys/block/{disk}/serial").strip() == vol.replace("-", "")
    [v] = ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
    assert v["State"] == "in-use" and v["Attachments"][0]["InstanceId"] == pet["id"]
    assert any(m["Ebs"]["VolumeId"] == vol for m in describe(ec2, pet["id"])["BlockDeviceMappings"])
    ec2.detach_volume(VolumeId=vol)
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available"
    wait_until(lambda: not new_disks(), timeout=30, interval=0.5, what="the disk to leave the guest")
    with pytest.raises(Exception) as e:
        ec2.detach_volume(VolumeId=describe(ec2, pet["id"])["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])
    assert error_code(e) == "OperationNotPermitted"
    ec2.delete_volume(VolumeId=vol)


def test_attached_volumes_snapshot_together_and_change_mappings(vm, pet, key):
    from storage_helpers import qemu_matches, volume_path, wait_snapshot
    ec2 = vm.client("a")
    inst = describe(ec2, pet["id"])
    zone, root = inst["Placement"]["AvailabilityZone"], inst["RootDeviceName"]
    vol = ec2.create_volume(Size=1, AvailabilityZone=zone,
                            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "db", "Value": "data"}]}])
    vol = vol["VolumeId"]
    before = set(ssh(pet["ip"], key, "ls /sys/block").split())
    ec2.attach_volume(VolumeId=vol, InstanceId=pet["id"], Device="/dev/sdg")
    # What Ansible's ec2_vol does next, with no wait: the attachment is there for every call.
    ec2.modify_instance_attribute(InstanceId=pet["id"], BlockDeviceMappings=[
        {"DeviceName": "/dev/sdg", "Ebs": {"VolumeId": vol, "DeleteOnTermination": True}}])
    [m] = [m for m in describe(ec2, pet["id"])["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdg"]
    assert m["Ebs"]["DeleteOnTermination"] is True
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Attachments"][0]["DeleteOnTermination"] is True
    with pytest.raises(Exception) as e:
        ec2.modify_instance_attribute(InstanceId=pet["id"], BlockDeviceMappings=[
            {"DeviceName": "/dev/sdz", "Ebs": {"DeleteOnTermination": True}}])
    assert error_code(e) == "InvalidParameterValue"

    [disk] = wait_until(lambda: set(ssh(pet["ip"], key, "ls /sys/block").split()) - before, timeout=30,
                        interval=0.5, what="the hot-plugged disk in the guest")
    ssh(pet["ip"], key, f"dd if=/dev/zero bs=4096 count=1 2>/dev/null | tr '\\000' K > /dev/{disk} && sync")
    snaps = ec2.create_snapshots(InstanceSpecification={"InstanceId": pet["id"]}, Description="both",
                                 CopyTagsFromSource="volume")["Snapshots"]
    root_vol = [m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"] if m["DeviceName"] == root][0]
    assert [s["VolumeId"] for s in snaps] == [root_vol, vol]
    assert all(s["State"] == "pending" and s["Description"] == "both" and s["OwnerId"] for s in snaps)
    assert snaps[1]["Tags"] == [{"Key": "db", "Value": "data"}] and snaps[0]["Tags"] == []
    for s in snaps:
        wait_snapshot(ec2, s["SnapshotId"], timeout=120)
    # The data volume's snapshot holds what the running guest wrote.
    restored = ec2.create_volume(SnapshotId=snaps[1]["SnapshotId"], AvailabilityZone=zone)["VolumeId"]
    wait_until(lambda: ec2.describe_volumes(VolumeIds=[restored])["Volumes"][0]["State"] == "available",
               what="the restored volume")
    assert qemu_matches(volume_path(vm, restored), ord("K"), 0, 4096)
    only_data = ec2.create_snapshots(InstanceSpecification={"InstanceId": pet["id"], "ExcludeBootVolume": True},
                                     TagSpecifications=[{"ResourceType": "snapshot",
                                                         "Tags": [{"Key": "k", "Value": "v"}]}])["Snapshots"]
    assert [(s["VolumeId"], s["Tags"]) for s in only_data] == [(vol, [{"Key": "k", "Value": "v"}])]
    wait_snapshot(ec2, only_data[0]["SnapshotId"], timeout=120)
    with pytest.raises(Exception) as e:
        ec2.create_snapshots(InstanceSpecification={"InstanceId": pet["id"], "ExcludeBootVolume": True,
                                                    "ExcludeDataVolumeIds": [vol]})
    assert error_code(e) == "InvalidParameterCombination"
    with pytest.raises(Exception) as e:
        ec2.create_snapshots(InstanceSpecification={"InstanceId": "i-00000000000000000"})
    assert error_code(e) == "InvalidInstanceID.NotFound"

    # The instance's subnet counts the addresses its instances hold.
    subnet = ec2.describe_subnets(SubnetIds=[inst["SubnetId"]])["Subnets"][0]
    holders = [i for r in ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [inst["SubnetId"]]}])[
        "Reservations"] for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    bits = int(subnet["CidrBlock"].split("/")[1])
    assert holders and subnet["AvailableIpAddressCount"] == 2 ** (32 - bits) - 5 - len(holders)

    ec2.detach_volume(VolumeId=vol)
    wait_until(lambda: not set(ssh(pet["ip"], key, "ls /sys/block").split()) - before, timeout=30, interval=0.5,
               what="the disk to leave the guest")
    ec2.delete_volume(VolumeId=vol)
    ec2.delete_volume(VolumeId=restored)


def test_cli_lists_logs_in_and_follows_the_console(vm, pet, key, tmp_path):
    from conftest import ACCOUNTS, KILN_BIN
    _, _, access, secret = ACCOUNTS["a"]
    api = ["--endpoint", vm.endpoint, "--access-key", access, "--secret-key", secret]
    env = {**os.environ, "KILN_KEYS_DIR": str(tmp_path)}

    def kiln(*args):
        p = subprocess.run([str(KILN_BIN), *args], capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout

    listing = kiln("instances", *api)
    assert pet["id"] in listing and "running" in listing and pet["ip"] in listing
    assert "kiln-minimal-" in kiln("images", *api)
    assert "KILN-GUEST-READY" in kiln("console", *api, pet["id"])
    saved = kiln("keys", "create", "cli-key", *api).split("\t")[1].strip()
    assert pathlib.Path(saved).stat().st_mode & 0o777 == 0o600
    assert "OPENSSH PRIVATE KEY" in pathlib.Path(saved).read_text()
    (tmp_path / "vm-key.pem").write_bytes(key.read_bytes())
    (tmp_path / "vm-key.pem").chmod(0o600)
    assert kiln("ssh", *api, pet["id"], "--", "cat", "/etc/kiln/image-version").strip()


def test_termination_protection(vm, pet):
    ec2 = vm.client("a")
    ec2.modify_instance_attribute(InstanceId=pet["id"], DisableApiTermination={"Value": True})
    assert ec2.describe_instance_attribute(InstanceId=pet["id"], Attribute="disableApiTermination")[
        "DisableApiTermination"]["Value"] is True
    with pytest.raises(Exception) as e:
        ec2.terminate_instances(InstanceIds=[pet["id"]])
    assert error_code(e) == "OperationNotPermitted"
    assert describe(ec2, pet["id"])["State"]["Name"] == "running"
    ec2.modify_instance_attribute(InstanceId=pet["id"], DisableApiTermination={"Value": False})


def test_reboot_and_console(vm, pet, key):
    ec2 = vm.client("a")
    # A mark on the console, then a reboot: the ready marker must appear after it. (Counting
    # markers would not do: GetConsoleOutput returns the last 64 KiB, as EC2 does.)
    ssh(pet["ip"], key, "echo BEFORE-REBOOT > /dev/console")
    wait_until(lambda: "BEFORE-REBOOT" in console(ec2, pet["id"]), timeout=20, what="the mark")
    ec2.reboot_instances(InstanceIds=[pet["id"]])

    def booted_again():
        out = console(ec2, pet["id"])
        return out.rfind("KILN-GUEST-READY") > out.rfind("BEFORE-REBOOT") >= 0

    wait_until(booted_again, timeout=60, interval=0.5, what="the guest to boot again")
    assert describe(ec2, pet["id"])["State"]["Name"] == "running"


def test_other_accounts_launch_only_what_is_shared(vm, pet):
    a, b = vm.client("a"), vm.client("b")
    image_id = a.create_image(InstanceId=pet["id"], Name="pet-image", NoReboot=True)["ImageId"]
    assert describe(a, pet["id"])["State"]["Name"] == "running", "NoReboot leaves the instance running"
    wait_until(lambda: a.describe_images(ImageIds=[image_id])["Images"][0]["State"] == "available", timeout=120,
               interval=0.5, what="the NoReboot image")
    with pytest.raises(Exception) as e:
        b.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert error_code(e) in ("AuthFailure", "InvalidAMIID.NotFound")
    a.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": "222222222222"}]})
    iid = b.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    [inst] = wait_state(b, [iid], "running")
    assert inst["ImageId"] == image_id and inst["PrivateIpAddress"] != describe(a, pet["id"])["PrivateIpAddress"]
    assert a.describe_images(ImageIds=[image_id])["Images"][0].get("LastLaunchedTime"), "the owner sees the launch"
    # Account A cannot see or touch B's instance.
    with pytest.raises(Exception) as e:
        a.terminate_instances(InstanceIds=[iid])
    assert error_code(e) == "InvalidInstanceID.NotFound"
    b.terminate_instances(InstanceIds=[iid])
    wait_state(b, [iid], "terminated")


def test_instance_store_root_cannot_stop(vm, pet):
    ec2 = vm.client("a")
    # A snapshot of the pet's running root volume (taken while its VM is frozen for a moment).
    root = describe(ec2, pet["id"])["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=root)["SnapshotId"]
    wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "completed",
               timeout=60, what="the root snapshot")
    image_id = ec2.register_image(Name="ephemeral-root", ImageLocation=f"kiln:snapshot/{snap}",
                                  Architecture="x86_64")["ImageId"]
    [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
    assert image["RootDeviceType"] == "instance-store"
    iid = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    [inst] = wait_state(ec2, [iid], "running")
    assert inst["RootDeviceType"] == "instance-store" and inst["BlockDeviceMappings"] == []
    with pytest.raises(Exception) as e:
        ec2.stop_instances(InstanceIds=[iid])
    assert error_code(e) == "UnsupportedOperation"
    wait_console(ec2, iid, "KILN-GUEST-READY")
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
    assert not (vm.data_dir / "instances" / iid / "root.qcow2").exists()


def test_capacity_and_bad_requests(vm, minimal):
    ec2 = vm.client("a")
    with pytest.raises(Exception) as e:
        ec2.run_instances(ImageId=minimal["ImageId"], MinCount=500, MaxCount=500)
    assert error_code(e) == "InsufficientInstanceCapacity"
    with pytest.raises(Exception) as e:
        ec2.run_instances(ImageId="ami-00000000000000000", MinCount=1, MaxCount=1)
    assert error_code(e) == "InvalidAMIID.NotFound"
    with pytest.raises(Exception) as e:
        ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, KeyName="no-such-key")
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(Exception) as e:
        ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, InstanceType="t9.huge")
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(Exception) as e:
        ec2.describe_instances(InstanceIds=["i-00000000000000000"])
    assert error_code(e) == "InvalidInstanceID.NotFound"


def test_guest_poweroff_follows_the_shutdown_behavior(vm, minimal):
    ec2 = vm.client("a")
    poweroff = "#!/bin/sh\nsync\npoweroff -f\n"
    stops = ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, UserData=poweroff,
                              ClientToken="poweroff-stop")["Instances"][0]["InstanceId"]
    again = ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, UserData=poweroff,
                              ClientToken="poweroff-stop")
    assert [i["InstanceId"] for i in again["Instances"]] == [stops], "a retried ClientToken launches nothing new"
    # Launched through the family's latest alias.
    launched = ec2.run_instances(ImageId="resolve:ssm:/kiln/images/kiln-minimal/latest", MinCount=1, MaxCount=1,
                                 UserData=poweroff, InstanceInitiatedShutdownBehavior="terminate")["Instances"][0]
    assert launched["ImageId"] == minimal["ImageId"]
    # Launches are recorded on the image for its owner (the provider here), not for others.
    assert "LastLaunchedTime" not in ec2.describe_images(ImageIds=[minimal["ImageId"]])["Images"][0]
    ends = launched["InstanceId"]
    [stopped] = wait_state(ec2, [stops], "stopped", timeout=120)
    assert stopped["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    [ended] = wait_state(ec2, [ends], "terminated", timeout=120)
    assert ended["StateReason"]["Code"] == "Client.InstanceInitiatedShutdown"
    assert ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [ends]}])["Volumes"] == []
    ec2.terminate_instances(InstanceIds=[stops])
    wait_state(ec2, [stops], "terminated")


def test_a_server_restart_brings_running_instances_back(vm, minimal):
    """Stopping Kiln leaves no QEMU behind; starting it launches what was running again from
    its disk, and the console log spans both boots."""
    ec2 = vm.client("a")
    iid = ec2.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    wait_console(ec2, iid, "KILN-GUEST-READY")
    pid = int((vm.data_dir / "instances" / iid / "qemu.pid").read_text())
    vm.stop()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10, what="QEMU to be gone with the server")
    vm.start()
    ec2 = vm.client("a")
    wait_state(ec2, [iid], "running")
    wait_until(lambda: console(ec2, iid).count("KILN-GUEST-READY") >= 2, timeout=120, interval=0.5,
               what="the instance to boot again")
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")


def test_two_servers_share_the_host(vm, minimal, key, ssh_group):
    """A second Kiln on the same host runs instances beside the first: each server has its own
    network namespace, metadata service on 169.254.169.254:80 and firewall, both hand out the
    same private address, and stopping one leaves the other's guests alone."""
    config = VM_CONFIG.replace('["minimal", "debian-12"]', '["minimal"]').replace(
        "[instances]\n", '[instances]\npublic_ip_pool = "100.96.0.0/16"\n')
    def namespaces():
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    before = namespaces()
    other = KilnServer(config_text=config).start()
    try:
        [netns_b] = namespaces() - before
        ec2_b = other.client("a")
        wait_until(lambda: [i for i in ec2_b.describe_images(Owners=["kiln"])["Images"] if "minimal" in i["Name"]],
                   timeout=600, interval=1, what="the minimal image on the second server")
        image_b = [i for i in ec2_b.describe_images(Owners=["kiln"])["Images"] if "minimal" in i["Name"]][0]
        public_key = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True,
                                    check=True).stdout
        ec2_b.import_key_pair(KeyName="vm-key", PublicKeyMaterial=public_key.encode())
        gid_b = ec2_b.create_security_group(GroupName="ssh-in", Description="ssh")["GroupId"]
        ec2_b.authorize_security_group_ingress(GroupId=gid_b, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

        ec2_a = vm.client("a")
        ia = ec2_a.run_instances(ImageId=minimal["ImageId"], MinCount=1, MaxCount=1, KeyName="vm-key",
                                 SecurityGroupIds=[ssh_group], UserData=IMDS_SCRIPT)["Instances"][0]["InstanceId"]
        ib = ec2_b.run_instances(ImageId=image_b["ImageId"], MinCount=1, MaxCount=1, KeyName="vm-key",
                                 SecurityGroupIds=[gid_b], UserData=IMDS_SCRIPT)["Instances"][0]["InstanceId"]
        [a] = wait_state(ec2_a, [ia], "running")
        [b] = wait_state(ec2_b, [ib], "running")
        assert b["PublicIpAddress"].startswith("100.96.") and not a["PublicIpAddress"].startswith("100.96.")
        # Each guest's metadata service is its own server's.
        for ec2, iid in ((ec2_a, ia), (ec2_b, ib)):
            out = wait_console(ec2, iid, "KILN-AGENT-DONE")
            assert f"IMDSV2-ID={iid}" in out, out[-3000:]
        assert ssh(a["PublicIpAddress"], key, "cat /etc/hostname").strip()
        assert ssh(b["PublicIpAddress"], key, "cat /etc/hostname").strip()
        other.stop()
        # The second server took its namespace with it; the first one's guest still answers.
        assert netns_b not in namespaces()
        assert ssh(a["PublicIpAddress"], key, "echo still-here").strip() == "still-here"
        ec2_a.terminate_instances(InstanceIds=[ia])
        wait_state(ec2_a, [ia], "terminated")
    finally:
        other.cleanup()


def test_killed_qemu_is_noticed(vm, pet):
    """Runs last among the pet's tests: a QEMU killed behind Kiln's back stops the instance."""
    ec2 = vm.client("a")
    pid = int((vm.data_dir / "instances" / pet["id"] / "qemu.pid").read_text())
    os.kill(pid, 9)
    [inst] = wait_state(ec2, [pet["id"]], "stopped", timeout=30)
    assert inst["StateReason"]["Code"].startswith("Server.")
    # Terminated instances stay describable for the retention period, then disappear.
    ec2.terminate_instances(InstanceIds=[pet["id"]])
    wait_state(ec2, [pet["id"]], "terminated")

    def gone():
        try:
            ec2.describe_instances(InstanceIds=[pet["id"]])
            return False
        except Exception as e:  # noqa: BLE001
            return e.response["Error"]["Code"] == "InvalidInstanceID.NotFound"

    wait_until(gone, timeout=90, interval=1, what="the terminated instance to expire")


@pytest.mark.skipif(not shutil.which("mmdebstrap"), reason="the debian-12 image is built with mmdebstrap")
def test_debian12_image_boots_with_systemd_and_runs_its_agent(vm, key, ssh_group):
    """The provided Debian 12 image: systemd, OpenSSH, the key for root and admin, user data."""
    ec2 = vm.client("a")

    def debian():
        return [i for i in ec2.describe_images(Owners=["kiln"])["Images"] if i["Name"].startswith("kiln-debian-12-")]

    [image] = wait_until(debian, timeout=900, interval=2, what="the debian-12 image to be published")
    assert image["Public"] and image["ImageOwnerAlias"] == "kiln"
    iid = ec2.run_instances(ImageId=image["ImageId"], MinCount=1, MaxCount=1, KeyName="vm-key",
                            SecurityGroupIds=[ssh_group],
                            UserData="#!/bin/sh\necho DEBIAN-USERDATA-$(cut -d. -f1 /etc/debian_version)\n"
                            )["Instances"][0]["InstanceId"]
    out = wait_console(ec2, iid, "KILN-AGENT-DONE", timeout=400)
    assert "DEBIAN-USERDATA-12" in out
    ip = describe(ec2, iid)["PublicIpAddress"]
    assert "bookworm" in ssh(ip, key, "cat /etc/os-release", user="admin")
    assert ssh(ip, key, "ps -p 1 -o comm=").strip() == "systemd"
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, [iid], "terminated")
