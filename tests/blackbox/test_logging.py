"""Logs for people and machines: no colour codes in a file, JSON lines on request."""

import json
import os

from conftest import KilnServer


def _started(env):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        srv = KilnServer().start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return srv


def test_default_log_has_no_escape_codes_when_redirected():
    srv = _started({"KILN_LOG_FORMAT": "text"})
    try:
        srv.client().describe_vpcs()
    finally:
        srv.stop()
    text = srv.log_path.read_bytes()
    assert b"kiln is serving the EC2 API" in text
    assert b"\x1b" not in text
    srv.cleanup()


def test_json_log_is_one_object_a_line():
    srv = _started({"KILN_LOG_FORMAT": "json"})
    try:
        srv.client().describe_vpcs()
    finally:
        srv.stop()
    lines = [line for line in srv.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert records and all({"timestamp", "level", "fields"} <= r.keys() for r in records)
    assert any(r["fields"].get("message") == "kiln is serving the EC2 API" for r in records)
    srv.cleanup()


def test_an_unknown_log_format_is_refused():
    srv = KilnServer()
    os.environ["KILN_LOG_FORMAT"] = "xml"
    try:
        try:
            srv.start()
            started = True
        except RuntimeError as e:
            started = False
            assert "KILN_LOG_FORMAT must be `text` or `json`" in str(e)
        assert not started
    finally:
        os.environ.pop("KILN_LOG_FORMAT", None)
        srv.cleanup()


def test_a_flood_of_refused_requests_writes_a_bounded_log():
    """Refusals are logged at most 50 to a 10 s window; the next line says how many were left out."""
    import urllib.error
    import urllib.request

    srv = KilnServer().start()
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(urllib.request.Request(srv.endpoint + "/", data=b"Action=DescribeVpcs"), timeout=5)
            except urllib.error.HTTPError as e:
                assert e.code in (400, 401, 403)
        srv.client().describe_vpcs()
    finally:
        srv.stop()
    refused = [line for line in srv.log_path.read_text().splitlines() if "request refused" in line]
    assert 1 <= len(refused) <= 50, len(refused)
    srv.cleanup()


def test_idle_connections_are_closed():
    import socket
    import time

    srv = KilnServer(config_text="idle_timeout_secs = 1\n" + __import__("conftest").CONFIG).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            start = time.monotonic()
            assert s.recv(1) == b"", "the server closes an idle connection"
            assert time.monotonic() - start < 8
    finally:
        srv.cleanup()
