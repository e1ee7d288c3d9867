"""The shop's tasks, found by ``manage.py pgqueue_worker`` in this app's tasks module."""

from __future__ import annotations

from typing import Any

from django.db import connection

import pgqueue

from .models import Order

tasks = pgqueue.Registry()


@tasks.task(name="shop.send_receipt", queue="shop")
def send_receipt(order_id: int) -> dict[str, Any]:
    """Mark the order's receipt sent with the ORM; the result names the Django
    connection's backend, so a test can see it closed after the job."""
    Order.objects.filter(id=order_id).update(receipt_sent=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return {"order_id": order_id, "django_backend_pid": pid}


@tasks.task(name="shop.echo", queue="shop")
async def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload
