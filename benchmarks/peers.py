"""Peers side by side: ``python -m benchmarks peers [--quick] [--smoke]``.

Runs pgqueue and the Python peers installed from the optional ``bench`` extra
(``pip install -e '.[bench]'``) on the same server, with the same job counts:

- ``procrastinate`` on psycopg 3 (``PsycopgConnector``);
- ``pgqueuer`` on psycopg 3 (``PsycopgDriver``) and on asyncpg (``AsyncpgDriver``).

Each peer figure comes from a database of its own, created empty, with the
peer's schema installed by the peer's own installer, and dropped afterwards.
Figures, per system:

- ``<peer>_enqueue_bulk``: the peer's batch enqueue call for N jobs, in jobs/s;
- ``<peer>_drain_c10`` / ``_c50``: N ready no-op ``async def`` jobs drained by one
  worker at that concurrency, from the first handler start until the peer's
  worker returned after the queue ran dry (so its last status writes are in);
- ``<peer>_latency_p50/p95/p99``: enqueue committed → handler start, one job at a
  time to an idle worker woken by the peer's LISTEN/NOTIFY.

Settings are each peer's documented ones for throughput: procrastinate with
``concurrency=c`` and ``listen_notify=True``; pgqueuer with
``max_concurrent_tasks=c`` and ``batch_size=c // 2`` (the largest it accepts for
that cap), in ``drain`` mode. A figure counts only after the peer's own tables
show all N jobs finished successfully and none left (:class:`BenchmarkError`
otherwise); the result file keeps, per peer and measurement, how many jobs were
made and how many the check found (``details.peers_verified``). A peer that is
not installed is skipped with a line saying so (``details.peers_skipped``), one
that fails loses its figures (``details.peers_failed``) without voiding the others.

``--smoke`` (for tests, about half a minute) drains 100 jobs and takes 3 latency
samples per system: its figures only show that every peer runs end to end.

Then ``ratio_<figure>_<peer>`` lines give pgqueue / peer for each figure
(throughput: higher is better; latency: lower is better), and
``ratio_drain_sync_c<c>_<peer>`` pgqueue's drain of plain-function (sync) no-op
jobs, run in threads, against the peer's async drain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo

from . import drain, enqueue, latency
from .harness import BenchmarkError, Results, Sizes, scratch_database

__all__ = ["PEERS", "run"]

TASK = "bench_noop"
_T = TypeVar("_T")
LATENCY_PAUSE_SECONDS = 0.02


@dataclass(slots=True)
class _Probe:
    """What the peers' handlers record: first start, count, and the latest start."""

    target: int = 0
    started: int = 0
    first_start: float | None = None
    last_start: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self) -> None:
        now = time.perf_counter()
        if self.first_start is None:
            self.first_start = now
        self.last_start = now
        self.started += 1
        self.arrived.set()


@dataclass(frozen=True, slots=True)
class Peer:
    """One peer: a module to import and the three measurements.

    Each measurement returns its figure and the number of jobs it found in the
    peer's own tables in the expected end state (it raises BenchmarkError when
    that is not every job it made).
    """

    name: str
    module: str
    bulk: Callable[[str, int], Coroutine[Any, Any, tuple[float, int]]]
    drain: Callable[[str, int, int], Coroutine[Any, Any, tuple[float, int]]]
    latency: Callable[[str, int], Coroutine[Any, Any, tuple[list[float], int]]]


# --- procrastinate -----------------------------------------------------------------


def _procrastinate_app(dsn: str, probe: _Probe) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name=TASK)
    async def noop(n: int = 0) -> None:
        probe.hit()

    return app


async def _procrastinate_open(dsn: str, probe: _Probe) -> tuple[Any, Any]:
    app = _procrastinate_app(dsn, probe)
    opened = app.open_async()
    await opened.__aenter__()
    return app, opened


async def _procrastinate_install(dsn: str) -> None:
    app, opened = await _procrastinate_open(dsn, _Probe())
    try:
        await app.schema_manager.apply_schema_async()
    finally:
        await opened.__aexit__(None, None, None)


async def _procrastinate_defer(app: Any, n: int, offset: int = 0) -> None:
    await app.tasks[TASK].batch_defer_async(*({"n": offset + i} for i in range(n)))


