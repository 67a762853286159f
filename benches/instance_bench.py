#!/usr/bin/env python3
"""Instance benchmark, measured side by side in one run against a release `kiln serve`:

1. Launch overhead: time from `RunInstances` returning to QEMU running (its pid file), and
   from the call to the first console line, through Kiln vs plain `qemu-system-x86_64` with the
   same kernel, initramfs, machine type and a qcow2 overlay of the same disk.
2. Ten instances from one image in one call: time until all print the ready marker, and disk
   bytes added per instance (volume overlays plus instance files).
3. `CreateImage` after changing 1% of a 2 GiB root disk vs after changing 20%: time until the
   image is available and new bytes stored in the chunk store.

Usage: cargo build --release && sudo python3 benches/instance_bench.py
Needs: root (TAP networking), qemu-system-x86_64, and Debian package access for the image.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "blackbox"))
os.environ.setdefault("KILN_BIN", str(ROOT / "target" / "release" / "kiln"))
os.environ.setdefault("KILN_LOG", "warn")

from conftest import CONFIG, KilnServer, wait_until  # noqa: E402

CACHE = ROOT / "target" / "test-image-cache"
MIB = 1 << 20


def du(path):
    total = 0
    for p in pathlib.Path(path).rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_blocks * 512
    return total


def first_line_time(path, start, timeout=120, marker=b"\n"):
    """Seconds from `start` until `path` holds `marker` (by default, a complete line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if marker in path.read_bytes():
                return time.monotonic() - start
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise TimeoutError(path)


READY = b"KILN-GUEST-READY"


def console(ec2, iid):
    return ec2.get_console_output(InstanceId=iid).get("Output", "")


def stored(server):
    out = subprocess.run([os.environ["KILN_BIN"], "--data-dir", str(server.data_dir), "storage", "stats"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("us-east-1"):
            return int(line.split()[2])
    return 0


def plain_qemu(boot_dir, disk, workdir):
    """Spawns QEMU as Kiln would, without Kiln; returns seconds to the first console line."""
    overlay = workdir / "plain.qcow2"
    overlay.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k",
                    "-b", str(disk), "-F", "raw", str(overlay)], check=True)
    log = workdir / "plain-console.log"
    log.unlink(missing_ok=True)
    args = ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1024M",
            "-nodefaults", "-no-user-config", "-nographic",
            "-chardev", f"file,id=serial0,path={log}", "-serial", "chardev:serial0",
            "-kernel", str(boot_dir / "vmlinuz"), "-initrd", str(boot_dir / "initrd.img"),
            "-append", "console=ttyS0 root=/dev/vda rw panic=-1",
            "-blockdev", f"driver=qcow2,node-name=root,file.driver=file,file.filename={overlay}",
            "-device", "pcie-root-port,id=disk-port0,chassis=1",
            "-device", "virtio-blk-pci,drive=root,id=root,bus=disk-port0"]
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return first_line_time(log, start), first_line_time(log, start, marker=READY)
    finally:
        proc.kill()
        proc.wait()


