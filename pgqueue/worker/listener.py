"""LISTEN for wake-ups on a dedicated connection, reconnecting by itself.

A missed notification only costs the poll interval: after every (re)connect and
every quiet ``check_interval`` the listener proves the session is alive and
wakes the fetcher once, in case something was missed meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg

from .._sql import query
from ..events import ConnectionLost, ConnectionRestored, Event

__all__ = ["Listener"]


class Listener:
    """Owns the LISTEN on a dedicated connection of its own (not a :class:`Session`):
    hands each notification to ``on_notify`` and calls ``on_gap`` after every
    (re)connect or quiet check, when one may have been missed."""

    def __init__(self, dsn: str, worker_id: str, *, on_notify: Callable[[str, str], None],
                 on_gap: Callable[[], None], emit: Callable[[Event], None],
                 check_interval: float) -> None:
        self._dsn = dsn
        self._worker_id = worker_id
        self._on_notify = on_notify
        self._on_gap = on_gap
        self._emit = emit
        self._check_interval = check_interval

    async def run(self) -> None:
        backoff = 0.1
        lost = False
        while True:
            conn = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=10,
                    application_name="pgqueue-listener")
                await conn.execute(query("listener_listen"))
                backoff = 0.1
                if lost:
                    lost = False
                    self._emit(ConnectionRestored(self._worker_id, "listener"))
                self._on_gap()
                while True:
                    async for notify in conn.notifies(timeout=self._check_interval):
                        self._on_notify(notify.channel, notify.payload)
                    async with asyncio.timeout(self._check_interval):
                        await conn.execute(query("connection_check"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    lost = True
                    self._emit(ConnectionLost(self._worker_id, "listener", str(exc).strip()
                                              or type(exc).__name__))
                self._on_gap()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None:
                    try:
                        await conn.close()
                    except Exception:  # already broken
                        pass