def _procrastinate_verify(dsn: str, n: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: dict[str, int] = dict(conn.execute(
            "SELECT status::text, count(*) FROM procrastinate_jobs "
            "GROUP BY 1").fetchall())
    if rows.get("succeeded") != n or sum(rows.values()) != n:
        raise BenchmarkError(f"procrastinate: expected {n} succeeded jobs, found {rows}")
    return int(rows["succeeded"])


async def _procrastinate_bulk(dsn: str, n: int) -> tuple[float, int]:
    await _procrastinate_install(dsn)
    app, opened = await _procrastinate_open(dsn, _Probe())
    try:
        started = time.perf_counter()
        await _procrastinate_defer(app, n)
        elapsed = time.perf_counter() - started
    finally:
        await opened.__aexit__(None, None, None)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'"
                           ).fetchone()
    if not row or row[0] != n:
        raise BenchmarkError(f"procrastinate bulk enqueue of {n} stored {row}")
    return n / elapsed, int(row[0])


async def _procrastinate_drain(dsn: str, n: int, concurrency: int) -> tuple[float, int]:
    await _procrastinate_install(dsn)
    probe = _Probe(target=n)
    app, opened = await _procrastinate_open(dsn, probe)
    try:
        await _procrastinate_defer(app, n)
        await app.run_worker_async(concurrency=concurrency, wait=False, listen_notify=True,
                                   install_signal_handlers=False)
        finished = time.perf_counter()
    finally:
        await opened.__aexit__(None, None, None)
    verified = _procrastinate_verify(dsn, n)
    assert probe.first_start is not None
    return n / (finished - probe.first_start), verified


async def _procrastinate_latency(dsn: str, n: int) -> tuple[list[float], int]:
    await _procrastinate_install(dsn)
    probe = _Probe()
    app, opened = await _procrastinate_open(dsn, probe)
    worker = asyncio.create_task(app.run_worker_async(
        concurrency=10, wait=True, listen_notify=True, install_signal_handlers=False,
        fetch_job_polling_interval=60.0, shutdown_graceful_timeout=5.0))
    try:
        samples = await _latency_loop(n, probe, lambda i: _procrastinate_defer(app, 1, i))
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await opened.__aexit__(None, None, None)
    verified = await _wait_verified(lambda: _procrastinate_verify(dsn, n + 1))
    return samples, verified


# --- pgqueuer ----------------------------------------------------------------------


