"""Durations the way people write them: ``30s``, ``30m``, ``4h``, ``1h30m``, ``2d``, ``1d12h``.

This is the one place that parses them (the CLI, the magics, the models and the operator all call it), so
``timeToLive: 4h`` means the same thing everywhere; and the one place that words a length of time for people:
``format_duration`` as a spec spells it (``1h30m``), ``format_span`` in its largest units (time left:
``6d23h``, ``3h 59m``) and ``format_age`` as kubectl's AGE column does. Front ends pick one and never
count units themselves (devctl, the magics and the lifecycle's messages each had a copy of ``format_span``).

The grammar is Go's ``time.ParseDuration`` cut down to what a lifetime needs, plus days:

* one or more ``<whole number><unit>`` parts, units ``d`` (24h), ``h``, ``m``, ``s``, largest first and
  each at most once (``1d12h``, not ``12h1d`` or ``1h1h``);
* the total must be positive: ``0s`` is refused, because the lifecycle code would read it as "expire now"
  (and an empty string, the peer project's bug, as "never");
* **a bare number is refused**, not read as seconds. ``timeToLive: "8"`` is far more likely to mean eight
  hours than eight seconds, and guessing wrong deletes somebody's server; Go and kubectl refuse it too.
  The error suggests the units instead. Fields that count seconds (``idleTimeout``) are integers.
* no fractions (``1.5h``: write ``1h30m``), no spaces, no signs, lower-case units only. The CRD
  ``pattern`` must say the same thing in RE2 (no look-arounds), and a small grammar keeps the two equal.

``DURATION_PATTERN`` is that grammar as a regular expression, for the CRD's openAPIV3Schema: the server
then refuses the empty string and ``0s`` as well, before any SDK code runs.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DURATION_ADVICE", "DURATION_PATTERN", "format_age", "format_duration", "format_span", "parse_duration"]

_UNITS = ("d", "h", "m", "s")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

DURATION_ADVICE = "use a number followed by s, m, h or d, e.g. 30m, 4h, 1h30m, 2d"
"""How every duration error ends: what to write instead (the SDK's and the CRD's messages)."""
_ACCEPTED = DURATION_ADVICE


def _pattern() -> str:
    # "Positive" in a regular expression: some part is non-zero. Alternative k says the first non-zero part
    # has unit k: the parts before it may only be zeros, the parts after it may be anything.
    nonzero, anything = "[0-9]*[1-9][0-9]*", "[0-9]+"
    alternatives = []
    for first, unit in enumerate(_UNITS):
        zeros = "".join(f"(0+{before})?" for before in _UNITS[:first])
        rest = "".join(f"({anything}{after})?" for after in _UNITS[first + 1 :])
        alternatives.append(f"{zeros}{nonzero}{unit}{rest}")
    return "^(" + "|".join(alternatives) + ")$"


DURATION_PATTERN = _pattern()
"""A positive duration (``1h30m``, ``2d``; not ``""``, ``0s``, ``90`` or ``4 hours``), valid in RE2 and Python."""

_TOKENS = re.compile("([0-9]+[dhms])+")
_PARTS = re.compile("".join(f"(?:(?P<{unit}>[0-9]+){unit})?" for unit in _UNITS))


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``30m``, ``4h``, ``1h30m``, ``2d`` or ``1d12h`` into a positive timedelta.

    Raises:
        ValueError: the text is empty, zero, a bare number, or not in the grammar above; the message
            quotes the text and shows the accepted forms.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected a string; {_ACCEPTED}")
    match = _PARTS.fullmatch(text)
    if not text or match is None:
        if text.isdigit() and int(text) == 0:
            # "add a unit, e.g. 0s" would suggest a value that is refused in turn.
            raise ValueError(f'invalid duration "{text}": must be longer than zero; {_ACCEPTED}')
        if text.isdigit():
            raise ValueError(f'invalid duration "{text}": add a unit, e.g. {text}s or {text}m; {_ACCEPTED}')
        if _TOKENS.fullmatch(text):
            raise ValueError(
                f'invalid duration "{text}": write each unit once, largest first, e.g. 1d12h or 1h30m'
            )
        raise ValueError(f'invalid duration "{text}": {_ACCEPTED}')
    seconds = sum(int(match[unit]) * _UNIT_SECONDS[unit] for unit in _UNITS if match[unit] is not None)
    if seconds <= 0:
        raise ValueError(f'invalid duration "{text}": must be longer than zero; {_ACCEPTED}')
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f'invalid duration "{text}": too long (more than 999999999 days)') from None


def format_duration(duration: timedelta) -> str:
    """The canonical short form of a duration: ``1h30m``, ``2d``, ``1d12h``, ``45s``; ``0s`` for zero.

    Fractions of a second are dropped (lifetimes are counted in seconds). The result parses back to the
    same value with ``parse_duration`` whenever it is positive.

    Raises:
        ValueError: the duration is negative.
    """
    if duration < timedelta(0):
        raise ValueError(f"cannot format a negative duration ({duration}); durations here are lifetimes")
    seconds = duration.days * 86400 + duration.seconds  # exact, unlike total_seconds() for long spans
    if seconds == 0:
        return "0s"
    parts = []
    for unit in _UNITS:
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_span(duration: timedelta, *, units: int = 2, separator: str = "") -> str:
    """A length of time in its ``units`` largest units, from the first that is not zero: ``45s``, ``4m10s``,
    ``1h59m``, ``6d23h`` (units of zero are left out: ``2d``, not ``2d0h``); ``0s`` for zero or less.

    For deadlines and ages, where ``119m`` reads badly. Fractions of a second are dropped.

    Example:
        >>> format_span(timedelta(hours=3, minutes=59, seconds=12), separator=" ")
        '3h 59m'
    """
    seconds = max(0, int(duration.total_seconds()))
    counts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    first = next((index for index, (count, _) in enumerate(counts) if count), len(counts) - 1)
    return separator.join(f"{count}{unit}" for count, unit in counts[first:first + units] if count) or "0s"


def format_age(duration: timedelta) -> str:
    """``45s``, ``3m20s``, ``25m``, ``5h10m``, ``20h``, ``3d4h``, ``40d``: kubectl's AGE column
    (``duration.HumanDuration``), so devctl's tables read like kubectl's."""
    seconds = max(0, int(duration.total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y{days % 365}d" if days < 365 * 8 else f"{days // 365}y"
