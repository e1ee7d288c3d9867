"""An app that takes its time to import, for signals during a worker's start-up.

On import it creates the file named by ``PGQUEUE_SLOW_IMPORT_MARKER`` (so a test
knows the worker's own code is running), then waits up to 60 s for that file to
be removed (so the test decides when start-up goes on).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pgqueue

_marker = Path(os.environ["PGQUEUE_SLOW_IMPORT_MARKER"])
_marker.write_text(str(os.getpid()))
_deadline = time.monotonic() + 60
while _marker.exists() and time.monotonic() < _deadline:
    time.sleep(0.02)

tasks = pgqueue.Registry()


@tasks.task(name="slow.noop", queue="slow")
def noop() -> None:
    """Never expected to run: the worker is stopped during start-up."""
