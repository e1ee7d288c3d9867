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

This module chooses and starts the server and owns its temporary folder; the
PostgreSQL tools it runs (initdb, pg_ctl, the last-resort kill) are in
:mod:`pgqueue.demo.embedded_pgctl`.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatabaseUnavailableError
from .embedded_pgctl import (
    COMMAND_TIMEOUT_SECONDS,
    STOP_TIMEOUT_SECONDS,
    UNPRIVILEGED_USERS,
    CommandFailed,
    child_env,
    configure,
    copy_bundled,
    is_root,
    kill_postmaster,
    log_tail,
    major_version,
    one_line,
    run,
    run_as_user,
    stop,
    version_key,
)
from .embedded_pgctl import CommandFailed as _CommandFailed  # noqa: F401 (old name)
from .embedded_pgctl import RunAs as _RunAs  # noqa: F401 (old name)
from .embedded_pgctl import child_env as _child_env  # noqa: F401 (old name)
from .embedded_pgctl import configure as _configure  # noqa: F401 (old name)
from .embedded_pgctl import kill_postmaster as _kill_postmaster  # noqa: F401 (old name)
from .embedded_pgctl import run as _run  # noqa: F401 (old name)
from .embedded_pgctl import run_as_user as _run_as  # noqa: F401 (old name)

__all__ = [
    "COMMAND_TIMEOUT_SECONDS", "METHODS", "START_TIMEOUT_SECONDS", "STOP_TIMEOUT_SECONDS",
    "UNPRIVILEGED_USERS", "EmbeddedServer", "embedded_postgres", "find_system_bindir",
]

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("pgserver", "system")
"""The ways to start a server, in the order :func:`embedded_postgres` tries them."""

START_TIMEOUT_SECONDS = 60

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


def embedded_postgres(methods: Sequence[str] = METHODS, *,
                      settings: Mapping[str, str] | None = None
                      ) -> contextlib.AbstractContextManager[EmbeddedServer]:
    """Start a throwaway PostgreSQL; stop it and delete its data at exit.

    Args:
        methods: which of :data:`METHODS` to try, in order.
        settings: server settings written to its ``postgresql.conf`` after the
            embedded defaults (for example ``{"max_connections": "400"}``); a
            method that cannot write them (pgserver run by a user other than
            root starts its own server) is passed over.

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
    return _embedded_postgres(tuple(methods), dict(settings or {}))


@contextlib.contextmanager
def _embedded_postgres(methods: tuple[str, ...], settings: dict[str, str]
                       ) -> Iterator[EmbeddedServer]:
    reasons: list[str] = []
    for method in methods:
        start = _START[method]
        folder = Path(tempfile.mkdtemp(prefix="pgqueue-embedded-"))
        try:
            with start(folder, reasons, settings) as server:
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
def _start_pgserver(folder: Path, reasons: list[str], settings: dict[str, str]
                    ) -> Iterator[EmbeddedServer | None]:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        reasons.append("pgserver: not installed")
        yield None
        return
    if is_root():
        # pgserver's own start-up would add a system user and chmod parent folders.
        bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if not (bindir / "initdb").is_file():
            reasons.append(f"pgserver: no bundled binaries found in {bindir}")
            yield None
            return
        with _start_from_bindir(folder, bindir, "pgserver", reasons, settings,
                                copy=True) as server:
            yield server
        return
    if settings:
        reasons.append("pgserver: it starts its own server, so the settings asked for "
                       f"({', '.join(settings)}) cannot be written")
        yield None
        return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

    data = folder / "data"
    try:
        pg: Any = pgserver.get_server(  # type: ignore[attr-defined]
            data, cleanup_mode="delete")
    except Exception as exc:  # pgserver raises whatever its subprocesses raise
        reasons.append(f"pgserver: {one_line(exc)}")
        kill_postmaster(data)
        yield None
        return
    try:
        yield EmbeddedServer(
            dsn=pg.get_uri(),
            description=f"embedded PostgreSQL {major_version(data)} (pgserver) in {folder}",
            folder=folder,
        )
    finally:
        try:
            pg.cleanup()
        except Exception as exc:
            logger.warning("pgserver cleanup failed", extra={"error": one_line(exc)})
        kill_postmaster(data)


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
        candidates.extend(Path(p) for p in sorted(glob.glob(pattern), key=version_key,
                                                  reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


@contextlib.contextmanager
def _start_system(folder: Path, reasons: list[str], settings: dict[str, str]
                  ) -> Iterator[EmbeddedServer | None]:
    bindir = find_system_bindir()
    if bindir is None:
        reasons.append("system: no initdb/pg_ctl found (pg_config, usual locations, PATH)")
        yield None
        return
    with _start_from_bindir(folder, bindir, f"system binaries in {bindir}", reasons,
                            settings, copy=False) as server:
        yield server


_START = {"pgserver": _start_pgserver, "system": _start_system}


# --- a server from a folder of binaries (the tools: embedded_pgctl) ----------------------


@contextlib.contextmanager
def _start_from_bindir(folder: Path, bindir: Path, source: str, reasons: list[str],
                       settings: dict[str, str], *, copy: bool
                       ) -> Iterator[EmbeddedServer | None]:
    label = source.split(maxsplit=1)[0]
    try:
        run_as = run_as_user()
    except DatabaseUnavailableError as exc:
        reasons.append(f"{label}: {exc}")
        yield None
        return
    if run_as.user is not None:
        os.chown(folder, run_as.uid, run_as.gid)
        if copy:
            bindir = copy_bundled(bindir, folder)

    data = folder / "data"
    env = child_env(folder)
    try:
        run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"], run_as, folder, env)
        port = configure(data, folder, settings)
        run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
             "-w", "-t", str(START_TIMEOUT_SECONDS), "start"], run_as, folder, env)
    except CommandFailed as exc:
        reasons.append(f"{label}: {exc}{log_tail(folder / 'server.log')}")
        stop(bindir, data, run_as, folder, env)
        yield None
        return
    except BaseException:
        stop(bindir, data, run_as, folder, env)
        raise

    who = f", running as user {run_as.user!r}" if run_as.user else ""
    try:
        yield EmbeddedServer(
            dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres",
            description=f"embedded PostgreSQL {major_version(data)} ({source}{who}) "
            f"in {folder}",
            folder=folder,
        )
    finally:
        stop(bindir, data, run_as, folder, env)
