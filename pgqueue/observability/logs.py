"""Structured logs: one line per worker event that matters.

Messages are constant text; the variables travel as ``extra`` fields under
stable keys (job_id, task, queue, attempt, worker_id, duration_ms, outcome), so
the JSON format (``--log-format json``) gives one object per line.

Invariant: no DSN password reaches a log line; both formatters pass every text
through :func:`pgqueue._dsn.redact`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from .._dsn import redact
from ..events import (
    ConnectionFailed,
    ConnectionLost,
    ConnectionRestored,
    Event,
    JobFinished,
    JobLost,
    JobsHandedBack,
    JobsReclaimed,
    LeaderChanged,
    OutcomeRewritten,
    ServiceError,
    ServiceRecovered,
    WorkerStarted,
    WorkerStopped,
)

__all__ = ["JsonFormatter", "configure_logging", "log_event"]

logger = logging.getLogger("pgqueue.worker")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def log_event(event: Event) -> None:
    """Log one worker event (job starts are not logged: they are metrics' business)."""
    if isinstance(event, JobFinished) and event.outcome == "succeeded" \
            and not logger.isEnabledFor(logging.INFO):
        return  # the most frequent event, most often filtered out: skip building it
    base: dict[str, Any] = {"worker_id": event.worker_id, "event": event.name}
    if isinstance(event, JobFinished):
        job = event.job
        fields = {**base, "job_id": job.id, "task": job.task, "queue": job.queue,
                  "attempt": job.attempt, "duration_ms": round(event.duration_seconds * 1000, 3),
                  "outcome": event.outcome}
        if event.outcome == "succeeded":
            logger.info("job succeeded", extra=fields)
        elif event.outcome == "retried":
            logger.warning("job failed; will retry", extra={
                **fields, "error": event.error, "retry_in_seconds": event.retry_in_seconds})
        else:
            logger.error("job %s", event.outcome, extra={**fields, "error": event.error})
    elif isinstance(event, JobLost):
        logger.warning("lost the job before its outcome was written; outcome discarded",
                       extra={**base, "job_id": event.job.id, "task": event.job.task,
                              "queue": event.job.queue, "attempt": event.job.attempt,
                              "outcome": event.outcome})
    elif isinstance(event, OutcomeRewritten):
        fields = {**base, "job_id": event.job.id, "task": event.job.task,
                  "queue": event.job.queue, "attempt": event.job.attempt,
                  "outcome": event.outcome, "original_outcome": event.original,
                  "reason": event.reason}
        if event.isolated:
            logger.error("the database refused an outcome; recorded the job as failed",
                         extra=fields)
        else:
            logger.warning("outcome could not be stored as it was; stored rewritten",
                           extra=fields)
    elif isinstance(event, JobsReclaimed):
        logger.warning("reclaimed stalled jobs", extra={
            **base, "requeued": list(event.requeued), "failed": list(event.failed)})
    elif isinstance(event, JobsHandedBack):
        logger.info("handed unfinished jobs back to the queue",
                    extra={**base, "job_ids": list(event.job_ids)})
    elif isinstance(event, LeaderChanged):
        logger.info("became leader" if event.is_leader else "no longer leader", extra=base)
    elif isinstance(event, ConnectionLost):
        logger.error("database connection lost; retrying", extra={
            **base, "service": event.service, "error": event.error})
    elif isinstance(event, ConnectionFailed):
        logger.error("cannot connect to the database; retrying", extra={
            **base, "service": event.service, "error": event.error,
            "retry_in_seconds": event.retry_in_seconds,
            "gives_up_in_seconds": event.gives_up_in_seconds})
    elif isinstance(event, ConnectionRestored):
        logger.info("database connection restored", extra={**base, "service": event.service})
    elif isinstance(event, ServiceError):
        if event.failures == 1:  # once per streak; metrics count every one
            fields = {**base, "service": event.service, "error": event.error}
            if event.traceback is not None:
                fields["traceback"] = event.traceback
            logger.error("service error; continuing", extra=fields)
    elif isinstance(event, ServiceRecovered):
        logger.info("service recovered", extra={
            **base, "service": event.service, "failures": event.failures})
    elif isinstance(event, WorkerStarted):
        logger.info("worker started", extra={**base, "queues": list(event.queues),
                                             "concurrency": event.concurrency})
    elif isinstance(event, WorkerStopped):
        logger.info("worker stopped", extra=base)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = _redacted(value)
        if record.exc_info:
            data["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(data, default=str, ensure_ascii=False)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for people."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items()
                          if k not in _STANDARD and not k.startswith("_"))
        return redact(f"{line} {extras}" if extras else line)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send pgqueue's logs to stderr in the given format (``text`` or ``json``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pgqueue")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
