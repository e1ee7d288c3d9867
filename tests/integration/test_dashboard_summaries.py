"""The leader's roll-ups of finished jobs and samples of queue depth and lag
(migration 0018), through the real database: incremental, idempotent, nothing
counted twice when two leaders race or one restarts, catching up after a gap;
and what the dashboard reads from them, with and without a fresh sample."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

import pgqueue
from pgqueue import events
from pgqueue.dashboard import summaries
from pgqueue.dashboard.pages import count_text
from pgqueue.worker.maintenance.rollup import Rollup, RollupConfig
from pgqueue.worker.maintenance.sampler import Sampler, SamplerConfig
from pgqueue.worker.session import Session
from tests.integration.test_api import call
from tests.integration.test_maintenance_services import run
from tests.support import fetch, running_worker, scalar, wait_until

# Finished rows by hand: n per minute over `minutes` minutes ending `ago` minutes
# back, in two queues, every 10th failed, every 25th cancelled, run for 10-1000 ms.
FILL = """
INSERT INTO pgqueue.finished_jobs
    (id, queue, task, args, priority, state, attempt, max_attempts, run_at, created_at,
     started_at, finished_at, errors)
SELECT %(first)s + g, CASE WHEN g %% 2 = 0 THEN 'mail' ELSE 'sms' END, 'send', '{}', 0,
       (CASE WHEN g %% 25 = 0 THEN 'cancelled' WHEN g %% 10 = 0 THEN 'failed'
             ELSE 'succeeded' END)::pgqueue.job_state,
       1, 5, f, f, f - (10 + g %% 100 * 10) * interval '1 millisecond', f, '[]'
FROM generate_series(0, %(minutes)s * %(per_minute)s - 1) g,
     LATERAL (SELECT date_trunc('minute', now()) - %(ago)s * interval '1 minute'
                     - (g / %(per_minute)s) * interval '1 minute'
                     + (g %% %(per_minute)s) * (interval '59 seconds' / %(per_minute)s)) t(f)
"""
# What the roll-ups must hold, from history itself: per width, bucket and queue.
RAW = """
SELECT w.width, to_timestamp(floor(extract(epoch FROM h.finished_at) / w.width) * w.width),
       h.queue, count(*) FILTER (WHERE h.state = 'succeeded'),
       count(*) FILTER (WHERE h.state = 'failed'), count(*) FILTER (WHERE h.state = 'cancelled')
FROM pgqueue.finished_jobs h CROSS JOIN (VALUES (60), (600), (3600)) w(width)
WHERE h.finished_at < (SELECT rolled_until FROM pgqueue.rollup_state)
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
ROLLED = """
SELECT width_seconds, bucket, queue, succeeded, failed, cancelled FROM pgqueue.finished_rollups
ORDER BY 1, 2, 3
"""


def fill(dsn: str, *, first: int, minutes: int, per_minute: int, ago: int) -> int:
    fetch(dsn, FILL + " RETURNING 1", {"first": first, "minutes": minutes,
                                       "per_minute": per_minute, "ago": ago})
    return minutes * per_minute


def histogram_total(dsn: str) -> int:
    return int(scalar(dsn, "SELECT COALESCE(sum(x), 0) FROM pgqueue.finished_rollups r, "
                           "unnest(r.durations) x WHERE r.width_seconds = 60"))


def test_rollup_counts_each_finished_job_once_and_a_second_run_adds_nothing(
        clean_db: str) -> None:
    total = fill(clean_db, first=1, minutes=30, per_minute=20, ago=5)
    result = run(clean_db, lambda s: Rollup(s, RollupConfig(settle_seconds=60)).run_once())
    assert result.jobs == total
    assert fetch(clean_db, ROLLED) == fetch(clean_db, RAW)
    assert histogram_total(clean_db) == total  # every row had started_at
    before = fetch(clean_db, ROLLED)
    again = run(clean_db, lambda s: Rollup(s, RollupConfig(settle_seconds=60)).run_once())
    assert again.jobs == 0 and fetch(clean_db, ROLLED) == before
    watermark = scalar(clean_db, "SELECT rolled_until FROM pgqueue.rollup_state")
    assert watermark == scalar(clean_db, "SELECT date_trunc('minute', now() - interval '60 s')")


