"""Durations as rule authors write them: `30s`, `10m`, `1h`, `7d` (and plain seconds)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: object) -> float:
    """Seconds in `text`; raises ValueError with a message fit for a rule author."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 30s, 10m, 1h, 7d, got {text!r}")
    if isinstance(text, int | float):
        if text <= 0:
            raise ValueError(f"a duration must be positive, got {text!r}")
        return float(text)
    found = _DURATION.match(str(text))
    if not found:
        raise ValueError(f"expected a duration like 30s, 10m, 1h, 7d, got {text!r}")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
