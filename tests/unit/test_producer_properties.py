"""Property: any value either validates and round-trips through JSON, or raises
InvalidJobError; never another exception."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pgqueue import InvalidJobError
from pgqueue.producer import params as _params

# Any code point, surrogates and NUL included: both must be refused cleanly.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT
    | st.integers(min_value=2**14000, max_value=2**15000)
)
JSON_LIKE = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)
NOT_JSON = st.sampled_from([{1, 2}, b"bytes", object(), 1j, frozenset(), bytearray(b"x")])


def has_bad_float(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_bad_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_bad_float(v) for v in value)
    return False


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(TEXT, JSON_LIKE, max_size=6))
def test_json_objects_validate_or_raise_invalid_job_error(args: dict[str, Any]) -> None:
    try:
        dumped = _params.dump_args(args)
    except InvalidJobError:
        return
    assert not has_bad_float(args)
    assert json.loads(dumped) == args
    assert "\x00" not in dumped
    dumped.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(JSON_LIKE | NOT_JSON)
def test_any_value_as_args_raises_only_invalid_job_error(args: Any) -> None:
    try:
        dumped = _params.dump_args(args)
    except InvalidJobError:
        return
    assert args is None or isinstance(args, dict)
    assert json.loads(dumped) == (args or {})


@settings(max_examples=200, deadline=None)
@given(
    task=st.one_of(TEXT, st.integers(), st.none()),
    queue=st.one_of(TEXT, st.integers()),
    priority=st.one_of(st.integers(), st.floats(), st.booleans()),
    delay=st.one_of(st.none(), st.floats(), st.integers(), st.timedeltas()),
    max_attempts=st.one_of(st.none(), st.integers(), st.booleans()),
    unique_key=st.one_of(st.none(), TEXT, st.integers()),
)
def test_any_fields_validate_or_raise_invalid_job_error(
    *,
    task: Any, queue: Any, priority: Any, delay: Any, max_attempts: Any, unique_key: Any
) -> None:
    try:
        job = _params.new_job(
            task, None, queue=queue, priority=priority, delay=delay,
            max_attempts=max_attempts, unique_key=unique_key,
        )
    except InvalidJobError:
        return
    assert -1000 <= job.priority <= 1000
    assert job.max_attempts >= 1
    assert job.delay_seconds is None or job.delay_seconds >= 0
