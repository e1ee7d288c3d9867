"""What a running job reports about itself: progress and metadata; no I/O.

Invariant: :func:`progress_value` and :func:`meta_patch` return values that
PostgreSQL stores as they are in ``pgqueue.jobs.progress`` and ``meta`` (JSON
objects, finite numbers, storable text), or raise
:class:`~pgqueue.errors.InvalidArgumentError` saying which argument is wrong.
They run in the handler (``JobContext.set_progress`` and ``update_meta``), so a
bad call fails there, and nothing of it is recorded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidArgumentError, InvalidJobError
from .producer.args_json import check_text, dump_args

__all__ = ["META_UPDATE_MAX_BYTES", "PROGRESS_MESSAGE_MAX", "describe_progress", "meta_patch",
           "progress_fraction", "progress_value"]

PROGRESS_MESSAGE_MAX = 200
"""The longest progress message, in characters."""

META_UPDATE_MAX_BYTES = 64 * 1024
"""The largest ``update_meta`` call, as JSON text in UTF-8 bytes."""


def progress_value(done: object, total: object = None,
                   message: object = None) -> dict[str, Any]:
    """The progress object to store: ``{"done": d, "total": t, "message": m}``.

    ``done`` and ``total`` (or None) are numbers >= 0, ``message`` (or None) a
    string of at most 200 characters. ``done`` may exceed ``total`` (an estimate
    that grew); readers clamp the fraction.
    """
    value: dict[str, Any] = {"done": _amount(done, "done"), "total": None, "message": None}
    if total is not None:
        value["total"] = _amount(total, "total")
    if message is not None:
        if not isinstance(message, str):
            raise InvalidArgumentError(
                f"progress message must be a str, got {type(message).__name__}")
        if len(message) > PROGRESS_MESSAGE_MAX:
            raise InvalidArgumentError(f"progress message must be at most "
                                       f"{PROGRESS_MESSAGE_MAX} characters, got {len(message)}")
        value["message"] = message
        if not message.isascii() or "\x00" in message:
            _storable(message, "progress message")
    return value


def meta_patch(values: object) -> dict[str, Any]:
    """A copy of ``values`` (a JSON object) to merge into the job's meta.

    The copy is taken through JSON, so a handler that changes its dict later
    changes nothing recorded. Keys at the top level replace the job's keys of the
    same name (jsonb ``||``); at most 64 KiB of JSON per call.
    """
    if not isinstance(values, Mapping):
        raise InvalidArgumentError(
            f"meta must be a JSON object (a dict), got {type(values).__name__}")
    try:
        text = dump_args(values, "meta")
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None
    size = len(text) if text.isascii() else len(text.encode())
    if size > META_UPDATE_MAX_BYTES:
        raise InvalidArgumentError(f"meta update is {size} bytes of JSON; at most "
                                   f"{META_UPDATE_MAX_BYTES} are allowed per call")
    patch: dict[str, Any] = json.loads(text)
    return patch


_INT_MAX = 2**63


def progress_fraction(progress: Mapping[str, Any] | None) -> float | None:
    """``done / total`` of a stored progress, from 0 to 1; None without numbers
    or a total > 0 (as the SQL function ``pgqueue.progress_percent``)."""
    if not progress:
        return None
    done, total = progress.get("done"), progress.get("total")
    if not isinstance(done, int | float) or not isinstance(total, int | float) \
            or not _number(done) or not _number(total) or not total > 0:
        return None
    return float(min(1.0, max(0.0, done / total)))


def describe_progress(progress: Mapping[str, Any] | None) -> str:
    """A stored progress for people: ``3 of 10 (30.0 %): message``, ``3``, or ``""``."""
    if not progress:
        return ""
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    text = "" if done is None else f"{done}"
    if total is not None:
        text += f" of {total}"
    fraction = progress_fraction(progress)
    if fraction is not None:
        text += f" ({100 * fraction:.1f} %)"
    if message:
        text += f": {message}" if text else str(message)
    return text


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _amount(value: object, name: str) -> int | float:
    # The common cases first: a plain int or float in range (NaN fails both tests).
    if type(value) is int:
        if 0 <= value <= _INT_MAX:
            return value
    elif type(value) is float and 0.0 <= value < math.inf:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            f"progress {name} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"progress {name} must be a finite number, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"progress {name} must be >= 0, got {value!r}")
    if isinstance(value, int) and value > _INT_MAX:
        # jsonb keeps any number, but readers (the dashboard, other languages) do not.
        raise InvalidArgumentError(f"progress {name} must be at most 2**63, got {value!r}")
    return value


def _storable(text: str, path: str) -> None:
    try:
        check_text(text, path)
    except InvalidJobError as exc:
        raise InvalidArgumentError(str(exc)) from None
