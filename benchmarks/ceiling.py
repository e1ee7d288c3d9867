"""The ceiling, in the same sitting: the SQL a batching worker must do, from a C client.

pgbench (PostgreSQL's C client: no Python anywhere) runs pgqueue's own claim and
outcome statements against pgqueue's schema, in a loop per connection:

1. claim a batch of 100 with ``sql/queries/job_claim.sql`` (``pgqueue.claim_v2``:
   ``FOR UPDATE SKIP LOCKED``, the claim token, synchronous commit), its rows
   folded into arrays by pgbench's ``\\gset`` (the worker reads them as rows);
2. write the batch's outcomes with ``sql/queries/job_complete_many.sql``, every
   job ``succeeded``: the fenced ``DELETE`` from the live table, the history row
   built by ``pgqueue.finished_row``, and the ``pgqueue_finished`` notification
   when a result waiter waits (migration 0022).

Each statement commits on its own, as the worker's claim and outcome sessions
do (prepared, ``-M prepared``). With 1 and 2 connections (this machine has 2
cores), then pgqueue's in-process drain at concurrency 50 (benchmarks/drain.py);
the three alternate over ``rounds``, the median of each counts. Every figure is
N over ``max(finished_at) - min(started_at)`` of the history rows, and counts
only once all N jobs succeeded.

A session LISTENs on ``pgqueue_jobs`` during the pgbench runs, as a worker's
listener would. Prints ``ceiling_pgbench_c1``, ``ceiling_pgbench_c2``,
``ceiling_pgbench_c2_waited`` (2 connections while a session waits for results,
so that every outcome statement sends ``pgqueue_finished``, as all did before
migration 0022: what that costs, as ``ceiling_notify_cost``),
``ceiling_drain_async_c50`` (jobs/s) and
``ceiling_share_c1`` / ``ceiling_share_c2``: the drain as a share of each.

Run: ``python -m benchmarks ceiling [--quick|--smoke]`` (needs the ``pgbench``
binary: ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` or the PATH).
"""

from __future__ import annotations

import glob
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import psycopg

from pgqueue import _sql

from .drain import KINDS, PROCESS_CONCURRENCY, drain_once, history_rate
from .harness import (
    BenchmarkError,
    Results,
    Sizes,
    insert_ready_jobs,
    scratch_database,
    verify_drained,
)

BATCH = 100
TASK = KINDS["async"]
# One worker id per pgbench connection, from its client number.
_WORKER_ID = "('00000000-0000-0000-0000-' || lpad(:client_id::text, 12, '0'))::uuid"

_CLAIM_PARAMS = {
    "queues": ":queues", "slots": ":slots", "tasks": ":tasks", "limit": ":batch",
    "bases": "NULL", "strides": "NULL", "fair": "NULL", "cursors": "NULL",  # priority order
    "worker_id": _WORKER_ID, "key_tasks": ":none", "key_caps": ":none",
    "async_commit": ":async_commit",
}
_COMPLETE_PARAMS = {
    "ids": ":ids", "tokens": ":tokens", "outcomes": ":outcomes", "delays": ":nulls",
    "errors": ":nulls", "results": ":nulls", "max_snoozes": ":nulls", "progress": ":nulls",
    "meta": ":nulls", "worker_id": _WORKER_ID,
}


