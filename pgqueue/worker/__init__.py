"""The worker: services that claim, run and finish jobs. See :class:`Worker`.

``Worker`` and ``WorkerConfig`` load on first use, so that reading the
worker's defaults (``pgqueue.worker.config``, as the CLI's options do) loads
no service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .worker import Worker

__all__ = ["Worker", "WorkerConfig"]


def __getattr__(name: str) -> Any:
    value: Any
    if name == "Worker":
        from .worker import Worker as value
    elif name == "WorkerConfig":
        from .config import WorkerConfig as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value
