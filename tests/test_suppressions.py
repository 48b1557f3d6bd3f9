"""Suppressions (SPEC §9) through the real CLI, and their wall-clock expiry under freezegun."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.decide.decider import new_decider
from engine.errors import RuleError
from engine.rules import load_rules
from engine.scan.pipeline import run_scan
from engine.suppressions import load_suppressions, parse_expiry
from engine.suppressor import build_suppressor
from tests.support.cli import run_cli
from tests.support.records import record

RULES = """\
id: token-unknown
title: Token from anywhere
severity: high
condition: eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
dedup: 1h
---
id: token-burst
title: Three tokens in ten minutes
severity: medium
condition: eventName == 'GetAuthorizationToken'
group_by: sourceIPAddress
threshold: {count: 3, window: 10m}
dedup: 1h
---
id: publish
title: A package was published
severity: high
condition: eventName == 'PublishPackageVersion'
"""
CI = "arn:aws:sts::111122223333:assumed-role/ci/runner"
DEV = "arn:aws:sts::111122223333:assumed-role/dev/alice"
SUPPRESSION = f"""\
- id: ci-runner
  rules: [token-*]
  condition: "userIdentity.arn == '{CI}'"
  owner: secops@example.com
  reason: VPN egress moves on 2027-01-15
  expires: 2099-01-31
"""


def _project(tmp_path: Path, suppressions: str, rules: str = RULES) -> Path:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "suppressions").mkdir()
    (tmp_path / "suppressions" / "ci.yml").write_text(suppressions)
    config = tmp_path / "trailguard.yml"
    config.write_text("rules: [rules.yml]\nsuppressions: [suppressions/]\n")
    return config


def _tokens(tmp_path: Path) -> Path:
    """Two tokens for the CI runner and two for a developer, one IP, within ten minutes."""
    events = [record(eventTime=f"2024-03-01T10:0{i}:00Z", userIdentity__arn=arn)
              for i, arn in enumerate([CI, DEV, CI, DEV])]
    events.append(record(eventName="PublishPackageVersion", userIdentity__arn=CI))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return path


def _alerts(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_scan_suppression_silences_only_what_it_names(tmp_path: Path) -> None:
    """The CI runner's token matches neither alert nor count towards the threshold; the
    developer's and the publish (a rule the suppression does not name) still alert; the
    summary counts what was silenced, per suppression."""
    config = _project(tmp_path, SUPPRESSION)
    events = _tokens(tmp_path)
    result = run_cli("scan", "-c", str(config), str(events))
    assert result.returncode == 0, result.stderr
    alerts = _alerts(result.stdout)
    assert sorted((a["rule_id"], a["group_key"]) for a in alerts) == [
        ("publish", None), ("token-unknown", DEV)]
    assert "suppressed: ci-runner: 4 matches (expires 2099-01-31, owner secops@example.com)" \
        in result.stderr
    # Without the suppression the same input alerts for the runner and reaches the threshold.
    (tmp_path / "suppressions" / "ci.yml").write_text("[]\n")
    unsuppressed = _alerts(run_cli("scan", "-c", str(config), str(events)).stdout)
    assert sorted(a["rule_id"] for a in unsuppressed) == [
        "publish", "token-burst", "token-unknown", "token-unknown"]


def test_scan_suppression_same_with_workers(tmp_path: Path) -> None:
    """A parallel scan suppresses exactly as one process does, with a threshold rule on the
    lane and a repeated file in the input (repeats are not counted as suppressed)."""
    config = _project(tmp_path, SUPPRESSION)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n in range(3):
        events = [record(eventTime=f"2024-03-01T1{n}:0{i}:00Z",
                         userIdentity__arn=CI if i % 2 else DEV,
                         sourceIPAddress=f"192.0.2.{i % 3}") for i in range(8)]
        (inputs / f"{n}.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (inputs / "3-again.jsonl").write_text((inputs / "1.jsonl").read_text())
    one = run_cli("scan", "-c", str(config), "--workers", "1", str(inputs))
    two = run_cli("scan", "-c", str(config), "--workers", "2", str(inputs))
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    key = sorted((a["rule_id"], a["group_key"], tuple(a["event_ids"]))
                 for a in _alerts(one.stdout))
    assert key == sorted((a["rule_id"], a["group_key"], tuple(a["event_ids"]))
                         for a in _alerts(two.stdout))
    assert "suppressed: ci-runner: 24 matches" in one.stderr  # 12 tokens x 2 rules
    assert "suppressed: ci-runner: 24 matches" in two.stderr


def test_validate_reports_every_suppression_problem(tmp_path: Path) -> None:
    """Errors for missing fields, unknown rules, globs matching nothing and bad conditions,
    warnings for expired and soon-expiring ones: all at PATH:LINE, all at once."""
    soon = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d")
    config = _project(tmp_path, f"""\
