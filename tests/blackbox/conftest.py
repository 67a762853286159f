"""Black-box fixtures: a real `kiln serve` process driven by boto3 and the AWS CLI.

One server is shared by the whole session (tests use unique names, so they do not collide);
tests that kill or restart a server start their own with `KilnServer`.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import boto3
import botocore.config
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILN_BIN = pathlib.Path(os.environ.get("KILN_BIN", ROOT / "target" / "debug" / "kiln"))

# Fixed accounts declared in the test configuration: (id, name, access key id, secret).
ACCOUNTS = {
    "a": ("111111111111", "team-a", "AKIAEXAMPLETEAMA0001", "team-a-secret"),
    "b": ("222222222222", "team-b", "AKIAEXAMPLETEAMB0001", "team-b-secret"),
    "c": ("333333333333", "team-c", "AKIAEXAMPLETEAMC0001", "team-c-secret"),
}

CONFIG = "\n".join(
    f'[[accounts]]\nid = "{i}"\nname = "{n}"\naccess_keys = [{{ id = "{k}", secret = "{s}" }}]\n'
    for i, n, k, s in ACCOUNTS.values()
)


TEST_REGIONS = "".join(
    f'[[regions]]\nname = "{r}"\nzones = ["{r}a", "{r}b", "{r}c"]\nprice_factor = {p}\n\n'
    for r, p in (("us-east-1", 1.0), ("us-west-2", 1.0), ("eu-west-1", 1.1))
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Polls `predicate` until it returns a truthy value; never sleep-and-hope."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


class KilnServer:
    """A `kiln serve` child process with its own data directory and port."""

    def __init__(self, data_dir=None, config_text=CONFIG, aws_regions=False):
        self.data_dir = pathlib.Path(data_dir or tempfile.mkdtemp(prefix="kiln-test-"))
        self.config_path = self.data_dir.parent / f"{self.data_dir.name}.toml"
        # Kiln knows all of AWS's regions by default; the suite pins three, with zones a to c,
        # so its expectations do not move when AWS adds one. test_regions_types checks the default.
        if "[[regions]]" not in config_text and not aws_regions:
            config_text = config_text + "\n" + TEST_REGIONS
        # Provided images download Debian packages; only the tests about them turn that on.
        if "provided_images" not in config_text:
            config_text = "provided_images = []\n" + config_text
        # Host networking belongs to one server per machine; only the VM tests ask for it.
        if "[instances]" not in config_text:
            config_text += '\n[instances]\nnetwork = "none"\n'
        self.config_path.write_text(config_text)
        self.port = free_port()
        self.proc = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if not KILN_BIN.exists():
            raise RuntimeError(f"{KILN_BIN} is missing: run `cargo build` first")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(KILN_BIN), "serve", "--config", str(self.config_path), "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{self.port}"],
            stdout=log, stderr=log, env={**os.environ, "KILN_LOG": os.environ.get("KILN_LOG", "info")},
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiln exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(up, timeout=30, what="kiln to listen")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def client(self, account="a", region="us-east-1", service="ec2", secret=None):
        _, _, key, real_secret = ACCOUNTS[account]
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret or real_secret,
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )

    def cli(self, *args, account="a", region="us-east-1", check=True):
        """Runs `aws ec2 ARGS --output json`; returns parsed JSON (or the CompletedProcess when check=False)."""
        _, _, key, secret = ACCOUNTS[account]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": region,
               "AWS_PAGER": "", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
        p = subprocess.run(["aws", "--endpoint-url", self.endpoint, "--output", "json", "ec2", *args],
                           env=env, capture_output=True, text=True, timeout=120)
        if not check:
            return p
        if p.returncode != 0:
            raise AssertionError(f"aws ec2 {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout) if p.stdout.strip() else {}


@pytest.fixture(scope="session")
def server():
    s = KilnServer().start()
    yield s
    s.cleanup()


@pytest.fixture
def fresh_server():
    """A server of the test's own, for kill/restart tests."""
    s = KilnServer().start()
    yield s
    s.cleanup()


@pytest.fixture
def ec2(server):
    """Factory: ec2(account="a", region="us-east-1") -> boto3 EC2 client."""
    return server.client


@pytest.fixture
def unique():
    """Factory for collision-free resource names."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def pytest_runtest_makereport(item, call):
    """Where the host tools are meant to be present (`scripts/test` sets KILN_REQUIRE_HOST_TOOLS=1
    when it installed them), a test that skips has not run: report it as a failure."""
    if os.environ.get("KILN_REQUIRE_HOST_TOOLS") != "1":
        return None
    from _pytest.reports import TestReport
    report = TestReport.from_item_and_call(item, call)
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped where it must run (KILN_REQUIRE_HOST_TOOLS=1): {report.longrepr}"
    return report
