"""Read-only models over pgqueue's views, for the Django admin and the ORM.

Invariant: unmanaged (``managed = False``): Django never creates, alters or
drops them; pgqueue's migrations own the schema. :class:`Job` reads
``pgqueue.all_jobs``, live and finished jobs alike. Writing through them is
refused: enqueue, retry and cancel with pgqueue's functions, which keep the
queue's invariants.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from ...types import JobState

__all__ = ["Job"]


class Job(models.Model):
    """A job, live or finished (the view ``pgqueue.all_jobs``)."""

    id = models.BigIntegerField(primary_key=True)
    queue = models.TextField()
    task = models.TextField()
    args = models.JSONField()
    priority = models.IntegerField()
    state = models.TextField(choices=[(s.value, s.value) for s in JobState])
    attempt = models.IntegerField()
    max_attempts = models.IntegerField()
    run_at = models.DateTimeField()
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    worker_id = models.UUIDField(null=True)
    unique_key = models.TextField(null=True)
    last_error = models.TextField(null=True)
    errors = models.JSONField()
    result = models.JSONField(null=True)

    class Meta:
        managed = False
        db_table = '"pgqueue"."all_jobs"'
        ordering: ClassVar[list[str]] = ["-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.task} #{self.id} ({self.state})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("pgqueue's jobs are read-only here: use pgqueue.enqueue, "
                        "pgqueue.retry or pgqueue.cancel")

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("pgqueue's jobs are read-only here: use pgqueue.cancel or "
                        "pgqueue.prune")
