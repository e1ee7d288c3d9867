"""An order, written by the views of the tests and updated by a job."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.CharField(max_length=200)
    receipt_sent = models.BooleanField(default=False)
