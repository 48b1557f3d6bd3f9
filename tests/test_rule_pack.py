"""The shipped CodeArtifact rule pack, end to end through the real CLI (`python -m engine`).

What must hold for the pack to ship (issue 4):
- `validate` is clean and every rule's own tests pass (with a config defining the lists the
  rules read: without one, list-dependent rules cannot be exercised);
- every rule has at least two positive and two negative tests;
- a day of ordinary activity (tests/data/baseline, made by tests/data/make_baseline.py) and real
  CloudTrail written by others (tests/data/realdata-sample) produce no alert;
- every rule's malicious records (its positive tests) alert in every envelope a source can
  deliver, and its benign neighbours (its negative tests) do not;
- docs/rules.md is current, and the example config prints alerts.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from engine.model import Rule
from engine.ruledocs import ALL_ACTIONS, CODEARTIFACT_API_ACTIONS, render
from engine.startup import prepare, rules_of
from tests.support.shared import REALDATA

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "rules"
BASELINE = REPO / "tests" / "data" / "baseline"
CONFIG = BASELINE / "trailguard.yml"
REALDATA_SAMPLE = REPO / "tests" / "data" / "realdata-sample"
SHARED_REALDATA = REALDATA
EXAMPLES = REPO / "examples"
KEY_LAYOUT = re.compile(
    r"AWSLogs/(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4})/(\d{2})/(\d{2})/"
    r"\1_CloudTrail_\2_\3\4\5T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$")


def trailguard(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def alerts_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def codeartifact_alerts(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [a["rule_id"] for a in alerts_of(result) if a["rule_id"].startswith("codeartifact-")]


def events_scanned(result: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"([\d,]+) events", result.stderr)
    assert found, result.stderr
    return int(found.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def pack() -> tuple[Rule, ...]:
    return rules_of(prepare(str(CONFIG), None)).rules


def single_event_tests(rule: Rule, expect: bool) -> list[dict[str, Any]]:
    return [t.events[0] for t in rule.tests if t.expect is expect and len(t.events) == 1]


# --- the rules themselves -----------------------------------------------------------------

def test_validate_is_clean() -> None:
    """With its lists configured the pack validates with no problem line at all."""
    result = trailguard("validate", "-c", str(CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("no errors, 0 warnings"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # no problem lines


def test_validate_bare_pack_only_warns_about_unconfigured_lists() -> None:
    """Without a config the only warnings are the empty lists the rules read."""
    result = trailguard("validate", "-r", str(RULES))
    assert result.returncode == 0, result.stderr
    problems = result.stderr.strip().splitlines()[:-1]
    assert problems and all("is not defined in the config" in line for line in problems)


def test_pack_has_the_twenty_rules_of_issue_4(pack: tuple[Rule, ...]) -> None:
    expected = {
        "codeartifact-token-unknown-network": "high", "codeartifact-token-long-duration": "low",
        "codeartifact-token-cross-account": "medium",
        "codeartifact-token-long-term-key": "medium",
        "codeartifact-publish-without-mfa": "high",
        "codeartifact-external-connection-added": "high",
        "codeartifact-external-connection-removed": "low",
        "codeartifact-upstream-changed": "medium",
        "codeartifact-origin-controls-loosened": "high",
        "codeartifact-policy-public": "critical", "codeartifact-policy-cross-account": "high",
        "codeartifact-policy-deleted": "medium", "codeartifact-domain-deleted": "critical",
        "codeartifact-repository-deleted": "high",
        "codeartifact-package-versions-destroyed": "high",
        "codeartifact-versions-hidden": "medium", "codeartifact-package-overwrite-copy": "low",
        "codeartifact-root-activity": "high", "codeartifact-console-session-publish": "medium",
        "codeartifact-anonymous-or-foreign-read": "medium",
    }
    severities = {rule.id: rule.severity for rule in pack}
    assert {k: severities.get(k) for k in expected} == expected
    for rule in pack:
        if rule.id in expected:
            assert Path(rule.path).name == f"{rule.id}.yml"
            assert rule.description and rule.runbook and rule.summary and rule.references
            assert all(ref.startswith("https://docs.aws.amazon.com/") for ref in rule.references)
            assert not rule.stateful  # the stateful rules are another pack's


def test_every_rule_has_two_positive_and_two_negative_tests(pack: tuple[Rule, ...]) -> None:
    thin = {}
    for rule in pack:
        positive = sum(1 for t in rule.tests if t.expect is True or (t.expect_alerts or 0) > 0)
        negative = sum(1 for t in rule.tests if t.expect is False or t.expect_alerts == 0)
        if positive < 2 or negative < 2:
            thin[rule.id] = (positive, negative)
    assert not thin, f"rules with fewer than 2 positive / 2 negative tests: {thin}"


@pytest.mark.parametrize("engine", ["compiled", "interpreted"])
@pytest.mark.parametrize("config", [CONFIG, EXAMPLES / "trailguard.yml"],
                         ids=["baseline-config", "example-config"])
def test_rule_tests_pass(pack: tuple[Rule, ...], engine: str, config: Path) -> None:
    result = trailguard("test", "-c", str(config), "--engine", engine)
    total = sum(len(rule.tests) for rule in pack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{total} passed, 0 failed"


# --- silence on ordinary activity -----------------------------------------------------------

def test_baseline_is_a_day_of_ordinary_codeartifact_activity() -> None:
    files = sorted((BASELINE / "AWSLogs").rglob("*.json.gz"))
    records = []
    for path in files:
        relative = path.relative_to(BASELINE).as_posix()
        assert KEY_LAYOUT.search(relative), relative
        with gzip.open(path) as handle:
            records.extend(json.load(handle)["Records"])
    assert len(records) >= 500
    assert {r["eventTime"][:10] for r in records} == {"2024-05-14"}
    assert {r["eventSource"] for r in records} == {"codeartifact.amazonaws.com"}
    names = {r["eventName"] for r in records}
    assert {"GetAuthorizationToken", "ReadFromRepository", "GetPackageVersionAsset",
            "PublishPackageVersion", "PutPackageMetadata", "ListDomains",
            "DescribeRepository"} <= names
    publishers = {r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
                  for r in records if r["eventName"] == "PublishPackageVersion"}
    assert publishers == {"arn:aws:iam::111122223333:role/ci-publisher",
                          "arn:aws:iam::111122223333:role/github-actions-release"}


def test_baseline_day_is_silent() -> None:
    result = trailguard("scan", "-c", str(CONFIG), str(BASELINE / "AWSLogs"))
    assert result.returncode == 0, result.stderr
    assert alerts_of(result) == [], result.stdout
    assert events_scanned(result) >= 500
    assert " 0 malformed" in result.stderr


def test_real_cloudtrail_sample_gives_no_codeartifact_alert() -> None:
    data = sorted(p for p in REALDATA_SAMPLE.rglob("*") if p.suffix in (".json", ".jsonl"))
    assert sum(p.stat().st_size for p in REALDATA_SAMPLE.rglob("*") if p.is_file()) < 1_000_000
    for folder in ("invictus-aws-dataset", "stratus-detonation-logs", "panther-cloudtrail-tests"):
        assert any((REALDATA_SAMPLE / folder).glob("LICENSE*")), f"{folder} needs its license"
    result = trailguard("scan", "-c", str(CONFIG), *map(str, data))
    assert result.returncode == 0, result.stderr
    assert codeartifact_alerts(result) == []
    assert events_scanned(result) >= 300


@pytest.mark.skipif(not SHARED_REALDATA.is_dir(), reason="only on the team's workstations")
def test_all_shared_real_cloudtrail_gives_no_codeartifact_alert() -> None:
    result = trailguard("scan", "-c", str(CONFIG), str(SHARED_REALDATA))
    assert codeartifact_alerts(result) == []
    assert events_scanned(result) >= 3000


# --- malicious records alert in every envelope ------------------------------------------------

def _cloudtrail_log_file(records: list[dict[str, Any]], folder: Path) -> None:
    key = folder / "AWSLogs/111122223333/CloudTrail/us-west-2/2024/06/03"
    key.mkdir(parents=True)
    target = key / "111122223333_CloudTrail_us-west-2_20240603T2355Z_a1B2c3D4e5F6g7H8.json.gz"
    target.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))


def _json_lines(records: list[dict[str, Any]], folder: Path) -> None:
    (folder / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def _eventbridge(records: list[dict[str, Any]], folder: Path) -> None:
    for n, record in enumerate(records):
        event = {"version": "0", "id": f"00000000-0000-4000-8000-{n:012d}",
                 "detail-type": "AWS API Call via CloudTrail", "source": "aws.codeartifact",
                 "account": record.get("recipientAccountId"), "time": record.get("eventTime"),
                 "region": record.get("awsRegion"), "resources": [], "detail": record}
        (folder / f"eventbridge-{n:03d}.json").write_text(json.dumps(event, indent=2))


def _lookup_events(records: list[dict[str, Any]], folder: Path) -> None:
    events = [{"EventId": r["eventID"], "EventName": r["eventName"],
               "EventTime": r["eventTime"], "EventSource": r["eventSource"],
               "CloudTrailEvent": json.dumps(r)} for r in records]
    (folder / "lookup-events.json").write_text(json.dumps({"Events": events}, indent=4))


ENVELOPES = {"cloudtrail-log-file-gz": _cloudtrail_log_file, "json-lines": _json_lines,
             "eventbridge": _eventbridge, "lookup-events": _lookup_events}


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_malicious_records_alert_and_neighbours_do_not(
    pack: tuple[Rule, ...], envelope: str, tmp_path: Path
) -> None:
    records: dict[str, dict[str, Any]] = {}
    positive: dict[str, set[str]] = defaultdict(set)
    negative: dict[str, set[str]] = defaultdict(set)
    for rule in pack:
        for expect, bucket in ((True, positive), (False, negative)):
            for record in single_event_tests(rule, expect):
                event_id = record["eventID"]
                assert records.setdefault(event_id, record) == record, f"eventID {event_id} reused"
                bucket[rule.id].add(event_id)
    ENVELOPES[envelope](list(records.values()), tmp_path)

    result = trailguard("scan", "-c", str(CONFIG), str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert events_scanned(result) == len(records)
    fired: dict[str, set[str]] = defaultdict(set)
    for alert in alerts_of(result):
        fired[alert["rule_id"]].update(alert["event_ids"])
    missed = {rule: sorted(ids - fired[rule]) for rule, ids in positive.items()
              if ids - fired[rule]}
    false_alarms = {rule: sorted(ids & fired[rule]) for rule, ids in negative.items()
                    if ids & fired[rule]}
    assert not missed, f"malicious records that did not alert: {missed}"
    assert not false_alarms, f"benign neighbours that alerted: {false_alarms}"
    stateless = [rule for rule in pack if not rule.stateful]
    assert all(positive[rule.id] for rule in stateless)


def test_empty_lists_behave_as_the_descriptions_say() -> None:
    """No config: `trusted_networks` silences its rule; the other lists trust nobody."""
    events = RULES / "codeartifact" / "events"
    result = trailguard("scan", "-r", str(RULES), str(events))
    assert result.returncode == 0, result.stderr
    fired: dict[str, set[str]] = defaultdict(set)
    for alert in alerts_of(result):
        fired[alert["rule_id"]].update(alert["event_ids"])

    def event_id(name: str) -> str:
        return json.loads((events / f"{name}.json").read_text())["eventID"]

    assert not fired["codeartifact-token-unknown-network"]
    assert event_id("publish-npm-ci") in fired["codeartifact-publish-without-mfa"]
    assert event_id("token-shared-to-acme") in fired["codeartifact-token-cross-account"]
    assert event_id("policy-repo-trusted-account") in fired["codeartifact-policy-cross-account"]
    assert event_id("read-trusted-account") in fired["codeartifact-anonymous-or-foreign-read"]
    assert event_id("read-own-account") not in fired["codeartifact-anonymous-or-foreign-read"]


# --- docs and examples ------------------------------------------------------------------------

def test_docs_are_current() -> None:
    result = trailguard("docs", "--output", "docs/rules.md", "--check")
    assert result.returncode == 0, result.stderr


def test_docs_cover_every_action_and_every_rule(pack: tuple[Rule, ...]) -> None:
    text = (REPO / "docs" / "rules.md").read_text()
    assert len(CODEARTIFACT_API_ACTIONS) == 48
    for action in ALL_ACTIONS:
        assert f"| `{action}` |" in text
    for rule in pack:
        assert f"`{rule.id}`" in text
    row = next(line for line in text.splitlines() if line.startswith("| `GetAuthorizationToken`"))
    assert "codeartifact-token-unknown-network" in row
    assert "codeartifact-root-activity` (every CodeArtifact event)" in text


def test_docs_flag_names_codeartifact_never_logs() -> None:
    rule = Rule(id="x-typo", title="A | B", severity="low", path="/somewhere/rules/x/x.yml",
                line=1, condition="eventSource == 'codeartifact.amazonaws.com' "
                                  "&& eventName == 'GetAuthToken'")
    text = render([rule])
    assert "| `x-typo` | `GetAuthToken` |" in text
    assert "[`x-typo`](../rules/x/x.yml)" in text
    assert "A \\| B" in text


def test_example_config_prints_alerts_as_json_lines() -> None:
    # run from examples/: the config's `files` source path is `events/`
    result = trailguard("scan", "-c", "trailguard.yml", cwd=EXAMPLES)
    assert result.returncode == 0, result.stderr
    alerts = alerts_of(result)
    assert {a["rule_id"] for a in alerts} == {
        "codeartifact-token-unknown-network", "codeartifact-token-long-duration",
        "codeartifact-publish-without-mfa", "codeartifact-anonymous-or-foreign-read",
        "codeartifact-policy-public", "codeartifact-origin-controls-loosened",
        "codeartifact-repository-deleted"}
    assert all(a["event"]["eventSource"] == "codeartifact.amazonaws.com" for a in alerts)
    assert events_scanned(result) > 50
    kinds = {p.name for p in (EXAMPLES / "events").rglob("*") if p.is_file()}
    assert any(k.endswith(".json.gz") for k in kinds) and any(k.endswith(".jsonl") for k in kinds)
    assert any(k.startswith("eventbridge") for k in kinds)
    assert any(k.startswith("lookup-events") for k in kinds)
