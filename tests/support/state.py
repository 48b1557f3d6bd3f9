"""Rules, records and runs for the decider and state-store tests.

Times are minutes after BASE (2024-03-04T10:00:00Z) so a scenario reads like a timeline:
`read(0)`, `read(12.5, who="bob")`, `copies(3, accounts=[...])`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.decide.decider import Decider, new_decider
from engine.durations import parse_duration
from engine.inputs.eventtime import event_epoch
from engine.model import Alert, FirstSeen, Rule, Threshold
from engine.scan.pipeline import run_scan
from engine.state import StateStore
from tests.support.records import record

BASE = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
READ = "eventSource == 'codeartifact.amazonaws.com' && eventName == 'ReadFromRepository'"
ACCOUNTS = ("111111111111", "222222222222", "333333333333")
_calls = itertools.count(1)


def at(minutes: float) -> str:
    moment = BASE + timedelta(minutes=minutes)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond:06d}Z" if moment.microsecond else "Z")


def read(minutes: float, who: str = "alice", ip: str = "198.51.100.7",
         **changes: Any) -> dict[str, Any]:
    """A ReadFromRepository (an npm tarball fetch) by role session `who`."""
    return record(
        eventTime=at(minutes), eventName="ReadFromRepository", sourceIPAddress=ip,
        userAgent="npm/10.2.4 node/v20.11.0 linux x64 workspaces/false",
        userIdentity__arn=f"arn:aws:sts::123456789012:assumed-role/Developer/{who}",
        requestParameters={"domainName": "acme", "domainOwner": "123456789012",
                           "repositoryName": "npm-internal", "packageName": "left-pad",
                           "packageFormat": "npm", "packageVersion": "1.3.0"},
        responseElements=None, readOnly=True,
        additionalEventData={"httpMethod": "GET",
                             "requestUri": "/npm/left-pad/-/left-pad-1.3.0.tgz"},
        **changes,
    )


def copies(minutes: float, who: str = "alice", accounts: Sequence[str] = ACCOUNTS,
           **changes: Any) -> list[dict[str, Any]]:
    """One call delivered to several accounts: one sharedEventID, one eventID per copy."""
    shared = f"5{next(_calls):07d}-aaaa-4bbb-8ccc-000000000000"
    return [read(minutes, who, sharedEventID=shared, recipientAccountId=account, **changes)
            for account in accounts]


def make_rule(rule_id: str = "r", *, dedup: str | None = None,
              threshold: tuple[int, str] | None = None,
              first_seen: tuple[str, str, str] | None = None,
              group_by: tuple[str, ...] = ("userIdentity.arn",), condition: str = READ) -> Rule:
    """A rule as engine.rules would build it; first_seen is (value, remember, learn)."""
    return Rule(
        id=rule_id, title=f"rule {rule_id}", severity="medium", condition=condition,
        path=f"{rule_id}.yml", line=1, group_by=group_by,
        summary="{eventName} by {userIdentity.arn} from {sourceIPAddress}",
        dedup=parse_duration(dedup) if dedup else None,
        threshold=Threshold(threshold[0], parse_duration(threshold[1])) if threshold else None,
        first_seen=FirstSeen(first_seen[0], parse_duration(first_seen[1]),
                             parse_duration(first_seen[2]) if first_seen[2] else 0.0)
        if first_seen else None,
    )


def evaluator(rules: Iterable[Rule]) -> Evaluator:
    return Evaluator(list(rules), TrailguardFunctions())


def scan(rules: Iterable[Rule], records: Iterable[dict[str, Any]], lateness: float = 900.0,
         store: StateStore | None = None) -> list[Alert]:
    """Run records through the scan pipeline; every alert written, in order."""
    engine = evaluator(rules)
    alerts: list[Alert] = []
    run_scan(records, engine, new_decider(engine, lateness, store), alerts.append)
    return alerts


def view(alert: Alert) -> tuple[Any, ...]:
    """Everything an alert says except detected_at (the one wall-clock field)."""
    doc = alert.to_dict()
    doc.pop("detected_at")
    return tuple(sorted((k, repr(v)) for k, v in doc.items()))


def views(alerts: Iterable[Alert]) -> list[tuple[Any, ...]]:
    return sorted(view(a) for a in alerts)


def decider_for(rules: Iterable[Rule], lateness: float = 900.0, mode: str = "scan",
                store: StateStore | None = None) -> tuple[Evaluator, Decider]:
    engine = evaluator(rules)
    return engine, new_decider(engine, lateness, store, mode)


def feed(engine: Evaluator, decider: Decider, item: dict[str, Any]) -> list[Alert]:
    """What run_scan does with one new record: advance the watermark, offer its matches."""
    epoch = event_epoch(item)
    out = list(decider.advance(epoch)) if epoch is not None else []
    for match in engine.evaluate(item):
        out.extend(decider.offer(match))
    return out
