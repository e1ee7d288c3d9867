"""Helpers for tests that run workers: wait on conditions, run a worker in a thread."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

import pgqueue
from pgqueue import events


class _BothStreams:
    """A click 8.1 ``Result`` read as 8.2 reads: ``output`` is stdout and stderr."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._result, name)

    @property
    def output(self) -> str:
        return str(self._result.stdout) + str(self._result.stderr)


def cli_runner() -> Any:
    """A click ``CliRunner`` whose results read the same on every click version pgqueue
    supports: ``stdout`` and ``stderr`` apart, ``output`` both (click 8.2 and later do
    this by themselves; 8.1 mixes the streams unless told not to)."""
    import inspect

    from click.testing import CliRunner

    if "mix_stderr" not in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner()

    class Runner(CliRunner):
        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            return _BothStreams(super().invoke(*args, **kwargs))

    return Runner(mix_stderr=False)


def history(dsn: str, job_id: int) -> dict[str, Any]:
    """A job's state, attempt, last error, errors and result, live or finished."""
    rows = fetch(dsn, "SELECT state::text, attempt, last_error, errors, result "
                      "FROM pgqueue.all_jobs WHERE id = %s", [job_id])
    assert len(rows) == 1, rows
    state, attempt, last_error, errors, result = rows[0]
    return {"state": state, "attempt": attempt, "last_error": last_error, "errors": errors,
            "result": result}


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02,
               message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def post_json(url: str, body: Any) -> tuple[int, Any]:
    """POST ``body`` as JSON; the status and the decoded JSON answer, errors included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def fetch(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def scalar(dsn: str, sql: str, params: Any = None) -> Any:
    return fetch(dsn, sql, params)[0][0]


FAST = {"poll_interval": 0.5, "heartbeat_interval": 0.2, "stall_timeout": 1.5,
        "shutdown_timeout": 5.0, "log_events": False}


class RunningWorker:
    def __init__(self, worker: pgqueue.Worker) -> None:
        self.worker = worker
        self.events: list[events.Event] = []
        worker.subscribe(self.events.append)

    def finished(self, outcome: str | None = None) -> list[events.JobFinished]:
        return [e for e in list(self.events) if isinstance(e, events.JobFinished)
                and (outcome is None or e.outcome == outcome)]

    def of(self, kind: type[events.Event]) -> list[Any]:
        return [e for e in list(self.events) if isinstance(e, kind)]


def _pending_tasks(worker: pgqueue.Worker) -> str:
    """Where each of a stuck worker's tasks waits, for the failure message."""
    loop = worker._loop
    if loop is None:
        return "no event loop"
    out = io.StringIO()
    for task in list(asyncio.all_tasks(loop)):
        task.print_stack(limit=8, file=out)
    return out.getvalue()


@contextmanager
def running_worker(dsn: str, registry: pgqueue.Registry, **options: Any) -> Iterator[RunningWorker]:
    """A Worker running on its own thread and loop; stopped (gracefully) at exit."""
    worker = pgqueue.Worker(registry, dsn=dsn, **{**FAST, **options})
    running = RunningWorker(worker)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(worker.run_async())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-worker", daemon=True)
    thread.start()
    wait_until(lambda: running.of(events.WorkerStarted) or errors or not thread.is_alive(),
               message="worker start")
    try:
        yield running
    finally:
        worker.stop()
        thread.join(60)
        assert not thread.is_alive(), f"worker did not stop:\n{_pending_tasks(worker)}"
        if errors:
            raise errors[0]


class Inflight:
    """Handlers running right now in this process, by a label, and the peaks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: Counter[str | None] = Counter()
        self.peak: Counter[str | None] = Counter()

    def enter(self, label: str | None) -> None:
        with self._lock:
            self.now[label] += 1
            self.peak[label] = max(self.peak[label], self.now[label])

    def leave(self, label: str | None) -> None:
        with self._lock:
            self.now[label] -= 1


class RunningSampler:
    """Samples running jobs grouped by ``column`` (queue or concurrency_key) from the
    database until stopped; ``peak`` holds the most seen at once per value."""

    def __init__(self, dsn: str, column: str, interval: float = 0.005) -> None:
        self.peak: Counter[str | None] = Counter()
        self.samples = 0
        expression = {"queue": "queue::text", "concurrency_key": "concurrency_key"}[column]
        self._sql = (f"SELECT {expression}, count(*) FROM pgqueue.jobs "
                     "WHERE state = 'running' GROUP BY 1")
        self._dsn = dsn
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                for value, n in conn.execute(self._sql).fetchall():
                    self.peak[value] = max(self.peak[value], n)
                self.samples += 1
                time.sleep(self._interval)

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def listeners_ready(dsn: str, count: int = 1) -> bool:
    """Whether ``count`` worker listeners of ``dsn``'s database have run their LISTEN.

    A notification sent before a listener's LISTEN completes never reaches it;
    tests that prove a wake-up by NOTIFY wait for this first.
    """
    return bool(scalar(dsn, "SELECT count(*) >= %s FROM pg_stat_activity "
                            "WHERE datname = current_database() "
                            "AND application_name = 'pgqueue-listener' "
                            "AND state = 'idle' AND query <> ''", [count]))


def idle_after(dsn: str, pid: int, marker: str) -> bool:
    """Whether backend ``pid`` is idle and the last statement it ran contains ``marker``."""
    return bool(scalar(dsn, "SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = %s "
                            "AND state = 'idle' AND strpos(query, %s) > 0", [pid, marker]))


@contextmanager
def serving_dashboard(dsn: str, **options: Any) -> Iterator[int]:
    """A dashboard (``make_server`` options) serving on 127.0.0.1 and a free port on
    its own thread; yields the port, and stops it and closes its pools at exit."""
    from pgqueue.dashboard import make_server

    server, sources = make_server(dsn, host="127.0.0.1", port=0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        sources.close()
        thread.join(10)
