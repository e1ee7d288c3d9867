"""The PostgreSQL tools run by hand for the embedded server: initdb, pg_ctl, a kill.

Used by :mod:`pgqueue.demo.embedded` (which decides which binaries to run and
owns the temporary folder) and by the test suite's throwaway clusters. Every
command runs in its own session, so the terminal's Ctrl-C reaches only us; as
root, commands run as the first of :data:`UNPRIVILEGED_USERS` that exists.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatabaseUnavailableError

__all__ = [
    "COMMAND_TIMEOUT_SECONDS", "STOP_TIMEOUT_SECONDS", "UNPRIVILEGED_USERS", "CommandFailed",
    "RunAs", "child_env", "configure", "copy_bundled", "is_root", "kill_postmaster", "log_tail",
    "major_version", "one_line", "run", "run_as_user", "stop", "version_key",
]

logger = logging.getLogger(__name__)

UNPRIVILEGED_USERS: tuple[str, ...] = ("postgres", "nobody")
"""OS users the server runs as when we are root, first existing one wins."""

STOP_TIMEOUT_SECONDS = 20
COMMAND_TIMEOUT_SECONDS = 120

_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who runs the server's commands: ourselves, or an unprivileged user when root."""

    user: str | None
    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def is_root() -> bool:
    """Whether we run as root (PostgreSQL then refuses to run as us)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_as_user() -> RunAs:
    """Ourselves; as root, the first of :data:`UNPRIVILEGED_USERS` that exists."""
    if not is_root():
        return RunAs(None, -1, -1)
    import pwd

    for name in UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise DatabaseUnavailableError(
        f"running as root and none of the users {', '.join(UNPRIVILEGED_USERS)} exists "
        "to run PostgreSQL as"
    )


def copy_bundled(bindir: Path, folder: Path) -> Path:
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


def configure(data: Path, folder: Path, extra: Mapping[str, str] | None = None) -> int:
    """Append our settings (then ``extra``) to postgresql.conf; return the TCP port chosen."""
    socket_dir = folder / "socket"
    socket_dir.mkdir()
    shutil.copystat(folder, socket_dir)
    st = folder.stat()
    os.chown(socket_dir, st.st_uid, st.st_gid)
    port = _free_port()
    settings = {**_SERVER_SETTINGS, **(extra or {}), "port": str(port),
                "unix_socket_directories": str(socket_dir)}
    lines = "".join(f"{key} = '{_conf_quote(value)}'\n" for key, value in settings.items())
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# pgqueue embedded server\n" + lines)
    return port


def stop(bindir: Path, data: Path, run_as: RunAs, folder: Path, env: dict[str, str]) -> None:
    """Stop the server if it runs; never raises."""
    if not (data / "postmaster.pid").exists():
        return
    try:
        run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
              "-t", str(STOP_TIMEOUT_SECONDS), "stop"], run_as, folder, env)
    except (CommandFailed, OSError) as exc:
        logger.warning("embedded server did not stop cleanly", extra={"error": str(exc)})
    kill_postmaster(data)


class CommandFailed(Exception):
    pass


def run(args: list[str], run_as: RunAs, cwd: Path, env: dict[str, str]) -> None:
    """Run one PostgreSQL tool, in its own session so Ctrl-C reaches only us."""
    try:
        result = subprocess.run(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=COMMAND_TIMEOUT_SECONDS, start_new_session=True, check=False,
            **run_as.kwargs(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise CommandFailed(f"{Path(args[0]).name}: {one_line(exc)}") from None
    if result.returncode != 0:
        output = " ".join((result.stderr or result.stdout).split())[-500:]
        raise CommandFailed(f"{Path(args[0]).name} exited with {result.returncode}: {output}")


def child_env(folder: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["HOME"] = str(folder)
    return env


def kill_postmaster(data: Path) -> None:
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


def version_key(path: str) -> tuple[int, ...]:
    """Sort key of a path by the numbers in it (``.../17/bin`` after ``.../9/bin``)."""
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def major_version(data: Path) -> str:
    try:
        return (data / "PG_VERSION").read_text(encoding="utf-8").strip()
    except OSError:
        return "(unknown version)"


def log_tail(log: Path, lines: int = 5) -> str:
    try:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f" [server log: {' | '.join(line.strip() for line in tail)}]" if tail else ""


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
