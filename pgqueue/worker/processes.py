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

from ..errors import PgQueueError, WorkerStartError

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
    supervisor = _Supervisor(count, target)
    previous = {sig: signal.signal(sig, supervisor.on_signal)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return supervisor.result()


class _Supervisor:
    """The children of one ``run_processes`` call, by slot, and their restarts."""

    def __init__(self, count: int, target: Callable[[], None]) -> None:
        self._count = count
        self._target = target
        self._ctx = multiprocessing.get_context("fork")
        self._reasons: SimpleQueue[tuple[int, str]] = self._ctx.SimpleQueue()
        self._signals: list[int] = []
        self._children: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._quick_deaths: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self._gave_up: str | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._forward(signum)

    def run(self) -> None:
        """Start every child; restart those that die until a signal, or give up."""
        for slot in range(self._count):
            self._start(slot)
        while True:
            stopping = bool(self._signals or self._gave_up)
            if stopping and not any(p.is_alive() for p in self._children.values()):
                break
            sentinels = [p.sentinel for p in self._children.values() if p.is_alive()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            if self._signals or self._gave_up:
                continue
            now = time.monotonic()
            for slot, proc in list(self._children.items()):
                if proc.is_alive() or slot in self._restart_at:
                    continue
                if not self._on_death(slot, proc, now):
                    break
            for slot, at in list(self._restart_at.items()):
                if not self._gave_up and now >= at:
                    del self._restart_at[slot]
                    self._start(slot)

    def result(self) -> int:
        """The exit code once every child stopped; raises WorkerStartError after giving up."""
        if self._gave_up:
            raise WorkerStartError(self._gave_up)
        failed = {slot: p.exitcode for slot, p in self._children.items()
                  if p.exitcode not in (0, None)}
        if failed:
            logger.error("worker processes stopped; some ended with an error",
                         extra={"exitcodes": failed})
            return 1
        logger.info("all worker processes stopped")
        return 0

    def _forward(self, signum: int) -> None:
        for proc in self._children.values():
            if proc.is_alive() and proc.pid is not None:
                try:
                    os.kill(proc.pid, signum)
                except ProcessLookupError:
                    pass

    def _start(self, slot: int) -> None:
        proc = self._ctx.Process(target=_child, args=(self._target, slot, self._reasons),
                                 name=f"pgqueue-worker-{slot}")
        proc.start()
        self._children[slot] = proc
        self._started_at[slot] = time.monotonic()
        logger.info("worker process started", extra={"slot": slot, "pid": proc.pid})

    def _on_death(self, slot: int, proc: BaseProcess, now: float) -> bool:
        """Schedule a dead child's restart; False when the supervisor gives up."""
        reason = self._why(slot, proc)
        quick = now - self._started_at[slot] < QUICK_DEATH_SECONDS
        deaths = self._quick_deaths[slot] = self._quick_deaths.get(slot, 0) + 1 if quick else 0
        if reason is None and deaths >= MAX_QUICK_DEATHS:
            reason = (f"it died within {QUICK_DEATH_SECONDS:g} s of its start "
                      f"{deaths} times in a row (last exit code {proc.exitcode})")
        if reason is not None:
            self._gave_up = f"worker process {slot} cannot start: {reason}"
            logger.error("worker process cannot start; stopping the others", extra={
                "slot": slot, "pid": proc.pid, "exitcode": proc.exitcode, "error": reason})
            self._forward(signal.SIGTERM)
            return False
        delay = 0.0 if not quick else min(
            MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2 ** (deaths - 1))
        self._restart_at[slot] = now + delay
        logger.error("worker process died; restarting", extra={
            "slot": slot, "pid": proc.pid, "exitcode": proc.exitcode,
            "restart_in_seconds": delay})
        return True

    def _why(self, slot: int, proc: BaseProcess) -> str | None:
        """The reason a child that exited with CANNOT_START_EXIT_CODE sent, if any."""
        if proc.exitcode != CANNOT_START_EXIT_CODE:
            return None
        found = None
        while not self._reasons.empty():
            sender, reason = self._reasons.get()
            if sender == slot:
                found = reason
        return found or "it refused to start (see its log)"
