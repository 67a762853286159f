#!/usr/bin/env python3
"""API benchmark: requests/second and p50/p99 latency of DescribeKeyPairs,
DescribeSecurityGroups and CreateTags, driven by boto3 against a `kiln serve` holding 10,000
tagged resources (key pairs and security groups), plus the server's resident memory.

Usage: cargo build --release && python3 benches/api_bench.py [--resources 10000] [--requests 400]
"""

import argparse
import concurrent.futures as cf
import os
import pathlib
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
os.environ.setdefault("KILN_BIN", str(pathlib.Path(__file__).resolve().parents[1] / "target" / "release" / "kiln"))
os.environ.setdefault("KILN_LOG", "warn")

from conftest import KilnServer  # noqa: E402


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def populate(server, n, threads=8):
    half = n // 2
    local = threading.local()

    def client():
        if not hasattr(local, "c"):
            local.c = server.client("a")
        return local.c

    def make_key(i):
        client().create_key_pair(
            KeyName=f"bench-key-{i}", KeyType="ed25519",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": [
                {"Key": "Name", "Value": f"bench-key-{i}"}, {"Key": "team", "Value": f"team-{i % 50}"}]}])

    def make_group(i):
        return client().create_security_group(
            GroupName=f"bench-sg-{i}", Description="bench",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": "Name", "Value": f"bench-sg-{i}"}, {"Key": "team", "Value": f"team-{i % 50}"}]}])["GroupId"]

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(threads) as ex:
        list(ex.map(make_key, range(half)))
        groups = list(ex.map(make_group, range(n - half)))
    return groups, time.monotonic() - t0


def measure(name, fn, requests, threads):
    lat = []
    lock = threading.Lock()
    local = threading.local()

    def one(i):
        t = time.perf_counter()
        fn(local, i)
        d = time.perf_counter() - t
        with lock:
            lat.append(d)

    fn(local, 0)  # warm the connection
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, range(requests)))
    wall = time.perf_counter() - t0
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return {"name": name, "threads": threads, "requests": requests, "rps": requests / wall,
            "p50": p(0.50), "p99": p(0.99), "mean": statistics.mean(lat) * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=400)
    args = ap.parse_args()

    server = KilnServer().start()
    try:
        idle = rss_mib(server.proc.pid)
        groups, took = populate(server, args.resources)
        print(f"populated {args.resources} tagged resources in {took:.1f}s "
              f"({args.resources / took:.0f} creates/s with 8 boto3 threads)")
        half = args.resources // 2
        rnd = random.Random(7)

        def c(local):
            if not hasattr(local, "c"):
                local.c = server.client("a")
            return local.c

        cases = [
            ("DescribeKeyPairs KeyNames=[one]", lambda l, i: c(l).describe_key_pairs(KeyNames=[f"bench-key-{rnd.randrange(half)}"])),
            ("DescribeKeyPairs tag:Name=<one>", lambda l, i: c(l).describe_key_pairs(
                Filters=[{"Name": "tag:Name", "Values": [f"bench-key-{rnd.randrange(half)}"]}])),
            ("DescribeSecurityGroups GroupIds=[one]", lambda l, i: c(l).describe_security_groups(GroupIds=[rnd.choice(groups)])),
            ("DescribeSecurityGroups MaxResults=100", lambda l, i: c(l).describe_security_groups(MaxResults=100)),
            ("CreateTags one resource", lambda l, i: c(l).create_tags(Resources=[rnd.choice(groups)],
                                                                       Tags=[{"Key": "bench", "Value": str(i)}])),
        ]
        rows = []
        for name, fn in cases:
            for threads in (1, 4):
                rows.append(measure(name, fn, args.requests, threads))
        full = [
            ("DescribeKeyPairs (all 5,000)", lambda l, i: c(l).describe_key_pairs()),
            ("DescribeSecurityGroups (all 5,000+)", lambda l, i: c(l).describe_security_groups()),
        ]
        for name, fn in full:
            rows.append(measure(name, fn, 20, 1))
        # The same two full listings without boto3's XML parsing, to separate server time
        # from client time: a signed request sent with `requests`, body read but not parsed.
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import requests
        from conftest import ACCOUNTS
        _, _, key, secret = ACCOUNTS["a"]
        creds = botocore.credentials.Credentials(key, secret)
        session = requests.Session()

        def raw(action):
            def call(local, i):
                req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/",
                                                     data=f"Action={action}&Version=2016-11-15",
                                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
                botocore.auth.SigV4Auth(creds, "ec2", "us-east-1").add_auth(req)
                r = session.post(req.url, data=req.body, headers=dict(req.headers))
                assert r.status_code == 200 and len(r.content) > 100_000
            return call

        rows.append(measure("DescribeKeyPairs (all 5,000), raw HTTP", raw("DescribeKeyPairs"), 20, 1))
        rows.append(measure("DescribeSecurityGroups (all 5,000+), raw HTTP", raw("DescribeSecurityGroups"), 20, 1))
        rss = rss_mib(server.proc.pid)
        print()
        print("| call | client threads | requests | req/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['name']} | {r['threads']} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} |")
        print()
        print(f"server resident memory: {idle:.1f} MiB idle, {rss:.1f} MiB with {args.resources} resources after the run")
        db = server.data_dir / "meta.db"
        print(f"metadata database: {db.stat().st_size / 2**20:.1f} MiB")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
