"""A read-only admin for pgqueue's jobs (when ``django.contrib.admin`` is installed).

It lists and shows jobs; nobody can add, change or delete one here, whatever
their permissions: pgqueue's functions and the ``pgqueue`` command do that.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import Job

__all__ = ["JobAdmin"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "queue", "state", "attempt", "max_attempts", "run_at",
                    "finished_at")
    list_filter = ("state",)
    search_fields = ("=id", "task", "queue", "unique_key")
    show_full_result_count = False  # no count(*) over the history on every page
    readonly_fields = tuple(f.name for f in Job._meta.get_fields())

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
