"""What `scan` says on stderr about what it did not evaluate, and about late records,
through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.records import record

REFS = Path(__file__).parent / "fixtures" / "envelopes" / "refs"
NOTIFICATION = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": "trail"}, "object": {"key": "AWSLogs/1/CloudTrail/x.json.gz"}},
}]}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scan_summary_says_why_records_were_skipped(workers: str) -> None:
    """Skips are listed by reason with a count and the first origin, not only counted."""
    result = run_cli("scan", "--workers", workers, "-r", "rules", str(REFS))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "14 skipped" in lines[0]  # refs/ has the Lambda SQS and SNS events too
    notified = [line for line in lines if "which scan does not fetch" in line]
    assert notified == [
        "  skipped: 8 notification naming an S3 object, which scan does not fetch (use the "
        "daemon's sqs source, or scan the objects themselves) — first at "
        f"{REFS}/cloudtrail-sns-notification.json#Message"]
    assert f"  skipped: 2 CloudTrail digest file — first at {REFS}/digest.json" in lines
    # files are read in eventTime order, those without one first (engine.inputs.walk, SPEC §7)
    assert f"  skipped: 2 S3 s3:TestEvent — first at {REFS}/s3-test-event.json" in lines


def test_scan_summary_names_the_stdin_line_of_a_skip() -> None:
    """From stdin, the first origin is the line the notification was on."""
    lines = [json.dumps(record(eventName="GetAuthorizationToken")), json.dumps(NOTIFICATION)]
    result = run_cli("scan", "-r", "rules", "-", stdin="\n".join(lines).encode())
    assert result.returncode == 0, result.stderr
    assert "1 skipped" in result.stderr
    assert "skipped: 1 notification naming an S3 object" in result.stderr
    assert "first at <stdin>:2#Records[0]" in result.stderr


def test_scan_summary_explains_late_matches(tmp_path: Path) -> None:
    """A match two hours behind the newest record (stdin: real lateness) is counted as late,
    and the line says what that means and where to read more."""
    rule = tmp_path / "rule.yml"
    rule.write_text("id: token\ntitle: Token\nseverity: low\ngroup_by: userIdentity.arn\n"
                    "condition: eventName == 'GetAuthorizationToken'\ndedup: 1h\n")
    lines = [json.dumps(record(eventTime=t)) for t in ("2024-03-01T12:00:00Z",
                                                       "2024-03-01T10:00:00Z")]
    result = run_cli("scan", "-r", str(rule), "-", stdin="\n".join(lines).encode())
    assert result.returncode == 0, result.stderr
    assert "late: 1 matches arrived more than 900s" in result.stderr
    assert "Late matches were still evaluated and can alert" in result.stderr
    assert 'docs/state.md, "Order and lateness"' in result.stderr
