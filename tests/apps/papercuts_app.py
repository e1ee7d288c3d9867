"""A registry whose task declares its queue, priority and attempts (`pgqueue enqueue --app`)."""

from __future__ import annotations

import pgqueue

tasks = pgqueue.Registry()


@tasks.task(name="send_receipt", queue="email", priority=7, max_attempts=2)
def send_receipt(order_id: int) -> None:
    return None
