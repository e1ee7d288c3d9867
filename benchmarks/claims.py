"""Timing one claim statement: committed claims alternating between variants, and
what auto_explain says the claim's own statement read and took.

Shared by the benchmarks of the claim's orders (``weights``, ``fair``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from pgqueue._sql import query
from pgqueue.types import Job

from .harness import BenchmarkError

__all__ = ["PLAN_ROUNDS", "Params", "Record", "claim_plan", "claim_times"]

PLAN_ROUNDS = 21
Params = Callable[[], dict[str, Any]]  # the job_claim parameters of the next claim
Record = Callable[[list[Job]], None]  # what a variant learns from its claimed jobs


def claim_times(dsn: str, variants: Mapping[str, tuple[Params, Record | None]], rounds: int,
                expected: int) -> dict[str, float]:
    """Median seconds of one committed claim of each variant, the variants
    alternating (the claimed jobs stay running: the backlog shrinks alike).
    Every claim must take ``expected`` jobs."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(rounds):
            for name, (params, record) in variants.items():
                values = params()
                started = time.perf_counter()
                rows = conn.execute(query("job_claim"), values).fetchall()
                times[name].append(time.perf_counter() - started)
                if len(rows) != expected:
                    raise BenchmarkError(f"{name}: a claim took {len(rows)} jobs, "
                                         f"not {expected}")
                if record is not None:
                    record([Job(*row) for row in rows])
    return {name: statistics.median(t) for name, t in times.items()}


def claim_plan(dsn: str, params: Params) -> tuple[int, float]:
    """Shared buffers the claim's statement reads and its execution time (ms, the
    median of PLAN_ROUNDS), from auto_explain (nested statements), over claims
    rolled back after a first that loads the session's caches."""
    notices: list[str] = []
    with psycopg.connect(dsn) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_nested_statements = on",
                        "log_analyze = on", "log_buffers = on", "log_level = notice"):
            conn.execute(f"SET auto_explain.{setting}")
        conn.execute("SET client_min_messages = notice")
        conn.commit()  # the settings outlive the claims rolled back
        plans: list[str] = []
        for _ in range(PLAN_ROUNDS + 1):
            notices.clear()
            conn.execute(query("job_claim"), params()).fetchall()
            conn.rollback()
            # The function's own statement (RETURN QUERY), with its duration.
            plans += [n for n in notices if "picked AS MATERIALIZED" in n and "Buffers" in n]
    if len(plans) != PLAN_ROUNDS + 1:
        raise BenchmarkError("auto_explain reported no plan of the claim's statement")
    millis = statistics.median(float(p.split("duration: ")[1].split(" ms")[0])
                               for p in plans[1:])
    for line in plans[-1].splitlines():
        if "Buffers: shared" in line:  # the top node's
            return sum(int(part.split("=")[1]) for part in line.split()
                       if part.startswith(("hit=", "read="))), millis
    raise BenchmarkError("the claim's plan shows no buffers")
