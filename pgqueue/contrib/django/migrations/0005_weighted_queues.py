"""pgqueue's migration 16 (claims weighted or in strict order across queues), by its migrator."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations

from pgqueue.contrib.django.schema import apply_schema, leave_schema

PGQUEUE_SCHEMA_VERSION = 16


class Migration(migrations.Migration):
    atomic = False  # each pgqueue migration commits on its own
    dependencies: ClassVar[list[tuple[str, str]]] = [("pgqueue", "0004_enqueue_fields")]
    operations: ClassVar[list[Any]] = [
        migrations.RunPython(apply_schema, leave_schema, elidable=False),
    ]
