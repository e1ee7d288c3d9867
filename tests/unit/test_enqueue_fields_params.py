"""Tags and key modes validated without a database (pgqueue.producer.tags, params)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pgqueue.errors import InvalidArgumentError, InvalidJobError
from pgqueue.producer.params import new_job
from pgqueue.producer.tags import TAGS_MAX, pg_text_array, validate_tags


def test_tags_keep_their_first_order_and_drop_repeats() -> None:
    assert validate_tags(["b", "a", "b", "c", "a"]) == ("b", "a", "c")
    assert validate_tags(("x",)) == ("x",)
    assert validate_tags([]) == () == validate_tags(None)


def test_a_set_of_tags_is_sorted_as_its_order_is_not_stable() -> None:
    assert validate_tags({"zeta", "alpha", "mu"}) == ("alpha", "mu", "zeta")
    assert validate_tags(frozenset({"b", "a"})) == ("a", "b")


def test_the_limit_counts_distinct_tags() -> None:
    assert len(validate_tags([f"t{i % TAGS_MAX}" for i in range(3 * TAGS_MAX)])) == TAGS_MAX
    with pytest.raises(InvalidJobError, match="holds 21 distinct tags; at most 20"):
        validate_tags([f"t{i}" for i in range(21)])


def test_the_caller_chooses_the_error_class_and_the_field_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"^tag\[0\] must be 1 to 100 characters"):
        validate_tags([""], field="tag", error=InvalidArgumentError)
    with pytest.raises(InvalidArgumentError, match="contains a NUL character"):
        validate_tags(["a\x00"], error=InvalidArgumentError)


def test_array_text_escapes_what_an_array_literal_reads() -> None:
    assert pg_text_array(("a", 'b"c', "d\\e", "{f,g}")) == '{"a","b\\"c","d\\\\e","{f,g}"}'


def test_key_modes_normalise() -> None:
    plain = new_job("t")
    assert (plain.tags, plain.meta_json, plain.keyed_mode, plain.replace) == ((), None, False,
                                                                              False)
    throttled = new_job("t", unique_key="k", unique_for=timedelta(minutes=10))
    assert (throttled.unique_for_seconds, throttled.keyed_mode) == (600.0, True)
    debounced = new_job("t", unique_key="k", debounce=2.5, on_conflict="replace",
                        meta={"a": [1]})
    assert (debounced.debounce_seconds, debounced.replace, debounced.meta_json) == (
        2.5, True, '{"a":[1]}')
