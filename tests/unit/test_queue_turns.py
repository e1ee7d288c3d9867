"""The turns that share a worker's claims among its queues (pgqueue.worker.turns).

``pick`` is the claim's choice as claim_v3 makes it (the candidates of the
lowest turns ``base + rank * stride``, ties to the earlier queue), over exact
fractions; the integration tests check the database makes the same choice.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pgqueue.worker.turns import QueueTurns

WEIGHTS = st.lists(st.integers(1, 20), min_size=1, max_size=5)


def pick(turns: QueueTurns, available: list[int], n: int) -> list[int]:
    """How many jobs of each queue a claim of ``n`` takes, ``available[i]`` ready."""
    strides = [Fraction(1) / Fraction(s) for s in _weights(turns)]
    candidates = sorted((b + r * s, i) for i, (b, s, a) in
                        enumerate(zip(turns.bases, strides, available, strict=True))
                        for r in range(1, a + 1))
    taken = [0] * len(available)
    for _, i in candidates[:n]:
        taken[i] += 1
    return taken


def _weights(turns: QueueTurns) -> list[int]:
    _, strides = turns.turns(1)
    assert strides is not None
    return [round(1 / s) for s in strides]


def make(weights: list[int]) -> QueueTurns:
    names = [f"q{i}" for i in range(len(weights))]
    return QueueTurns(names, "weighted", dict(zip(names, weights, strict=True)))


@settings(max_examples=100, deadline=None)
@given(WEIGHTS, st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_under_backlog_each_queue_gets_its_weighted_share_to_within_a_job_per_queue(
        weights: list[int], claims: list[int]) -> None:
    turns = make(weights)
    got = [0] * len(weights)
    for n in claims:
        taken = pick(turns, [n] * len(weights), n)
        assert sum(taken) == n
        turns.record(taken)
        got = [g + t for g, t in zip(got, taken, strict=True)]
        total = sum(got)
        # Stride scheduling's lag: less than one job per queue, whatever the sizes.
        for g, w in zip(got, weights, strict=True):
            assert abs(g - total * w / sum(weights)) < len(weights), (got, weights)


@settings(max_examples=100, deadline=None)
@given(WEIGHTS, st.data())
def test_a_claim_takes_all_it_can_and_no_queue_with_jobs_starves(
        weights: list[int], data: st.DataObject) -> None:
    turns = make(weights)
    waited = [0] * len(weights)  # claims since the queue last got a job while it had some
    bound = sum(weights)  # the heaviest queues' turns fit in one round of the weights
    for _ in range(40):
        available = data.draw(st.lists(st.integers(0, 30), min_size=len(weights),
                                       max_size=len(weights)))
        n = data.draw(st.integers(1, 30))
        taken = pick(turns, available, n)
        assert sum(taken) == min(n, sum(available))
        assert all(t <= a for t, a in zip(taken, available, strict=True))
        turns.record(taken)
        assert min(turns.bases) == 0
        assert max(turns.bases) <= max(Fraction(1, w) for w in weights) + 30
        for i, (t, a) in enumerate(zip(taken, available, strict=True)):
            waited[i] = 0 if t or not a else waited[i] + 1
            assert waited[i] <= bound, (i, waited, weights)


@settings(max_examples=60, deadline=None)
@given(WEIGHTS, st.integers(1, 100), st.integers(1, 20))
def test_an_idle_queue_banks_nothing_and_its_share_goes_to_the_others_by_weight(
        weights: list[int], idle_claims: int, n: int) -> None:
    weights = [*weights, 5]
    turns = make(weights)
    others = [0] * (len(weights) - 1)
    for _ in range(idle_claims):  # the last queue is empty
        taken = pick(turns, [n] * (len(weights) - 1) + [0], n)
        assert sum(taken) == n and taken[-1] == 0
        turns.record(taken)
        others = [o + t for o, t in zip(others, taken[:-1], strict=True)]
        total = sum(others)
        for o, w in zip(others, weights[:-1], strict=True):
            assert abs(o - total * w / sum(weights[:-1])) < len(weights), (others, weights)
    # Back with a backlog: no more than its share (plus the lag) of what follows,
    # however long it was idle.
    back = 0
    total = 0
    for _ in range(10):
        taken = pick(turns, [n] * len(weights), n)
        turns.record(taken)
        back += taken[-1]
        total += n
        assert back < total * 5 / sum(weights) + len(weights), (back, total, weights)


@given(st.lists(st.integers(0, 10), min_size=1, max_size=5), st.integers(1, 40))
def test_strict_order_takes_every_job_of_a_queue_before_the_next(
        available: list[int], n: int) -> None:
    names = [f"q{i}" for i in range(len(available))]
    turns = QueueTurns(names, "strict")
    bases, strides = turns.turns(n)
    assert bases is not None and strides is not None
    candidates = sorted((b + r * s, i) for i, (b, s, a) in
                        enumerate(zip(bases, strides, available, strict=True))
                        for r in range(1, min(a, n) + 1))
    order = [i for _, i in candidates[:n]]
    assert order == sorted(order)
    expected, left = [], n
    for i, a in enumerate(available):
        expected += [i] * min(a, left)
        left -= min(a, left)
    assert order == expected


def test_priority_order_sends_no_turns_and_records_nothing() -> None:
    turns = QueueTurns(["a", "b"], "priority")
    assert turns.turns(10) == (None, None)
    turns.record([3, 0])
    assert turns.bases == [0, 0]


def test_six_three_one_in_claims_of_ten_is_six_three_one_each_time() -> None:
    turns = QueueTurns(["critical", "default", "low"], "weighted",
                       {"critical": 6, "default": 3, "low": 1})
    for _ in range(5):
        taken = pick(turns, [100, 100, 100], 10)
        assert taken == [6, 3, 1]
        turns.record_jobs(["critical"] * 6 + ["default"] * 3 + ["low"])
