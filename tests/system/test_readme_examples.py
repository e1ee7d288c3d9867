"""The README's first example runs as written, against a fresh database.

Runnable examples are marked in the README by an HTML comment right before
their fenced block: ``<!-- test: PATH -->`` saves the block as PATH in an empty
folder, ``<!-- test: sh -->`` runs the block's commands in order, from that
folder, with ``DATABASE_URL`` naming the database. ``pgqueue worker`` runs
until every job has finished, then gets SIGTERM and must exit 0.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.support import scalar, wait_until

README = Path(__file__).resolve().parents[2] / "README.md"
MARKED_BLOCK = re.compile(r"^<!-- test: (?P<target>\S+) -->\n```[a-z]*\n(?P<body>.*?)^```$",
                          re.MULTILINE | re.DOTALL)


def marked_blocks() -> list[tuple[str, str]]:
    """(target, text) of each marked block, in README order."""
    return [(m["target"], m["body"]) for m in MARKED_BLOCK.finditer(README.read_text())]


def commands(script: str) -> list[list[str]]:
    """The commands of an sh block, one a line, comments dropped."""
    return [shlex.split(line, comments=True) for line in script.splitlines()
            if shlex.split(line, comments=True)]


def argv(words: list[str]) -> list[str]:
    """``pgqueue`` and ``python`` as this interpreter runs them."""
    if words[0] == "pgqueue":
        return [sys.executable, "-m", "pgqueue", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    return words


def test_the_readme_marks_the_first_job_example() -> None:
    targets = [target for target, _ in marked_blocks()]
    assert targets[:3] == ["myapp/jobs.py", "producer.py", "sh"]


def test_the_first_job_example_runs_as_written(empty_dsn: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGQUEUE_")}
    env.update(DATABASE_URL=empty_dsn, PGQUEUE_METRICS_PORT="0", PYTHONUNBUFFERED="1")
    ran: list[str] = []
    for target, body in marked_blocks():
        if target != "sh":
            path = tmp_path / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            continue
        for words in commands(body):
            ran.append(words[0] + " " + (words[1] if len(words) > 1 else ""))
            if words[:2] == ["pgqueue", "worker"]:
                run_worker_until_done(argv(words), tmp_path, env, empty_dsn)
                continue
            done = subprocess.run(argv(words), cwd=tmp_path, env=env, text=True,
                                  capture_output=True, timeout=120, check=False)
            assert done.returncode == 0, f"{shlex.join(words)}:\n{done.stdout}{done.stderr}"
    assert ran == ["pgqueue migrate", "python producer.py", "pgqueue worker"]
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT email FROM orders WHERE id = 42").fetchall() == \
            [("a@example.com",)]
        assert conn.execute("SELECT task::text, queue::text, state::text, args "
                            "FROM pgqueue.finished_jobs").fetchall() == \
            [("send_receipt", "email", "succeeded", {"order_id": 42})]


def run_worker_until_done(command: list[str], folder: Path, env: dict[str, str],
                          dsn: str) -> None:
    """Run the worker until no job is live and one has finished; stop it with SIGTERM."""
    log = folder / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(command, cwd=folder, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: worker.poll() is not None or scalar(
                dsn, "SELECT (SELECT count(*) FROM pgqueue.jobs) = 0 "
                     "AND (SELECT count(*) FROM pgqueue.finished_jobs) > 0"),
                timeout=120, message="the README's job to finish")
            assert worker.poll() is None, log.read_text()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0, log.read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert "receipt for order 42 sent" in log.read_text()
