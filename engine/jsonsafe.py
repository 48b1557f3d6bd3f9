"""JSON encoding that never raises: alerts and records always reach their output.

orjson reads documents nested 1,024 levels deep but refuses to write more than 254, and it
refuses what JSON cannot carry (a lone surrogate that the standard library's parser let in, a
64-bit-overflowing integer, a non-string key). A record that is any of these must not stop a
scan, crash an output, or make the daemon's outbox fail on it at every restart, so
:func:`dumps` encodes with orjson and, only when orjson refuses, encodes a trimmed copy
instead: containers deeper than :data:`MAX_DEPTH` and values that cannot be encoded are
replaced by a string that says what was there, and a warning is logged. The fast path costs
nothing extra.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

__all__ = ["MAX_DEPTH", "dumps", "trimmed"]

log = logging.getLogger(__name__)

# Levels kept below the value given to dumps(); well under orjson's 254 so that a trimmed
# record still fits inside the alert document around it.
MAX_DEPTH = 64
_DEEP = f"[trimmed: nested deeper than {MAX_DEPTH} levels]"


def dumps(value: Any, option: int = 0, default: Any = str) -> bytes:
    """`value` as JSON (orjson's `option`, `default`); a trimmed copy if orjson refuses it."""
    try:
        return orjson.dumps(value, option=option, default=default)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        reason = str(exc)
    log.warning("JSON value trimmed to encode it: %s", reason)
    try:
        return orjson.dumps(trimmed(value), option=option, default=default)
    except TypeError:  # `default` itself failed on what it was given: drop the options
        return orjson.dumps(trimmed(value))


def trimmed(value: Any, depth: int = 0) -> Any:
    """A copy of `value` that orjson can encode: too deep or unencodable parts replaced."""
    if type(value) is dict or isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return _DEEP
        return {_key(k): trimmed(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return _DEEP
        return [trimmed(v, depth + 1) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 64) else str(value)
    try:  # a type orjson knows (datetime, dataclass...), else its text as `default=str` gives
        orjson.dumps(value)
    except TypeError:
        try:
            return str(value)
        except Exception:  # a broken __str__ must not stop the alert either
            return f"[trimmed: {type(value).__name__}]"
    return value


def _key(key: Any) -> str:
    return trimmed(key) if isinstance(key, str) else str(key)
