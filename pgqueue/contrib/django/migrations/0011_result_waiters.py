"""pgqueue's migration 22 (finished jobs announced only while a result waiter waits),
applied by pgqueue's own migrator."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations

from pgqueue.contrib.django.schema import apply_schema, leave_schema

PGQUEUE_SCHEMA_VERSION = 22


class Migration(migrations.Migration):
    atomic = False  # each pgqueue migration commits on its own
    dependencies: ClassVar[list[tuple[str, str]]] = [("pgqueue", "0010_summary_time_bounds")]
    operations: ClassVar[list[Any]] = [
        migrations.RunPython(apply_schema, leave_schema, elidable=False),
    ]
