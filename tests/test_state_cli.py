"""`trailguard scan --state sqlite:///x.db` across runs, through the real command line.

Day one's input scanned twice: the second run sends nothing. Day two's input then continues
day one: a dedup window still open at midnight is updated (same alert_id), a threshold counted
on both sides of midnight fires, and first-seen addresses learned on day one are known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.support.records import record

RULES = """\
id: reads-dedup
title: Package reads (one alert an hour per principal)
severity: low
condition: >-
  eventSource == 'codeartifact.amazonaws.com' && eventName == 'ReadFromRepository' && !errorCode
group_by: userIdentity.arn
dedup: 1h
---
id: denied-burst
title: Five denied calls in ten minutes
severity: medium
condition: >-
  eventSource == 'codeartifact.amazonaws.com'
  && contains(['AccessDenied', 'AccessDeniedException'], errorCode)
group_by: userIdentity.arn
threshold: {count: 5, window: 10m}
---
id: token-new-address
title: Token from an address new for the principal
severity: medium
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
first_seen: {value: sourceIPAddress, remember: 90d, learn: 1h}
"""
ARN = "arn:aws:sts::123456789012:assumed-role/Developer/{}"


def _event(name: str, when: str, who: str, **changes: Any) -> dict[str, Any]:
    return record(eventName=name, eventTime=when, userIdentity__arn=ARN.format(who), **changes)


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"Records": records}))
    return path


@pytest.fixture
def days(tmp_path: Path) -> tuple[Path, Path, Path]:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    denied = {"errorCode": "AccessDenied", "errorMessage": "not authorized"}
    token = "GetAuthorizationToken"
    day_one = [
        _event(token, "2024-03-04T00:05:00Z", "alice", sourceIPAddress="192.0.2.1"),
        _event(token, "2024-03-04T09:00:00Z", "alice", sourceIPAddress="192.0.2.2"),
        _event("ReadFromRepository", "2024-03-04T23:30:00Z", "bob"),
        *[_event("ReadFromRepository", f"2024-03-04T23:5{m}:00Z", "carol", **denied)
          for m in (7, 8, 9)],
    ]
    day_two = [
        *[_event("ReadFromRepository", f"2024-03-05T00:0{m}:00Z", "carol", **denied)
          for m in (1, 2)],
        _event("ReadFromRepository", "2024-03-05T00:10:00Z", "bob"),
        _event(token, "2024-03-05T08:00:00Z", "alice", sourceIPAddress="192.0.2.1"),
        _event(token, "2024-03-05T08:05:00Z", "alice", sourceIPAddress="192.0.2.9"),
    ]
    return rules, _write(tmp_path / "day1.json", day_one), _write(tmp_path / "day2.json", day_two)


def _scan(rules: Path, source: Path, cwd: Path) -> list[dict[str, Any]]:
    done = run_cli("scan", "-r", str(rules), "--state", "sqlite:///state/trailguard.db",
                   str(source), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_scan_twice_with_sqlite_state_sends_nothing_the_second_time(
        days: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The same input again: every record is a repeat, no alert, and the summary says so."""
    rules, day_one, _ = days
    first = _scan(rules, day_one, tmp_path)
    assert [(a["rule_id"], a["event_count"]) for a in first] == [
        ("token-new-address", 1), ("reads-dedup", 1)]
    assert (tmp_path / "state" / "trailguard.db").exists()
    again = run_cli("scan", "-r", str(rules), "--state", "sqlite:///state/trailguard.db",
                    str(day_one), cwd=tmp_path)
    assert again.stdout == ""
    assert "0 events" in again.stderr and "6 duplicates" in again.stderr


def test_scan_next_day_continues_windows_counts_and_first_seen(
        days: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Day two: bob's window updated, carol's burst spans midnight, alice's old IP is known."""
    rules, day_one, day_two = days
    first = {a["rule_id"]: a for a in _scan(rules, day_one, tmp_path)}
    second = _scan(rules, day_two, tmp_path)
    by_rule = {a["rule_id"]: a for a in second}
    assert sorted(by_rule) == ["denied-burst", "reads-dedup", "token-new-address"]
    bob = by_rule["reads-dedup"]
    assert (bob["alert_id"], bob["event_count"], bob["update"]) == (
        first["reads-dedup"]["alert_id"], 2, True)
    burst = by_rule["denied-burst"]
    assert (burst["event_count"], burst["first_event_time"]) == (5, "2024-03-04T23:57:00Z")
    token = by_rule["token-new-address"]
    assert token["event"]["sourceIPAddress"] == "192.0.2.9"
    assert len(second) == 3


def test_scan_reports_an_unreachable_state_store_as_a_config_error(
        days: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A state URL nothing answers at is exit status 2 with a message, not a traceback."""
    rules, day_one, _ = days
    done = run_cli("scan", "-r", str(rules), "--state", "redis://127.0.0.1:1/0", str(day_one),
                   cwd=tmp_path)
    assert done.returncode == 2
    assert "state" in done.stderr and "Traceback" not in done.stderr
