"""``pgqueue demo`` and its embedded PostgreSQL, run for real.

The embedded server must start, answer, and leave nothing behind (no process,
no open port, no data folder) however its ``with`` block ends. The demo runs as
a subprocess, once against a fresh database and once on the embedded server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from pgqueue import DatabaseUnavailableError
from pgqueue.demo import embedded as _embedded
from pgqueue.demo import run_demo
from pgqueue.demo.embedded import EmbeddedServer, embedded_postgres, find_system_bindir
from tests.support import wait_until

AVAILABLE = {
    "pgserver": importlib.util.find_spec("pgserver") is not None,
    "system": find_system_bindir() is not None,
}
TOTALS = re.compile(
    r"Totals for the (\d+) demo jobs: (\d+) succeeded, (\d+) failed for good, (\d+) retries"
)
FOLDER = re.compile(r" in (\S*pgqueue-embedded-\S+)")


def require(method: str) -> None:
    if not AVAILABLE[method]:
        pytest.skip(f"embedded method {method!r} is not available here")


def postmaster_pid(server: EmbeddedServer) -> int:
    return int((server.folder / "data" / "postmaster.pid").read_text().split()[0])


def process_gone(pid: int, within_seconds: float = 10) -> bool:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def port_closed(dsn: str) -> bool:
    params = conninfo.conninfo_to_dict(dsn)
    host, port = str(params.get("host", "")), params.get("port")
    if not port or host.startswith("/"):
        return True  # a unix socket server: the socket went with the folder
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


def demo_env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PGQUEUE_DSN", "DATABASE_URL")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def run_cli(*args: str, env: dict[str, str],
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def stats_header(text: str) -> list[str]:
    """The column names of the queue_stats table in ``text`` (demo output or README)."""
    lines = text.splitlines()
    return lines[lines.index("pgqueue.queue_stats:") + 1].split()


def stats_rows(stdout: str) -> dict[str, dict[str, str]]:
    """The queue_stats table the demo printed, by queue."""
    lines = stdout.splitlines()
    start = lines.index("pgqueue.queue_stats:") + 1
    headers = lines[start].split()
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = dict(zip(headers, cells, strict=True))
    return rows


def history_totals(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT state::text, count(*), sum(attempt - 1) FROM pgqueue.finished_jobs "
            "GROUP BY 1"
        ).fetchall()
        live = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
    totals: dict[str, int] = {state: int(n) for state, n, _ in rows}
    totals["retries"] = sum(int(r or 0) for _, _, r in rows)
    totals["live"] = int(live[0]) if live else -1
    return totals


def check_demo_output(stdout: str, jobs: int) -> tuple[int, int, int]:
    match = TOTALS.search(stdout)
    assert match, stdout
    total, succeeded, failed, retries = map(int, match.groups())
    assert total == jobs
    assert succeeded + failed == jobs
    rows = stats_rows(stdout)
    assert {"email", "payment", "webhook"} <= set(rows)
    demo_rows = [rows[q] for q in ("email", "payment", "webhook")]
    assert sum(int(r["succeeded_1h"]) for r in demo_rows) == succeeded
    assert sum(int(r["failed"]) for r in demo_rows) == failed
    for row in demo_rows:
        assert row["ready"] == row["scheduled"] == row["running"] == "0"
    return succeeded, failed, retries


# --- the embedded server -------------------------------------------------------------


@pytest.mark.parametrize("method", _embedded.METHODS)
def test_embedded_server_starts_answers_and_leaves_nothing(method: str) -> None:
    require(method)
    with embedded_postgres((method,)) as server:
        assert server.description.startswith("embedded PostgreSQL ")
        assert str(server.folder) in server.description
        with psycopg.connect(server.dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
            assert row and row[0] >= 120000
        pid = postmaster_pid(server)
    assert not server.folder.exists()
    assert process_gone(pid)
    assert port_closed(server.dsn)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=2).close()


def test_system_server_listens_on_loopback_only() -> None:
    require("system")
    with embedded_postgres(("system",)) as server, psycopg.connect(server.dsn) as conn:
        row = conn.execute("SELECT current_setting('listen_addresses')").fetchone()
        assert row == ("127.0.0.1",)
        assert conninfo.conninfo_to_dict(server.dsn)["host"] == "127.0.0.1"


def test_system_server_takes_the_settings_asked_for() -> None:
    require("system")
    with embedded_postgres(("system",), settings={"max_connections": "150"}) as server, \
            psycopg.connect(server.dsn) as conn:
        assert conn.execute("SHOW max_connections").fetchone() == ("150",)
        # The embedded defaults the settings do not name stay.
        assert conn.execute("SHOW fsync").fetchone() == ("off",)


def test_embedded_server_is_removed_when_the_block_raises() -> None:
    require("system")
    with pytest.raises(RuntimeError, match="boom"), \
            embedded_postgres(("system",)) as server:
        pid = postmaster_pid(server)
        raise RuntimeError("boom")
    assert not server.folder.exists()
    assert process_gone(pid)


def _stop_leftover_server(data: Path) -> None:
    """Stop a server left running in ``data``: pg_ctl as its owner, else kill its postmaster."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    bindir = find_system_bindir()
    if bindir is not None:
        owner = data.stat().st_uid
        as_owner: dict[str, Any] = {}
        if os.geteuid() == 0 and owner != 0:
            as_owner = {"user": owner, "group": data.stat().st_gid, "extra_groups": []}
        subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                        "-t", "30", "stop"], cwd=data.parent, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60, check=False, **as_owner)
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
        # Only the postmaster of this data directory (its working directory).
        if os.readlink(f"/proc/{pid}/cwd") != str(data):
            return
    except (OSError, ValueError, IndexError):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if process_gone(pid, within_seconds=10):
            return


