"""How long history keeps finished jobs: the values, their parsing, their defaults.

Pure: no database, no worker. The worker's setting (:class:`Retention`, from
``Worker(retention=...)`` or ``pgqueue worker --retention``) and the per-queue
overrides (:func:`pgqueue.set_retention`) are both read here.

A retention is a number of seconds from :data:`MIN_KEEP_SECONDS` (one minute:
a result or a dashboard read right after a job finishes still finds it) to 100
years, or ``None``: keep for ever (spelled ``off``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_RETENTION",
    "FINAL_STATES",
    "MAX_KEEP_SECONDS",
    "MIN_KEEP_SECONDS",
    "Retention",
    "RetentionSpec",
    "format_keep",
    "parse_duration_text",
    "parse_keep",
    "parse_retention",
]

FINAL_STATES = ("succeeded", "cancelled", "failed")
MIN_KEEP_SECONDS = 60.0
#: 100 years as PostgreSQL compares an interval of seconds with ``interval '100 years'``
#: (1,200 months of 30 days): the bound the table's CHECK and pgqueue.set_retention hold.
MAX_KEEP_SECONDS = 1200 * 30 * 86400.0
OFF = "off"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_text(text: str) -> float | None:
    """Seconds in ``45s``, ``30m``, ``12h``, ``7d``, ``2w``; None if ``text`` is not one.

    The unit is required: a bare ``7`` is not a duration (someone who meant
    seven days would lose a week of history).
    """
    match = _DURATION.match(text)
    return None if match is None else float(match[1]) * _UNIT_SECONDS[match[2]]


def parse_keep(value: object, *, field: str,
               error: type[ValueError] = ConfigError) -> float | None:
    """One retention as seconds, or None for ``off`` (keep for ever).

    Accepts a timedelta, a number of seconds, a duration with its unit
    (``"12h"``, ``"7d"``) or ``"off"``; anything else, or a value outside 1
    minute to 100 years, raises ``error`` naming ``field``.
    """
    if isinstance(value, str):
        if value.strip().lower() == OFF:
            return None
        seconds = parse_duration_text(value)
        if seconds is None:
            raise error(f"{field}: {value!r} is not a retention: write a duration with its "
                        "unit (45s, 30m, 12h, 7d, 2w) or off")
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise error(f"{field} must be a timedelta, a number of seconds, a duration such as "
                    f"'7d', or 'off'; got {type(value).__name__}")
    if not math.isfinite(seconds) or not MIN_KEEP_SECONDS <= seconds <= MAX_KEEP_SECONDS:
        raise error(f"{field} must be from 1 minute to 100 years, or off; got {value!r}")
    return seconds


def format_keep(seconds: float | None) -> str:
    """``off``, or the largest whole unit: ``1d``, ``36h``, ``90s``."""
    if seconds is None:
        return OFF
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long history keeps finished jobs of each final state, in seconds
    (None: for ever). The defaults: succeeded 1 day, cancelled 7 days, failed 30
    days. Queues may override each (:func:`pgqueue.set_retention`)."""

    succeeded: float | None = 86400.0
    cancelled: float | None = 7 * 86400.0
    failed: float | None = 30 * 86400.0

    def __post_init__(self) -> None:
        for state in FINAL_STATES:
            value = getattr(self, state)
            if value is not None:
                parse_keep(value, field=f"retention of {state}")

    def of(self, state: str) -> float | None:
        """The retention of ``state`` (one of :data:`FINAL_STATES`)."""
        if state not in FINAL_STATES:
            raise KeyError(state)
        value: float | None = getattr(self, state)
        return value

    @property
    def off(self) -> bool:
        """Whether every state is kept for ever."""
        return all(self.of(state) is None for state in FINAL_STATES)

    def spec(self) -> str:
        """As ``--retention`` writes it: ``succeeded=1d,cancelled=1w,failed=30d``."""
        return ",".join(f"{state}={format_keep(self.of(state))}" for state in FINAL_STATES)


DEFAULT_RETENTION = Retention()

#: What ``Worker(retention=...)`` accepts (see :func:`parse_retention`).
RetentionSpec = str | Mapping[str, timedelta | float | str] | Retention | None


def parse_retention(value: RetentionSpec | object) -> Retention:
    """The worker's retention from what a user wrote; raises ConfigError.

    - None: the defaults (:data:`DEFAULT_RETENTION`);
    - a :class:`Retention`;
    - ``"off"``: keep everything for ever;
    - ``"succeeded=12h,failed=off"`` (``--retention``, ``PGQUEUE_RETENTION``): the
      states named take these values, the others their defaults;
    - a mapping ``{"succeeded": timedelta(hours=12), "failed": "off"}``: the same.
    """
    if value is None:
        return DEFAULT_RETENTION
    if isinstance(value, Retention):
        return value
    if isinstance(value, str):
        if value.strip().lower() == OFF:
            return Retention(None, None, None)
        return _from_mapping(_split_spec(value))
    if isinstance(value, Mapping):
        return _from_mapping(value)
    raise ConfigError(f"retention must be 'off', a spec such as 'succeeded=1d,failed=30d', "
                      f"a mapping of state to retention or a Retention; got "
                      f"{type(value).__name__}")


def _split_spec(text: str) -> dict[str, str]:
    given: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        state, sep, keep = part.partition("=")
        state = state.strip().lower()
        if not sep:
            raise ConfigError(f"retention: {part.strip()!r} is not STATE=AGE (write e.g. "
                              "succeeded=1d,cancelled=7d,failed=30d, or off)")
        if state in given:
            raise ConfigError(f"retention: {state} is given twice")
        given[state] = keep.strip()
    if not given:
        raise ConfigError("retention: empty; write e.g. succeeded=1d,failed=30d, or off")
    return given


def _from_mapping(given: Mapping[Any, Any]) -> Retention:
    values: dict[str, float | None] = {s: DEFAULT_RETENTION.of(s) for s in FINAL_STATES}
    for state, keep in given.items():
        if state not in FINAL_STATES:
            raise ConfigError(f"retention: {state!r} is not a final state; the states are "
                              f"{', '.join(FINAL_STATES)}")
        values[str(state)] = parse_keep(keep, field=f"retention of {state}")
    return Retention(**values)
