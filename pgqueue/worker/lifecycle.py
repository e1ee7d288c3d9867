"""A worker's start and stop: connect and register, shut down and hand back, signals.

Owns what happens before the first claim and after the last one, on the claim
session:

- start-up (:func:`connect`): read the schema version and register the
  worker. A connection that never succeeded is retried with back-off, each
  failure reported with its reason (``ConnectionFailed``), until the start-up
  timeout; then :class:`~pgqueue.errors.DatabaseUnavailableError`. A schema
  that is missing or behind raises :class:`~pgqueue.errors.SchemaNotReadyError`.
- shutdown (:func:`shut_down`): claim nothing more (the caller stopped the
  fetcher), let running jobs finish within the grace period, write their
  outcomes, stop the heartbeats, hand back the interrupted and unstarted jobs
  at once (fenced on their claim tokens), deregister and resign the lease.
- signals (:func:`run_with_signals`): the first SIGTERM or SIGINT stops
  gracefully, a second one ends the process at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .. import _dsn
from ..errors import DatabaseUnavailableError, SchemaNotReadyError
from ..events import ConnectionFailed, ConnectionLost, ConnectionRestored, Event, JobsHandedBack
from ..migrate import latest_version
from .cancellation import cancel_and_wait
from .completer import Completer
from .session import Session, is_connection_error
from .slots import Slots

__all__ = ["connect", "run_with_signals", "shut_down"]

logger = logging.getLogger("pgqueue.worker")

_BACKOFF_INITIAL_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 10.0
# The completer gets at least this long to write the last outcomes.
_DRAIN_MIN_SECONDS = 5.0


async def connect(claim: Session, register: Callable[[], Awaitable[None]], *, worker_id: str,
                  startup_timeout: float, stop: asyncio.Event,
                  emit: Callable[[Event], None]) -> bool:
    """Connect, check the schema and register; False when a stop came first."""
    backoff = _BACKOFF_INITIAL_SECONDS
    give_up_at = time.monotonic() + startup_timeout
    failed = False
    while not stop.is_set():
        try:
            rows = await claim.fetch("migration_versions")
        except Exception as exc:
            if not is_connection_error(exc):
                detail = getattr(getattr(exc, "diag", None), "message_primary", None)
                raise SchemaNotReadyError(
                    f"cannot read the pgqueue schema version ({detail or exc}); "
                    "run 'pgqueue migrate'") from exc
            error = _dsn.redact(str(exc).strip())
            left = give_up_at - time.monotonic()
            if left <= 0:
                raise DatabaseUnavailableError(
                    f"could not connect to the database within "
                    f"{startup_timeout:g} s (startup_timeout): {error}"
                ) from None
            failed = True
            wait = min(backoff, left)
            emit(ConnectionFailed(worker_id, "startup", error, round(wait, 3), round(left, 3)))
            await _wait_for(stop, wait)
            backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
            continue
        current = max((r[0] for r in rows), default=0)
        if current < latest_version():
            raise SchemaNotReadyError(
                f"the database's pgqueue schema is at version {current}, this pgqueue "
                f"needs {latest_version()}: run 'pgqueue migrate'")
        try:
            await register()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            continue  # connection lost between the check and the register
        if failed:
            emit(ConnectionRestored(worker_id, "startup"))
        return True
    return False


async def _wait_for(event: asyncio.Event, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass


async def shut_down(claim: Session, slots: Slots, completer: Completer,
                    maintenance: asyncio.Task[None], *, worker_id: str,
                    shutdown_timeout: float, resign: Callable[[], Awaitable[None]],
                    emit: Callable[[Event], None]) -> None:
    """Finish or interrupt the held jobs, write outcomes, hand back the rest, deregister."""
    interrupted = await slots.interrupt(shutdown_timeout)
    completer.close()
    await completer.drain(timeout=max(_DRAIN_MIN_SECONDS, shutdown_timeout))
    # Heartbeats ran through the grace period; they stop before the hand-back.
    await cancel_and_wait([maintenance])
    try:
        if interrupted:
            rows = await claim.fetch("job_hand_back", {
                "ids": [j.id for j in interrupted],
                "tokens": [j.claim_token for j in interrupted], "worker_id": worker_id})
            if rows:
                emit(JobsHandedBack(worker_id, tuple(r[0] for r in rows)))
        await claim.fetch("worker_deregister", {"worker_id": worker_id})
        await resign()
    except Exception as exc:  # the reaper returns the jobs after the stall timeout
        emit(ConnectionLost(worker_id, "shutdown", str(exc).strip()))


async def run_with_signals(run: Callable[[], Coroutine[Any, Any, None]],
                           stop: Callable[[], None], *, worker_id: str) -> None:
    """Run ``run()`` with SIGTERM and SIGINT calling ``stop`` (graceful); a
    second signal exits the process at once (exit code 1)."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("stop requested; finishing running jobs", extra={"worker_id": worker_id})
            stop()
        else:
            logger.warning("second signal: exiting at once", extra={"worker_id": worker_id})
            os._exit(1)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await run()