@pytest.fixture
def embedded_tmpdir() -> Iterator[Path]:
    """A TMPDIR of this test's own for an embedded server started by a subprocess.

    Whatever the test did, any server left running in it is stopped and the
    folder is removed. Its own folder, so that only servers this test started
    are touched; reachable by the server's unprivileged user when we are root.
    """
    tmpdir = Path(tempfile.mkdtemp(prefix="pgqueue-test-tmpdir-"))
    tmpdir.chmod(0o755)
    try:
        yield tmpdir
    finally:
        for folder in tmpdir.glob("pgqueue-embedded-*"):
            _stop_leftover_server(folder / "data")
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_embedded_server_is_removed_on_ctrl_c(embedded_tmpdir: Path) -> None:
    require("system")
    started = embedded_tmpdir / "started.txt"
    script = textwrap.dedent("""
        import faulthandler, signal, sys, time
        from pathlib import Path
        from pgqueue.demo.embedded import embedded_postgres
        faulthandler.register(signal.SIGUSR1)  # where it is, should the stop hang
        with embedded_postgres(("system",)) as server:
            pid = (server.folder / "data" / "postmaster.pid").read_text().split()[0]
            Path(sys.argv[1] + ".part").write_text(f"{server.folder} {pid}")
            Path(sys.argv[1] + ".part").replace(sys.argv[1])
            time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(started)],
                            env={**os.environ, "TMPDIR": str(embedded_tmpdir)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: started.exists() or proc.poll() is not None, timeout=180,
                   message="the embedded server to start")
        assert started.exists(), proc.communicate(timeout=60)[1]
        folder, pid = started.read_text().split()
        assert Path(folder).parent == embedded_tmpdir
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)  # failure path only: let faulthandler write the stacks
            proc.kill()
            raise AssertionError("the embedded server was not stopped within 300 s of "
                                 f"Ctrl-C; its stacks:\n{proc.communicate(timeout=60)[1]}"
                                 ) from None
    finally:
        proc.kill()
        proc.wait(60)
    assert "KeyboardInterrupt" in stderr
    assert not Path(folder).exists()
    assert process_gone(int(pid))


def test_no_way_to_start_a_server_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_embedded, "find_system_bindir", lambda: None)
    with pytest.raises(DatabaseUnavailableError) as info, embedded_postgres(("system",)):
        pass
    message = str(info.value)
    assert "pgqueue[embedded]" in message
    assert "PGQUEUE_DSN" in message
    assert "no initdb" in message


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="methods"):
        embedded_postgres(("docker",))


# --- the demo ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"jobs": 0}, {"failure_rate": 1.5}, {"concurrency": 0}])
def test_demo_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        run_demo("postgresql://unused", out=lambda _: None, **kwargs)


def test_demo_cli_on_a_database_prints_queue_stats_and_totals(empty_dsn: str) -> None:
    result = run_cli("demo", "--jobs", "300", env=demo_env(PGQUEUE_DSN=empty_dsn))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embedded" not in result.stdout
    assert f"Database: {empty_dsn}\n" in result.stdout
    succeeded, failed, retries = check_demo_output(result.stdout, 300)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert stats_header(result.stdout) == stats_header(readme)  # the README's sample is true
    db = history_totals(empty_dsn)
    assert db["live"] == 0
    assert db.get("succeeded", 0) == succeeded
    assert db.get("failed", 0) == failed
    assert db["retries"] == retries
    assert retries > 0  # 10 % of attempts fail: 300 jobs without a retry is ~1e-14


def test_demo_cli_without_a_database_runs_on_an_embedded_server() -> None:
    if not any(AVAILABLE.values()):
        pytest.skip("neither pgserver nor a system initdb is available")
    result = run_cli("demo", "--jobs", "200", env=demo_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No database configured" in result.stdout
    assert "embedded PostgreSQL" in result.stdout
    check_demo_output(result.stdout, 200)
    folder = FOLDER.search(result.stdout)
    assert folder, result.stdout
    assert not Path(folder[1]).exists()


def test_demo_ctrl_c_stops_gracefully_and_removes_the_server() -> None:
    if not any(AVAILABLE.values()):
        pytest.skip("neither pgserver nor a system initdb is available")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgqueue", "demo", "--jobs", "20000", "--failure-rate", "0"],
        env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in _lines(proc.stdout):
            lines.append(line)
            if "jobs finished" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    stdout = "".join(lines) + rest
    assert proc.returncode == 130, stdout + stderr
    assert "Interrupted:" in stdout
    assert "pgqueue.queue_stats:" in stdout
    folder = FOLDER.search(stdout)
    assert folder, stdout
    assert not Path(folder[1]).exists()


def _lines(stream: Any) -> Iterator[str]:
    while True:
        line = stream.readline()
        if not line:
            return
        yield line
