"""The turns of a worker's queues: how its claims share out among them.

The claim (job_claim, ``pgqueue.claim_v3``) gives the k-th candidate of queue
i the turn ``bases[i] + k * strides[i]`` and takes the candidates of the
lowest turns. This module keeps the bases between claims and says what to
send; it does no I/O.

- ``priority``: no turns (``None``): priority, run_at and id across queues,
  as before weights existed.
- ``weighted``: stride scheduling. A queue's stride is ``1 / weight``; its base
  is a virtual time that advances by one stride per job it got. Under backlog
  on every queue the claims split in the ratio of the weights, whatever the
  claim sizes, to within one job per queue at any time; a queue short of
  candidates leaves its turns to the others, in the ratio of theirs.
- ``strict``: bases ``0, n+1, 2(n+1), ...`` and stride 1, so a claim of n jobs
  takes every candidate of the first queue before any of the second.

Invariants (weighted): after :meth:`QueueTurns.record` the smallest base is 0
and no base lies more than one stride below the turn of the claim's last job,
so a queue that was idle (or at a limit) banks no credit to burst with later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

__all__ = ["QueueTurns"]


class QueueTurns:
    """Turns of ``queues`` in ``order`` (see the module), with ``weights`` by name
    (a queue without one has weight 1).

    Example::

        turns = QueueTurns(["critical", "low"], "weighted", {"critical": 3})
        bases, strides = turns.turns(8)   # send with the claim of 8 jobs
        turns.record([6, 2])              # the jobs it got, per queue
    """

    def __init__(self, queues: Sequence[str], order: str,
                 weights: Mapping[str, int] | None = None) -> None:
        self.queues = list(queues)
        self.order = order
        weights = weights or {}
        self._strides = [Fraction(1, weights.get(q, 1)) for q in self.queues]
        self._bases = [Fraction(0)] * len(self.queues)

    @property
    def bases(self) -> list[Fraction]:
        """The current bases (exact), in queue order."""
        return list(self._bases)

    def turns(self, n: int) -> tuple[list[float] | None, list[float] | None]:
        """The bases and strides to claim ``n`` jobs with (None, None: priority order)."""
        if self.order == "weighted":
            return [float(b) for b in self._bases], [float(s) for s in self._strides]
        if self.order == "strict":
            return [float(i * (n + 1)) for i in range(len(self.queues))], \
                [1.0] * len(self.queues)
        return None, None

    def record(self, taken: Sequence[int]) -> None:
        """A claim took ``taken[i]`` jobs of queue i: advance the bases (weighted only)."""
        if self.order != "weighted" or not any(taken):
            return
        ends = [b + k * s for b, k, s in zip(self._bases, taken, self._strides, strict=True)]
        last = max(e for e, k in zip(ends, taken, strict=True) if k)
        # A queue whose next turn fell before the claim's last one had no
        # candidate there (empty, limited, at its local slots): it catches up.
        bases = [max(e, last - s) for e, s in zip(ends, self._strides, strict=True)]
        low = min(bases)
        self._bases = [b - low for b in bases]

    def record_jobs(self, queues: Sequence[str]) -> None:
        """:meth:`record` from the queue of each claimed job."""
        if self.order != "weighted":
            return
        index = {q: i for i, q in enumerate(self.queues)}
        taken = [0] * len(self.queues)
        for queue in queues:
            taken[index[queue]] += 1
        self.record(taken)
