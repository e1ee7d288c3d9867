"""pgqueue's migration 15 (tags and meta at enqueue, throttle and debounce of unique keys).

Applied by pgqueue's own migrator.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import migrations

from pgqueue.contrib.django.schema import apply_schema, leave_schema

PGQUEUE_SCHEMA_VERSION = 15


class Migration(migrations.Migration):
    atomic = False  # each pgqueue migration commits on its own
    dependencies: ClassVar[list[tuple[str, str]]] = [("pgqueue", "0003_job_fields")]
    operations: ClassVar[list[Any]] = [
        migrations.RunPython(apply_schema, leave_schema, elidable=False),
    ]
