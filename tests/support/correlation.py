"""Sequence, absence and distinct-count rules and records for the correlation tests.

Times are minutes after tests.support.state.BASE, as there. A package version is published,
deleted, read; a domain policy is opened to another account and read by a foreigner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.durations import parse_duration
from engine.model import Absence, Rule, Step, StepSequence
from tests.support.state import make_rule, read

PUBLISH = "eventName == 'PublishPackageVersion'"
DELETE = "eventName == 'DeletePackageVersions'"
READ_IT = "eventName == 'ReadFromRepository'"
PACKAGE = ("requestParameters.packageName",)


def sequence_rule(steps: list[Step], within: str = "15m", rule_id: str = "seq",
                  dedup: str | None = None, condition: str = "",
                  group_by: tuple[str, ...] = PACKAGE) -> Rule:
    rule = make_rule(rule_id, dedup=dedup, group_by=group_by, condition=condition)
    return dataclasses.replace(rule, sequence=StepSequence(parse_duration(within),
                                                           tuple(steps)))


def publish_then_delete(within: str = "15m", **kw: Any) -> Rule:
    return sequence_rule([Step("published", PUBLISH), Step("deleted", DELETE)], within, **kw)


def published_not_deleted(within: str = "1h", **kw: Any) -> Rule:
    return sequence_rule([Step("published", PUBLISH), Step("deleted", DELETE, absent=True)],
                         within, **kw)


def silence_rule(within: str = "2h", rule_id: str = "silent", dedup: str | None = None) -> Rule:
    rule = make_rule(rule_id, dedup=dedup, group_by=("recipientAccountId",),
                     condition="eventSource == 'codeartifact.amazonaws.com'")
    return dataclasses.replace(rule, absence=Absence(parse_duration(within)))


def call(minutes: float, name: str, package: str = "left-pad", **changes: Any) -> dict[str, Any]:
    """A CodeArtifact call `name` on `package` (a read, renamed)."""
    record = read(minutes, **changes)
    record["eventName"] = name
    record["requestParameters"]["packageName"] = package
    return record


def copies_of(record: dict[str, Any], accounts: tuple[str, ...]) -> list[dict[str, Any]]:
    """`record` delivered to each of `accounts`: one sharedEventID, an eventID each."""
    shared = "s-" + record["eventID"]
    return [dict(record, eventID=f"{record['eventID']}-{n}", sharedEventID=shared,
                 recipientAccountId=account) for n, account in enumerate(accounts)]
