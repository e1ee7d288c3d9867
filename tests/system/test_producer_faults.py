"""The outbox under faults: a producer process SIGKILLed around its COMMIT.

The producer subprocess enqueues one job in its own transaction, says so on
stdout ("inserted <id>" or, after COMMIT, "committed <id>") and then waits on
stdin for ever; the test kills it there. Killed before COMMIT: no job, and its
unique key is free again. Killed after COMMIT: exactly one job.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

import pgqueue
from tests.support import fetch, scalar, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent

PRODUCER = """
import sys, psycopg, pgqueue
dsn, key, commit = sys.argv[1], sys.argv[2], sys.argv[3] == "commit"
conn = psycopg.connect(dsn, application_name="fault-producer")
conn.execute("INSERT INTO fault_outbox (key) VALUES (%s)", [key])
job = pgqueue.enqueue(conn, "outbox.send", {"key": key}, queue="outbox", unique_key=key)
if commit:
    conn.commit()
print(("committed " if commit else "inserted ") + str(job), flush=True)
sys.stdin.read()
"""


def producer(dsn: str, key: str, commit: bool) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", PRODUCER, dsn, key,
                             "commit" if commit else "open"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == ("committed" if commit else "inserted"), line
    return proc, int(line[1])


def backends(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pg_stat_activity "
                           "WHERE datname = current_database() "
                           "AND application_name = 'fault-producer'"))


@pytest.mark.parametrize("commit", [False, True], ids=["killed-before-commit",
                                                       "killed-after-commit"])
def test_producer_killed_around_commit(clean_db: str, commit: bool) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS fault_outbox (key text PRIMARY KEY)")
        conn.execute("TRUNCATE fault_outbox")
    key = f"order-{uuid.uuid4().hex}"
    proc, job = producer(clean_db, key, commit)
    proc.kill()
    proc.wait(10)
    # The server notices the dead client and ends its session (rolling back).
    wait_until(lambda: backends(clean_db) == 0, timeout=30, message="the producer's session gone")
    jobs = fetch(clean_db, "SELECT id, unique_key FROM pgqueue.all_jobs")
    rows = fetch(clean_db, "SELECT key FROM fault_outbox")
    if commit:
        assert jobs == [(job, key)] and rows == [(key,)]
    else:
        assert jobs == [] and rows == []
        # Nothing half-done holds the unique key: the same job enqueues afresh.
        with psycopg.connect(clean_db) as conn:
            again = pgqueue.enqueue(conn, "outbox.send", {"key": key}, queue="outbox",
                                    unique_key=key)
        assert again != job
        assert fetch(clean_db, "SELECT id FROM pgqueue.jobs") == [(again,)]
    print(f"\n[producer faults] commit={commit} jobs_left={1 if commit else 0}")
