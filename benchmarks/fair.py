"""Fair share across keys: what a fair queue's claim costs, and how soon a light
key starts behind a heavy one.

- ``keys``: one queue with a backlog of N ready jobs (1,000,000; ``--quick``:
  20,000) spread over 1, 100 and 10,000 distinct concurrency keys; one claim
  of 50, committed, fair (``--queues q=fair``) and plain alternating, median of
  100 each; and the shared buffers and time of the claim's statement
  (auto_explain, claims rolled back, median of 21).
- ``flat``: the claims with 100 keys and a backlog a tenth of N (at least what
  the claims take), against N.
- ``light``: tenant A has N jobs, tenant B 10 newer ones: the claims of 50 it
  takes until all of B's have started, fair and plain (plain: B waits for A's
  whole backlog, so the figure is capped at 40 claims).

Run: ``python -m benchmarks.fair [--jobs N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

import psycopg

from pgqueue._sql import query
from pgqueue.types import Job
from pgqueue.worker.key_rounds import KeyRounds

from .claims import PLAN_ROUNDS, claim_plan, claim_times
from .harness import DEFAULT_DSN, Results, scratch_database

CLAIM = 50
ROUNDS = 100
LIGHT_CAP = 40


def _insert(dsn: str, n: int, keys: int, prefix: str = "k", after: int = 0) -> None:
    """``n`` ready jobs of queue q over ``keys`` keys, in age order after ``after``
    microseconds past an hour ago, then VACUUM ANALYZE."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgqueue.jobs (queue, task, args, concurrency_key, run_at) "
            "SELECT 'q', 'bench.noop', '{}', %s || (g %% %s), "
            "       now() - interval '1 hour' + (g + %s) * interval '1 microsecond' "
            "FROM generate_series(1, %s) g", (prefix, keys, after, n))
        conn.execute("VACUUM ANALYZE pgqueue.jobs")


class _Claims:
    """The job_claim parameters of one variant, fair or plain, and its cursor."""

    def __init__(self, fair: bool) -> None:
        self.rounds = KeyRounds(["q"], {"q"}) if fair else None

    def params(self) -> dict[str, Any]:
        fair, cursors = (None, None) if self.rounds is None else self.rounds.params()
        return {"queues": ["q"], "slots": [CLAIM], "bases": None, "strides": None,
                "fair": fair, "cursors": cursors, "tasks": ["bench.noop"], "limit": CLAIM,
                "worker_id": str(uuid.uuid4()), "key_tasks": [], "key_caps": [],
                "async_commit": False}

    def record(self, jobs: list[Job]) -> None:
        if self.rounds is not None:
            self.rounds.record(jobs)


def _measure(dsn: str, results: Results, label: str, note: str) -> None:
    plans = {name: claim_plan(dsn, _Claims(name == "fair").params)
             for name in ("fair", "plain")}
    variants = {name: (c.params, c.record)
                for name, c in (("fair", _Claims(True)), ("plain", _Claims(False)))}
    times = claim_times(dsn, variants, ROUNDS, CLAIM)
    for name in ("fair", "plain"):
        results.add(f"fair_claim_{name}_{label}", times[name] * 1e6, "us",
                    f"claim of {CLAIM} (committed), {note}, median of {ROUNDS}")
        buffers, millis = plans[name]
        results.add(f"fair_claim_{name}_{label}_statement", millis * 1000, "us",
                    f"the claim's statement (auto_explain), median of {PLAN_ROUNDS}")
        results.add(f"fair_claim_{name}_{label}_buffers", float(buffers), "buffers",
                    "shared buffers the claim's statement reads")
    results.add(f"fair_claim_ratio_{label}", times["fair"] / times["plain"], "x",
                "fair / plain, same run")


def _light(server_dsn: str, results: Results, n: int) -> None:
    for name in ("fair", "plain"):
        with scratch_database(server_dsn, f"fair_light_{name}") as dsn:
            _insert(dsn, n, 1, prefix="A")
            _insert(dsn, 10, 1, prefix="B", after=n)
            claims = _Claims(name == "fair")
            started = 0
            count = 0
            with psycopg.connect(dsn, autocommit=True) as conn:
                while started < 10 and count < LIGHT_CAP:
                    rows = conn.execute(query("job_claim"), claims.params()).fetchall()
                    jobs = [Job(*row) for row in rows]
                    claims.record(jobs)
                    started += sum(1 for j in jobs if j.concurrency_key == "B0")
                    count += 1
            results.add(f"fair_light_claims_{name}", float(count), "claims",
                        f"until B's 10 jobs started behind A's {n:,} (cap {LIGHT_CAP})")


def run(server_dsn: str, results: Results, *, jobs: int = 1_000_000) -> None:
    for keys in (1, 100, 10_000):
        with scratch_database(server_dsn, f"fair_keys_{keys}") as dsn:
            _insert(dsn, jobs, keys)
            _measure(dsn, results, f"keys{keys}", f"{jobs:,} jobs over {keys:,} keys")
    small = max(jobs // 10, 2 * ROUNDS * CLAIM + CLAIM)  # room for every claim
    with scratch_database(server_dsn, "fair_small") as dsn:
        _insert(dsn, small, 100)
        _measure(dsn, results, "keys100_small", f"{small:,} jobs over 100 keys")
    _light(server_dsn, results, jobs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--jobs", type=int, default=None,
                        help="the backlog [default: 1,000,000; --quick: 20,000]")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    results = Results(mode="fair-quick" if args.quick else "fair")
    run(args.dsn, results, jobs=args.jobs or (20_000 if args.quick else 1_000_000))
    print(results.summary())
    print("load average at start", results.load_at_start, "at end", os.getloadavg())


if __name__ == "__main__":
    main()
