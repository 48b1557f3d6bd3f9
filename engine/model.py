"""The frozen values that cross stage boundaries: rules, matches and alerts.

No I/O here. Rules are parsed from YAML once (engine.rules) into these objects so the hot
path never looks at a raw mapping; the compiled condition lives beside them in the
evaluator, which keeps this module free of JMESPath.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine import jsonsafe

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: Mapping[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Threshold:
    count: int
    window: float  # seconds of eventTime


@dataclass(frozen=True, slots=True)
class FirstSeen:
    value: str  # JMESPath expression whose result must be new for the group
    remember: float  # seconds a value stays known
    learn: float  # seconds from the first event during which values are only recorded


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    line: int
    events: tuple[Record, ...]
    expect: bool | None = None  # single-event tests
    expect_alerts: int | None = None  # stateful scenarios
    lists: Mapping[str, tuple[str, ...]] | None = None  # overrides the config's lists
    suppressions: tuple[Any, ...] | None = None  # engine.suppressions; replace the config's


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    severity: str
    condition: str
    path: str
    line: int
    description: str = ""
    enabled: bool = True
    tags: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    dedup: float | None = None
    threshold: Threshold | None = None
    first_seen: FirstSeen | None = None
    summary: str = ""
    runbook: str = ""
    references: tuple[str, ...] = ()
    outputs: tuple[str, ...] | None = None
    tests: tuple[RuleTest, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)  # field name -> line, for messages

    @property
    def stateful(self) -> bool:
        return bool(self.dedup or self.threshold or self.first_seen)

    def where(self, field_name: str) -> str:
        """`path:line` of a field of this rule, for messages that point at the source."""
        return f"{self.path}:{self.lines.get(field_name, self.line)}"


class Match(NamedTuple):
    """A rule's condition was truthy for a record. A named tuple, not a dataclass: one is
    made for nearly every record of a download-heavy stream, and a tuple is made 3x faster.
    """

    rule: Rule
    record: Record
    group_key: str | None = None


@dataclass(slots=True)
class Alert:
    """An alert as SPEC §4 defines it; mutable only while matches fold into it."""

    alert_id: str
    rule: Rule
    summary: str
    group_key: str | None
    event: Record
    first_event_time: str
    last_event_time: str
    detected_at: str
    event_ids: list[str] = field(default_factory=list)
    account_ids: list[str] = field(default_factory=list)
    event_count: int = 1
    update: bool = False

    def to_dict(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "alert_id": self.alert_id,
            "rule_id": rule.id,
            "title": rule.title,
            "severity": rule.severity,
            "summary": self.summary,
            "tags": list(rule.tags),
            "runbook": rule.runbook,
            "group_key": self.group_key,
            "event_count": self.event_count,
            "event_ids": list(self.event_ids),
            "first_event_time": self.first_event_time,
            "last_event_time": self.last_event_time,
            "account_ids": list(self.account_ids),
            "region": self.event.get("awsRegion"),
            "detected_at": self.detected_at,
            **({"update": True} if self.update else {}),
            "event": self.event,
        }


def alert_id_for(rule_id: str, group_key: str | None, anchor: str) -> str:
    """A stable id: the same rule, group and window anchor always give the same id.

    Stability is what lets a restarted daemon, or a second daemon on the same Redis, recognise
    an alert it has already sent instead of sending it twice.
    """
    raw = f"{rule_id}\x1f{group_key or ''}\x1f{anchor}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def key_text(value: Any) -> str:
    """A group key part or a summary field as text: itself for a string, "-" for null, JSON
    for anything else. The evaluator and the generated bucket functions both write keys."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return jsonsafe.dumps(value).decode()
