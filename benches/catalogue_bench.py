#!/usr/bin/env python3
"""Image-catalogue benchmark, Kiln side by side with moto_server in one run.

Both servers get the same workload from one client that sends pre-signed requests (SigV4 done
before the clock starts) over one keep-alive HTTP connection, so what is timed is the server:

  populate: N images (default 2,000) in 8 name families, each tagged team=<one of N/100 teams>
            and family=<its family>: RegisterImage, then CreateTags (moto's RegisterImage
            ignores tags, so both servers get them the same way)
  measured: DescribeImages by 10 ids, by owner + name wildcard, by two tags, the account's whole
            listing, ModifyImageAttribute (add a launch permission) and CreateTags

Kiln's RegisterImage names a real snapshot (made once up front); moto's ignores the mapping.
Prints ops/s and p50 for both, the ratio, and both servers' resident memory.

Usage: cargo build --release && python3 benches/catalogue_bench.py [--images 2000] [--requests 200]
       (pip install 'moto[server]==5.2.3')
"""

import argparse
import http.client
import os
import pathlib
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
os.environ.setdefault("KILN_BIN", str(pathlib.Path(__file__).resolve().parents[1] / "target" / "release" / "kiln"))
os.environ.setdefault("KILN_LOG", "warn")

import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.credentials  # noqa: E402

from conftest import ACCOUNTS, KilnServer  # noqa: E402

