"""``pgqueue demo``: pgqueue's main job, end to end, on any machine.

It migrates a database (the one configured, else a throwaway embedded server),
enqueues example jobs on the ``email``, ``payment`` and ``webhook`` queues in
one transaction, runs a worker in this process with a progress display until
every job has finished for good, and prints the ``queue_stats`` view and the
totals. Handlers fail at random at ``failure_rate``, so retries and final
failures show up too.

Invariant: the demo only counts and reports the jobs it enqueued itself, so it
can run against a database that holds other jobs.

The throwaway server is ``embedded`` (found or installed binaries, its data
directory, its life), with the ``pg_ctl`` plumbing in ``embedded_pgctl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import click
import psycopg

from .. import _dsn, events
from .._sql import query
from ..backoff import RetryPolicy
from ..errors import DemoError
from ..migrate import migrate
from ..producer.enqueue import JobSpec, enqueue_many
from ..tasks import Registry
from ..worker.cancellation import cancel_and_wait
from .embedded import embedded_postgres

__all__ = ["DemoError", "DemoResult", "build_tasks", "example_jobs", "run_demo"]

DEFAULT_JOBS = 3000
DEFAULT_FAILURE_RATE = 0.1
DEFAULT_CONCURRENCY = 20
MAX_ATTEMPTS: dict[str, int] = {"email": 3, "payment": 3, "webhook": 2}
"""Attempts per queue; webhooks give up sooner, so final failures show at 10 %."""
RETRY = RetryPolicy(base_seconds=0.05, max_seconds=0.5)
POLL_INTERVAL_SECONDS = 1.0
STALL_SECONDS = 60.0
"""Give up when no job has finished for this long although some are left."""

FINAL_OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})

Echo = Callable[[str], object]


class SimulatedFailure(Exception):
    """What a demo handler raises to stand for a real-world failure."""


@dataclass
class DemoResult:
    """What a demo run did, counted from the database's history of its jobs."""

    database: str
    jobs: int
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    retries: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    by_outcome: dict[str, int] = field(default_factory=dict)
    """Worker events seen, by outcome (retried included)."""

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


def build_tasks(failure_rate: float, rng: random.Random | None = None) -> Registry:
    """The demo's task registry: one task per queue, failing at ``failure_rate``."""
    chance = rng or random.Random()
    lock = threading.Lock()  # plain handlers run in threads; Random is not thread-safe

    def roll(low_ms: int, high_ms: int) -> tuple[float, bool]:
        with lock:
            return chance.uniform(low_ms, high_ms) / 1000, chance.random() < failure_rate

    async def send_email(to: str, subject: str) -> None:
        pause, fail = roll(2, 10)
        await asyncio.sleep(pause)
        if fail:
            raise SimulatedFailure(f"SMTP server timed out sending {subject!r} to {to}")

    def charge_payment(order_id: int, amount_cents: int) -> None:
        pause, fail = roll(5, 15)
        time.sleep(pause)
        if fail:
            raise SimulatedFailure(f"card declined for order {order_id} ({amount_cents} cents)")

    async def deliver_webhook(url: str, event: str) -> None:
        pause, fail = roll(2, 20)
        await asyncio.sleep(pause)
        if fail:
            raise SimulatedFailure(f"{url} answered 503 to {event}")

    tasks = Registry()
    for fn, name, queue in ((send_email, "demo.send_email", "email"),
                            (charge_payment, "demo.charge_payment", "payment"),
                            (deliver_webhook, "demo.deliver_webhook", "webhook")):
        tasks.task(fn, name=name, queue=queue, max_attempts=MAX_ATTEMPTS[queue], retry=RETRY)
    return tasks


def example_jobs(count: int) -> list[JobSpec]:
    """``count`` example jobs spread evenly over the three demo tasks.

    Each job carries its queue's ``max_attempts``: the row decides, not the task.
    """
    specs: list[JobSpec] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            task, queue = "demo.send_email", "email"
            args: dict[str, object] = {"to": f"user{i}@example.com", "subject": "Your receipt"}
        elif kind == 1:
            task, queue = "demo.charge_payment", "payment"
            args = {"order_id": i, "amount_cents": 500 + i % 9500}
        else:
            task, queue = "demo.deliver_webhook", "webhook"
            args = {"url": f"https://example.com/hooks/{i % 50}", "event": "order.paid"}
        specs.append({"task": task, "queue": queue, "args": args,
                      "max_attempts": MAX_ATTEMPTS[queue]})
    return specs


