"""A registry with a periodic task ticking every second, for leader-failover tests."""

from __future__ import annotations

import pgqueue

tasks = pgqueue.Registry()


@tasks.periodic(cron="* * * * * *", name="tick.every_second", queue="ticks",
                args={"source": "cron"})
def every_second(source: str) -> str:
    return source
