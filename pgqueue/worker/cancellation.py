"""Cancel a worker's own tasks and wait until they have really ended.

A task can swallow a cancellation without meaning to: on Python 3.11,
``asyncio.wait_for`` returns the inner result when it completes in the same
loop iteration as the cancel, and psycopg 3.2.0 wraps every wait for the socket
in ``wait_for``. A service whose statement finished just as the worker cancelled
it then goes on to its next sleep, and a single ``cancel()`` followed by
``gather()`` waits for it forever (the worker never stops). So the cancel is
repeated until the task ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]

RETRY_SECONDS = 1.0
"""How long a cancelled task has to end before it is cancelled again. A task
cancelled mid-statement has psycopg cancel the query in the server and wait for
it to end; a second cancel during that makes psycopg close the connection with
a warning instead, so the retry leaves that round trip time even on a busy
machine."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], *,
                          retry_seconds: float = RETRY_SECONDS) -> None:
    """Cancel ``tasks`` and return once every one is done, cancelling again the
    ones still running after ``retry_seconds``. Their exceptions are retrieved
    (not raised): the caller is stopping them. Cancelled itself meanwhile, it
    still waits for them, then raises CancelledError."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    interrupted = False
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=retry_seconds)
        except asyncio.CancelledError:
            # The caller is being cancelled too (a service stopping its own
            # tasks, itself stopped this way): its tasks end first, or they
            # would outlive it, unowned.
            interrupted = True
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio logs nothing at collection
    if interrupted:
        raise asyncio.CancelledError