def pgbench_binary() -> str | None:
    """Where pgbench is: next to pg_config's binaries, PostgreSQL's Debian folders, the PATH."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            bindir = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True,
                                    text=True).stdout.strip()
            candidates.append(os.path.join(bindir, "pgbench"))
        except (OSError, subprocess.CalledProcessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)
    found = shutil.which("pgbench")
    if found is not None:
        candidates.append(found)
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def _statement(name: str, params: dict[str, str]) -> str:
    """One of pgqueue's query files with its parameters as pgbench variables.

    Comment lines go (pgbench would read a ``:word`` in them as a variable)."""
    lines = [line for line in _sql.query(name).splitlines()
             if not line.lstrip().startswith("--")]
    text = "\n".join(lines).strip()
    for key, value in params.items():
        text = text.replace(f"%({key})s", value)
    if "%(" in text:
        raise BenchmarkError(f"{name}: a parameter left unset in {text!r}")
    return text.replace("%%", "%")


def script() -> str:
    """The pgbench script: one claim of a batch, then its outcomes, each its own commit."""
    claim = _statement("job_claim", _CLAIM_PARAMS)
    complete = _statement("job_complete_many", _COMPLETE_PARAMS)
    return (
        "SELECT coalesce(array_agg(c.id), '{}') AS ids,\n"
        "       coalesce(array_agg(c.claim_token), '{}') AS tokens,\n"
        "       coalesce(array_agg('succeeded'::text), '{}') AS outcomes,\n"
        "       coalesce(array_agg(NULL::text), '{}') AS nulls\n"
        f"FROM ({claim}) AS c\n\\gset\n"
        f"{complete};\n")


def _variables() -> list[str]:
    values = {"queues": "{default}", "slots": f"{{{BATCH}}}", "tasks": f"{{{TASK}}}",
              "batch": str(BATCH), "none": "{}", "async_commit": "false"}
    return [arg for key, value in values.items() for arg in ("-D", f"{key}={value}")]


def pgbench_drain(binary: str, server_dsn: str, clients: int, n: int, *,
                  waited: bool = False) -> float:
    """Jobs per second of pgbench draining ``n`` ready jobs over ``clients`` connections.

    A session LISTENs on ``pgqueue_jobs`` meanwhile, as a worker's listener
    does: PostgreSQL wakes every listening backend of the database at each
    notifying commit, whatever the channel. ``waited``: it also waits for
    results (pgqueue.wait_for_result's LISTEN and mark), so every outcome
    statement notifies."""
    with scratch_database(server_dsn, f"ceiling_c{clients}") as dsn, \
            tempfile.TemporaryDirectory() as folder, \
            psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        if waited:
            listener.execute(_sql.query("job_finished_listen"), prepare=False)
        insert_ready_jobs(dsn, TASK, n)
        path = Path(folder) / "batch.sql"
        path.write_text(script())
        # Enough loops for every job, and a few more that claim nothing (an
        # empty claim still costs a round trip; it comes after the last job).
        loops = -(-n // (BATCH * clients)) + 2
        proc = subprocess.run(
            [binary, "--no-vacuum", "-M", "prepared", "-n", "-c", str(clients),
             "-j", str(clients), "-t", str(loops), "-f", str(path), *_variables(), dsn],
            check=False, capture_output=True, text=True, timeout=60 + n / 100)
        if proc.returncode != 0:
            raise BenchmarkError(f"pgbench failed ({proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout)[-2000:]}")
        verify_drained(dsn, n)
        rate, _ = history_rate(dsn, n)
        return rate


def run(server_dsn: str, sizes: Sizes, results: Results) -> None:
    binary = pgbench_binary()
    if binary is None:
        raise BenchmarkError("no pgbench binary found (it comes with PostgreSQL's "
                             "client or contrib package)")
    n, rounds = sizes.cli_drain, sizes.cli_rounds
    rates: dict[str, list[float]] = {"pgbench_c1": [], "pgbench_c2": [],
                                     "pgbench_c2_waited": [], "drain": []}
    scratch = Results(mode="scratch")
    for _ in range(rounds):
        rates["pgbench_c1"].append(pgbench_drain(binary, server_dsn, 1, n))
        rates["pgbench_c2"].append(pgbench_drain(binary, server_dsn, 2, n))
        rates["pgbench_c2_waited"].append(pgbench_drain(binary, server_dsn, 2, n,
                                                        waited=True))
        rates["drain"].append(drain_once(server_dsn, "async", PROCESS_CONCURRENCY, n, scratch,
                                         quiet=True, history_clock=True)[0])
    medians = {name: statistics.median(values) for name, values in rates.items()}
    note = f"{n:,} no-op jobs, median of {rounds}"

    def spread(name: str) -> str:
        return ", ".join(f"{v:,.0f}" for v in rates[name])

    for clients in (1, 2):
        name = f"pgbench_c{clients}"
        results.add(f"ceiling_{name}", medians[name], "jobs/s",
                    f"{note}, claim {BATCH} + outcomes, {clients} connection(s) "
                    f"({spread(name)})")
    results.add("ceiling_pgbench_c2_waited", medians["pgbench_c2_waited"], "jobs/s",
                f"{note}, as c2 while a result waiter waits: every outcome statement "
                f"sends pgqueue_finished ({spread('pgbench_c2_waited')})")
    results.add("ceiling_notify_cost", medians["pgbench_c2_waited"] / medians["pgbench_c2"],
                "x", "pgbench c2 with a result waiter / c2 without (no pgqueue_finished), "
                "medians")
    results.add(f"ceiling_drain_async_c{PROCESS_CONCURRENCY}", medians["drain"], "jobs/s",
                f"{note}, 1 worker in process ({spread('drain')})")
    for clients in (1, 2):
        results.add(f"ceiling_share_c{clients}",
                    medians["drain"] / medians[f"pgbench_c{clients}"], "x",
                    f"drain / pgbench with {clients} connection(s), medians")
