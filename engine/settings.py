"""Typed config settings: a section is a table of `key -> Kind`, checked whole at load.

A Kind is a function from a value to the message saying what is wrong with it (None when
nothing is). The sources and server sections are declared as such tables
(engine.daemon.registry), so a misspelt key or a `grace_period: soon` is found when the
config loads, with its line, instead of as a traceback when the daemon first uses it.
Every problem of a section is returned, not just the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.durations import parse_duration

Kind = Callable[[Any], "str | None"]
Where = Callable[[str], str]  # key -> "PATH:LINE"


def string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "expected a non-empty string"


def strings(value: Any) -> str | None:
    """A list of non-empty strings (one string alone is taken as a list of one)."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list) and items and all(isinstance(v, str) and v for v in items):
        return None
    return "expected a list of strings"


def http_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return None
    return "expected an http(s) URL"


def duration(value: Any) -> str | None:
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None


def duration_up_to(most: float, text: str) -> Kind:
    def check(value: Any) -> str | None:
        problem = duration(value)
        if problem is None and parse_duration(value) > most:
            return f"at most {text}"
        return problem

    return check


def integer(low: int, high: int) -> Kind:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"expected a whole number from {low} to {high}"
        return None

    return check


def listen(value: Any) -> str | None:
    """`HOST:PORT`, or `:PORT`; port 0 picks a free one."""
    host, colon, port = str(value).rpartition(":")
    if not isinstance(value, str) or not colon or not port.isdigit() or int(port) > 65535:
        return "expected HOST:PORT, e.g. 127.0.0.1:9090"
    if any(c.isspace() for c in host):
        return "expected HOST:PORT, e.g. 127.0.0.1:9090"
    return None


@dataclass(frozen=True)
class Section:
    """The keys a mapping may have, each with its kind, and those it must have."""

    keys: Mapping[str, Kind]
    required: frozenset[str] = field(default_factory=frozenset)


def check_section(settings: Mapping[str, Any], section: Section, name: str,
                  where: Where) -> list[tuple[str, str]]:
    """Every problem of `settings`, as (where, `name.key: message`); a null value counts as
    absent (`endpoint_url: null`)."""
    problems = []
    known = ", ".join(sorted(section.keys))
    for key, value in settings.items():
        kind = section.keys.get(str(key))
        if kind is None:
            problems.append((where(str(key)), f"{name}.{key}: unknown key (known: {known})"))
        elif value is not None and (message := kind(value)):
            problems.append((where(str(key)), f"{name}.{key}: {message}"))
    for key in sorted(section.required):
        if settings.get(key) is None:
            problems.append((where(""), f"{name}: missing {key}"))
    return problems
