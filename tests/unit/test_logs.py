"""Log formatting: stable keys, one JSON object per line, DSN passwords redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pgqueue import events
from pgqueue.observability.logs import JsonFormatter, TextFormatter, log_event

SECRET = "hunter2-secret"
ERRORS = [f"connection to postgresql://app:{SECRET}@db:5432/jobs failed",
          f"cannot connect: host=db password={SECRET} dbname=jobs"]


@pytest.fixture
def captured() -> Iterator[dict[str, io.StringIO]]:
    logger = logging.getLogger("pgqueue")
    streams = {"json": io.StringIO(), "text": io.StringIO()}
    handlers = []
    for name, formatter in (("json", JsonFormatter()), ("text", TextFormatter())):
        handler = logging.StreamHandler(streams[name])
        handler.setFormatter(formatter)
        handlers.append(handler)
        logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield streams
    logger.level = level
    for handler in handlers:
        logger.removeHandler(handler)


@pytest.mark.parametrize("error", ERRORS)
def test_connection_errors_are_redacted(captured: dict[str, io.StringIO], error: str) -> None:
    log_event(events.ConnectionLost("w1", "listener", error))
    log_event(events.ServiceError("w1", "fetcher", error))
    logging.getLogger("pgqueue.worker").info("free text %s", error)
    for stream in captured.values():
        assert SECRET not in stream.getvalue()
    lines = [json.loads(line) for line in captured["json"].getvalue().splitlines()]
    assert [(line["event"], line["service"]) for line in lines[:2]] == [
        ("connection_lost", "listener"), ("service_error", "fetcher")]
    assert "***" in lines[0]["error"] and "***" in lines[2]["message"]


@pytest.fixture
def configured() -> Iterator[None]:
    """The loggers' settings are put back after a test of configure_logging."""
    root, own = logging.getLogger(), logging.getLogger("pgqueue")
    saved = (list(root.handlers), root.level, own.level, own.propagate)
    yield
    root.handlers[:], root.level, own.level, own.propagate = saved


def test_other_libraries_warnings_come_out_in_the_json_format(
        configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    from pgqueue.observability.logs import configure_logging

    configure_logging("info", "json")
    configure_logging("debug", "json")  # again: replaces its own handler, no duplicate lines
    logging.getLogger("psycopg").warning("query cancellation interrupted (%s): closing connection",
                                         "CancelledError")
    logging.getLogger("psycopg").info("below WARNING: not shown")
    logging.getLogger("pgqueue.worker").debug("pgqueue's own debug line")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("psycopg", "warning"), ("pgqueue.worker", "debug")]
    assert "CancelledError" in lines[0]["message"]