def run_demo(
    dsn: str | None,
    *,
    jobs: int = DEFAULT_JOBS,
    failure_rate: float = DEFAULT_FAILURE_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
    out: Echo = click.echo,
    progress: bool | None = None,
) -> DemoResult:
    """Run the demo and return what it counted.

    Args:
        dsn: the database; else PGQUEUE_DSN, else DATABASE_URL, else an
            embedded server started for the run and deleted after it.
        jobs: how many example jobs to enqueue (at least 1).
        failure_rate: chance, 0 to 1, that one attempt fails.
        concurrency: the worker's concurrent job slots.
        out: where lines of text go.
        progress: show a live progress bar; default: when stdout is a terminal.
            Otherwise a line is written every 10 %.

    Raises:
        ValueError: an argument is out of range.
        DatabaseUnavailableError: no database configured and none could be started.
        DemoError: the worker stopped or stalled before every job finished.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    if not 0 <= failure_rate <= 1:
        raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate!r}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if progress is None:
        progress = sys.stdout.isatty()

    resolved = _dsn.resolve_dsn(dsn)
    if resolved:
        out(f"Database: {_dsn.redact(resolved)}")
        return _run(resolved, _dsn.redact(resolved), jobs=jobs, failure_rate=failure_rate,
                    concurrency=concurrency, out=out, progress=progress)
    out("No database configured (--dsn, PGQUEUE_DSN, DATABASE_URL): "
        "starting a throwaway PostgreSQL for this demo...")
    with embedded_postgres() as server:
        out(f"Database: {server.description} (deleted when the demo ends)")
        return _run(server.dsn, server.description, jobs=jobs, failure_rate=failure_rate,
                    concurrency=concurrency, out=out, progress=progress)


def _run(dsn: str, database: str, *, jobs: int, failure_rate: float, concurrency: int,
         out: Echo, progress: bool) -> DemoResult:
    with _dsn.connect(dsn, autocommit=True) as conn:
        applied = migrate(conn)
        out(f"Schema: applied migrations {', '.join(map(str, applied))}" if applied
            else "Schema: already up to date")
        with conn.transaction():
            ids = enqueue_many(conn, example_jobs(jobs))
    attempts = ", ".join(f"{queue} {n}" for queue, n in MAX_ATTEMPTS.items())
    out(f"Enqueued {jobs} jobs on queues email, payment, webhook in one transaction; "
        f"each attempt fails with probability {failure_rate:.0%} (attempts: {attempts})")
    out(f"Running a worker with {concurrency} slots...")

    result = DemoResult(database=database, jobs=jobs)
    started = time.monotonic()
    with _progress_display(jobs, out, progress) as show:
        run = _WorkerRun(dsn, ids, build_tasks(failure_rate), concurrency=concurrency,
                         show=show, result=result, out=out)
        asyncio.run(run.main())
    result.seconds = time.monotonic() - started

    with _dsn.connect(dsn, autocommit=True) as conn:
        _count_history(conn, ids, result)
        out("")
        out("pgqueue.queue_stats:")
        for line in _stats_table(conn):
            out(line)
    out("")
    rate = result.finished / result.seconds if result.seconds else 0.0
    out(f"Totals for the {jobs} demo jobs: {result.succeeded} succeeded, "
        f"{result.failed} failed for good, {result.retries} retries; "
        f"{result.seconds:.1f} s, {rate:.0f} jobs/s")
    if result.cancelled:
        out(f"({result.cancelled} cancelled)")
    if result.interrupted:
        out(f"Interrupted: {jobs - result.finished} jobs were not finished.")
    elif result.finished < jobs:
        raise DemoError(f"the worker stopped with {jobs - result.finished} of {jobs} demo jobs "
                        "unfinished; see the messages above")
    return result


class _WorkerRun:
    """One worker run until every demo job is finished, Ctrl-C, or a stall."""

    def __init__(self, dsn: str, ids: Sequence[int], tasks: Registry, *, concurrency: int,
                 show: Callable[[int, dict[str, int]], None], result: DemoResult,
                 out: Echo) -> None:
        self.dsn = dsn
        self.out = out
        self.ids = list(ids)
        self.pending = set(ids)
        self.show = show
        self.result = result
        from .. import Worker  # the worker's modules load only when the demo runs

        # The demo shows progress itself; per-job log lines would drown it.
        self.worker = Worker(tasks, dsn=dsn, queues=None, concurrency=concurrency,
                             log_events=False)
        self.worker.subscribe(self.on_event)
        self.last_progress = time.monotonic()
        self.stop_reason: str | None = None

    def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.ConnectionLost | events.ServiceError):
            self.out(f"worker: {event.name} in {event.service}: {event.error}")
        elif isinstance(event, events.ConnectionRestored):
            self.out(f"worker: {event.name} in {event.service}")
        if not isinstance(event, events.JobFinished) or event.job.id not in self.pending:
            return
        counts = self.result.by_outcome
        counts[event.outcome] = counts.get(event.outcome, 0) + 1
        if event.outcome in FINAL_OUTCOMES:
            self.pending.discard(event.job.id)
            self.last_progress = time.monotonic()
            self.show(len(self.ids) - len(self.pending), counts)
            if not self.pending:
                self.stop("done")

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.worker.stop()

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        with _signals_stop(loop, self):
            watchdog = asyncio.create_task(self.watch())
            try:
                await self.worker.run_async()
            finally:
                await cancel_and_wait([watchdog])  # its statements can swallow a cancel
                if not watchdog.cancelled():
                    watchdog.result()  # a failed watchdog raises its error, as before
        if self.stop_reason == "stalled":
            raise DemoError(f"no demo job finished for {STALL_SECONDS:.0f} s; "
                            f"{len(self.pending)} left")

    async def watch(self) -> None:
        """Safety net: stop when the database has none of our jobs live, or on a stall."""
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            while True:
                await asyncio.sleep(POLL_INTERVAL_SECONDS)
                cur = await conn.execute(query("job_count_live"), {"ids": self.ids})
                row = await cur.fetchone()
                if row is not None and row[0] == 0:
                    self.stop("done")
                    return
                if time.monotonic() - self.last_progress > STALL_SECONDS:
                    self.stop("stalled")
                    return


@contextlib.contextmanager
def _signals_stop(loop: asyncio.AbstractEventLoop, run: _WorkerRun) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop the worker gracefully. Second: stop at once."""
    installed: list[signal.Signals] = []

    def handle(sig: signal.Signals) -> None:
        if run.stop_reason == "interrupted":
            raise KeyboardInterrupt
        run.result.interrupted = True
        run.stop("interrupted")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handle, sig)
                installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def _progress_display(total: int, out: Echo,
                      live: bool) -> Iterator[Callable[[int, dict[str, int]], None]]:
    """A callable ``show(done, counts)``: a live bar on a terminal, else a line per 10 %."""
    if live:
        shown = [0]
        label = [""]
        bar: Any
        with click.progressbar(length=total, label="jobs", show_pos=True, show_eta=False,
                               width=30, item_show_func=lambda _: label[0] or None) as bar:
            def show_bar(done: int, counts: dict[str, int]) -> None:
                label[0] = _counts_text(counts)
                bar.update(done - shown[0])
                shown[0] = done

            yield show_bar
        return

    step = max(1, total // 10)

    def show_lines(done: int, counts: dict[str, int]) -> None:
        if done % step == 0 or done == total:
            out(f"  {done}/{total} jobs finished ({_counts_text(counts)})")

    yield show_lines


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("succeeded", "retried", "failed"))


def _count_history(conn: psycopg.Connection[Any], ids: Sequence[int],
                   result: DemoResult) -> None:
    for state, count, retries in conn.execute(query("job_totals_finished"), {"ids": list(ids)}):
        if state in ("succeeded", "failed", "cancelled"):
            setattr(result, state, int(count))
        result.retries += int(retries or 0)


def _stats_table(conn: psycopg.Connection[Any]) -> list[str]:
    """The queue_stats view as aligned text: text left, numbers right."""
    cur = conn.execute(query("queue_stats_list"))
    headers = [col.name for col in cur.description or ()]
    rows = cur.fetchall()
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], int | float | Decimal) for row in rows if row[i] is not None)
               and bool(rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    table = [line(headers), "  ".join("-" * w for w in widths)]
    table.extend(line(r) for r in cells)
    if not rows:
        table.append("(no queues)")
    return table


def _cell(value: object) -> str:
    return "-" if value is None else str(value)  # None: no limit set
