"""A TCP proxy that delays every chunk by a fixed time each way: a network hop on the loopback.

The kernel's ``netem`` qdisc is not available everywhere (it needs the
``sch_netem`` module), so the delay is applied in user space. The proxy listens
on a free port of 127.0.0.1 and forwards each connection to one target (a
PostgreSQL server). Per connection and direction, a reader thread stamps each
chunk it receives with its due time (arrival + delay) and queues it; a writer
thread sleeps until the head of the queue is due (``time.sleep``, which is
``clock_nanosleep``: about 0.1 ms of precision, where asyncio's timers are
rounded to epoll's 1 ms) and sends it, together with every later chunk already
due. A link of fixed latency and unbounded bandwidth, then.

Invariants:
- bytes leave in the order they came, per direction (one reader, one FIFO, one
  writer);
- a half-close is forwarded after the delay too: EOF from one side becomes
  ``shutdown(SHUT_WR)`` towards the other once the chunks before it are sent,
  and the other direction keeps flowing;
- a connection's sockets close once both directions have ended; a reset or
  error on either side ends both directions.

The TCP handshake itself is not delayed (a worker connects once per session).

Run in a process of its own (:func:`delay_proxy`), so that its threads never
compete with the measured worker for a GIL. The process prints ``listening
PORT``, then answers on stdin ``stats`` with one JSON line (per
``application_name`` of the connections' startup packets: connections, chunks
and bytes each way) and ``cpu`` with its CPU seconds so far; it stops on
``stop`` or at the end of stdin (its parent gone).

``python -m benchmarks.delay_proxy --target HOST:PORT --delay-ms D``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import conninfo

__all__ = ["DelayProxy", "ProxyProcess", "delay_proxy", "main"]

_CHUNK = 65536
_STARTUP_PROTOCOL = 196608  # 3.0
# A thread waiting for the GIL waits at most this long for the holder to drop
# it (default 5 ms: far above the delays modelled here).
_SWITCH_INTERVAL_SECONDS = 0.0002
# How a writer learns the overshoot of its sleeps (see _Sleeper).
_LEAD_WEIGHT = 0.05
_LEAD_SHARE = 0.8
_LEAD_MAX_SECONDS = 0.0001  # an outlier wake-up teaches no long spins
_PR_SET_TIMERSLACK = 29
ROOT = Path(__file__).resolve().parent.parent

_Item = tuple[float, bytes | None]  # (due, chunk); None: the sender's EOF


@dataclass(slots=True)
class _Counts:
    """Traffic of one direction of one connection (written by its reader only)."""

    chunks: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Link:
    """One proxied connection: the client's socket, the server's, their counters."""

    client: socket.socket
    server: socket.socket
    label: str = "?"
    up: _Counts = field(default_factory=_Counts)
    down: _Counts = field(default_factory=_Counts)
    writers_left: int = 2
    lock: threading.Lock = field(default_factory=threading.Lock)

    def shut(self) -> None:
        """End both directions now (readers see EOF, writers' sends fail)."""
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def writer_done(self) -> None:
        with self.lock:
            self.writers_left -= 1
            last = self.writers_left == 0
        if last:
            self.client.close()
            self.server.close()


def application_name(chunk: bytes) -> str | None:
    """The ``application_name`` of a PostgreSQL startup packet ("" if unset),
    None when ``chunk`` is not one (an SSL or GSS request, a later message)."""
    if len(chunk) < 8:
        return None
    length, protocol = struct.unpack("!ii", chunk[:8])
    if protocol != _STARTUP_PROTOCOL or length > len(chunk):
        return None
    fields = chunk[8:length].split(b"\0")
    params = dict(zip(fields[0::2], fields[1::2], strict=False))
    return params.get(b"application_name", b"").decode(errors="replace")


class DelayProxy:
    """Forward 127.0.0.1:``port`` to ``target``, ``delay_seconds`` late each way."""

    def __init__(self, target: tuple[str, int], delay_seconds: float) -> None:
        if delay_seconds < 0:
            raise ValueError(f"delay_seconds must be >= 0, got {delay_seconds}")
        self._target = target
        self._delay = delay_seconds
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept",
                                          daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection, wait for their threads."""
        self._stopping = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(timeout)
        with self._lock:
            links, threads = list(self._links), list(self._threads)
        for link in links:
            link.shut()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def stats(self) -> dict[str, dict[str, int]]:
        """Traffic so far (closed connections included), by application_name."""
        with self._lock:
            links = list(self._links)
        totals: dict[str, dict[str, int]] = {}
        for link in links:
            row = totals.setdefault(link.label or "(none)", {
                "connections": 0, "up_chunks": 0, "up_bytes": 0,
                "down_chunks": 0, "down_bytes": 0})
            row["connections"] += 1
            row["up_chunks"] += link.up.chunks
            row["up_bytes"] += link.up.bytes
            row["down_chunks"] += link.down.chunks
            row["down_bytes"] += link.down.bytes
        return totals

    # --- connections -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            pipes = ((client, server, link.up, "up"), (server, client, link.down, "down"))
            threads: list[threading.Thread] = []
            for source, target, counts, way in pipes:
                chunks: queue.SimpleQueue[_Item] = queue.SimpleQueue()
                threads.append(threading.Thread(
                    target=self._read, args=(link, source, chunks, counts, way == "up"),
                    name=f"proxy-read-{way}", daemon=True))
                threads.append(threading.Thread(
                    target=self._write, args=(link, target, chunks),
                    name=f"proxy-write-{way}", daemon=True))
            with self._lock:
                if self._stopping:
                    link.shut()
                self._links.append(link)
                self._threads = [t for t in self._threads if t.is_alive()] + threads
            for thread in threads:
                thread.start()

    def _read(self, link: _Link, source: socket.socket, chunks: queue.SimpleQueue[_Item],
              counts: _Counts, upstream: bool) -> None:
        """Stamp each chunk from ``source`` with its due time; queue EOF last."""
        delay = self._delay
        clock = time.perf_counter
        looking = upstream  # for the startup packet's application_name
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                chunks.put((clock() + delay, data))
                counts.chunks += 1
                counts.bytes += len(data)
                if looking and counts.chunks <= 3:
                    name = application_name(data)
                    if name is not None:
                        link.label = name
                        looking = False
        except OSError:
            link.shut()  # a reset ends both directions
        finally:
            chunks.put((clock() + delay, None))

    def _write(self, link: _Link, target: socket.socket,
               chunks: queue.SimpleQueue[_Item]) -> None:
        """Send each chunk to ``target`` once due, in order; forward EOF as a half-close."""
        clock = time.perf_counter
        sleeper = _Sleeper()
        held: _Item | None = None
        broken = False
        try:
            while True:
                due, data = held if held is not None else chunks.get()
                held = None
                sleeper.until(due)
                if data is None:
                    if not broken:
                        try:
                            target.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                    return
                parts = [data]
                now = clock()
                while True:  # everything else already due leaves in the same send
                    try:
                        item = chunks.get_nowait()
                    except queue.Empty:
                        break
                    if item[1] is None or item[0] > now:
                        held = item
                        break
                    parts.append(item[1])
                if broken:
                    continue  # drain until the reader's EOF
                try:
                    target.sendall(parts[0] if len(parts) == 1 else b"".join(parts))
                except OSError:
                    broken = True
                    link.shut()
        finally:
            link.writer_done()


class _Sleeper:
    """Sleeps until a due time, waking neither late by the kernel's usual
    overshoot nor early.

    ``time.sleep`` wakes some tens of microseconds late (timer slack, the
    scheduler, the GIL). Each sleep ends ``lead`` before the due time, ``lead``
    being most of the overshoot seen lately; the few microseconds left, if any,
    are spun.
    """

    __slots__ = ("lead",)

    def __init__(self) -> None:
        self.lead = 0.0

    def until(self, due: float) -> None:
        clock = time.perf_counter
        wake_at = due - self.lead
        wait = wake_at - clock()
        if wait <= 0:
            return
        time.sleep(wait)
        overshoot = clock() - wake_at
        self.lead += _LEAD_WEIGHT * (min(overshoot, _LEAD_MAX_SECONDS) * _LEAD_SHARE
                                     - self.lead)
        while clock() < due:
            pass


def reduce_timer_slack() -> None:
    """Ask Linux for 1 µs of timer slack (default 50 µs) for this thread and the
    threads it starts; elsewhere, or refused, nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


# --- the proxy's process -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delay_proxy",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="delay each way, ms")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
    reduce_timer_slack()
    proxy = DelayProxy((host, int(port)), args.delay_ms / 1000)
    proxy.start()
    print(f"listening {proxy.port}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            print(json.dumps(proxy.stats()), flush=True)
        elif command == "cpu":
            print(time.process_time(), flush=True)
        elif command == "stop":
            break
    proxy.stop()
    return 0


@dataclass(slots=True)
class ProxyProcess:
    """A running :func:`main` in a child process, seen from its parent."""

    proc: subprocess.Popen[str]
    port: int
    delay_ms: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def dsn(self, dsn: str) -> str:
        """``dsn`` (any database of the target server) through this proxy."""
        return conninfo.make_conninfo(dsn, host="127.0.0.1", port=str(self.port))

    def stats(self) -> dict[str, dict[str, int]]:
        """The proxy's traffic so far, by application_name (see :meth:`DelayProxy.stats`)."""
        result: dict[str, dict[str, int]] = json.loads(self._ask("stats"))
        return result

    def cpu_seconds(self) -> float:
        """User and system CPU seconds the proxy's process has used so far."""
        return float(self._ask("cpu"))

    def _ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the delay proxy exited ({self.proc.poll()})")
        return line


def server_address(dsn: str) -> tuple[str, int]:
    """The TCP host and port of ``dsn``'s server (a proxy cannot forward a Unix socket)."""
    params: dict[str, Any] = conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "127.0.0.1")
    if host.startswith("/") or "," in host:
        raise ValueError(f"the delay proxy needs one TCP host in the DSN, got {host!r}")
    return host, int(params.get("port") or 5432)


@contextmanager
def delay_proxy(server_dsn: str, delay_ms: float) -> Iterator[ProxyProcess]:
    """Start a delay proxy in front of ``server_dsn``'s server in a child process;
    stop it at exit (``stop``, then a kill if it does not end within 10 s)."""
    host, port = server_address(server_dsn)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.delay_proxy", "--target", f"{host}:{port}",
         "--delay-ms", str(delay_ms)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "listening":
            raise RuntimeError(f"the delay proxy did not start ({proc.poll()}): {first}")
        yield ProxyProcess(proc, int(first[1]), delay_ms)
    finally:
        try:
            if proc.stdin is not None:
                proc.stdin.write("stop\n")
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
