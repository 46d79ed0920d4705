"""Duration parsing: the accepted forms, the refusals and their messages, and the CRD pattern agreeing; and the
three ways a length of time is worded for people."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devservers_sdk.durations import (
    DURATION_PATTERN,
    format_age,
    format_duration,
    format_span,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90m", timedelta(minutes=90)),
        ("0h5m", timedelta(minutes=5)),
        ("007m", timedelta(minutes=7)),
    ],
)
def test_parse_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "use a number followed by s, m, h or d"),
        ("4 hours", "use a number followed by s, m, h or d, e.g. 30m, 4h, 1h30m, 2d"),
        ("0s", "longer than zero"),
        ("0d0h0m0s", "longer than zero"),
        ("-5m", "use a number followed by"),
        ("90", "add a unit, e.g. 90s or 90m"),
        ("0", "longer than zero"),
        ("000", "longer than zero"),
        ("1.5h", "use a number followed by"),
        ("4H", "use a number followed by"),
        (" 4h", "use a number followed by"),
        ("4h\n", "use a number followed by"),
        ("1w", "use a number followed by"),
        ("30m1h", "largest first"),
        ("1h1h", "largest first"),
        ("99999999999d", "too long"),
    ],
)
def test_parse_refuses_with_a_message_that_says_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert f'"{text}"' in str(caught.value)
    assert hint in str(caught.value)
    for suggested in re.findall(r"e\.g\. ([0-9a-z]+)", str(caught.value)):
        parse_duration(suggested)  # every example the message offers is itself accepted


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="expected a string"):
        parse_duration(3600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=2), "2d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=59, microseconds=999_999), "59s"),
    ],
)
def test_format_canonical_short_form(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.integers(min_value=1, max_value=10**9))
def test_format_then_parse_round_trips(seconds: int) -> None:
    duration = timedelta(seconds=seconds)
    assert parse_duration(format_duration(duration)) == duration


def _parses(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "text", ["", "0s", "00m", "0d0s", "0d1s", "1d0h", "90", "1h30m", "2d", "1h1h", "30m1h", "5", "s", "1x"]
)
def test_crd_pattern_agrees_with_parser_on_edge_cases(text: str) -> None:
    assert (re.fullmatch(DURATION_PATTERN, text) is not None) == _parses(text)


@given(st.text(alphabet="0123dhms", max_size=9))
def test_crd_pattern_agrees_with_parser(text: str) -> None:
    # The apiserver and the SDK must draw the line in the same place, or kubectl and devctl disagree.
    assert (re.fullmatch(DURATION_PATTERN, text) is not None) == _parses(text)


def test_crd_pattern_avoids_what_re2_lacks() -> None:
    # Kubernetes compiles patterns with Go's RE2: no look-arounds, no backreferences.
    for construct in ("(?=", "(?!", "(?<", "\\1"):
        assert construct not in DURATION_PATTERN
    assert DURATION_PATTERN.startswith("^") and DURATION_PATTERN.endswith("$")


@pytest.mark.parametrize(("seconds", "age", "left"), [
    (5, "5s", "5s"), (119, "119s", "1m59s"), (200, "3m20s", "3m20s"), (600, "10m", "10m"),
    (7140, "119m", "1h59m"), (5 * 3600 + 600, "5h10m", "5h10m"), (20 * 3600, "20h", "20h"),
    (3 * 86400 + 4 * 3600, "3d4h", "3d4h"), (40 * 86400, "40d", "40d"),
])
def test_ages_read_like_kubectl_and_time_left_in_its_two_largest_units(seconds: int, age: str, left: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == age
    assert format_span(timedelta(seconds=seconds)) == left


@pytest.mark.parametrize(("seconds", "units", "text"), [
    (0, 2, "0s"), (-30, 2, "0s"), (3599, 2, "59m 59s"), (90061, 2, "1d 1h"), (90061, 3, "1d 1h 1m"),
    (2 * 86400 + 5, 2, "2d"), (2 * 86400 + 5, 4, "2d 5s"), (3 * 3600 + 1200, 1, "3h"),
])
def test_a_span_leaves_out_units_of_zero_and_never_goes_negative(seconds: int, units: int, text: str) -> None:
    assert format_span(timedelta(seconds=seconds), units=units, separator=" ") == text