async def _pgqueuer_driver(dsn: str, kind: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """A pgqueuer driver on a new connection, and how to close that connection."""
    from pgqueuer.db import AsyncpgDriver, PsycopgDriver

    if kind == "asyncpg":
        import asyncpg  # type: ignore[import-untyped]

        params = conninfo.conninfo_to_dict(dsn)
        conn = await asyncpg.connect(host=params.get("host"), port=params.get("port"),
                                     user=params.get("user"), password=params.get("password"),
                                     database=params.get("dbname"))
        return AsyncpgDriver(conn), conn.close
    aconn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return PsycopgDriver(aconn), aconn.close


async def _pgqueuer_install(dsn: str, kind: str) -> None:
    from pgqueuer import Queries

    driver, close = await _pgqueuer_driver(dsn, kind)
    try:
        await Queries(driver).install()
    finally:
        await close()


async def _pgqueuer_enqueue(driver: Any, n: int) -> None:
    from pgqueuer import Queries

    await Queries(driver).enqueue([TASK] * n, [str(i).encode() for i in range(n)], [0] * n)


def _pgqueuer_verify(dsn: str, n: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        live = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
        rows: dict[str, int] = dict(conn.execute(
            "SELECT status::text, count(*) FROM pgqueuer_log "
            "WHERE status <> 'queued' AND status <> 'picked' GROUP BY 1").fetchall())
    if not live or live[0] or rows.get("successful") != n or sum(rows.values()) != n:
        raise BenchmarkError(f"pgqueuer: expected {n} successful jobs and none live, "
                             f"found {rows} and {live} live")
    return int(rows["successful"])


def _pgqueuer_manager(driver: Any, probe: _Probe) -> Any:
    from pgqueuer import Queries, QueueManager

    qm = QueueManager(Queries(driver))

    @qm.entrypoint(TASK)
    async def noop(job: Any) -> None:
        probe.hit()

    return qm


def _pgqueuer_bulk(kind: str) -> Callable[[str, int], Coroutine[Any, Any, tuple[float, int]]]:
    async def bulk(dsn: str, n: int) -> tuple[float, int]:
        await _pgqueuer_install(dsn, kind)
        driver, close = await _pgqueuer_driver(dsn, kind)
        try:
            started = time.perf_counter()
            await _pgqueuer_enqueue(driver, n)
            elapsed = time.perf_counter() - started
        finally:
            await close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
        if not row or row[0] != n:
            raise BenchmarkError(f"pgqueuer bulk enqueue of {n} stored {row}")
        return n / elapsed, int(row[0])

    return bulk


def _pgqueuer_drain(kind: str) -> Callable[[str, int, int], Coroutine[Any, Any, tuple[float, int]]]:
    async def drain_(dsn: str, n: int, concurrency: int) -> tuple[float, int]:
        from pgqueuer.types import QueueExecutionMode

        await _pgqueuer_install(dsn, kind)
        driver, close = await _pgqueuer_driver(dsn, kind)
        probe = _Probe(target=n)
        try:
            await _pgqueuer_enqueue(driver, n)
            qm = _pgqueuer_manager(driver, probe)
            await qm.run(batch_size=max(1, concurrency // 2), max_concurrent_tasks=concurrency,
                         mode=QueueExecutionMode.drain)
            finished = time.perf_counter()
        finally:
            await close()
        verified = _pgqueuer_verify(dsn, n)
        assert probe.first_start is not None
        return n / (finished - probe.first_start), verified

    return drain_


def _pgqueuer_latency(
        kind: str) -> Callable[[str, int], Coroutine[Any, Any, tuple[list[float], int]]]:
    async def latency_(dsn: str, n: int) -> tuple[list[float], int]:
        await _pgqueuer_install(dsn, kind)
        driver, close = await _pgqueuer_driver(dsn, kind)
        producer, close_producer = await _pgqueuer_driver(dsn, kind)
        probe = _Probe()
        qm = _pgqueuer_manager(driver, probe)
        worker = asyncio.create_task(qm.run(batch_size=5, max_concurrent_tasks=10))
        try:
            samples = await _latency_loop(n, probe, lambda i: _pgqueuer_enqueue(producer, 1))
        finally:
            qm.shutdown.set()
            await asyncio.gather(worker, return_exceptions=True)
            await close_producer()
            await close()
        verified = await _wait_verified(lambda: _pgqueuer_verify(dsn, n + 1))
        return samples, verified

    return latency_


# --- shared ------------------------------------------------------------------------


async def _latency_loop(n: int, probe: _Probe,
                        enqueue_one: Callable[[int], Awaitable[None]]) -> list[float]:
    """Enqueue one job at a time (autocommit), wait for its handler, pause; a warm-up first."""
    samples: list[float] = []
    for i in range(-1, n):
        probe.arrived.clear()
        await enqueue_one(i)
        committed = time.perf_counter()
        try:
            await asyncio.wait_for(probe.arrived.wait(), 60 if i < 0 else 10)
        except TimeoutError:
            raise BenchmarkError(f"latency job {i} did not start") from None
        if i >= 0:
            samples.append(latency.wake_up_ms(committed, probe.last_start))
        await asyncio.sleep(LATENCY_PAUSE_SECONDS)
    return samples


async def _wait_verified(check: Callable[[], int], timeout: float = 10.0) -> int:
    """Status writes may trail the handler a little: retry the check for a while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except BenchmarkError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


PEERS = [
    Peer("procrastinate", "procrastinate", _procrastinate_bulk, _procrastinate_drain,
         _procrastinate_latency),
    Peer("pgqueuer_psycopg", "pgqueuer", _pgqueuer_bulk("psycopg"),
         _pgqueuer_drain("psycopg"), _pgqueuer_latency("psycopg")),
    Peer("pgqueuer_asyncpg", "pgqueuer", _pgqueuer_bulk("asyncpg"),
         _pgqueuer_drain("asyncpg"), _pgqueuer_latency("asyncpg")),
]
CONCURRENCIES = (10, 50)
_NEEDS = {"pgqueuer_asyncpg": ("pgqueuer", "asyncpg")}


def _installed(peer: Peer) -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in _NEEDS.get(peer.name, (peer.module,)))


def _in_fresh_db(server_dsn: str, label: str,
                 body: Callable[[str], Coroutine[Any, Any, _T]]) -> _T:
    with scratch_database(server_dsn, label, migrate=False) as dsn:
        return asyncio.run(body(dsn))


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {label: latency.percentile(samples, share)
            for label, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))}


def _drain_body(peer: Peer, n: int, concurrency: int,
                ) -> Callable[[str], Coroutine[Any, Any, tuple[float, int]]]:
    return lambda dsn: peer.drain(dsn, n, concurrency)


def run_peer(server_dsn: str, peer: Peer, sizes: Sizes, results: Results) -> dict[str, float]:
    figures: dict[str, float] = {}
    # Jobs each measurement made, and how many its check found finished as expected;
    # saved as details.peers_verified.<peer> in the result file.
    verified: dict[str, dict[str, int]] = {}
    results.details.setdefault("peers_verified", {})[peer.name] = verified
    rate, count = _in_fresh_db(server_dsn, "peer",
                               lambda dsn: peer.bulk(dsn, sizes.bulk_enqueue))
    verified["enqueue_bulk"] = {"jobs": sizes.bulk_enqueue, "verified": count}
    figures["enqueue_bulk"] = results.add(f"{peer.name}_enqueue_bulk", rate, "jobs/s",
                                          f"{sizes.bulk_enqueue:,} jobs, one batch call").value
    for c in CONCURRENCIES:
        rate, count = _in_fresh_db(server_dsn, "peer",
                                   _drain_body(peer, sizes.peers_drain, c))
        verified[f"drain_c{c}"] = {"jobs": sizes.peers_drain, "verified": count}
        figures[f"drain_c{c}"] = results.add(
            f"{peer.name}_drain_c{c}", rate, "jobs/s",
            f"{sizes.peers_drain:,} async no-op jobs, 1 worker").value
    samples, count = _in_fresh_db(server_dsn, "peer",
                                  lambda dsn: peer.latency(dsn, sizes.peers_latency))
    # The latency run makes one warm-up job before the measured ones.
    verified["latency"] = {"jobs": sizes.peers_latency + 1, "verified": count}
    for label, value in _percentiles(samples).items():
        figures[f"latency_{label}"] = results.add(
            f"{peer.name}_latency_{label}", value, "ms",
            f"{sizes.peers_latency} jobs, idle worker").value
    results.add(f"{peer.name}_latency_mean", statistics.fmean(samples), "ms", "")
    return figures


def run_pgqueue(server_dsn: str, sizes: Sizes, results: Results) -> dict[str, float]:
    """pgqueue's own figures for the same scenarios, in the same run."""
    enqueue.bench_bulk(server_dsn, sizes, results)
    for kind in ("async", "sync"):
        for c in CONCURRENCIES:
            drain.drain_once(server_dsn, kind, c, sizes.peers_drain, results)
    # The same number of latency samples as each peer's.
    latency.run(server_dsn, dataclasses.replace(sizes, latency=sizes.peers_latency), results)
    by_name = {f.name: f.value for f in results.figures}
    ours = {"enqueue_bulk": by_name["enqueue_bulk"]}
    for c in CONCURRENCIES:
        ours[f"drain_c{c}"] = by_name[f"drain_async_c{c}"]
        ours[f"drain_sync_c{c}"] = by_name[f"drain_sync_c{c}"]
    for label in ("p50", "p95", "p99"):
        ours[f"latency_{label}"] = by_name[f"latency_{label}"]
    return ours


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    ours = run_pgqueue(server_dsn, sizes, results)
    theirs: dict[str, dict[str, float]] = {}
    for peer in PEERS:
        if not _installed(peer):
            print(f"# {peer.name}: not installed (pip install -e '.[bench]'); skipped",
                  flush=True)
            results.details.setdefault("peers_skipped", []).append(peer.name)
            continue
        try:
            theirs[peer.name] = run_peer(server_dsn, peer, sizes, results)
        except Exception as exc:  # one peer failing must not void the others' figures
            print(f"# {peer.name}: failed, no figures: {exc!r}", flush=True)
            results.details.setdefault("peers_failed", {})[peer.name] = repr(exc)
    for name, figures in theirs.items():
        for key, value in figures.items():
            if key in ours and value > 0:
                results.add(f"ratio_{key}_{name}", ours[key] / value, "x",
                            "pgqueue / peer" + (" (lower is better)"
                                                if key.startswith("latency") else ""))
        # pgqueue's plain-function handlers (run in threads) against the peer's
        # async drain: the peers here are measured with async handlers only.
        for c in CONCURRENCIES:
            value = figures.get(f"drain_c{c}", 0.0)
            if value > 0:
                results.add(f"ratio_drain_sync_c{c}_{name}", ours[f"drain_sync_c{c}"] / value,
                            "x", "pgqueue sync handlers / peer's async drain")