def test_rollup_is_incremental_and_a_restarted_leader_continues_from_the_watermark(
        clean_db: str) -> None:
    fill(clean_db, first=1, minutes=10, per_minute=10, ago=40)  # minutes -49 to -40
    fill(clean_db, first=10_000, minutes=10, per_minute=7, ago=20)  # -29 to -20
    # A leader rolls up 15 minutes (the first block) and stops (it died, it resigned).
    rows = fetch(clean_db, "SELECT * FROM pgqueue.roll_up_finished(15, 60)")
    assert rows[0][2] == 100
    assert fetch(clean_db, ROLLED) == fetch(clean_db, RAW)
    # The next leader (a new Rollup, its span reset) adds only the rest.
    second = run(clean_db, lambda s: Rollup(s).run_once())
    assert second.jobs == 70
    assert fetch(clean_db, ROLLED) == fetch(clean_db, RAW)


def test_a_rolled_back_rollup_counts_nothing_and_moves_no_watermark(clean_db: str) -> None:
    total = fill(clean_db, first=1, minutes=5, per_minute=10, ago=10)
    with psycopg.connect(clean_db) as conn:  # a leader that dies before its commit
        conn.execute("SELECT * FROM pgqueue.roll_up_finished(1440, 60)")
        conn.rollback()
    assert scalar(clean_db, "SELECT rolled_until FROM pgqueue.rollup_state") is None
    assert fetch(clean_db, ROLLED) == []
    assert run(clean_db, lambda s: Rollup(s).run_once()).jobs == total


def test_rollup_catches_up_after_a_gap_in_bounded_statements(clean_db: str) -> None:
    old = fill(clean_db, first=1, minutes=20, per_minute=30, ago=3 * 1440)  # three days ago
    new = fill(clean_db, first=100_000, minutes=20, per_minute=30, ago=5)
    config = RollupConfig(target_jobs=100, max_span_minutes=120, max_statements=5)
    rollup_results = []

    async def leader(session: Session) -> None:
        rollup = Rollup(session, config)  # one leader across its ticks
        for _ in range(200):
            result = await rollup.run_once()
            rollup_results.append(result)
            if result.statements < config.max_statements:
                return

    run(clean_db, leader)
    assert len(rollup_results) > 1  # no tick ran more than max_statements statements
    assert all(r.statements <= config.max_statements for r in rollup_results)
    assert sum(r.jobs for r in rollup_results) == old + new
    assert fetch(clean_db, ROLLED) == fetch(clean_db, RAW)


def test_two_leaders_racing_count_nothing_twice(clean_db: str) -> None:
    total = sum(fill(clean_db, first=n * 10_000, minutes=30, per_minute=15, ago=5 + n * 45)
                for n in range(4))
    added: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def racer() -> None:
        try:
            with psycopg.connect(clean_db, autocommit=True) as conn:
                start.wait(30)
                while True:  # small steps so the two interleave on the watermark
                    row = conn.execute(
                        "SELECT * FROM pgqueue.roll_up_finished(7, 60)").fetchone()
                    assert row is not None
                    added.append(int(row[2]))
                    if row[0] == row[1]:
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert sum(added) == total
    assert fetch(clean_db, ROLLED) == fetch(clean_db, RAW)


