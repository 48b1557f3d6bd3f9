"""Any JSON value, made safe for a message: encoded, shown as one line of text, or counted.

An alert carries the record "as received", and alerts come back from the outbox, so every
formatter must accept any JSON value in any field: a list where CloudTrail puts an object,
a 400 KB string, control characters, numbers beyond 64 bits, nesting deeper than orjson's
254-level write limit. Nothing here raises on such values; each function turns them into
something a message can carry, and the formatters say when they shortened it.

    dumps(value)              orjson bytes; an unencodable value is sanitised, never raised
    sanitize(value)           the same value with what orjson refuses replaced (see below)
    text_of(value, limit)     a string for display: JSON for lists and objects, cut
    one_line(text)            control, format and line-break characters as visible escapes
    count_of(value)           a positive int from whatever `event_count` holds
"""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson

MAX_DEPTH = 200  # below orjson's 254, leaving room for the message around the alert
INT_LIMIT = 2**63 - 1
_VISIBLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def dumps(value: Any) -> bytes:
    """orjson's encoding of `value`; what it cannot encode is sanitised first."""
    try:
        return orjson.dumps(value, default=_default)
    except (orjson.JSONEncodeError, TypeError, ValueError, RecursionError):
        return orjson.dumps(sanitize(value), default=_default)


def _default(value: Any) -> str:
    return short_str(value)


def sanitize(value: Any, depth: int = 0) -> Any:
    """`value` with non-string keys stringified, lone surrogates replaced, integers beyond
    64 bits as strings, and anything nested deeper than MAX_DEPTH replaced by a note."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if -INT_LIMIT <= value <= INT_LIMIT else short_str(value)
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        return f"[trimmed: nested deeper than {MAX_DEPTH} levels]"
    if isinstance(value, dict):
        return {sanitize(k if isinstance(k, str) else short_str(k)): sanitize(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v, depth + 1) for v in value]
    return sanitize(short_str(value))


def short_str(value: Any) -> str:
    """`str(value)`, except that a huge integer (str() refuses > 4300 digits) is described."""
    try:
        return str(value)
    except ValueError:
        return f"[a number of about {value.bit_length() * 3 // 10} digits]"


def text_of(value: Any, limit: int) -> str:
    """`value` as display text of at most about `limit` characters (callers cut exactly)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value[: limit + 1]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return short_str(value)[: limit + 1]
    return dumps(value)[: (limit + 1) * 4].decode("utf-8", "ignore")[: limit + 1]


def one_line(text: str) -> str:
    """Line breaks, control and invisible format characters (bidi overrides, zero-width
    joiners) made visible as escapes: text from an event can never start a new line or
    reorder what is shown around it."""
    if text.isprintable():
        return text
    return "".join(_visible(c) if not c.isprintable() else c for c in text)


def _visible(char: str) -> str:
    if char in _VISIBLE:
        return _VISIBLE[char]
    if char == " " or unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return " "  # other spaces (NBSP, em space): shown as a plain space
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def count_of(value: Any) -> int:
    """A usable match count: positive, bounded; anything else counts as 1."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 16:
        value = int(value.strip())
    if isinstance(value, int):
        return max(1, min(value, 10**12))
    return 1