def main():
    CACHE.mkdir(parents=True, exist_ok=True)
    config = f'provided_images = ["minimal"]\nimage_cache_dir = "{CACHE}"\n{CONFIG}\n' \
             '[instances]\nnetwork = "tap"\nmax_instance_memory_mib = 512\n'
    server = KilnServer(config_text=config).start()
    try:
        ec2 = server.client("a")
        image = wait_until(lambda: ec2.describe_images(Owners=["kiln"])["Images"], timeout=600, interval=1,
                           what="the minimal image")[0]
        image_id = image["ImageId"]
        snap = image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]

        # 1. Launch overhead, three rounds each.
        print("## Launch overhead (q35, TCG)\n")
        print("| round | RunInstances call | call → QEMU running | first console line: Kiln / plain | "
              "guest ready marker: Kiln / plain |")
        print("|---|---:|---:|---:|---:|")
        ratios, ready_ratios = [], []
        for n in range(3):
            start = time.monotonic()
            iid = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
            returned = time.monotonic() - start
            pidfile = server.data_dir / "instances" / iid / "qemu.pid"
            wait_until(pidfile.exists, timeout=60, interval=0.002, what="the pid file")
            qemu_up = time.monotonic() - start
            kiln_line = first_line_time(server.data_dir / "instances" / iid / "console.log", start)
            kiln_ready = first_line_time(server.data_dir / "instances" / iid / "console.log", start, marker=READY)
            ec2.terminate_instances(InstanceIds=[iid])
            wait_until(lambda: not pidfile.exists(), timeout=60, what="termination")
            boot_dir = next((server.data_dir / "regions" / "us-east-1" / "bases").glob(f"{snap}.boot"))
            disk = server.data_dir / "regions" / "us-east-1" / "bases" / f"{snap}.raw"
            with tempfile.TemporaryDirectory() as tmp:
                plain, plain_ready = plain_qemu(boot_dir, disk, pathlib.Path(tmp))
            ratios.append(kiln_line / plain)
            ready_ratios.append(kiln_ready / plain_ready)
            print(f"| {n + 1} | {returned * 1000:.0f} ms | {(qemu_up - returned) * 1000:.0f} ms after it returned | "
                  f"{kiln_line:.2f} s / {plain:.2f} s | {kiln_ready:.2f} s / {plain_ready:.2f} s |")
        print(f"\nratio Kiln / plain QEMU, to the first console line: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"to the guest's ready marker: {', '.join(f'{r:.2f}' for r in ready_ratios)}\n")
        if "--launch-only" in sys.argv:
            return

        # 2. Ten instances from one image.
        volumes = server.data_dir / "regions" / "us-east-1" / "volumes"
        before = du(volumes) + du(server.data_dir / "instances")
        start = time.monotonic()
        r = ec2.run_instances(ImageId=image_id, MinCount=10, MaxCount=10)
        ids = [i["InstanceId"] for i in r["Instances"]]
        call = time.monotonic() - start
        wait_until(lambda: all((server.data_dir / "instances" / i / "qemu.pid").exists() for i in ids),
                   timeout=120, interval=0.01, what="ten QEMUs")
        all_started = time.monotonic() - start
        wait_until(lambda: all("KILN-GUEST-READY" in console(ec2, i) for i in ids), timeout=600, interval=0.5,
                   what="ten ready markers")
        all_ready = time.monotonic() - start
        after = du(volumes) + du(server.data_dir / "instances")
        print("## Ten instances from one image\n")
        print(f"- RunInstances (10): {call * 1000:.0f} ms; all ten QEMUs running after {all_started:.2f} s; "
              f"all ten guests ready after {all_ready:.1f} s (TCG, 2 cores)")
        print(f"- disk added: {(after - before) / 10 / 1024:.0f} KiB per instance (image root disk: "
              f"{image['BlockDeviceMappings'][0]['Ebs']['VolumeSize']} GiB, base file "
              f"{du(server.data_dir / 'regions' / 'us-east-1' / 'bases') / MIB:.0f} MiB allocated, shared)\n")
        ec2.terminate_instances(InstanceIds=ids)

        # 3. CreateImage after changing 1% vs 20% of a 2 GiB root.
        print("## CreateImage after changing part of a 2 GiB root\n")
        print("| changed | time to available | new stored bytes |")
        print("|---|---:|---:|")
        for pct in (1, 20):
            mib = 2048 * pct // 100
            script = ("#!/bin/sh\n"
                      f"dd if=/dev/urandom of=/dev/vda bs=1M seek=1024 count={mib} conv=fsync 2>/dev/null\n"
                      "echo DD-DONE\n")
            iid = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, UserData=script,
                                    BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 2}}]
                                    )["Instances"][0]["InstanceId"]
            wait_until(lambda: "DD-DONE" in console(ec2, iid), timeout=600, interval=1, what="the writes")
            stored_before = stored(server)
            start = time.monotonic()
            new = ec2.create_image(InstanceId=iid, Name=f"changed-{pct}", NoReboot=True)["ImageId"]
            wait_until(lambda: ec2.describe_images(ImageIds=[new])["Images"][0]["State"] == "available",
                       timeout=600, interval=0.05, what="the image")
            took = time.monotonic() - start
            added = stored(server) - stored_before
            print(f"| {pct}% ({mib} MiB) | {took:.2f} s | {added / MIB:.1f} MiB |")
            ec2.terminate_instances(InstanceIds=[iid])
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
