"""Structured logs: one line per worker event that matters.

A succeeded job is logged at DEBUG only: at INFO, :mod:`.log_summary` counts
them per queue in a periodic line. A retry (WARNING), a failure or a
cancellation (ERROR) is logged per job at every level down to its own.

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
from collections.abc import Callable
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
    PruneReport,
    ServiceError,
    ServiceRecovered,
    WorkerStarted,
    WorkerStopped,
)

__all__ = ["JsonFormatter", "configure_logging", "log_event"]

logger = logging.getLogger("pgqueue.worker")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# Outcomes logged one by one at DEBUG only (at INFO the summary counts them): a
# polling job may snooze every few seconds for hours.
_QUIET = frozenset({"succeeded", "snoozed"})


def log_event(event: Event) -> None:
    """Log one worker event (job starts are not logged: they are metrics' business)."""
    if type(event) is JobFinished and event.outcome in _QUIET \
            and not logger.isEnabledFor(logging.DEBUG):
        return  # the most frequent events, most often filtered out: skip building them
    log = _LOG_BY_EVENT.get(type(event))
    if log is not None:
        log(event, {"worker_id": event.worker_id, "event": event.name})


def _job_finished(event: JobFinished, base: dict[str, Any]) -> None:
    job = event.job
    fields = {**base, "job_id": job.id, "task": job.task, "queue": job.queue,
              "attempt": job.attempt, "duration_ms": round(event.duration_seconds * 1000, 3),
              "outcome": event.outcome}
    if event.outcome == "succeeded":
        logger.debug("job succeeded", extra=fields)
    elif event.outcome == "retried":
        logger.warning("job failed; will retry", extra={
            **fields, "error": event.error, "retry_in_seconds": event.retry_in_seconds})
    elif event.outcome == "snoozed":
        logger.debug("job snoozed", extra={**fields, "retry_in_seconds": event.retry_in_seconds})
    else:
        logger.error("job %s", event.outcome, extra={**fields, "error": event.error})


def _job_lost(event: JobLost, base: dict[str, Any]) -> None:
    fields = {**base, "job_id": event.job.id, "task": event.job.task,
              "queue": event.job.queue, "attempt": event.job.attempt,
              "outcome": event.outcome}
    if event.effects == "rolled_back":
        logger.warning("lost the job before its outcome was written; its transaction "
                       "rolled back, the handler's writes with it", extra=fields)
    elif event.effects == "unknown":
        logger.warning("the connection failed while committing the handler's transaction; "
                       "the outcome and the writes committed together or not at all (if "
                       "not, the reaper returns the job)", extra=fields)
    else:
        logger.warning("lost the job before its outcome was written; outcome discarded",
                       extra=fields)


def _outcome_rewritten(event: OutcomeRewritten, base: dict[str, Any]) -> None:
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


def _jobs_reclaimed(event: JobsReclaimed, base: dict[str, Any]) -> None:
    logger.warning("reclaimed stalled jobs", extra={
        **base, "requeued": list(event.requeued), "failed": list(event.failed)})


def _jobs_handed_back(event: JobsHandedBack, base: dict[str, Any]) -> None:
    logger.info("handed unfinished jobs back to the queue",
                extra={**base, "job_ids": list(event.job_ids)})


def _leader_changed(event: LeaderChanged, base: dict[str, Any]) -> None:
    logger.info("became leader" if event.is_leader else "no longer leader", extra=base)


def _prune_report(event: PruneReport, base: dict[str, Any]) -> None:
    by_state = dict(event.jobs)
    logger.info("pruned finished jobs from history", extra={
        **base, "jobs": sum(by_state.values()), **{f"{s}_jobs": n for s, n in event.jobs},
        "batches": event.batches, "statements": event.statements,
        "busy_ms": round(event.busy_seconds * 1000, 1), "rounds": event.rounds})


def _connection_lost(event: ConnectionLost, base: dict[str, Any]) -> None:
    logger.error("database connection lost; retrying", extra={
        **base, "service": event.service, "error": event.error})


def _connection_failed(event: ConnectionFailed, base: dict[str, Any]) -> None:
    logger.error("cannot connect to the database; retrying", extra={
        **base, "service": event.service, "error": event.error,
        "retry_in_seconds": event.retry_in_seconds,
        "gives_up_in_seconds": event.gives_up_in_seconds})


def _connection_restored(event: ConnectionRestored, base: dict[str, Any]) -> None:
    logger.info("database connection restored", extra={**base, "service": event.service})


def _service_error(event: ServiceError, base: dict[str, Any]) -> None:
    if event.failures == 1:  # once per streak; metrics count every one
        fields = {**base, "service": event.service, "error": event.error}
        if event.traceback is not None:
            fields["traceback"] = event.traceback
        logger.error("service error; continuing", extra=fields)


def _service_recovered(event: ServiceRecovered, base: dict[str, Any]) -> None:
    logger.info("service recovered", extra={
        **base, "service": event.service, "failures": event.failures})


def _worker_started(event: WorkerStarted, base: dict[str, Any]) -> None:
    logger.info("worker started", extra={**base, "queues": list(event.queues),
                                         "concurrency": event.concurrency})


def _worker_stopped(event: WorkerStopped, base: dict[str, Any]) -> None:
    logger.info("worker stopped", extra=base)


# Each logged event class, with the function that logs it (JobStarted is not logged).
_LOG_BY_EVENT: dict[type[Event], Callable[[Any, dict[str, Any]], None]] = {
    JobFinished: _job_finished,
    JobLost: _job_lost,
    OutcomeRewritten: _outcome_rewritten,
    JobsReclaimed: _jobs_reclaimed,
    JobsHandedBack: _jobs_handed_back,
    LeaderChanged: _leader_changed,
    PruneReport: _prune_report,
    ConnectionLost: _connection_lost,
    ConnectionFailed: _connection_failed,
    ConnectionRestored: _connection_restored,
    ServiceError: _service_error,
    ServiceRecovered: _service_recovered,
    WorkerStarted: _worker_started,
    WorkerStopped: _worker_stopped,
}


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
    """Send pgqueue's logs, and other libraries' warnings and errors, to stderr
    in the given format (``text`` or ``json``).

    The handler sits on the root logger, so a warning from psycopg (for example
    a query cancellation interrupted at shutdown) is one JSON object like
    pgqueue's own lines, not a bare text line in a JSON log. pgqueue's logger
    takes ``level``; everything else stays at WARNING or above. Calling it again
    replaces the handler it installed, and leaves any other handler alone.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(handler, _OWN_HANDLER, True)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, _OWN_HANDLER, False)]
    root.addHandler(handler)
    pgqueue_level = logging.getLevelName(level.upper())
    root.setLevel(max(logging.WARNING, pgqueue_level))
    own = logging.getLogger("pgqueue")
    own.setLevel(pgqueue_level)
    own.propagate = True


_OWN_HANDLER = "_pgqueue_handler"