- id: no-owner
  rules: [publish]
  reason: r
  expires: 2099-01-01
- id: bad-rules
  rules: [tokn-*, publsh]
  owner: o
  reason: r
  expires: 2099-01-01
- id: bad-condition
  rules: [publish]
  condition: "lenght(eventName) > `3` && ip_in(sourceIPAddress)"
  owner: o
  reason: r
  expires: 2099-01-01
- id: bad-syntax
  rules: [publish]
  condition: "eventName == "
  owner: o
  reason: r
  expires: next week
- id: old
  rules: [publish]
  owner: o
  reason: r
  expires: 2020-01-01
- id: soon
  rules: [publish]
  condition: "userIdenity.arn == 'x'"
  owner: o
  reason: r
  expires: {soon}
""")
    result = run_cli("validate", "-c", str(config))
    assert result.returncode == 1
    path = tmp_path / "suppressions" / "ci.yml"
    lines = result.stderr.splitlines()
    for expected in (
        f"{path}:1: owner: required field is missing",
        f"{path}:6: rules: glob 'tokn-*' matches no rule",
        f"{path}:6: rules: unknown rule 'publsh'",
        f"{path}:12: condition: unknown function 'lenght'; ip_in() takes 2 argument(s), got 1",
        f"{path}:21: expires: 'next week' is not a date (2027-01-31) or an ISO timestamp",
        f"{path}:26: expires: warning: expired on 2020-01-01: it suppresses nothing; "
        "remove it or renew it",
        f"{path}:29: condition: warning: field 'userIdenity' is not in CloudTrail records "
        "(did you mean 'userIdentity'?)",
    ):
        assert expected in lines, (expected, result.stderr)
    assert any(line.startswith(f"{path}:18: condition: invalid JMESPath") for line in lines)
    assert any(line.startswith(f"{path}:32: expires: warning: expires in ") for line in lines)
    assert "6 error(s), 3 warning(s)" in result.stderr


def test_validate_counts_good_suppressions(tmp_path: Path) -> None:
    """A valid set validates, and the summary line says how many suppressions it holds."""
    result = run_cli("validate", "-c", str(_project(tmp_path, SUPPRESSION)))
    assert result.returncode == 0, result.stderr
    assert "3 rules in 1 files, 1 suppressions: no errors, 0 warnings" in result.stderr


def test_suppressor_expires_by_wall_clock(tmp_path: Path) -> None:
    """Until `expires` a match is suppressed (and counted); from then on it alerts. A bare
    date ends at the start of that day, UTC."""
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "s.yml").write_text(SUPPRESSION.replace("2099-01-31", "2027-01-31"))
    functions = TrailguardFunctions({})
    rules = load_rules([tmp_path / "rules.yml"], functions).rules
    loaded = load_suppressions([tmp_path / "s.yml"], functions, (), [r.id for r in rules])
    assert parse_expiry("2027-01-31") == datetime(2027, 1, 31, tzinfo=UTC).timestamp()
    events = [record(eventTime=f"2024-03-01T10:0{i}:00Z", userIdentity__arn=CI)
              for i in range(3)]

    def scan() -> tuple[int, int]:
        suppressor = build_suppressor(loaded.suppressions, functions)
        evaluator = Evaluator(rules, functions)
        alerts: list = []
        run_scan(events, evaluator, new_decider(evaluator, 900.0), alerts.append,
                 suppressor=suppressor)
        return len(alerts), suppressor.by_suppression["ci-runner"]

    with freeze_time("2027-01-30T23:59:59Z"):
        assert scan() == (0, 6)
    with freeze_time("2027-01-31T00:00:00Z"):
        assert scan() == (2, 0)  # token-unknown for the runner, and the burst of three


def test_load_suppressions_raises_every_error(tmp_path: Path) -> None:
    """Loading gathers all errors into one RuleError, like rules."""
    (tmp_path / "s.yml").write_text("- {id: a}\n- {id: b, rules: [x], owner: o, reason: r, "
                                    "expires: 2099-01-01, colour: red}\n")
    with pytest.raises(RuleError) as caught:
        load_suppressions([tmp_path / "s.yml"], TrailguardFunctions({}), (), ["x"])
    fields = [(p.line, p.field) for p in caught.value.problems]
    assert fields == [(1, "owner"), (1, "reason"), (1, "expires"), (1, "rules"),
                      (2, "colour")]


RULE_WITH_TESTS = """\
id: publish
title: A package was published
severity: high
condition: eventName == 'PublishPackageVersion'
tests:
  - name: the release pipeline is suppressed
    event: {eventName: PublishPackageVersion, userIdentity: {arn: ci}}
    suppressions:
      - {id: release, condition: "userIdentity.arn == 'ci'", owner: o, reason: r,
         expires: 2099-01-01}
    expect: false
  - name: an expired suppression does nothing
    event: {eventName: PublishPackageVersion, userIdentity: {arn: ci}}
    suppressions:
      - {id: release, owner: o, reason: r, expires: 2020-01-01}
    expect: true
  - name: anyone else alerts
    event: {eventName: PublishPackageVersion, userIdentity: {arn: dev}}
    expect: true
