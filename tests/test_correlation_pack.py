"""The pack's correlation rules (SPEC §8) through their real paths: every scenario of theirs in
every envelope a source delivers, `scan --workers`, `validate`, `test` and `explain`.

The rules' own scenarios (`trailguard test`, tests/test_rule_pack.py) give their records as a
list; here the same records are written as a CloudTrail log file, JSON lines, EventBridge
events and a `lookup-events` document (newest first), decoded and scanned as `scan` does,
and must raise the alerts the scenario expects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.decide.decider import new_decider
from engine.inputs.files import iter_paths
from engine.model import Rule
from engine.scan.pipeline import run_scan
from engine.startup import prepare, rules_of
from tests.support.cli import REPO, run_cli
from tests.test_rule_pack import CONFIG, ENVELOPES

CORRELATION = ("codeartifact-publish-then-delete", "codeartifact-policy-opened-then-foreign-read",
               "codeartifact-upstream-opened-not-closed", "codeartifact-denied-then-token",
               "codeartifact-trail-silent", "codeartifact-enumeration")


@pytest.fixture(scope="module")
def pack() -> dict[str, Rule]:
    return rules_of(prepare(str(CONFIG), None)).by_id()


def _scenarios(pack: dict[str, Rule]) -> list[tuple[str, int]]:
    return [(rule_id, n) for rule_id in CORRELATION
            for n, test in enumerate(pack[rule_id].tests) if test.expect_alerts is not None]


def test_correlation_rules_have_positive_and_benign_scenarios(pack: dict[str, Rule]) -> None:
    """Each new rule has at least two scenarios that alert and two that must not."""
    for rule_id in CORRELATION:
        alerting = [t for t in pack[rule_id].tests if (t.expect_alerts or 0) > 0]
        benign = [t for t in pack[rule_id].tests if t.expect_alerts == 0 or t.expect is False]
        assert len(alerting) >= 2 and len(benign) >= 2, rule_id
        assert pack[rule_id].stateful


@pytest.mark.parametrize("envelope", sorted(ENVELOPES))
def test_correlation_scenarios_alert_as_expected_in_every_envelope(
        pack: dict[str, Rule], envelope: str, tmp_path: Path) -> None:
    """Every scenario, written in this envelope and read back from files: its alert count."""
    setup = prepare(str(CONFIG), None)
    wrong = []
    for rule_id, n in _scenarios(pack):
        rule, test = pack[rule_id], pack[rule_id].tests[n]
        folder = tmp_path / f"{rule_id}-{n}"
        folder.mkdir()
        ENVELOPES[envelope]([dict(record) for record in test.events], folder)
        functions = TrailguardFunctions({**setup.functions.lists, **(test.lists or {})})
        evaluator = Evaluator([_enabled(rule)], functions)
        alerts: list[Any] = []
        run_scan(iter_paths([folder]), evaluator, new_decider(evaluator, 900.0), alerts.append)
        if len(alerts) != test.expect_alerts:
            wrong.append(f"{rule_id}: {test.name}: {len(alerts)} != {test.expect_alerts}")
    assert not wrong


def _enabled(rule: Rule) -> Rule:
    from dataclasses import replace

    return replace(rule, enabled=True)


def test_scan_workers_give_one_process_alerts_for_sequences(
        pack: dict[str, Rule], tmp_path: Path) -> None:
    """`scan --workers 2` (steps cross between processes by route) equals `--workers 1`."""
    records: list[dict[str, Any]] = []
    for rule_id, n in _scenarios(pack):
        if rule_id != "codeartifact-trail-silent":
            records.extend(pack[rule_id].tests[n].events)
    unique = list({r["eventID"]: r for r in records}.values())
    for n, chunk in enumerate(range(0, len(unique), 25)):
        ENVELOPES["json-lines"](unique[chunk:chunk + 25], tmp_path)
        (tmp_path / "records.jsonl").rename(tmp_path / f"part-{n:02d}.jsonl")
    outputs = []
    for workers in ("1", "2"):
        result = run_cli("scan", "-c", str(CONFIG), "--workers", workers, str(tmp_path))
        assert result.returncode == 0, result.stderr
        outputs.append(sorted((a["rule_id"], a["alert_id"], a["event_count"], json.dumps(
            a.get("steps"))) for a in map(json.loads, result.stdout.splitlines())))
    assert outputs[0] == outputs[1]
    assert {"codeartifact-publish-then-delete", "codeartifact-denied-then-token"} <= {
        alert[0] for alert in outputs[0]}


BAD = """\
id: bad-sequence
title: t
severity: low
sequence:
  within: 10q
  steps:
    - name: first
      absent: true
      condition: eventName == 'A'
    - name: second
      count: 0
      condition: eventName == 'B'
    - name: third
---
id: both
title: t
severity: low
condition: eventName == 'A'
sequence:
  within: 1h
  steps: [{name: a, condition: "eventName == 'A'"}, {name: b, condition: "lenght(x)"}]
absence: {within: 1h}
---
id: silent
title: t
severity: low
absence: {within: 1h}
---
id: distinct
title: t
severity: low
condition: eventName == 'A'
threshold: {count: 2, window: 1m, distinct: "requestParameters.repository ||"}
"""


def test_validate_reports_every_correlation_mistake_at_its_line(tmp_path: Path) -> None:
    """An absent step not last, a step without condition, count < 1, a bad within, an
    unknown function in a step, sequence with absence, absence without condition, a broken
    distinct expression: each as PATH:LINE: field: message."""
    path = tmp_path / "bad.yml"
    path.write_text(BAD)
    result = run_cli("validate", "-r", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()

    def found(line: int, text: str) -> bool:
        return any(entry.startswith(f"{path}:{line}: ") and text in entry for entry in lines)

    assert found(5, "sequence: within:")
    assert found(8, "step 1: absent: only the last step may be absent")
    assert found(11, "step 2: count: must be a whole number >= 1")
    assert found(13, "step 3: condition: every step needs a condition")
    assert found(21, "step 2: condition: unknown function 'lenght'")
    assert found(22, "absence: a rule has either sequence or absence, not both")
    assert found(27, "absence: absence needs a condition")
    assert found(33, "threshold: invalid JMESPath")


def test_test_command_runs_sequence_scenarios_and_fails_a_wrong_count(tmp_path: Path) -> None:
    """`trailguard test` decides a scenario through the sequence state; a wrong
    expect_alerts fails with the counts."""
    source = (REPO / "rules/codeartifact/codeartifact-publish-then-delete.yml").read_text()
    path = tmp_path / "rule.yml"
    path.write_text(source.replace("expect_alerts: 1", "expect_alerts: 2", 1))
    result = run_cli("test", "-r", str(path))
    assert result.returncode == 1
    assert "expected 2 alert(s), got 1" in result.stdout
    assert result.stdout.strip().endswith("7 passed, 1 failed")


def test_explain_shows_each_step_part_by_part(tmp_path: Path) -> None:
    """`explain` on a sequence: every step's condition, each part with its value."""
    record = json.loads((REPO / "rules/codeartifact/events/publish-npm-developer.json")
                        .read_text())
    path = tmp_path / "event.json"
    path.write_text(json.dumps(record))
    result = run_cli("explain", "-r", str(REPO / "rules"), "--rule",
                     "codeartifact-publish-then-delete", str(path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "step published:" in out and "step deleted:" in out
    published = out.split("step deleted:")[0]
    assert "TRUE  eventName == 'PublishPackageVersion'" in published
    assert "FALSE contains(['DeletePackageVersions', 'DisposePackageVersions'], eventName)" \
        in out.split("step deleted:")[1]