FAMILIES = 8
PER_TEAM = 100
OTHER_ACCOUNT = "222222222222"


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection; requests are signed by `sign` before they are timed."""

    def __init__(self, host, port, key, secret):
        self.host, self.port = host, port
        self.creds = botocore.credentials.Credentials(key, secret)
        self.conn = http.client.HTTPConnection(host, port, timeout=600)

    def sign(self, params):
        body = urllib.parse.urlencode({"Version": "2016-11-15", **params})
        req = botocore.awsrequest.AWSRequest(
            method="POST", url=f"http://{self.host}:{self.port}/", data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        botocore.auth.SigV4Auth(self.creds, "ec2", "us-east-1").add_auth(req)
        return body.encode(), dict(req.headers)

    def send(self, signed):
        body, headers = signed
        self.conn.request("POST", "/", body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:500]!r}")
        return data

    def call(self, params):
        return self.send(self.sign(params))


def timed(client, requests, label=""):
    """Sends pre-signed `requests` one after another; returns (ops/s, p50 ms, answers)."""
    if label:
        print(f"  {label}: {len(requests)} requests", file=sys.stderr, flush=True)
    lat, answers = [], []
    t0 = time.perf_counter()
    for signed in requests:
        t = time.perf_counter()
        answers.append(client.send(signed))
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return len(requests) / wall, statistics.median(lat) * 1000, answers


def between(data, start, end):
    out, i = [], 0
    while (i := data.find(start, i)) >= 0:
        j = data.find(end, i)
        out.append(data[i + len(start):j].decode())
        i = j
    return out


def run_workload(name, client, images, requests, snapshot_id, rnd):
    rows = {}
    # Populate.
    reg = []
    for i in range(images):
        params = {"Action": "RegisterImage", "Name": f"fam-{i % FAMILIES}-img-{i:05d}", "Architecture": "x86_64",
                  "RootDeviceName": "/dev/xvda", "VirtualizationType": "hvm"}
        if snapshot_id:
            params.update({"BlockDeviceMapping.1.DeviceName": "/dev/xvda",
                           "BlockDeviceMapping.1.Ebs.SnapshotId": snapshot_id})
        reg.append(client.sign(params))
    ops, p50, answers = timed(client, reg, f"{name} RegisterImage")
    rows["RegisterImage"] = (ops, p50)
    ids = [between(a, b"<imageId>", b"</imageId>")[0] for a in answers]
    tags = [client.sign({"Action": "CreateTags", "ResourceId.1": image, "Tag.1.Key": "team", "Tag.1.Value": f"team-{i // PER_TEAM}",
                         "Tag.2.Key": "family", "Tag.2.Value": f"fam-{i % FAMILIES}"})
            for i, image in enumerate(ids)]
    timed(client, tags, f"{name} CreateTags (populate)")

    teams = max(1, images // PER_TEAM)
    by_ids = [client.sign({"Action": "DescribeImages", **{f"ImageId.{k + 1}": image for k, image in enumerate(rnd.sample(ids, 10))}})
              for _ in range(requests)]
    ops, p50, answers = timed(client, by_ids, f"{name} by ids")
    assert all(a.count(b"<imageId>") == 10 for a in answers), f"{name}: by ids"
    rows["DescribeImages, 10 ids"] = (ops, p50)

    wildcard = [client.sign({"Action": "DescribeImages", "Owner.1": "self", "Filter.1.Name": "name",
                             "Filter.1.Value.1": f"fam-{rnd.randrange(FAMILIES)}-img-{rnd.randrange(images // 100):03d}*"})
                for _ in range(requests)]
    ops, p50, answers = timed(client, wildcard, f"{name} wildcard")
    assert all(a.count(b"<imageId>") >= 1 for a in answers), f"{name}: wildcard"
    rows["DescribeImages, owner + name wildcard"] = (ops, p50)

    two_tags = [client.sign({"Action": "DescribeImages", "Filter.1.Name": "tag:team", "Filter.1.Value.1": f"team-{rnd.randrange(teams)}",
                             "Filter.2.Name": "tag:family", "Filter.2.Value.1": f"fam-{rnd.randrange(FAMILIES)}"})
                for _ in range(requests)]
    ops, p50, answers = timed(client, two_tags, f"{name} two tags")
    assert all(a.count(b"<imageId>") >= 1 for a in answers), f"{name}: two tags"
    rows["DescribeImages, two-tag filter"] = (ops, p50)

    listings = max(3, requests // (40 if name == "moto" else 10))
    listing = [client.sign({"Action": "DescribeImages", "Owner.1": "self"}) for _ in range(listings)]
    ops, p50, answers = timed(client, listing, f"{name} listing")
    assert all(a.count(b"<imageId>") == images for a in answers), f"{name}: listing"
    rows[f"DescribeImages, owner=self ({images} images)"] = (ops, p50)

    modify = [client.sign({"Action": "ModifyImageAttribute", "ImageId": rnd.choice(ids), "LaunchPermission.Add.1.UserId": OTHER_ACCOUNT})
              for _ in range(requests)]
    rows["ModifyImageAttribute"] = timed(client, modify, f"{name} modify")[:2]

    create_tags = [client.sign({"Action": "CreateTags", "ResourceId.1": rnd.choice(ids), "Tag.1.Key": "bench", "Tag.1.Value": str(i)})
                   for i in range(requests)]
    rows["CreateTags"] = timed(client, create_tags, f"{name} CreateTags")[:2]
    return rows


def kiln_snapshot(client):
    vol = between(client.call({"Action": "CreateVolume", "Size": "1", "AvailabilityZone": "us-east-1a"}),
                  b"<volumeId>", b"</volumeId>")[0]
    snap = between(client.call({"Action": "CreateSnapshot", "VolumeId": vol}), b"<snapshotId>", b"</snapshotId>")[0]
    for _ in range(600):
        if b"<status>completed</status>" in client.call({"Action": "DescribeSnapshots", "SnapshotId.1": snap}):
            return snap
        time.sleep(0.1)
    raise RuntimeError("the snapshot did not complete")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--moto-requests", type=int, default=50, help="moto is slow: fewer requests per call")
    ap.add_argument("--skip-moto", action="store_true")
    args = ap.parse_args()
    _, _, key, secret = ACCOUNTS["a"]
    results, memory = {}, {}

    server = KilnServer().start()
    try:
        host, port = urllib.parse.urlparse(server.endpoint).hostname, urllib.parse.urlparse(server.endpoint).port
        client = Client(host, port, key, secret)
        snap = kiln_snapshot(client)
        results["kiln"] = run_workload("kiln", client, args.images, args.requests, snap, random.Random(7))
        memory["kiln"] = rss_mib(server.proc.pid)
        for call, (ops, p50) in results["kiln"].items():
            print(f"  kiln {call}: {ops:.1f} ops/s, p50 {p50:.1f} ms", file=sys.stderr, flush=True)
    finally:
        server.cleanup()

    if not args.skip_moto:
        port = free_port()
        env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false")
        moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            client = Client("127.0.0.1", port, key, secret)
            results["moto"] = run_workload("moto", client, args.images, args.moto_requests, None, random.Random(7))
            memory["moto"] = rss_mib(moto.pid)
        finally:
            moto.terminate()
            moto.wait()

    print(f"\n{args.images} images, one client, pre-signed requests over one keep-alive connection\n")
    print("| call | Kiln ops/s | Kiln p50 ms | moto ops/s | moto p50 ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for call, (ops, p50) in results["kiln"].items():
        m = results.get("moto", {}).get(call)
        moto_cols = f"{m[0]:.1f} | {m[1]:.1f} | {ops / m[0]:.1f}x" if m else "- | - | -"
        print(f"| {call} | {ops:.1f} | {p50:.1f} | {moto_cols} |")
    print()
    print("resident memory after the run: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))


if __name__ == "__main__":
    main()
