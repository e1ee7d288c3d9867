"""Retry delays: pure functions of the attempt number and a random source.

Invariant: ``RetryPolicy.delay`` always returns a value in
``[0, max_seconds]``, whatever the attempt and randomness.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import TaskError

__all__ = ["DEFAULT_RETRY", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap.

    The delay before retrying after attempt ``n`` (1-based) is
    ``min(max_seconds, base_seconds * factor ** (n - 1))``, then multiplied by a
    random factor in ``[1 - jitter, 1 + jitter]`` and capped again.

    Defaults: 1 s, doubling, capped at 1 hour, ±20 % jitter.
    """

    base_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 3600.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for name in ("base_seconds", "factor", "max_seconds", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) \
                    or not math.isfinite(value) or value < 0:
                raise TaskError(f"RetryPolicy.{name} must be a finite number >= 0, got {value!r}")
        if self.factor < 1:
            raise TaskError(f"RetryPolicy.factor must be >= 1, got {self.factor}")
        if self.jitter > 1:
            raise TaskError(f"RetryPolicy.jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        # Compare in log space so a large attempt never overflows.
        if self.base_seconds == 0:
            raw = 0.0
        elif self.factor > 1 and exponent * math.log(self.factor) > math.log(
            max(self.max_seconds, 1e-12) / self.base_seconds
        ):
            raw = self.max_seconds
        else:
            try:
                raw = min(self.max_seconds, self.base_seconds * self.factor**exponent)
            except OverflowError:  # rounding in the log-space test above, at its edge
                raw = self.max_seconds
        if self.jitter:
            raw *= 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return min(self.max_seconds, max(0.0, raw))


DEFAULT_RETRY = RetryPolicy()