"""


def test_rule_tests_carry_their_own_suppressions(tmp_path: Path) -> None:
    """A test's `suppressions:` apply to it alone (rules default to the rule under test);
    the config's apply to the other tests, and a verdict they change names them."""
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE_WITH_TESTS)
    alone = run_cli("test", "-r", str(rules))
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "3 passed, 0 failed" in alone.stdout
    config = _project(tmp_path, """\
- id: everyone
  rules: [publish]
  owner: o
  reason: r
  expires: 2099-01-01
""", RULE_WITH_TESTS)
    with_config = run_cli("test", "-c", str(config))
    assert with_config.returncode == 1
    assert "FAIL" in with_config.stdout and "anyone else alerts: expected a match, got no " \
        "match (suppressed by everyone)" in with_config.stdout
    assert "2 passed, 1 failed" in with_config.stdout


def test_rule_test_suppression_errors_are_rule_errors(tmp_path: Path) -> None:
    """A bad suppression inside a rule test is reported at its line by validate."""
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE_WITH_TESTS.replace("userIdentity.arn == 'ci'", "nope(x)"))
    result = run_cli("validate", "-r", str(rules))
    assert result.returncode == 1
    assert f"{rules}:9: condition: unknown function 'nope'" in result.stderr


def test_scan_suppression_condition_errors_suppress_nothing(tmp_path: Path) -> None:
    """A suppression whose condition fails on a record (length(null)) suppresses nothing
    there, and the summary says how often it failed, with one process or two."""
    broken = SUPPRESSION + """\
- id: broken
  rules: [token-unknown]
  condition: "length(requestParameters.nothing) > `0`"
  owner: o
  reason: r
  expires: 2099-01-01
"""
    config = _project(tmp_path, broken)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n in range(2):
        events = [record(eventTime=f"2024-03-01T1{n}:0{i}:00Z",
                         userIdentity__arn=CI if i % 2 else DEV) for i in range(6)]
        (inputs / f"{n}.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    for workers in ("1", "2"):
        result = run_cli("scan", "-c", str(config), "--workers", workers, str(inputs))
        assert result.returncode == 0, result.stderr
        assert sorted(a["group_key"] for a in _alerts(result.stdout)
                      if a["rule_id"] == "token-unknown") == [DEV, DEV]
        assert "suppressed: broken: 0 matches (expires 2099-01-01, owner o); its condition " \
            "failed on 6 records" in result.stderr, (workers, result.stderr)


def test_scan_suppressed_match_is_not_remembered_by_first_seen(tmp_path: Path) -> None:
    """A suppressed match is dropped before first_seen records its value: the next,
    unsuppressed match of that value is still new and alerts."""
    rule = """\
id: token-new-address
title: Token from a new address
severity: medium
condition: eventName == 'GetAuthorizationToken'
first_seen: {value: sourceIPAddress}
"""
    config = _project(tmp_path, SUPPRESSION, rule)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(record(
        eventTime=f"2024-03-01T10:0{n}:00Z", userIdentity__arn=arn,
        sourceIPAddress="192.0.2.9")) for n, arn in enumerate([CI, DEV])) + "\n")
    alerts = _alerts(run_cli("scan", "-c", str(config), str(events)).stdout)
    assert [a["event"]["userIdentity"]["arn"] for a in alerts] == [DEV]
    (tmp_path / "suppressions" / "ci.yml").write_text("[]\n")
    alerts = _alerts(run_cli("scan", "-c", str(config), str(events)).stdout)
    assert [a["event"]["userIdentity"]["arn"] for a in alerts] == [CI]
