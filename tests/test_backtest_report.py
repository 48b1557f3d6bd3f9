"""`scan --report FILE.json|FILE.html`: numbers that agree with the alerts, offline HTML."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.records import record

RULES = """\
id: token-per-principal
title: Token for a principal
severity: medium
condition: eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
dedup: 1h
---
id: token-burst
title: Three tokens from one address
severity: high
condition: eventName == 'GetAuthorizationToken'
group_by: sourceIPAddress
threshold: {count: 3, window: 10m}
dedup: 1h
---
id: publish
title: A package was published
severity: high
condition: eventName == 'PublishPackageVersion'
---
id: never
title: Never fires
severity: low
condition: eventName == 'DeleteDomain'
"""
HOSTILE = "arn:aws:sts::1:assumed-role/x/<script>alert(1)</script>&\"'<img src=x>"
PRINCIPALS = ["arn:aws:sts::1:assumed-role/ci/runner", "arn:aws:sts::1:assumed-role/dev/bo",
              HOSTILE]


def _events() -> list[dict]:
    """Three days of tokens (some in bursts) and publishes, newest first within the file."""
    events = []
    for day in range(1, 4):
        for hour in range(0, 24, 3):
            for n, arn in enumerate(PRINCIPALS[: 1 + (hour + day) % 3]):
                events.append(record(eventTime=f"2024-03-0{day}T{hour:02d}:0{n}:00Z",
                                     userIdentity__arn=arn,
                                     sourceIPAddress=f"192.0.2.{(hour // 3) % 2}"))
        events.append(record(eventName="PublishPackageVersion",
                             eventTime=f"2024-03-0{day}T12:30:00Z",
                             requestParameters={"packageName": f"pkg-{day}"}))
    return events[::-1]


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "quiet.yml").write_text(
        "- {id: no-ci, rules: ['token-*'], condition: \"ends_with(userIdentity.arn, "
        "'ci/runner')\", owner: secops@example.com, reason: the CI moves, "
        "expires: '2099-01-31'}\n")
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [rules.yml]\nsuppressions: [quiet.yml]\n")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in _events()) + "\n")
    return config, events


def test_report_json_agrees_with_the_alerts(tmp_path: Path, project: tuple[Path, Path]) -> None:
    """Per rule alerts, alerts per day and top groups are exactly those of the alerts the
    same scan wrote; matches, suppressed, events and the span are the input's."""
    config, events = project
    report_path = tmp_path / "report.json"
    result = run_cli("scan", "-c", str(config), "--report", str(report_path), str(events))
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    report = json.loads(report_path.read_text())
    times = sorted(e["eventTime"] for e in _events())
    assert (report["from"], report["to"]) == (times[0], times[-1])
    assert report["events"] == len(_events())
    assert set(report["rules"]) == {"token-per-principal", "token-burst", "publish", "never"}
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for alert in alerts:
        per_day[alert["rule_id"]][alert["first_event_time"][:10]] += 1
        groups[alert["rule_id"]][alert["group_key"]] += 1
    for rule_id, row in report["rules"].items():
        assert row["alerts"] == sum(per_day[rule_id].values()), rule_id
        assert row["alerts_per_day"] == dict(per_day[rule_id]), rule_id
        assert {key: n for key, n in row["top_groups"]} == dict(groups[rule_id]), rule_id
        assert row["errors"] == 0
    tokens = sum(1 for e in _events() if e["eventName"] == "GetAuthorizationToken")
    ci_tokens = sum(1 for e in _events() if e["userIdentity"]["arn"].endswith("ci/runner")
                    and e["eventName"] == "GetAuthorizationToken")
    for rule_id in ("token-per-principal", "token-burst"):
        assert report["rules"][rule_id]["matches"] == tokens
        assert report["rules"][rule_id]["suppressed"] == ci_tokens
    assert report["rules"]["publish"]["alerts_per_day"] == {
        "2024-03-01": 1, "2024-03-02": 1, "2024-03-03": 1}
    assert report["rules"]["never"] == {"matches": 0, "alerts": 0, "suppressed": 0,
                                        "errors": 0, "alerts_per_day": {}, "top_groups": []}
    assert report["suppressions"]["no-ci"]["suppressed"] == 2 * ci_tokens
    assert report["suppressions"]["no-ci"]["expires"] == "2099-01-31"
    assert report["suppressions"]["no-ci"]["owner"] == "secops@example.com"
    # The same with two processes.
    two = tmp_path / "two.json"
    run_cli("scan", "-c", str(config), "--workers", "2", "--report", str(two), str(events))
    assert json.loads(two.read_text()) == report


def test_report_html_is_offline_and_escaped(tmp_path: Path, project: tuple[Path, Path]) -> None:
    """One file, nothing fetched when opened (no scripts, links, images, imports or URLs),
    a chart of alerts per rule per day as inline SVG, and event-made text escaped."""
    config, events = project
    html_path = tmp_path / "report.html"
    result = run_cli("scan", "-c", str(config), "--report", str(html_path), str(events))
    assert result.returncode == 0, result.stderr
    html = html_path.read_text()
    tags = " ".join(re.findall(r"<[^>]*>", html)).lower()  # markup only, not escaped text
    for forbidden in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "src=",
                      "href=", "url(", "@import", "http://", "https://"):
        assert forbidden not in tags, forbidden
    assert not re.search(r"https?://|url\(|@import", html, re.I)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;&lt;img src=x&gt;"
    assert escaped in html and "<script>alert" not in html
    svg = re.search(r"<svg .*?</svg>", html, re.S)
    assert svg is not None
    bars = re.findall(r"<title>(\d{4}-\d\d-\d\d) ([a-z-]+): (\d+)</title>", svg.group(0))
    report = tmp_path / "report.json"
    run_cli("scan", "-c", str(config), "--report", str(report), str(events))
    expected = {(day, rule_id, n) for rule_id, row in json.loads(report.read_text())["rules"]
                .items() for day, n in row["alerts_per_day"].items()}
    assert {(day, rule_id, int(n)) for day, rule_id, n in bars} == expected
    assert "no-ci" in html and "secops@example.com" in html


def test_report_of_unknown_format_is_a_usage_error(tmp_path: Path,
                                                   project: tuple[Path, Path]) -> None:
    """A report name that is neither .json nor .html is refused before scanning."""
    config, events = project
    result = run_cli("scan", "-c", str(config), "--report", str(tmp_path / "r.pdf"), str(events))
    assert result.returncode == 2 and "--report" in result.stderr and result.stdout == ""
