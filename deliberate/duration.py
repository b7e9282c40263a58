"""Parse thinking budgets such as ``500ms``, ``8s``, ``2m``, ``1h`` or ``30``."""

from __future__ import annotations

import math
import re

from deliberate.errors import DurationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?")


def parse_duration(text: str | float | int) -> float:
    """Seconds as a positive float; a bare number means seconds.

    Compound forms ("1m30s") are accepted because people type them.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        raw = str(text).strip().lower()
        if raw.startswith("-"):
            raise DurationError(f"invalid duration {str(text)!r}: it must be greater than zero")
        seconds, position = 0.0, 0
        for match in _PATTERN.finditer(raw):
            if match.start() != position:
                break
            seconds += float(match["number"]) * _UNITS[match["unit"] or "s"]
            position = match.end()
        if not raw or position != len(raw):
            raise DurationError(
                f"invalid duration {str(text)!r}: use a number with an optional unit, e.g. 500ms, 8s, 2m, 1h"
            )
    if not math.isfinite(seconds) or seconds <= 0:
        raise DurationError(f"invalid duration {str(text)!r}: it must be greater than zero")
    return seconds


def parse_budget(text: str | float | int | None) -> float | None:
    """A thinking budget: a duration, or None for ``none`` (no time limit)."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "none"):
        return None
    return parse_duration(text)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"