def test_the_charts_add_the_rollups_and_the_newest_history_exactly(clean_db: str) -> None:
    fill(clean_db, first=1, minutes=50, per_minute=12, ago=3)
    # Roll up only part of the hour: the rest is read from history.
    fetch(clean_db, "SELECT * FROM pgqueue.roll_up_finished(25, 0)")
    with psycopg.connect(clean_db, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        series = summaries.finished_series(conn, now - timedelta(hours=1), 60)
    raw = {(queue, bucket): (ok, bad) for width, bucket, queue, ok, bad, _ in fetch(
        clean_db, RAW.replace(
            "WHERE h.finished_at < (SELECT rolled_until FROM pgqueue.rollup_state)",
            "WHERE h.finished_at >= date_trunc('minute', now() - interval '1 hour')"))
        if width == 60}
    assert {(r["queue"], r["bucket"]): (r["succeeded"], r["failed"]) for r in series} == raw
    # Durations were 10 ms to 1 s: the estimates stay within the bins around them.
    p50, p95, p99 = series[0]["duration_percentiles"]
    assert 0.2 <= p50 <= 1.0 and 0.5 <= p95 <= 1.0 and p95 <= p99 <= 1.0


def test_a_search_without_a_range_reads_about_the_newest_rows(clean_db: str) -> None:
    from pgqueue.dashboard.data import DEFAULT_SEARCH_WINDOW, search_start

    fill(clean_db, first=1, minutes=30, per_minute=20, ago=3)  # minutes -32 to -3
    with psycopg.connect(clean_db, autocommit=True) as conn:
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        # Nothing rolled up yet: the whole day.
        assert search_start(conn, now, max_rows=100) == now - DEFAULT_SEARCH_WINDOW
        conn.execute("SELECT * FROM pgqueue.roll_up_finished(1440, 60)")
        newest = conn.execute("SELECT date_trunc('minute', max(finished_at)) "
                              "FROM pgqueue.finished_jobs").fetchone()[0]  # type: ignore[index]
        # 20 a minute: the newest 100 began 4 minutes before the newest minute.
        assert search_start(conn, now, max_rows=100) == newest - timedelta(minutes=4)
        assert search_start(conn, now, max_rows=10_000) == now - DEFAULT_SEARCH_WINDOW


def test_a_live_search_by_args_without_a_range_reads_the_newest_ids(clean_db: str) -> None:
    from pgqueue.dashboard import data

    with psycopg.connect(clean_db, autocommit=True) as conn:
        old = pgqueue.enqueue(conn, "send", {"order": 1}, queue="mail", delay=3600)
        ids = pgqueue.enqueue_many(conn, [{"task": "send", "args": {"order": 2},
                                           "queue": "mail", "delay": 3600}] * 5)
        now = datetime.now(UTC)
        saved = data.DEFAULT_SEARCH_ROWS
        data.DEFAULT_SEARCH_ROWS = 3  # type: ignore[misc]
        try:
            found = data.search_jobs(conn, data.JobFilter(args={"order": 1}), now)
            newest = data.search_jobs(conn, data.JobFilter(args={"order": 2}), now)
            ranged = data.search_jobs(conn, data.JobFilter(args={"order": 1},
                                                           since=now - timedelta(hours=1)), now)
        finally:
            data.DEFAULT_SEARCH_ROWS = saved  # type: ignore[misc]
    assert found.jobs == [] and found.live_from_id == max(ids) - 2
    assert [j["id"] for j in newest.jobs] == sorted(ids, reverse=True)[:3]
    assert [j["id"] for j in ranged.jobs] == [old] and ranged.live_from_id is None


def test_percentiles_from_a_histogram() -> None:
    one_bin = [0] * 22
    one_bin[9] = 100  # 0.5 s to 1 s
    assert summaries.percentiles(one_bin, (0.5, 1.0)) == [0.75, 1.0]
    assert summaries.percentiles([0] * 22, (0.5,)) == [None]
    last = [0] * 22
    last[21] = 3  # an hour or more: the open bin answers its lower bound
    assert summaries.percentiles(last, (0.99,)) == [3600.0]


def test_the_python_bounds_are_the_databases(clean_db: str) -> None:
    assert tuple(scalar(clean_db, "SELECT pgqueue.duration_bounds()")) \
        == summaries.DURATION_BOUNDS


def test_samples_follow_queue_stats_and_old_ones_are_dropped(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue_many(conn, [{"task": "send", "queue": "mail"}] * 7)
        pgqueue.enqueue(conn, "send", queue="mail", delay=3600)
        pgqueue.enqueue(conn, "send", queue="sms")
    fetch(clean_db, "INSERT INTO pgqueue.queue_samples VALUES (now() - interval '9 days', "
                    "'mail', 1, 0, 0, 0, 0, 0) RETURNING 1")
    assert run(clean_db, lambda s: Sampler(s).run_once()) == 2
    sample = fetch(clean_db, "SELECT queue, ready, scheduled, running, blocked, unclaimable, "
                             "lag_seconds FROM pgqueue.queue_samples ORDER BY queue")
    stats = fetch(clean_db, "SELECT queue, ready, scheduled, running, blocked, unclaimable, "
                            "lag_seconds FROM pgqueue.queue_stats ORDER BY queue")
    assert [r[:6] for r in sample] == [r[:6] for r in stats] \
        == [("mail", 7, 1, 0, 0, 7), ("sms", 1, 0, 0, 0, 1)]
    assert scalar(clean_db, "SELECT count(*) FROM pgqueue.queue_samples "
                            "WHERE sampled_at < now() - interval '8 days'") == 0
    # A second sample: the day and week charts read their sums per bucket.
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue_many(conn, [{"task": "send", "queue": "mail"}] * 2)
    run(clean_db, lambda s: Sampler(s).run_once())
    with psycopg.connect(clean_db, autocommit=True) as conn:
        now = datetime.now(UTC)
        for width in (60, 600, 3600):
            points = [(p["queue"], p["bucket"], p["ready"], p["depth"], p["lag_seconds"])
                      for p in summaries.depth_series(conn, now - timedelta(hours=2), width)]
            assert points == fetch(clean_db, """
                SELECT queue, to_timestamp(floor(extract(epoch FROM sampled_at) / %(w)s) * %(w)s),
                       avg(ready)::float8, avg(ready + scheduled + running + blocked)::float8,
                       max(lag_seconds)::float8
                FROM pgqueue.queue_samples WHERE sampled_at > now() - interval '1 hour'
                GROUP BY 1, 2 ORDER BY 1, 2""", {"w": width}), width
            assert sum(p[2] for p in points if p[0] == "mail") >= 8  # 7, then 9 ready


def test_a_slow_sample_stretches_the_pause_to_keep_the_duty() -> None:
    sampler = Sampler(None, SamplerConfig(interval_seconds=5, max_duty=0.1,  # type: ignore[arg-type]
                                          max_interval_seconds=60))
    sampler.last_seconds = 0.05
    assert sampler.pause_seconds() == 5
    sampler.last_seconds = 2.0
    assert sampler.pause_seconds() == pytest.approx(18.0)
    sampler.last_seconds = 30.0
    assert sampler.pause_seconds() == 60


def test_the_overview_counts_itself_without_a_fresh_sample_and_says_so(
        dashboards: Callable[..., int], clean_db: str) -> None:
    base = f"http://127.0.0.1:{dashboards()}"
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue_many(conn, [{"task": "send", "queue": "mail"}] * 3)
    status, _, page = call(f"{base}/")
    assert status == 200 and b"Counted now" in page
    # A stale sample (a leader that stopped long ago) is not shown either.
    fetch(clean_db, "INSERT INTO pgqueue.queue_samples VALUES (now() - interval '1 hour', "
                    "'mail', 99, 0, 0, 0, 0, 0) RETURNING 1")
    status, _, page = call(f"{base}/queues/mail")
    assert status == 200 and b"Counted now" in page and b">3</a>" in page
    # A fresh sample is: its numbers, and its age.
    fetch(clean_db, "INSERT INTO pgqueue.queue_samples VALUES (now(), 'mail', 42, 0, 0, 0, 0, "
                    "1.5) RETURNING 1")
    status, _, page = call(f"{base}/")
    assert status == 200 and b"as of the leader" in page and b">42</a>" in page


def test_a_bounded_count_shows_it_reached_its_bound(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue_many(conn, [{"task": "send", "queue": "mail"}] * 5)
        row = summaries.queue_rows(conn, datetime.now(UTC), "mail", bound=4)[0]

    assert row["ready"] == 4 and count_text(row, "ready") == "4+"
    assert count_text(row, "depth") == "4+" and row["lag_seconds"] >= 0


def test_a_leading_worker_samples_and_rolls_up(clean_db: str) -> None:
    registry = pgqueue.Registry()

    @registry.task(name="send", queue="mail")
    def send() -> None:
        pass

    old = fill(clean_db, first=1_000_000, minutes=3, per_minute=5, ago=10)
    with psycopg.connect(clean_db, autocommit=True) as conn:
        pgqueue.enqueue(conn, "send", queue="mail", delay=3600)
    with running_worker(clean_db, registry, queues=["mail"]) as worker:
        wait_until(lambda: fetch(clean_db, "SELECT queue, scheduled FROM pgqueue.queue_samples")
                   == [("mail", 1)], timeout=120, message="a sample")
        wait_until(lambda: scalar(clean_db, "SELECT COALESCE(sum(succeeded + failed + "
                                            "cancelled), 0) FROM pgqueue.finished_rollups "
                                            "WHERE width_seconds = 60") == old,
                   timeout=120, message="the roll-up")
        assert not worker.of(events.ServiceError)
