"""A worker session in pooler mode prepares nothing and sets nothing on its server
session; a direct one prepares its frequent statements and sets plan_cache_mode."""

from __future__ import annotations

import asyncio

import pytest

from pgqueue.worker.session import Session


async def _after_many_statements(dsn: str, pooled: bool) -> tuple[int, str]:
    session = Session(dsn, name="probe", pooled=pooled)
    try:
        for _ in range(10):
            await session.fetch("connection_check")
        conn = await session.connection()
        cur = await conn.execute("SELECT (SELECT count(*) FROM pg_prepared_statements), "
                                 "current_setting('plan_cache_mode')", prepare=False)
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), str(row[1])
    finally:
        await session.close()


@pytest.mark.parametrize(("pooled", "prepared", "plan_cache_mode"), [
    (True, False, "auto"), (False, True, "force_generic_plan")])
def test_pooled_sessions_prepare_and_set_nothing(clean_db: str, pooled: bool, prepared: bool,
                                                 plan_cache_mode: str) -> None:
    count, mode = asyncio.run(_after_many_statements(clean_db, pooled))
    assert (count > 0, mode) == (prepared, plan_cache_mode)
