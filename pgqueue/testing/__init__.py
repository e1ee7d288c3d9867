"""Helpers for testing an application that uses pgqueue.

- :func:`drain` / :func:`drain_async`: run the due jobs on the test's own
  connection, inside its transaction, with the worker's own claim, attempt
  and outcome logic;
- :func:`assert_enqueued`, :func:`refute_enqueued`, :func:`enqueued_jobs`
  (and ``*_async`` twins): assertions on the jobs the test enqueued;
- a pytest plugin (``pgqueue.testing.plugin``, registered by the package's
  ``pytest11`` entry point) with the fixtures ``pgqueue_dsn`` and ``pgqueue_conn``.

Names load on first use, so the pytest plugin costs next to nothing in a run
that never uses it. The producer side never imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assertions import (
        EnqueuedJob,
        assert_enqueued,
        assert_enqueued_async,
        enqueued_jobs,
        enqueued_jobs_async,
        refute_enqueued,
        refute_enqueued_async,
    )
    from .draining import (
        DrainContext,
        DrainError,
        DrainResult,
        RanJob,
        drain,
        drain_async,
    )

__all__ = ["DrainContext", "DrainError", "DrainResult", "EnqueuedJob", "RanJob",
           "assert_enqueued", "assert_enqueued_async", "drain", "drain_async", "enqueued_jobs",
           "enqueued_jobs_async", "refute_enqueued", "refute_enqueued_async"]

_MODULES = {
    **dict.fromkeys(["DrainContext", "DrainError", "DrainResult", "RanJob", "drain",
                     "drain_async"], "draining"),
    **dict.fromkeys(["EnqueuedJob", "assert_enqueued", "assert_enqueued_async",
                     "enqueued_jobs", "enqueued_jobs_async", "refute_enqueued",
                     "refute_enqueued_async"], "assertions"),
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
