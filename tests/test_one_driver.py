"""Files and stdin are decided by one driver (engine.scan.deciding): the same records, in the
order a scan of the files decides them, give the same alerts and summary either way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import run_cli
from tests.support.records import record
from tests.support.rulesets import DRIVER_RULES as RULES

ARN = "arn:aws:sts::123456789012:assumed-role/dev/{}"


def _at(clock: str, **changes: Any) -> dict[str, Any]:
    return record(eventTime=f"2024-03-01T{clock}:00Z", **changes)


def _token(clock: str, who: str) -> dict[str, Any]:
    return _at(clock, userIdentity__arn=ARN.format(who))


def _read(clock: str, who: str) -> dict[str, Any]:
    return _at(clock, eventName="ReadFromRepository", userIdentity__arn=ARN.format(who))


def _publish(clock: str, **changes: Any) -> dict[str, Any]:
    return _at(clock, eventName="PublishPackageVersion", **changes)


def _log_files() -> dict[str, list[dict[str, Any]]]:
    """Three CloudTrail log files by delivery minute, each in eventTime order.

    12:00 and 12:30 hold what they were delivered with; 12:35 begins with a read at 10:00,
    two hours behind what the 12:00 file released (engine.decide.merge): a late match (of a
    dedup rule: a rule without state alerts at once, never late)."""
    copy_a = _publish("11:52", sharedEventID="call-1", recipientAccountId="111111111111")
    copy_b = {**copy_a, "eventID": "copy-of-call-1", "recipientAccountId": "222222222222"}
    repeated = _publish("11:59")
    without_id = _publish("12:19")
    del without_id["eventID"]
    twice = _token("12:21", "erin")
    return {
        "1200": [_token("11:46", "alice"), _read("11:47", "dave"), _token("11:50", "alice"),
                 copy_a, copy_b, _token("11:55", "alice"), repeated, _read("12:00", "carol")],
        "1230": [_read("12:16", "dave"), _read("12:18", "dave"), without_id, twice, twice,
                 _token("12:25", "bob"), _token("12:28", "bob")],
        "1235": [_read("10:00", "frank"), repeated, _token("12:32", "bob"), _publish("12:34")],
    }


def _decided_order(files: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records in the order the file scan decides them: the 12:00 file; the late
    read (released as its file is added); the 12:30 file's and the rest of the 12:35
    file's merged on eventTime."""
    late, *rest = files["1235"]
    tail = sorted(files["1230"] + rest, key=lambda r: r["eventTime"])  # stable: ties kept
    return files["1200"] + [late] + tail


def _alerts(stdout: str) -> list[dict[str, Any]]:
    alerts = [json.loads(line) for line in stdout.splitlines()]
    for alert in alerts:
        del alert["detected_at"]
    return alerts


def test_stdin_and_files_decide_the_same_records_alike(tmp_path: Path) -> None:
    """A threshold across files, a dedup fold, copies of one call (one sharedEventID), a
    repeat within a file and one across files, a record without an eventID, and a late
    match: stdin's alerts and summary are the files'."""
    (tmp_path / "rules.yml").write_text(RULES)
    files = _log_files()
    logs = tmp_path / "logs"
    logs.mkdir()
    for stamp, records in files.items():
        name = f"123456789012_CloudTrail_us-west-2_20240301T{stamp}Z_x.json"
        (logs / name).write_text(json.dumps({"Records": records}))
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in _decided_order(files))
    rules = ("-r", str(tmp_path / "rules.yml"))
    from_files = run_cli("scan", "--workers", "1", *rules, str(logs))
    from_stdin = run_cli("scan", *rules, "-", stdin=lines)
    assert from_files.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert _alerts(from_stdin.stdout) == _alerts(from_files.stdout)
    summaries = [run.stderr.splitlines() for run in (from_files, from_stdin)]
    assert summaries[0][1:] == summaries[1][1:]  # the first line says how fast it was
    assert summaries[0][0].split(" in ")[0] == summaries[1][0].split(" in ")[0]
    assert summaries[0][0].split("; ", 1)[1] == summaries[1][0].split("; ", 1)[1]
    alerts = _alerts(from_files.stdout)
    assert sorted({a["rule_id"] for a in alerts}) == ["publish", "reads-deduped", "token-burst"]
    assert "2 duplicates" in summaries[0][0]
    assert "late: 1 matches arrived" in from_files.stderr
    bursts = sorted(a["group_key"] for a in alerts if a["rule_id"] == "token-burst")
    assert bursts == [ARN.format("alice"), ARN.format("bob")]  # bob's spans two files
    copies = [a for a in alerts if "copy-of-call-1" in a["event_ids"]]
    assert len(copies) == 1 and sorted(copies[0]["account_ids"]) == [
        "111111111111", "222222222222"]

