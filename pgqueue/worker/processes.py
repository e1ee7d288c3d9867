"""Run N worker processes under one supervisor.

The supervisor forks the children, restarts a child that dies (backing off
if it keeps dying at start), forwards SIGTERM/SIGINT to every child and waits
for them; a second signal is forwarded too, which ends the children at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

__all__ = ["run_processes"]

logger = logging.getLogger("pgqueue.supervisor")

_QUICK_DEATH_SECONDS = 5.0
_MAX_RESTART_DELAY = 30.0


def _child(target: Callable[[], None]) -> None:
    # Its own process group: a signal sent to the supervisor's group (Ctrl-C in a
    # terminal, `timeout`, `kill -- -PGID`) reaches the children once, through
    # the supervisor, not twice. The child installs its own handlers (Worker.run).
    os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    target()


def run_processes(count: int, target: Callable[[], None]) -> int:
    """Run ``target`` in ``count`` forked processes until a signal; return the exit code."""
    ctx = multiprocessing.get_context("fork")
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        for proc in children.values():
            if proc.is_alive() and proc.pid is not None:
                try:
                    os.kill(proc.pid, signum)
                except ProcessLookupError:
                    pass

    children: dict[int, BaseProcess] = {}
    started_at: dict[int, float] = {}
    delays: dict[int, float] = {}
    restart_at: dict[int, float] = {}

    def start(slot: int) -> None:
        proc = ctx.Process(target=_child, args=(target,), name=f"pgqueue-worker-{slot}")
        proc.start()
        children[slot] = proc
        started_at[slot] = time.monotonic()
        logger.info("worker process started", extra={"slot": slot, "pid": proc.pid})

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in range(count):
            start(slot)
        while True:
            if signals and not any(p.is_alive() for p in children.values()):
                break
            sentinels = [p.sentinel for p in children.values() if p.is_alive()]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            if signals:
                continue
            now = time.monotonic()
            for slot, proc in list(children.items()):
                if proc.is_alive():
                    continue
                if slot not in restart_at:
                    quick = now - started_at[slot] < _QUICK_DEATH_SECONDS
                    delays[slot] = min(_MAX_RESTART_DELAY, delays.get(slot, 0.5) * 2) \
                        if quick else 0.0
                    restart_at[slot] = now + delays[slot]
                    logger.error("worker process died; restarting", extra={
                        "slot": slot, "pid": proc.pid, "exitcode": proc.exitcode,
                        "restart_in_seconds": delays[slot]})
                if now >= restart_at[slot]:
                    del restart_at[slot]
                    start(slot)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [p.exitcode for p in children.values() if p.exitcode not in (0, None)]
    logger.info("all worker processes stopped", extra={"exitcodes": failed})
    return 0
