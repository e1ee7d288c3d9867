"""The retention values, pure: parsing what users write, the defaults, the spelling back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pgqueue.errors import ConfigError, InvalidArgumentError
from pgqueue.retention import (
    DEFAULT_RETENTION,
    Retention,
    format_keep,
    parse_keep,
    parse_retention,
)


def test_the_defaults_are_a_day_a_week_and_thirty_days() -> None:
    assert parse_retention(None) == DEFAULT_RETENTION
    assert DEFAULT_RETENTION.spec() == "succeeded=1d,cancelled=1w,failed=30d"
    assert not DEFAULT_RETENTION.off and parse_retention(" OFF ").off


def test_a_spec_changes_only_the_states_it_names() -> None:
    got = parse_retention("failed=90d, succeeded=off")
    assert got == Retention(succeeded=None, cancelled=7 * 86400.0, failed=90 * 86400.0)
    assert parse_retention({"cancelled": timedelta(hours=2)}).of("cancelled") == 7200.0
    assert parse_retention(got) is got


@pytest.mark.parametrize(("value", "seconds"), [
    ("45m", 2700.0), ("1.5h", 5400.0), ("2w", 1209600.0), (60, 60.0),
    (timedelta(days=1), 86400.0), ("off", None), ("Off", None)])
def test_keep_values(value: object, seconds: float | None) -> None:
    assert parse_keep(value, field="f") == seconds


@pytest.mark.parametrize("value", ["7", "banana", "", "1y", 59, -1, float("inf"),
                                   timedelta(days=365 * 101), True, None, [1]])
def test_bad_keep_values_raise_the_error_asked_for(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^f"):
        parse_keep(value, field="f")
    with pytest.raises(InvalidArgumentError):
        parse_keep(value, field="f", error=InvalidArgumentError)


def test_a_retention_below_a_minute_cannot_be_built() -> None:
    with pytest.raises(ConfigError, match="retention of failed"):
        Retention(failed=30)


def test_format_keep_uses_the_largest_whole_unit() -> None:
    assert [format_keep(s) for s in (None, 60, 90, 3600, 86400 * 14, 86400 * 30)] == [
        "off", "1m", "90s", "1h", "2w", "30d"]
