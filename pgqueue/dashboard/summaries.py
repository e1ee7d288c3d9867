"""What the overview, queue and charts pages count, without counting every job.

- Live counts (ready, scheduled, running, blocked, unclaimable, lag) come from
  the leader's newest sample (pgqueue.queue_samples) when it is younger than
  :data:`SAMPLE_MAX_AGE_SECONDS`, and say how old it is. A queue without such a
  sample (no worker leads, or the queue is newer than the sample) is counted
  now, reading at most :data:`COUNT_BOUND` of its queued jobs (and of its
  running and of its blocked ones); a count that may be more is shown as
  ``10000+``; its lag is exact.
- Finished jobs per bucket come from the roll-ups before the watermark and
  from history after it (dashboard_chart_finished.sql); run-duration
  percentiles are estimated from the roll-ups' histograms (bins of
  :data:`DURATION_BOUNDS`, interpolated within a bin).
- Failed counts are queue_stats' (pgqueue.failed_counts); "succeeded in the
  last hour" is summed from the minute buckets of the last hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .data import Conn, fetch

__all__ = ["COUNT_BOUND", "DURATION_BOUNDS", "SAMPLE_MAX_AGE_SECONDS", "counts_note",
           "depth_series", "finished_series", "percentiles", "queue_rows", "throughput"]

#: A sample older than this is not shown: the queue is counted instead. The
#: leader samples every 5 s, less often when counting is slow (at most 60 s).
SAMPLE_MAX_AGE_SECONDS = 120.0
#: Where a count made by the page itself stops (per queue and state).
COUNT_BOUND = 10_000
#: The upper bounds (seconds) of the run-duration histogram's bins, as
#: pgqueue.duration_bounds() has them: 22 bins, the last one open.
DURATION_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
                   20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 3600.0)
_LIVE = ("ready", "scheduled", "running", "blocked", "unclaimable")


def queue_rows(conn: Conn, now: datetime, queue: str | None = None,
               finished: Sequence[Mapping[str, Any]] | None = None, *,
               bound: int = COUNT_BOUND) -> list[dict[str, Any]]:
    """One row per queue (or the one named) with queue_stats' columns, plus
    ``sampled_at`` (None when counted now) and ``bound`` (set when counted now:
    a count equal to it means at least that many).

    ``finished`` is the last hour's minute buckets of :func:`finished_series` when
    the caller has them already (they give ``succeeded_1h``); ``bound`` is where
    counts made now stop."""
    rows = fetch(conn, "dashboard_queues_list", {"queue": queue})
    if not rows:
        return []
    sampled = {r["queue"]: r for r in fetch(conn, "dashboard_samples_latest",
                                            {"max_age_seconds": SAMPLE_MAX_AGE_SECONDS})}
    missing = [r["queue"] for r in rows if r["queue"] not in sampled]
    counted = {}
    if missing:
        counted = {r["queue"]: r for r in fetch(conn, "dashboard_queue_counts",
                                                {"queues": missing, "bound": bound})}
    if finished is None:
        finished = finished_series(conn, now - timedelta(hours=1), 60, queue)
    succeeded: dict[str, int] = {}
    for point in finished:
        succeeded[point["queue"]] = succeeded.get(point["queue"], 0) + int(point["succeeded"])
    out = []
    for row in rows:
        name = row["queue"]
        live = sampled.get(name) or counted.get(name) or {}
        merged = {**row, **{k: int(live.get(k) or 0) for k in _LIVE},
                  "queued_seen": int(live.get("queued_seen") or 0),
                  "lag_seconds": float(live.get("lag_seconds") or 0),
                  "succeeded_1h": succeeded.get(name, 0),
                  "sampled_at": live.get("sampled_at") if name in sampled else None,
                  "bound": None if name in sampled else bound}
        merged["depth"] = sum(merged[k] for k in ("ready", "scheduled", "running", "blocked"))
        out.append(merged)
    return out


def counts_note(rows: Iterable[Mapping[str, Any]], now: datetime) -> str:
    """Where the live counts come from, in a sentence (plain text)."""
    rows = list(rows)
    moments = [r["sampled_at"] for r in rows if r.get("sampled_at") is not None]
    counted = sum(1 for r in rows if r.get("sampled_at") is None)
    parts = []
    if moments:
        age = max(0.0, (now - min(moments)).total_seconds())
        parts.append(f"Live counts as of the leader's sample {age:.0f} s ago.")
    if counted:
        parts.append(f"Counted now (no recent sample{'s' if counted > 1 else ''} of the "
                     f"leader: is a worker running?), each count up to {COUNT_BOUND:,}.")
    return " ".join(parts)


def finished_series(conn: Conn, since: datetime, bucket_seconds: int,
                    queue: str | None = None) -> list[dict[str, Any]]:
    """Finished jobs per queue and bucket since ``since`` (60, 600 or 3600 s
    buckets), with estimated duration percentiles (p50, p95, p99)."""
    merged: dict[tuple[str, datetime], dict[str, Any]] = {}
    mark = fetch(conn, "rollup_state_get")[0]["rolled_until"]
    epoch = since.timestamp()
    aligned = datetime.fromtimestamp(epoch - epoch % bucket_seconds, tz=since.tzinfo)
    for row in fetch(conn, "dashboard_chart_finished",
                     {"since": aligned, "bucket_seconds": bucket_seconds, "queue": queue,
                      "rolled_until": mark}):
        key = (row["queue"], row["bucket"])
        seen = merged.get(key)
        if seen is None:
            merged[key] = {**row, "durations": list(row["durations"])}
            continue
        for name in ("succeeded", "failed", "cancelled", "duration_sum"):
            seen[name] += row[name]
        seen["durations"] = [a + b for a, b in zip(seen["durations"], row["durations"],
                                                   strict=True)]
    out = []
    for key in sorted(merged):
        row = merged[key]
        row["duration_percentiles"] = percentiles(row["durations"], (0.5, 0.95, 0.99))
        out.append(row)
    return out


def throughput(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Minute buckets of :func:`finished_series` as the overview's small charts want them."""
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_queue.setdefault(row["queue"], []).append(
            {"minute": row["bucket"], "succeeded": row["succeeded"], "failed": row["failed"],
             "cancelled": row["cancelled"]})
    return by_queue


def depth_series(conn: Conn, since: datetime, bucket_seconds: int,
                 queue: str | None = None) -> list[dict[str, Any]]:
    """Mean ready jobs, mean depth and largest lag per queue and bucket, from samples."""
    return fetch(conn, "dashboard_samples_chart",
                 {"since": since, "bucket_seconds": bucket_seconds, "queue": queue})


def percentiles(histogram: Sequence[int], wanted: Sequence[float]) -> list[float | None]:
    """Percentiles of the durations counted in ``histogram`` (bins of
    :data:`DURATION_BOUNDS`), interpolated linearly within a bin; the open last
    bin answers its lower bound. None for an empty histogram."""
    total = sum(histogram)
    if total <= 0:
        return [None] * len(wanted)
    out: list[float | None] = []
    for p in wanted:
        rank = p * total
        seen = 0
        for index, count in enumerate(histogram):
            if count and seen + count >= rank:
                low = DURATION_BOUNDS[index - 1] if index > 0 else 0.0
                if index >= len(DURATION_BOUNDS):
                    out.append(low)
                else:
                    high = DURATION_BOUNDS[index]
                    out.append(low + (high - low) * max(0.0, rank - seen) / count)
                break
            seen += count
        else:
            out.append(DURATION_BOUNDS[-1])
    return out
