"""pgqueue's schema up to its migration 12, applied by pgqueue's own migrator."""

from __future__ import annotations

from typing import ClassVar

from django.db import migrations

from pgqueue.contrib.django.schema import apply_schema, leave_schema

PGQUEUE_SCHEMA_VERSION = 12


class Migration(migrations.Migration):
    atomic = False  # each pgqueue migration commits on its own
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []
    operations: ClassVar[list[migrations.RunPython]] = [
        migrations.RunPython(apply_schema, leave_schema, elidable=False),
    ]
