"""Fair share across keys: where each fair queue's next round of keys starts.

In a fair queue (``--queues tenants=fair``) the claim takes jobs round-robin
across their ``concurrency_key``: the first job of each of the next keys after
a cursor, then the second of each, and so on, before the rest by priority,
run_at and id (``pgqueue.claim_round_keys``, ``pgqueue.claim_candidates``).
This module keeps each fair queue's cursor, the last key served, between
claims; it does no I/O.

Invariant: the cursor only moves forward in key order, to the greatest key a
claim took after it, and starts again from the first key when a claim took
none after it; so every key with ready jobs is in a round within
``keys / claim size`` claims, whatever the backlog of the others.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ..types import Job

__all__ = ["KeyRounds"]


class KeyRounds:
    """The cursors of the fair ones among ``queues``.

    Example::

        rounds = KeyRounds(["tenants", "default"], {"tenants"})
        fair, cursors = rounds.params()   # sent with the claim
        rounds.record(jobs)               # the claimed jobs
    """

    def __init__(self, queues: Sequence[str], fair: Collection[str]) -> None:
        self.queues = list(queues)
        self._fair = [q in fair for q in self.queues]
        self._cursors: list[str | None] = [None] * len(self.queues)

    @property
    def cursors(self) -> list[str | None]:
        return list(self._cursors)

    def params(self) -> tuple[list[bool], list[str | None]]:
        """The claim's ``fair`` and ``cursors``."""
        return list(self._fair), list(self._cursors)

    def record(self, jobs: Sequence[Job]) -> None:
        """Move each fair queue's cursor past the keys this claim took."""
        for i, queue in enumerate(self.queues):
            if not self._fair[i]:
                continue
            cursor = self._cursors[i]
            after = [j.concurrency_key for j in jobs if j.queue == queue
                     and j.concurrency_key is not None
                     and (cursor is None or j.concurrency_key > cursor)]
            self._cursors[i] = max(after) if after else None
