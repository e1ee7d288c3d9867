"""A throwaway PostgreSQL server for ``pgqueue demo`` when no database is configured.

Invariant: :func:`embedded_postgres` stops the server it started and deletes
its temporary folder when the ``with`` block ends, however it ends (return,
exception, Ctrl-C: the server runs in its own session, so the terminal's
SIGINT reaches only us and we stop it in order). Nothing it starts outlives
it. Outside its temporary folder it writes nothing of its own (pgserver keeps
an empty lock folder in the user's runtime directory).

Two ways to get a server, tried in order:

``pgserver``
    The optional ``pgserver`` package (``pip install '.[embedded]'``), which
    bundles PostgreSQL binaries. As an ordinary user its own start-up is used.
    As root it is not: PostgreSQL refuses to run as root, and pgserver's answer
    is to create a system user with ``useradd`` and to widen the permissions of
    every parent folder of its data and binaries (up to ``/``). Instead, as
    root, pgserver's bundled binaries are copied into the temporary folder and
    run as an unprivileged user, exactly like the system binaries below.

``system``
    ``initdb`` and ``pg_ctl`` from a local PostgreSQL installation, found with
    ``pg_config --bindir``, then in the usual Debian, RPM, Homebrew and source
    locations, then on ``PATH``. As root they run as the ``postgres`` user
    (else ``nobody``).

Servers we start ourselves listen on a free TCP port of 127.0.0.1 only and on a
unix socket inside the temporary folder, trust local connections, and run with
``fsync=off``: they hold nothing worth keeping.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DatabaseUnavailableError

__all__ = ["METHODS", "EmbeddedServer", "embedded_postgres", "find_system_bindir"]

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("pgserver", "system")
"""The ways to start a server, in the order :func:`embedded_postgres` tries them."""

UNPRIVILEGED_USERS: tuple[str, ...] = ("postgres", "nobody")
"""OS users the server runs as when we are root, first existing one wins."""

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20
COMMAND_TIMEOUT_SECONDS = 120

_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}

# Where PostgreSQL's binaries usually live; highest version first within a pattern.
_BINDIR_PATTERNS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # PGDG RPMs
    "/opt/homebrew/opt/postgresql*/bin",  # Homebrew, Apple silicon
    "/usr/local/opt/postgresql*/bin",  # Homebrew, Intel
    "/usr/local/pgsql/bin",  # built from source
    "/usr/bin",  # distribution packages (Fedora, Arch, Alpine)
)


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running throwaway server: where to connect and how it was started."""

    dsn: str
    description: str
    folder: Path
    """The temporary folder holding the data directory; deleted at exit."""


def embedded_postgres(methods: Sequence[str] = METHODS) -> contextlib.AbstractContextManager[
    EmbeddedServer
]:
    """Start a throwaway PostgreSQL; stop it and delete its data at exit.

    Args:
        methods: which of :data:`METHODS` to try, in order.

    Raises:
        DatabaseUnavailableError: no method could start a server; the message
            says why each one failed and what to do.

    Example::

        with embedded_postgres() as server:
            print(server.description)
            with psycopg.connect(server.dsn) as conn: ...
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods!r}")
    return _embedded_postgres(tuple(methods))


@contextlib.contextmanager
def _embedded_postgres(methods: tuple[str, ...]) -> Iterator[EmbeddedServer]:
    reasons: list[str] = []
    for method in methods:
        start = _START[method]
        folder = Path(tempfile.mkdtemp(prefix="pgqueue-embedded-"))
        try:
            with start(folder, reasons) as server:
                if server is not None:
                    yield server
                    return
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    raise DatabaseUnavailableError(
        "no database configured and no embedded PostgreSQL could be started ("
        + "; ".join(reasons)
        + "). Install pgqueue[embedded] (from a checkout: pip install '.[embedded]'), "
        "or set PGQUEUE_DSN to a PostgreSQL connection string"
    )


# --- pgserver ----------------------------------------------------------------------


@contextlib.contextmanager
def _start_pgserver(folder: Path, reasons: list[str]) -> Iterator[EmbeddedServer | None]:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        reasons.append("pgserver: not installed")
        yield None
        return
    if _is_root():
        # pgserver's own start-up would add a system user and chmod parent folders.
        bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if not (bindir / "initdb").is_file():
            reasons.append(f"pgserver: no bundled binaries found in {bindir}")
            yield None
            return
        with _start_from_bindir(folder, bindir, "pgserver", reasons, copy=True) as server:
            yield server
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

    data = folder / "data"
    try:
        pg: Any = pgserver.get_server(  # type: ignore[attr-defined]
            data, cleanup_mode="delete")
    except Exception as exc:  # pgserver raises whatever its subprocesses raise
        reasons.append(f"pgserver: {_one_line(exc)}")
        _kill_postmaster(data)
        yield None
        return
    try:
        yield EmbeddedServer(
            dsn=pg.get_uri(),
            description=f"embedded PostgreSQL {_major_version(data)} (pgserver) in {folder}",
            folder=folder,
        )
    finally:
        try:
            pg.cleanup()
        except Exception as exc:
            logger.warning("pgserver cleanup failed", extra={"error": _one_line(exc)})
        _kill_postmaster(data)


# --- system binaries -----------------------------------------------------------------


def find_system_bindir() -> Path | None:
    """The folder of a local PostgreSQL's ``initdb`` and ``pg_ctl``, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    for pattern in _BINDIR_PATTERNS:
        candidates.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key,
                                                  reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


