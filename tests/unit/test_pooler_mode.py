"""The pooler mode's settings: where it comes from, what it makes of LISTEN and the poll."""

from __future__ import annotations

import pytest

import pgqueue
from pgqueue._dsn import POOLERS, resolve_listen_dsn, resolve_pooler
from pgqueue.errors import ConfigError
from pgqueue.worker.config import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_POOLER_POLL_INTERVAL,
    WorkerConfig,
)

DSN = "postgresql://app@pgbouncer:6432/app"
DIRECT = "postgresql://app@db:5432/app"

tasks = pgqueue.Registry()


@tasks.task(name="t.noop")
def noop() -> None:
    return None


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_POOLER", raising=False)
    monkeypatch.delenv("PGQUEUE_LISTEN_DSN", raising=False)


def worker(**options: object) -> pgqueue.Worker:
    return pgqueue.Worker(tasks, dsn=DSN, log_events=False, tracing=False, **options)  # type: ignore[arg-type]


def test_the_argument_wins_then_the_environment_then_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_pooler() == "none"
    monkeypatch.setenv("PGQUEUE_POOLER", "transaction")
    assert resolve_pooler() == "transaction"
    assert resolve_pooler("session") == "session"
    assert resolve_listen_dsn() is None
    monkeypatch.setenv("PGQUEUE_LISTEN_DSN", DIRECT)
    assert resolve_listen_dsn() == DIRECT
    assert resolve_listen_dsn("other") == "other"


@pytest.mark.parametrize("value", ["statement", "TRANSACTION", "pgbouncer"])
def test_an_unknown_pooler_is_refused_with_the_choices(value: str) -> None:
    with pytest.raises(ConfigError, match="none, session, transaction"):
        resolve_pooler(value)
    with pytest.raises(ConfigError, match="pooler must be one of"):
        WorkerConfig(pooler=value)


def test_only_transaction_mode_makes_the_sessions_pooled() -> None:
    assert [WorkerConfig(pooler=p).pooled for p in POOLERS] == [False, False, True]


def test_direct_and_session_mode_listen_on_the_dsn_and_poll_every_5_s() -> None:
    for pooler in ("none", "session"):
        made = worker(pooler=pooler)
        assert made.listen_dsn == DSN
        assert made.config.poll_interval == DEFAULT_POLL_INTERVAL


def test_transaction_mode_without_a_listen_dsn_polls_fast_and_listens_nowhere() -> None:
    made = worker(pooler="transaction")
    assert made.listen_dsn is None
    assert made.config.poll_interval == DEFAULT_POOLER_POLL_INTERVAL
    assert made.config.pooled


def test_transaction_mode_with_a_listen_dsn_listens_there_and_polls_as_direct(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made = worker(pooler="transaction", listen_dsn=DIRECT)
    assert (made.listen_dsn, made.config.poll_interval) == (DIRECT, DEFAULT_POLL_INTERVAL)
    monkeypatch.setenv("PGQUEUE_POOLER", "transaction")
    monkeypatch.setenv("PGQUEUE_LISTEN_DSN", DIRECT)
    made = worker()
    assert (made.config.pooler, made.listen_dsn) == ("transaction", DIRECT)


def test_an_explicit_poll_interval_wins() -> None:
    assert worker(pooler="transaction", poll_interval=2.0).config.poll_interval == 2.0


def test_the_dashboard_refuses_an_unknown_pooler_before_connecting() -> None:
    from pgqueue.dashboard import make_server

    with pytest.raises(ConfigError, match="pooler must be one of"):
        make_server(DSN, port=0, pooler="statement")
