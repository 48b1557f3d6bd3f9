"""`scan --dry-run` delivers and stores nothing; `--format` always sets stdout's format."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import REPO, run_cli
from tests.support.records import record
from tests.support.slack_receiver import SlackReceiver

RULE = """\
id: publish
title: A package was published
severity: high
condition: eventName == 'PublishPackageVersion'
summary: "{userIdentity.arn} published {requestParameters.packageName}"
"""


def _project(tmp_path: Path, slack: SlackReceiver) -> tuple[Path, Path]:
    (tmp_path / "rule.yml").write_text(RULE)
    (tmp_path / "quiet.yml").write_text(
        "- {id: quiet, rules: [publish], condition: \"requestParameters.packageName == "
        "'quiet'\", owner: o, reason: r, expires: 2099-01-01}\n")
    config = tmp_path / "trailguard.yml"
    config.write_text(
        "rules: [rule.yml]\nsuppressions: [quiet.yml]\nstate: sqlite:///state.db\n"
        f"outputs: {{team: {{type: slack, webhook_url: '{slack.webhook_url}'}}}}\n"
        "routes: [{outputs: [team]}]\n")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(record(
        eventName="PublishPackageVersion", eventTime=f"2024-03-01T10:0{n}:00Z",
        requestParameters={"packageName": name})) for n, name in enumerate(
            ["left-pad", "quiet", "right-pad"])) + "\n")
    return config, events


def test_dry_run_sends_nothing_and_writes_no_state(tmp_path: Path) -> None:
    """With a Slack output and a sqlite state in the config, a dry run prints the alerts
    (in --format) with the config's suppressions applied, sends nothing to Slack and
    creates no state file; the same scan without --dry-run does both."""
    with SlackReceiver() as slack:
        config, events = _project(tmp_path, slack)
        dry = run_cli("scan", "-c", str(config), "--dry-run", "--format", "text", str(events))
        assert dry.returncode == 0, dry.stderr
        assert slack.requests == []
        assert not (tmp_path / "state.db").exists()
        lines = dry.stdout.splitlines()
        assert len(lines) == 2 and all(line.startswith("[HIGH] publish: ") for line in lines)
        assert "left-pad" in lines[0] and "right-pad" in lines[1]
        assert "suppressed: quiet: 1 matches" in dry.stderr
        real = run_cli("scan", "-c", str(config), str(events))
        assert real.returncode == 0, real.stderr
        assert len(slack.wait_for(2)) == 2
        assert (tmp_path / "state.db").exists()
        assert real.stdout == ""


def test_dry_run_with_state_uses_that_state(tmp_path: Path) -> None:
    """--state still chooses the state of a dry run: eventIDs it remembers are repeats."""
    with SlackReceiver() as slack:
        config, events = _project(tmp_path, slack)
        state = f"sqlite:///{tmp_path / 'scratch.db'}"
        first = run_cli("scan", "-c", str(config), "--dry-run", "--state", state, str(events))
        again = run_cli("scan", "-c", str(config), "--dry-run", "--state", state, str(events))
        assert len(first.stdout.splitlines()) == 2 and again.stdout == ""
        assert "3 duplicates" in again.stderr
        assert slack.requests == [] and not (tmp_path / "state.db").exists()


def test_format_sets_stdout_outputs_format() -> None:
    """The example config routes to a stdout output: --format text prints text there
    (it used to print JSON lines whatever --format said); without --format, JSON lines."""
    config = REPO / "examples" / "trailguard.yml"
    text = run_cli("scan", "-c", str(config), "--format", "text", cwd=REPO / "examples")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines and all(line.startswith("[") and not line.startswith("{") for line in lines)
    default = run_cli("scan", "-c", str(config), cwd=REPO / "examples")
    assert len(default.stdout.splitlines()) == len(lines)
    assert all(json.loads(line)["rule_id"] for line in default.stdout.splitlines())
