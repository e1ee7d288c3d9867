"""The worker: services that claim, run and finish jobs. See :class:`Worker`."""

from .config import WorkerConfig
from .worker import Worker

__all__ = ["Worker", "WorkerConfig"]
