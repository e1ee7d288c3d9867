"""The dashboard answers only Host headers that name it (DNS rebinding), and bodies
that break the parser get 400, over raw sockets."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable

import psycopg
import pytest

import pgqueue

Serve = Callable[..., int]


@pytest.fixture
def serve(dashboards: Serve) -> Serve:
    """Start dashboards on 127.0.0.1 and free ports; returns the port."""
    return dashboards


def request(port: int, method: str, path: str, host: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """One request to 127.0.0.1:port whatever ``host`` says: (status, type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def raw_exchange(port: int, head: bytes) -> bytes:
    """Send ``head`` as is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def queued_job(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return pgqueue.enqueue(conn, "send", {"secret": "s3cret"}, queue="mail")


def paused(dsn: str, queue: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT paused FROM pgqueue.queues WHERE name = %s",
                           [queue]).fetchone()
    return bool(row and row[0])


def test_a_rebound_name_reads_nothing_and_changes_nothing(serve: Serve, clean_db: str) -> None:
    port = serve()
    job_id = queued_job(clean_db)
    evil = f"evil.example:{port}"
    origin = {"Origin": f"http://{evil}", "Content-Type": "application/json"}
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/api/jobs", f"/api/jobs/{job_id}",
                 "/partial/", "/static/dashboard.js", "/login", "/api/openapi.json"):
        status, kind, body = request(port, "GET", path, evil)
        assert (status, kind) == (421, "text/plain; charset=utf-8"), path
        assert b"s3cret" not in body and b"csrf" not in body.lower()
        assert b"'evil.example:%d'" % port in body and b"--allowed-host" in body
    status, _, _ = request(port, "POST", "/api/queues/mail/pause", evil, b"{}", origin)
    assert status == 421
    assert not paused(clean_db, "mail")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost:{port}"])
def test_the_listening_address_and_localhost_are_answered(serve: Serve, clean_db: str,
                                                          host: str) -> None:
    port = serve()
    job_id = queued_job(clean_db)
    assert request(port, "GET", f"/api/jobs/{job_id}", f"evil.example:{port}")[0] == 421
    status, _, body = request(port, "GET", f"/api/jobs/{job_id}", host.format(port=port))
    assert status == 200 and json.loads(body)["args"] == {"secret": "s3cret"}
    same = {"Origin": f"http://{host.format(port=port)}", "Content-Type": "application/json"}
    status, _, _ = request(port, "POST", "/api/queues/mail/pause", host.format(port=port),
                           b"{}", same)
    assert status == 200
    assert paused(clean_db, "mail")


@pytest.mark.parametrize("host", ["127.0.0.1:1", "127.0.0.1", "localhost", "127.0.0.2:{port}",
                                  "evil.example", "localhost.evil.example:{port}",
                                  "127.0.0.1:{port}@evil.example", "[::1]:{port}", ""])
def test_other_hosts_and_ports_are_refused(serve: Serve, host: str) -> None:
    port = serve()
    status, _, _ = request(port, "GET", "/api/queues", host.format(port=port))
    assert status == 421


def test_allowed_hosts_are_answered(serve: Serve) -> None:
    port = serve(allowed_hosts=["dash.example", "proxy.example:443"])
    for host in ("dash.example", f"dash.example:{port}", "DASH.example:8443",
                 "proxy.example:443", f"127.0.0.1:{port}"):
        status, _, _ = request(port, "GET", "/api/queues", host)
        assert status == 200, host
    for host in ("proxy.example", f"proxy.example:{port}", "other.example"):
        status, _, _ = request(port, "GET", "/api/queues", host)
        assert status == 421, host


def test_cli_allowed_host_option_and_variable(clean_db: str) -> None:
    env = {**os.environ, "PGQUEUE_DSN": clean_db,
           "PGQUEUE_DASHBOARD_ALLOWED_HOSTS": "env-a.example, env-b.example"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "dashboard", "--port", "0",
         "--allowed-host", "opt.example"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        port = int(found[1])
        status, _, _ = request(port, "GET", "/api/queues", "opt.example")
        assert status == 200
        status, _, _ = request(port, "GET", "/api/queues", "evil.example")
        assert status == 421
    finally:
        proc.terminate()
        proc.wait(30)
    # The option replaces the variable, as every click option with an envvar does.
    env["PGQUEUE_DASHBOARD_ALLOWED_HOSTS"] = "env-a.example,env-b.example"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "dashboard", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        assert proc.stderr is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stderr.readline())
        assert found
        for host in ("env-a.example", "env-b.example"):
            status, _, _ = request(int(found[1]), "GET", "/api/queues", host)
            assert status == 200, host
    finally:
        proc.terminate()
        proc.wait(30)


def test_deeply_nested_json_body_is_a_400(serve: Serve, clean_db: str) -> None:
    port = serve()
    host = f"127.0.0.1:{port}"
    json_type = {"Content-Type": "application/json"}
    for path in ("/api/jobs", "/api/queues/mail/pause"):
        status, kind, body = request(port, "POST", path, host, b"[" * 100_000, json_type)
        assert (status, kind) == (400, "application/json"), path
        assert "nested too deeply" in json.loads(body)["error"]
    deep_args = b'{"task": "t", "args": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    status, _, body = request(port, "POST", "/api/jobs", host, deep_args, json_type)
    assert status == 400
    with psycopg.connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (0,)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b"+5", b"0x10"])
def test_non_numeric_content_length_is_a_400(serve: Serve, length: bytes) -> None:
    port = serve()
    reply = raw_exchange(port, b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                               b"Content-Type: application/json\r\nContent-Length: %s\r\n\r\n{}"
                         % (port, length))
    assert reply.startswith(b"HTTP/1.0 400 ") or reply.startswith(b"HTTP/1.1 400 "), reply[:80]
    assert b"Content-Length must be a whole number" in reply