@contextlib.contextmanager
def _start_system(folder: Path, reasons: list[str]) -> Iterator[EmbeddedServer | None]:
    bindir = find_system_bindir()
    if bindir is None:
        reasons.append("system: no initdb/pg_ctl found (pg_config, usual locations, PATH)")
        yield None
        return
    with _start_from_bindir(folder, bindir, f"system binaries in {bindir}", reasons,
                            copy=False) as server:
        yield server


_START = {"pgserver": _start_pgserver, "system": _start_system}


# --- running initdb and pg_ctl ourselves -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RunAs:
    """Who runs the server's commands: ourselves, or an unprivileged user when root."""

    user: str | None
    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run_as() -> _RunAs:
    if not _is_root():
        return _RunAs(None, -1, -1)
    import pwd

    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(name, entry.pw_uid, entry.pw_gid)
    raise DatabaseUnavailableError(
        f"running as root and none of the users {', '.join(UNPRIVILEGED_USERS)} exists "
        "to run PostgreSQL as"
    )


@contextlib.contextmanager
def _start_from_bindir(folder: Path, bindir: Path, source: str, reasons: list[str], *,
                       copy: bool) -> Iterator[EmbeddedServer | None]:
    label = source.split(maxsplit=1)[0]
    try:
        run_as = _run_as()
    except DatabaseUnavailableError as exc:
        reasons.append(f"{label}: {exc}")
        yield None
        return
    if run_as.user is not None:
        os.chown(folder, run_as.uid, run_as.gid)
        if copy:
            bindir = _copy_bundled(bindir, folder)

    data = folder / "data"
    env = _child_env(folder)
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--no-sync"], run_as, folder, env)
        port = _configure(data, folder)
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
              "-w", "-t", str(START_TIMEOUT_SECONDS), "start"], run_as, folder, env)
    except _CommandFailed as exc:
        reasons.append(f"{label}: {exc}{_log_tail(folder / 'server.log')}")
        _stop(bindir, data, run_as, folder, env)
        yield None
        return
    except BaseException:
        _stop(bindir, data, run_as, folder, env)
        raise

    who = f", running as user {run_as.user!r}" if run_as.user else ""
    try:
        yield EmbeddedServer(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            description=f"embedded PostgreSQL {_major_version(data)} ({source}{who}) "
            f"in {folder}",
            folder=folder,
        )
    finally:
        _stop(bindir, data, run_as, folder, env)


def _copy_bundled(bindir: Path, folder: Path) -> Path:
    """Copy pgserver's binaries where an unprivileged user can run them; return bin/.

    Root's site-packages are often unreachable by other users. The copy keeps
    the layout the binaries' relative library path (RPATH) expects:
    ``<site>/pgserver/pginstall/{bin,lib,share}`` and ``<site>/pgserver.libs``.
    """
    install = bindir.parent
    package = install.parent
    site = folder / "site"
    for part in ("bin", "lib", "share"):
        shutil.copytree(install / part, site / package.name / install.name / part,
                        symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    for path in (site, *site.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o755)
    return site / package.name / install.name / "bin"


def _configure(data: Path, folder: Path) -> int:
    """Append our settings to postgresql.conf; return the TCP port chosen."""
    socket_dir = folder / "socket"
    socket_dir.mkdir()
    shutil.copystat(folder, socket_dir)
    st = folder.stat()
    os.chown(socket_dir, st.st_uid, st.st_gid)
    port = _free_port()
    settings = {**_SERVER_SETTINGS, "port": str(port), "unix_socket_directories": str(socket_dir)}
    lines = "".join(f"{key} = '{_conf_quote(value)}'\n" for key, value in settings.items())
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# pgqueue embedded server\n" + lines)
    return port


def _stop(bindir: Path, data: Path, run_as: _RunAs, folder: Path, env: dict[str, str]) -> None:
    """Stop the server if it runs; never raises."""
    if not (data / "postmaster.pid").exists():
        return
    try:
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
              "-t", str(STOP_TIMEOUT_SECONDS), "stop"], run_as, folder, env)
    except (_CommandFailed, OSError) as exc:
        logger.warning("embedded server did not stop cleanly", extra={"error": str(exc)})
    _kill_postmaster(data)


class _CommandFailed(Exception):
    pass


def _run(args: list[str], run_as: _RunAs, cwd: Path, env: dict[str, str]) -> None:
    """Run one PostgreSQL tool, in its own session so Ctrl-C reaches only us."""
    try:
        result = subprocess.run(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_SECONDS, start_new_session=True, check=False,
            **run_as.kwargs(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _CommandFailed(f"{Path(args[0]).name}: {_one_line(exc)}") from None
    if result.returncode != 0:
        output = " ".join((result.stderr or result.stdout).split())[-500:]
        raise _CommandFailed(f"{Path(args[0]).name} exited with {result.returncode}: {output}")


def _child_env(folder: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["HOME"] = str(folder)
    return env


def _kill_postmaster(data: Path) -> None:
    """Last resort after a failed stop: kill the postmaster named in postmaster.pid."""
    pid_file = data / "postmaster.pid"
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


# --- small helpers -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _conf_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")


def _major_version(data: Path) -> str:
    try:
        return (data / "PG_VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return "(unknown version)"


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def _log_tail(log: Path, lines: int = 5) -> str:
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f" [server log: {' | '.join(line.strip() for line in tail)}]" if tail else ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
