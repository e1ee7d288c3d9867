"""A real PgBouncer in front of the test server, for tests and benchmarks.

:func:`start_pgbouncer` writes an ini, a userlist and log files under a temp
dir, starts Debian's ``pgbouncer`` on a free loopback port (as the ``postgres``
OS user when run as root: PgBouncer refuses to run as root), waits until it
answers and returns a :class:`PgBouncer`. Every database of the target server
is reachable through it (``* =`` in ``[databases]``); :meth:`PgBouncer.dsn`
turns a direct DSN into the same one through the pooler. :meth:`PgBouncer.stop`
ends the process and removes the dir.

:func:`find_pgbouncer` returns the binary, or None when it is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

__all__ = ["PgBouncer", "find_pgbouncer", "pgbouncer", "start_pgbouncer"]

_CANDIDATES = ("pgbouncer", "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
_OS_USER = "postgres"


def find_pgbouncer() -> str | None:
    """The pgbouncer binary's path, or None when it is not installed."""
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PgBouncer:
    """A running PgBouncer (``pool_mode`` ``transaction`` or ``session``)."""

    def __init__(self, proc: subprocess.Popen[bytes], directory: Path, port: int,
                 pool_mode: str) -> None:
        self.proc = proc
        self.directory = directory
        self.port = port
        self.pool_mode = pool_mode

    def dsn(self, direct: str) -> str:
        """``direct`` (a DSN of the target server) through this PgBouncer."""
        params: dict[str, Any] = conninfo.conninfo_to_dict(direct)
        params.update(host="127.0.0.1", port=str(self.port))
        params.pop("hostaddr", None)
        return conninfo.make_conninfo(**params)

    @property
    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _ini(server: dict[str, Any], directory: Path, port: int, pool_mode: str,
         pool_size: int) -> str:
    target = {key: server[key] for key in ("host", "port", "user", "password") if server.get(key)}
    target.setdefault("host", "127.0.0.1")
    target.setdefault("port", "5432")
    line = " ".join(f"{key}={_quote(str(value))}" for key, value in target.items())
    return "\n".join([
        "[databases]",
        f"* = {line}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {directory / 'userlist.txt'}",
        f"pidfile = {directory / 'pgbouncer.pid'}",
        f"logfile = {directory / 'pgbouncer.log'}",
        f"pool_mode = {pool_mode}",
        f"default_pool_size = {pool_size}",
        f"max_db_connections = {pool_size}",
        "max_client_conn = 500",
        "server_login_retry = 1",
        "ignore_startup_parameters = extra_float_digits",
        "",
    ])


def start_pgbouncer(server_dsn: str, *, pool_mode: str = "transaction", pool_size: int = 10,
                    timeout: float = 30.0) -> PgBouncer:
    """Start a PgBouncer in front of ``server_dsn``'s server; raise RuntimeError when
    it is not installed or does not answer within ``timeout`` seconds.

    ``pool_size`` caps its server connections per database (each test database
    has its own pool); in session mode it is also how many clients a database
    can have at once.
    """
    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
    if pool_mode not in ("transaction", "session"):
        raise ValueError(f"pool_mode must be transaction or session, got {pool_mode!r}")
    server = conninfo.conninfo_to_dict(server_dsn)
    user = str(server.get("user") or os.environ.get("PGUSER") or "postgres")
    server["user"] = user
    directory = Path(tempfile.mkdtemp(prefix="pgqueue-pgbouncer-"))
    as_root = os.geteuid() == 0
    command = [binary]
    if as_root:
        import pwd

        try:
            account = pwd.getpwnam(_OS_USER)
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"pgbouncer refuses to run as root and there is no "
                               f"{_OS_USER!r} OS user to run it as") from None
        os.chown(directory, account.pw_uid, account.pw_gid)
        command += ["-u", _OS_USER]
    port = _free_port()
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(_ini(server, directory, port, pool_mode, pool_size))
    for path in directory.iterdir():
        path.chmod(0o644)
    proc = subprocess.Popen([*command, str(ini)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = PgBouncer(proc, directory, port, pool_mode)
    try:
        _wait_ready(bouncer, server_dsn, timeout)
    except BaseException:
        log = bouncer.log
        bouncer.stop()
        raise RuntimeError(f"pgbouncer did not start on port {port}: {log[-2000:]}") from None
    return bouncer


def _wait_ready(bouncer: PgBouncer, server_dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    dsn = bouncer.dsn(server_dsn)
    while True:
        if bouncer.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {bouncer.proc.returncode}")
        try:
            with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def pgbouncer(server_dsn: str, **options: Any) -> Iterator[PgBouncer]:
    """:func:`start_pgbouncer`, stopped at exit."""
    bouncer = start_pgbouncer(server_dsn, **options)
    try:
        yield bouncer
    finally:
        bouncer.stop()
