"""`trailguard explain` through the real CLI: the engine's own verdict, and faithful text."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.records import record

STRING_AGAINST_NUMBER = """\
id: long-token
title: Long token
severity: low
condition: >-
  eventName == 'GetAuthorizationToken' && requestParameters.durationSeconds > '3600'
"""

PRECEDENCE = """\
id: either
title: Either
severity: low
condition: (eventName == 'A' || eventName == 'B') != `true`
"""


def _explain(tmp_path: Path, rule: str, rule_id: str, event: dict) -> tuple[int, str, str]:
    (tmp_path / "rule.yml").write_text(rule)
    (tmp_path / "event.json").write_text(json.dumps(event))
    result = run_cli("explain", "-r", str(tmp_path / "rule.yml"), "--rule", rule_id,
                     str(tmp_path / "event.json"))
    return result.returncode, result.stdout, result.stderr


def test_explain_shows_the_rule_error_that_scan_and_test_report(tmp_path: Path) -> None:
    """An int compared with a string raises in the engine: explain says ERROR and no match,
    where it used to print TRUE for that part and for the whole condition."""
    event = record(eventName="GetAuthorizationToken",
                   requestParameters={"domainName": "acme", "durationSeconds": 7200})
    code, out, err = _explain(tmp_path, STRING_AGAINST_NUMBER, "long-token", event)
    assert code == 0, err
    assert "TRUE  requestParameters.durationSeconds" not in out
    assert "ERROR requestParameters.durationSeconds > '3600'" in out
    assert "ERROR &&" in out
    assert "=> RULE ERROR: TypeError" in out
    scan = run_cli("scan", "-r", str(tmp_path / "rule.yml"), str(tmp_path / "event.json"))
    assert scan.stdout == "" and "rule error: long-token: TypeError" in scan.stderr


def test_explain_verdict_matches_the_engine(tmp_path: Path) -> None:
    """The last line is the engine's verdict on the whole condition."""
    event = record(eventName="GetAuthorizationToken")
    _, out, _ = _explain(tmp_path, PRECEDENCE.replace("!= `true`", "== `true`"),
                         "either", event)
    assert out.splitlines()[-1] == "=> NO MATCH"
    _, out, _ = _explain(tmp_path, PRECEDENCE, "either", event)
    assert out.splitlines()[-1] == "=> MATCH"


def test_explain_parenthesises_by_precedence(tmp_path: Path) -> None:
    """`(a || b) != c` is printed with its parentheses, not as `a || b != c`."""
    event = record(eventName="A")
    code, out, err = _explain(tmp_path, PRECEDENCE, "either", event)
    assert code == 0, err
    assert "(eventName == 'A' || eventName == 'B') != `true`" in out
    assert "eventName == 'A' || eventName == 'B' != `true`" not in out


def test_explain_text_parses_back_to_the_same_tree() -> None:
    """unparse() gives text that parses to the same syntax tree, for every parseable
    expression of the JMESPath compliance suite (precedence, slices, literals, projections):
    what explain prints is what runs."""
    from engine.conditions import expressions
    from engine.conditions.explain import unparse

    checked, different = 0, []
    for path in sorted((Path(__file__).parent / "compliance").glob("*.json")):
        for suite in json.loads(path.read_text()):
            for case in suite["cases"]:
                try:
                    tree = expressions.parse(case["expression"])
                except ValueError:
                    continue
                checked += 1
                text = unparse(tree)
                try:
                    same = expressions.parse(text) == tree
                except ValueError:
                    same = False
                if not same:
                    different.append((case["expression"], text))
    assert checked > 700
    assert different == []
