"""The benchmarks' delay proxy: it applies its delay each way, keeps bytes intact
and in order, passes notifications, forwards half-closes and stops cleanly."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from benchmarks.delay_proxy import DelayProxy, application_name, delay_proxy

DELAY_MS = 5.0


def test_a_round_trip_takes_at_least_the_delay_both_ways(admin_dsn: str) -> None:
    with delay_proxy(admin_dsn, DELAY_MS) as proxy, \
            psycopg.connect(proxy.dsn(admin_dsn), autocommit=True) as conn:
        conn.execute("SELECT 1")
        for _ in range(5):
            start = time.perf_counter()
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert time.perf_counter() - start >= 2 * DELAY_MS / 1000


def test_large_results_and_parameters_arrive_intact(admin_dsn: str) -> None:
    sent = "".join(chr(ord("a") + i % 26) for i in range(2_000_000))
    with delay_proxy(admin_dsn, DELAY_MS) as proxy, \
            psycopg.connect(proxy.dsn(admin_dsn), autocommit=True) as conn:
        row = conn.execute("SELECT repeat('x', 1000000)").fetchone()
        assert row is not None and row[0] == "x" * 1_000_000
        row = conn.execute("SELECT %s::text, md5(%s::text)", (sent, sent)).fetchone()
        assert row is not None and row[0] == sent
        assert row[1] == hashlib.md5(sent.encode()).hexdigest()


def test_listen_notify_passes_through(admin_dsn: str) -> None:
    with delay_proxy(admin_dsn, DELAY_MS) as proxy, \
            psycopg.connect(proxy.dsn(admin_dsn), autocommit=True) as listening, \
            psycopg.connect(admin_dsn, autocommit=True) as notifying:
        listening.execute("LISTEN bench_delay_proxy")
        notifying.execute("SELECT pg_notify('bench_delay_proxy', 'hello')")
        received = [n.payload for n in listening.notifies(timeout=10, stop_after=1)]
        assert received == ["hello"]


def test_many_connections_at_once_and_traffic_by_application(admin_dsn: str) -> None:
    with delay_proxy(admin_dsn, 1.0) as proxy:
        def one(i: int) -> int:
            with psycopg.connect(proxy.dsn(admin_dsn), autocommit=True,
                                 application_name=f"proxy-test-{i % 2}") as conn:
                row = conn.execute("SELECT %s::int * 2", (i,)).fetchone()
                assert row is not None
                return int(row[0])

        with ThreadPoolExecutor(12) as pool:
            assert sorted(pool.map(one, range(24))) == [2 * i for i in range(24)]
        stats = proxy.stats()
        assert stats["proxy-test-0"]["connections"] == 12
        assert stats["proxy-test-1"]["connections"] == 12
        assert stats["proxy-test-0"]["up_chunks"] >= 12 * 2
        assert proxy.cpu_seconds() > 0
    assert proxy.proc.returncode == 0  # stopped on request, not killed


def _half_closing_server() -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """A server that reads until EOF, then answers with what it read, reversed."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            got.append(data)
            conn.sendall(data[::-1])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, got


def test_a_half_close_is_forwarded_and_the_other_way_keeps_flowing() -> None:
    listener, thread, got = _half_closing_server()
    proxy = DelayProxy(("127.0.0.1", listener.getsockname()[1]), 0.002)
    proxy.start()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            payload = bytes(range(256)) * 4000  # 1 MB in many chunks, in order
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        thread.join(10)
        assert got == [payload]
        assert answer == payload[::-1]
    finally:
        proxy.stop()
        listener.close()


def test_stop_ends_open_connections() -> None:
    listener, _, _ = _half_closing_server()
    proxy = DelayProxy(("127.0.0.1", listener.getsockname()[1]), 0.0)
    proxy.start()
    client = socket.create_connection(("127.0.0.1", proxy.port))
    client.settimeout(10)
    try:
        client.sendall(b"unfinished")
        proxy.stop()
        try:  # the proxy's side closed (reset, if it had not read all yet)
            assert client.recv(10) == b""
        except ConnectionResetError:
            pass
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize(("chunk", "expected"), [
    (struct.pack("!ii", 8, 80877103), None),  # an SSLRequest
    (struct.pack("!ii", 8 + 15, 196608) + b"user\0postgres\0\0", ""),  # no name set
    (b"Q\0\0\0\rSELECT 1\0", None),  # a later message
])
def test_application_name_of_startup_packets(chunk: bytes, expected: str | None) -> None:
    assert application_name(chunk) == expected


def test_application_name_read_from_a_startup_packet() -> None:
    body = b"user\0postgres\0application_name\0pgqueue-claim\0\0"
    chunk = struct.pack("!ii", 8 + len(body), 196608) + body
    assert application_name(chunk) == "pgqueue-claim"
