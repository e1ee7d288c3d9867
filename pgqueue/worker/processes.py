"""Run N worker processes under one supervisor.

The supervisor forks the children, restarts a child that dies (backing off
while it keeps dying soon after start), forwards SIGTERM/SIGINT to every child
and waits for them; a second signal is forwarded too, which ends the children
at once.

It gives up, stopping the other children and raising :class:`WorkerStartError`
with the child's reason, when a child cannot start (pgqueue refused to run it:
an unmigrated database, a database it could not reach within its start-up
timeout) or died soon after start ``MAX_QUICK_DEATHS`` times in a row. Its exit
code after a stop is non-zero when a child ended with one.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from multiprocessing.queues import SimpleQueue
from types import FrameType

from ..errors import PgQueueError

__all__ = ["MAX_QUICK_DEATHS", "WorkerStartError", "run_processes"]

logger = logging.getLogger("pgqueue.supervisor")

# A child that dies within this many seconds of its start died "quickly".
QUICK_DEATH_SECONDS = 5.0
# Consecutive quick deaths of one child after which the supervisor gives up.
MAX_QUICK_DEATHS = 5
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
# The exit code of a child whose worker refused to start (it sent its reason).
CANNOT_START_EXIT_CODE = 78


class WorkerStartError(PgQueueError):
    """A worker process could not start, or kept dying right after its start."""


def _child(target: Callable[[], None], slot: int, reasons: SimpleQueue[tuple[int, str]]) -> None:
    # Its own process group: a signal sent to the supervisor's group (Ctrl-C in a
    # terminal, `timeout`, `kill -- -PGID`) reaches the children once, through
    # the supervisor, not twice. The child installs its own handlers at once.
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        target()
    except PgQueueError as exc:  # pgqueue refused to start this worker: say why
        reasons.put((slot, str(exc)))
        sys.exit(CANNOT_START_EXIT_CODE)


def run_processes(count: int, target: Callable[[], None]) -> int:
    """Run ``target`` in ``count`` forked processes until a signal; return the exit code.

    Raises WorkerStartError when a child cannot start (see the module docstring).
    """
    ctx = multiprocessing.get_context("fork")
    reasons: SimpleQueue[tuple[int, str]] = ctx.SimpleQueue()
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        forward(signum)

    def forward(signum: int) -> None:
        for proc in children.values():
            if proc.is_alive() and proc.pid is not None:
                try:
                    os.kill(proc.pid, signum)
                except ProcessLookupError:
                    pass

    children: dict[int, BaseProcess] = {}
    started_at: dict[int, float] = {}
    quick_deaths: dict[int, int] = {}
    restart_at: dict[int, float] = {}
    gave_up: str | None = None

    def start(slot: int) -> None:
        proc = ctx.Process(target=_child, args=(target, slot, reasons),
                           name=f"pgqueue-worker-{slot}")
        proc.start()
        children[slot] = proc
        started_at[slot] = time.monotonic()
        logger.info("worker process started", extra={"slot": slot, "pid": proc.pid})

    def why(slot: int, proc: BaseProcess) -> str | None:
        """The reason a child that exited with CANNOT_START_EXIT_CODE sent, if any."""
        if proc.exitcode != CANNOT_START_EXIT_CODE:
            return None
        found = None
        while not reasons.empty():
            sender, reason = reasons.get()
            if sender == slot:
                found = reason
        return found or "it refused to start (see its log)"

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(count):
            start(slot)
        while True:
            if (signals or gave_up) and not any(p.is_alive() for p in children.values()):
                break
            sentinels = [p.sentinel for p in children.values() if p.is_alive()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            if signals or gave_up:
                continue
            now = time.monotonic()
            for slot, proc in list(children.items()):
                if proc.is_alive() or slot in restart_at:
                    continue
                reason = why(slot, proc)
                quick = now - started_at[slot] < QUICK_DEATH_SECONDS
                quick_deaths[slot] = quick_deaths.get(slot, 0) + 1 if quick else 0
                if reason is None and quick_deaths[slot] >= MAX_QUICK_DEATHS:
                    reason = (f"it died within {QUICK_DEATH_SECONDS:g} s of its start "
                              f"{quick_deaths[slot]} times in a row (last exit code "
                              f"{proc.exitcode})")
                if reason is not None:
                    gave_up = f"worker process {slot} cannot start: {reason}"
                    logger.error("worker process cannot start; stopping the others", extra={
                        "slot": slot, "pid": proc.pid, "exitcode": proc.exitcode,
                        "error": reason})
                    forward(signal.SIGTERM)
                    break
                delay = 0.0 if not quick else min(
                    MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (quick_deaths[slot] - 1))
                restart_at[slot] = now + delay
                logger.error("worker process died; restarting", extra={
                    "slot": slot, "pid": proc.pid, "exitcode": proc.exitcode,
                    "restart_in_seconds": delay})
            for slot, at in list(restart_at.items()):
                if not gave_up and now >= at:
                    del restart_at[slot]
                    start(slot)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if gave_up:
        raise WorkerStartError(gave_up)
    failed = {slot: p.exitcode for slot, p in children.items() if p.exitcode not in (0, None)}
    if failed:
        logger.error("worker processes stopped; some ended with an error",
                     extra={"exitcodes": failed})
        return 1
    logger.info("all worker processes stopped")
    return 0
