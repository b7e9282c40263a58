"""Thinking budgets: "500ms", "8s", "2m", "1h", bare seconds; everything else is a usage error."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliberate.duration import format_duration, parse_duration
from deliberate.errors import DurationError, UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("8s", 8.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1.5", 1.5),
        ("30", 30.0),
        (".5s", 0.5),
        ("2.5m", 150.0),
        (" 8S ", 8.0),
        ("1m30s", 90.0),
        ("1h2m", 3720.0),
        ("250 ms", 0.25),
        (8, 8.0),
        (0.25, 0.25),
    ],
)
def test_parses_units_and_plain_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["abc", "0", "0s", "-1", "-5s", "", "   ", "5 parsecs", "8ss", "s", "1e3", "inf", "nan", "1 2 3x", "10d", 0, -2.0],
)
def test_rejects_malformed_or_non_positive(text):
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert isinstance(caught.value, UsageError)  # the CLI exits 2 for it
    assert caught.value.exit_code == 2
    if isinstance(text, str) and text.strip():
        assert repr(text) in str(caught.value)  # the message quotes what was typed


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_rejects_non_finite_numbers(value):
    with pytest.raises(DurationError):
        parse_duration(value)


def test_a_bool_is_not_a_number_of_seconds():
    with pytest.raises(DurationError):
        parse_duration(True)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from([("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0), ("", 1.0)]))
def test_every_unit_scales_the_number(number, unit):
    suffix, scale = unit
    assert parse_duration(f"{number}{suffix}") == pytest.approx(number * scale)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "500ms"), (0.0004, "0ms"), (8, "8.0s"), (119.9, "119.9s"), (150, "2.5m")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
