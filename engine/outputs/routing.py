"""Which outputs an alert goes to: the rule's own `outputs`, else the first matching route.

A route (config `routes:`) matches when every condition it names holds:
`min_severity` (the alert's severity ranks at least this), `rules` (a rule-id glob matches,
case-sensitive like the rule ids), `tags` (the rule has at least one of them). A route naming
none matches everything, which makes the last route a natural catch-all. Routes are checked
whole when the dispatcher is built, so a misspelt output name fails the start, not the first
critical alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from engine.errors import ConfigError
from engine.model import SEVERITIES, SEVERITY_RANK, Rule

ROUTE_KEYS = frozenset({"outputs", "min_severity", "rules", "tags"})


@dataclass(frozen=True)
class Route:
    outputs: tuple[str, ...]
    min_rank: int = 0
    rules: tuple[str, ...] = ()
    tags: frozenset[str] = frozenset()

    def matches(self, rule: Rule) -> bool:
        if SEVERITY_RANK.get(rule.severity, 0) < self.min_rank:
            return False
        if self.rules and not any(fnmatchcase(rule.id, pattern) for pattern in self.rules):
            return False
        return not self.tags or bool(self.tags & set(rule.tags))


class Router:
    def __init__(self, routes: Sequence[Route], outputs: Iterable[str]) -> None:
        self.routes = tuple(routes)
        self.outputs = frozenset(outputs)

    def route(self, rule: Rule) -> tuple[str, ...]:
        """Output names for an alert of `rule`; empty when nothing routes it."""
        if rule.outputs is not None:
            return rule.outputs
        for route in self.routes:
            if route.matches(rule):
                return route.outputs
        return ()


def parse_routes(raw: Sequence[Mapping[str, Any]], outputs: Iterable[str],
                 where: str) -> list[Route]:
    """Check the config's routes; every problem is a ConfigError naming the route."""
    known = frozenset(outputs)
    return [_route(i, item, known, where) for i, item in enumerate(raw)]


def _route(index: int, raw: Mapping[str, Any], known: frozenset[str], where: str) -> Route:
    label = f"routes[{index}]"
    unknown_keys = sorted(set(raw) - ROUTE_KEYS)
    if unknown_keys:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown_keys)} "
                          f"(known: {', '.join(sorted(ROUTE_KEYS))})", where)
    names = _strings(raw.get("outputs"), f"{label}.outputs", where)
    if not names:
        raise ConfigError(f"{label}: outputs: name at least one output", where)
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"{label}: unknown output(s) {', '.join(missing)} (the config "
                          f"defines: {', '.join(sorted(known)) or 'none'})", where)
    severity = raw.get("min_severity", SEVERITIES[0])
    if severity not in SEVERITY_RANK:
        raise ConfigError(f"{label}: min_severity {severity!r} is not one of "
                          f"{', '.join(SEVERITIES)}", where)
    return Route(outputs=tuple(names), min_rank=SEVERITY_RANK[severity],
                 rules=tuple(_strings(raw.get("rules", []), f"{label}.rules", where)),
                 tags=frozenset(_strings(raw.get("tags", []), f"{label}.tags", where)))


def _strings(value: Any, label: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{label}: expected a list of names", where)
    return value
