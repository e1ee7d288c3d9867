"""pgqueue's schema up to its migration 12, applied by pgqueue's own migrator,
and the read-only model over its ``all_jobs`` view (no table: unmanaged)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations, models

from pgqueue.contrib.django.schema import apply_schema, leave_schema

PGQUEUE_SCHEMA_VERSION = 12

_STATES = [(s, s) for s in ("queued", "running", "succeeded", "failed", "cancelled")]


class Migration(migrations.Migration):
    atomic = False  # each pgqueue migration commits on its own
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[Any]] = [
        migrations.RunPython(apply_schema, leave_schema, elidable=False),
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("queue", models.TextField()),
                ("task", models.TextField()),
                ("args", models.JSONField()),
                ("priority", models.IntegerField()),
                ("state", models.TextField(choices=_STATES)),
                ("attempt", models.IntegerField()),
                ("max_attempts", models.IntegerField()),
                ("run_at", models.DateTimeField()),
                ("created_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(null=True)),
                ("finished_at", models.DateTimeField(null=True)),
                ("heartbeat_at", models.DateTimeField(null=True)),
                ("worker_id", models.UUIDField(null=True)),
                ("unique_key", models.TextField(null=True)),
                ("last_error", models.TextField(null=True)),
                ("errors", models.JSONField()),
                ("result", models.JSONField(null=True)),
            ],
            options={
                "db_table": '"pgqueue"."all_jobs"',
                "ordering": ["-id"],
                "managed": False,
                "default_permissions": ("view",),
            },
        ),
    ]
