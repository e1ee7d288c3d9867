"""``pgqueue batch``: create from CSV, status with a progress bar, list, export."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import Result

import pgqueue
from pgqueue.cli import main
from tests.support import cli_runner, running_worker, scalar, wait_until


@pytest.fixture
def batch_db(clean_db: str) -> Iterator[str]:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.job_batches")
    yield clean_db
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("TRUNCATE pgqueue.jobs, pgqueue.finished_jobs, pgqueue.job_batches")


def cli(dsn: str, *args: str, stdin: str | None = None) -> Result:
    return cli_runner().invoke(main, [*args, "--dsn", dsn], input=stdin, catch_exceptions=False)


OFFERS = """offer_id,reason,note
101,price change,plain
102,"duplicate, listed twice",
103,customer left,ünïcode ✓
104,price change,plain
105,expired,
106,price change,last
"""


def offers_registry(gate: threading.Event | None = None) -> pgqueue.Registry:
    tasks = pgqueue.Registry()

    @tasks.task(name="offers.cancel", queue="offers")
    def cancel_offer(offer_id: str, reason: str, note: str) -> dict[str, Any]:
        if gate is not None:
            gate.wait(30)
        if int(offer_id) % 3 == 0:
            raise pgqueue.PermanentError(f"offer {offer_id} is already sold")
        return {"cancelled": int(offer_id), "reason": reason}

    @tasks.task(name="offers.report", queue="offers")
    def report(batch_id: int) -> None:
        return None

    return tasks


def test_create_follow_and_export_a_small_batch(batch_db: str, tmp_path: Path) -> None:
    source = tmp_path / "offers.csv"
    source.write_text(OFFERS, encoding="utf-8")
    created = cli(batch_db, "batch", "create", "offers.cancel", "--from-csv", str(source),
                  "--queue", "offers", "--callback", "offers.report")
    assert created.exit_code == 0, created.output
    batch_id = int(created.stdout.strip())
    assert f"batch {batch_id}: 6 offers.cancel jobs on queue offers" in created.stderr
    ids = [row[0] for row in psycopg.connect(batch_db).execute(
        "SELECT id FROM pgqueue.jobs WHERE batch_id = %s ORDER BY id", [batch_id])]
    assert len(ids) == 6
    assert scalar(batch_db, "SELECT args FROM pgqueue.jobs WHERE id = %s", [ids[1]]) == {
        "offer_id": "102", "reason": "duplicate, listed twice", "note": ""}
    with psycopg.connect(batch_db, autocommit=True) as conn:
        pgqueue.cancel(conn, ids[3], reason="kept after all")  # offer 104

    status = cli(batch_db, "batch", "status", str(batch_id))
    assert status.exit_code == 0
    assert f"batch {batch_id} (offers.csv): running" in status.stdout
    assert "[#####.........................]  17%  1 of 6 done" in status.stdout

    gate = threading.Event()
    with running_worker(batch_db, offers_registry(gate), queues=["offers"]):
        threading.Timer(1.0, gate.set).start()
        watched = cli(batch_db, "batch", "status", str(batch_id), "--watch", "--interval", "0.2")
        wait_until(lambda: scalar(batch_db, "SELECT count(*) FROM pgqueue.finished_jobs "
                                            "WHERE task = 'offers.report'"),
                   message="the callback")
    assert watched.exit_code == 0
    assert watched.stdout.count("batch ") >= 2, watched.stdout  # refreshed at least once
    assert "[##############################] 100%  6 of 6 done" in watched.stdout
    assert "succeeded 3  failed 2  cancelled 1  pending 0 (running 0)" in watched.stdout
    assert "callback: offers.report (job " in watched.stdout

    as_json = json.loads(cli(batch_db, "batch", "status", str(batch_id), "--json").stdout)
    assert {k: as_json[k] for k in ("total", "succeeded", "failed", "cancelled", "pending",
                                    "done", "name")} == {
        "total": 6, "succeeded": 3, "failed": 2, "cancelled": 1, "pending": 0, "done": 6,
        "name": "offers.csv"}
    assert as_json["finished_at"] is not None

    expected = {
        101: ("succeeded", 1, {"cancelled": 101, "reason": "price change"}, ""),
        102: ("failed", 1, None, "PermanentError: offer 102 is already sold"),
        103: ("succeeded", 1, {"cancelled": 103, "reason": "customer left"}, ""),
        104: ("cancelled", 0, None, "kept after all"),
        105: ("failed", 1, None, "PermanentError: offer 105 is already sold"),
        106: ("succeeded", 1, {"cancelled": 106, "reason": "price change"}, ""),
    }
    source_rows = list(csv.DictReader(io.StringIO(OFFERS)))

    exported = cli(batch_db, "batch", "export", str(batch_id), "--format", "csv")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert list(rows[0]) == ["id", "task", "args.note", "args.offer_id", "args.reason",
                             "state", "attempts", "result", "error", "duration_seconds",
                             "finished_at"]
    assert [int(r["id"]) for r in rows] == ids
    for row, given in zip(rows, source_rows, strict=True):
        offer = int(row["args.offer_id"])
        state, attempts, result, error = expected[offer]
        assert (row["task"], row["args.reason"], row["args.note"]) == \
            ("offers.cancel", given["reason"], given["note"])
        assert (row["state"], int(row["attempts"])) == (state, attempts)
        assert (json.loads(row["result"]) if row["result"] else None) == result
        assert row["error"].startswith(error) if error else row["error"] == ""
        assert datetime.fromisoformat(row["finished_at"]).tzinfo is not None
        if state == "cancelled":
            assert row["duration_seconds"] == ""  # never started
        else:
            assert 0 <= float(row["duration_seconds"]) < 30

    output = tmp_path / "out.jsonl"
    exported = cli(batch_db, "batch", "export", str(batch_id), "--format", "jsonl",
                   "--output", str(output))
    assert exported.exit_code == 0, exported.output
    assert f"exported 6 jobs of batch {batch_id} to {output}" in exported.stderr
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ids
    for line, given in zip(lines, source_rows, strict=True):
        state, attempts, result, error = expected[int(given["offer_id"])]
        assert line["args"] == given and line["task"] == "offers.cancel"
        assert (line["state"], line["attempts"], line["result"]) == (state, attempts, result)
        assert (line["error"] or "").startswith(error)
        assert set(line) == {"id", "task", "args", "state", "attempts", "result", "error",
                             "duration_seconds", "finished_at"}

    listed = cli(batch_db, "batch", "list")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0].split()[:4] == ["ID", "NAME", "TOTAL", "SUCCEEDED"]
    assert listed.stdout.splitlines()[1].split()[:6] == [str(batch_id), "offers.csv", "6", "3",
                                                          "2", "1"]
    listed_json = json.loads(cli(batch_db, "batch", "list", "--json").stdout)
    assert [b["id"] for b in listed_json["batches"]] == [batch_id]


def test_unknown_batches_and_bad_files(batch_db: str, tmp_path: Path) -> None:
    for command in (["status", "999999"], ["export", "999999", "--format", "csv"]):
        result = cli(batch_db, "batch", *command)
        assert result.exit_code == 3, result.output
        assert "no batch has id 999999" in result.stderr

    cases = {
        "a,b\n1,2\n3\n": "CSV line 3: has 2 columns in its header but not in this row",
        "": "the CSV file is empty",
        "a,a\n1,2\n": "must name each column once",
        "a,\n1,2\n": "must name each column once",
    }
    for text, message in cases.items():
        source = tmp_path / "bad.csv"
        source.write_text(text, encoding="utf-8")
        result = cli(batch_db, "batch", "create", "t", "--from-csv", str(source))
        assert result.exit_code == 2, result.output
        assert message in result.stderr
    source.write_text("a\n1\n", encoding="utf-8")
    result = cli(batch_db, "batch", "create", "bad task!", "--from-csv", str(source))
    assert result.exit_code == 2 and "CSV line 2: task 'bad task!'" in result.stderr
    result = cli(batch_db, "batch", "create", "t", "--from-csv", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2
    # Nothing of the refused files was committed.
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.job_batches") == 0
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.jobs") == 0

    result = cli(batch_db, "batch", "create", "t", "--from-csv", "-", "--json",
                 stdin="\ufeffn\n1\n2\n")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert (made["jobs"], made["name"]) == (2, "stdin")
    assert scalar(batch_db, "SELECT array_agg(args->>'n' ORDER BY id) FROM pgqueue.jobs") == \
        ["1", "2"]


def test_large_batch_created_in_one_transaction_and_exported_in_full(
        batch_db: str, tmp_path: Path) -> None:
    rows = 50_000
    source = tmp_path / "big.csv"
    with source.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["offer_id", "shop"])
        writer.writerows([n, f"shop-{n % 7}"] for n in range(rows))
    created = cli(batch_db, "batch", "create", "offers.cancel", "--from-csv", str(source),
                  "--name", "big one")
    assert created.exit_code == 0, created.output
    batch_id = int(created.stdout)
    assert scalar(batch_db, "SELECT count(*) FROM pgqueue.jobs WHERE batch_id = %s",
                  [batch_id]) == rows
    csv_out, jsonl_out = tmp_path / "big-out.csv", tmp_path / "big-out.jsonl"
    for fmt, path in (("csv", csv_out), ("jsonl", jsonl_out)):
        result = cli(batch_db, "batch", "export", str(batch_id), "--format", fmt,
                     "--output", str(path))
        assert result.exit_code == 0, result.output
    with csv_out.open(encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == rows
    assert exported[-1]["args.offer_id"] == str(rows - 1) and exported[-1]["state"] == "queued"
    with jsonl_out.open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == rows
