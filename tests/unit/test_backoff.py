from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pgqueue
from pgqueue.backoff import RetryPolicy

policies = st.builds(
    RetryPolicy,
    base_seconds=st.floats(0, 1e6, allow_nan=False),
    factor=st.floats(1, 100, allow_nan=False),
    max_seconds=st.floats(0, 1e7, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
)


@given(policies, st.integers(-5, 10**9), st.integers(0, 2**32))
def test_delay_is_always_within_zero_and_the_cap(policy: RetryPolicy, attempt: int,
                                                  seed: int) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    assert 0 <= delay <= policy.max_seconds


@given(st.integers(1, 60))
def test_without_jitter_delays_grow_then_stop_at_the_cap(attempt: int) -> None:
    policy = RetryPolicy(base_seconds=1, factor=2, max_seconds=100, jitter=0)
    assert policy.delay(attempt) == min(100, 2 ** (attempt - 1))
    assert policy.delay(attempt + 1) >= policy.delay(attempt)


def test_default_policy_doubles_from_one_second() -> None:
    policy = RetryPolicy(jitter=0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert policy.delay(100) == 3600


@pytest.mark.parametrize("bad", [{"base_seconds": -1}, {"factor": 0.5}, {"jitter": 2},
                                 {"max_seconds": float("inf")}, {"base_seconds": True}])
def test_bad_policies_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(pgqueue.TaskError):
        RetryPolicy(**bad)


def test_retry_exception_validates_delay() -> None:
    assert pgqueue.Retry(delay=2).delay == 2.0
    with pytest.raises(pgqueue.TaskError):
        pgqueue.Retry(delay=-1)
