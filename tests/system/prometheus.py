"""A real Prometheus for tests: Debian's ``prometheus`` and ``promtool``.

:func:`prometheus` writes a config scraping the given targets every second,
starts the server on a free loopback port with its storage in a temp dir, waits
until it is ready and yields a :class:`Prometheus` whose :meth:`~Prometheus.query`
and :meth:`~Prometheus.query_range` call its HTTP API. The process is stopped
and the dir removed at the end.

:func:`find_binary` returns ``prometheus`` or ``promtool``, or None when it is
not installed.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Prometheus", "find_binary", "prometheus"]


def find_binary(name: str) -> str | None:
    """``name`` (prometheus or promtool) on PATH or in /usr/bin, else None."""
    return shutil.which(name) or shutil.which(f"/usr/bin/{name}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A running Prometheus and its HTTP API."""

    def __init__(self, proc: subprocess.Popen[bytes], directory: Path, port: int) -> None:
        self.proc = proc
        self.directory = directory
        self.port = port

    @property
    def log(self) -> str:
        path = self.directory / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>``; returns ``data``, raises on an error status."""
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result series (``metric`` labels, ``value``)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0
                    ) -> list[dict[str, Any]]:
        """A range query's series (``metric`` labels, ``values``)."""
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _config(jobs: Mapping[str, list[str]], rule_files: list[Path]) -> str:
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s"]
    if rule_files:
        lines += ["rule_files:", *(f"  - {json.dumps(str(f))}" for f in rule_files)]
    lines.append("scrape_configs:")
    for job, targets in jobs.items():
        lines += [f"  - job_name: {json.dumps(job)}", "    static_configs:",
                  f"      - targets: {json.dumps(targets)}"]
    return "\n".join(lines) + "\n"


@contextmanager
def prometheus(binary: str, jobs: Mapping[str, list[str]], *,
               rule_files: list[Path] | None = None,
               ready_timeout: float = 60.0) -> Iterator[Prometheus]:
    """A Prometheus scraping ``jobs`` (scrape job name -> host:port targets) every
    second, evaluating ``rule_files`` every second."""
    directory = Path(tempfile.mkdtemp(prefix="pgqueue-prometheus-"))
    (directory / "prometheus.yml").write_text(_config(jobs, rule_files or []))
    port = _free_port()
    with (directory / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    server = Prometheus(proc, directory, port)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{server.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus not ready after {ready_timeout} s:\n"
                                       f"{server.log}") from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()
