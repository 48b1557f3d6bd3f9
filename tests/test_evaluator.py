"""Evaluation: our JMESPath functions, the rule index, and per-rule error isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.conditions import expressions
from engine.conditions.evaluator import ENGINES, Evaluator, compile_expression
from engine.conditions.functions import TrailguardFunctions
from engine.rules import load_rules
from tests.support.records import record

FUNCTIONS = TrailguardFunctions({
    "trusted_networks": ["203.0.113.0/24", "2001:db8::/32"],
    "ci_roles": ["arn:aws:iam::123456789012:role/ci"],
})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("expression", "document", "expected"), [
    ("ip_in(ip, 'trusted_networks')", {"ip": "203.0.113.9"}, True),
    ("ip_in(ip, 'trusted_networks')", {"ip": "2001:db8::1"}, True),
    ("ip_in(ip, 'trusted_networks')", {"ip": "198.51.100.1"}, False),
    ("ip_in(ip, 'trusted_networks')", {"ip": "AWS Internal"}, False),
    ("ip_in(ip, 'trusted_networks')", {"ip": "codeartifact.amazonaws.com"}, False),
    ("ip_in(ip, 'trusted_networks')", {}, False),
    ("ip_in(ip, ['10.0.0.0/8'])", {"ip": "10.9.9.9"}, True),
    ("ip_in(ip, 'undefined_list')", {"ip": "10.9.9.9"}, False),
    ("in_list(arn, 'ci_roles')", {"arn": "arn:aws:iam::123456789012:role/ci"}, True),
    ("in_list(arn, 'ci_roles')", {"arn": None}, False),
    ("contains(list('ci_roles'), arn)", {"arn": "arn:aws:iam::123456789012:role/ci"}, True),
    ("matches(ua, '^npm/')", {"ua": "npm/10.2.0 node/v20"}, True),
    ("matches(ua, '^npm/')", {"ua": 7}, False),
    ("matches(ua, '([')", {"ua": "x"}, False),
    ("glob(name, 'List*')", {"name": "ListPackages"}, True),
    ("glob(name, 'list*')", {"name": "ListPackages"}, False),
    ("lower(x)", {"x": "AbC"}, "abc"),
    ("upper(x)", {"x": 3}, None),
    ("split(x, ':')", {"x": "a:b"}, ["a", "b"]),
    ("from_json(p).Statement[0].Effect", {"p": '{"Statement":[{"Effect":"Allow"}]}'}, "Allow"),
    ("from_json(p)", {"p": "{not json"}, None),
    ("hour_of(t)", {"t": "2024-03-01T23:59:59Z"}, 23),
    ("weekday_of(t)", {"t": "2024-03-03T10:00:00Z"}, 7),
    ("hour_of(t)", {"t": "yesterday"}, None),
    ("arn_account(a)", {"a": "arn:aws:iam::111122223333:role/x"}, "111122223333"),
    ("arn_account(a)", {"a": "111122223333"}, "111122223333"),
    ("arn_account(a)", {"a": "*"}, None),
    ("difference(a, b)", {"a": [1, 2, 3], "b": [2]}, [1, 3]),
    ("to_list(a)", {"a": "x"}, ["x"]),
    ("to_list(a)", {}, []),
])
def test_functions_never_raise_on_odd_input(engine: str, expression: str, document: dict,
                                            expected: object) -> None:
    """SPEC §1 functions return false/null for missing or wrong-typed fields, never raise."""
    assert compile_expression(expression, FUNCTIONS, engine)(document) == expected


@pytest.mark.parametrize(("condition", "expected"), [
    ("eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'",
     {"eventSource": {"codeartifact.amazonaws.com"}, "eventName": {"GetAuthorizationToken"}}),
    ("eventName == 'A' || eventName == 'B'", {"eventName": {"A", "B"}}),
    ("'A' == eventName && x", {"eventName": {"A"}}),
    ("contains(['A', 'B'], eventName) && eventSource == 's'",
     {"eventName": {"A", "B"}, "eventSource": {"s"}}),
    ("contains(`[\"A\"]`, eventName)", {"eventName": {"A"}}),
    ("eventName == 'A' || userIdentity.type == 'Root'", {}),
    ("!(eventName == 'A')", {}),
    ("eventName != 'A'", {}),
    ("starts_with(eventName, 'List')", {}),
    ("(eventName == 'A' || eventName == 'B') && eventName == 'B'", {"eventName": {"B"}}),
])
def test_index_derived_from_syntax_tree(condition: str, expected: dict) -> None:
    """Only necessary eventSource/eventName conditions index a rule; others leave it open."""
    derived = expressions.required_values(expressions.parse(condition))
    assert {k: set(v) for k, v in derived.items()} == expected


def _rules(tmp_path: Path, text: str, engine: str = "compiled") -> Evaluator:
    (tmp_path / "r.yml").write_text(text)
    ruleset = load_rules([tmp_path], FUNCTIONS, FUNCTIONS.lists.keys())
    return Evaluator(ruleset.rules, FUNCTIONS, engine)


RULES = """\
id: token
title: t
severity: low
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'
---
id: fragile
title: f
severity: low
condition: eventName == 'GetAuthorizationToken' && length(requestParameters.durationSeconds) > `0`
---
id: anything-root
title: r
severity: low
condition: userIdentity.type == 'Root'
"""


def test_index_skips_rules_that_cannot_match(tmp_path: Path) -> None:
    """A ReadFromRepository record is only offered to rules that could match it."""
    evaluator = _rules(tmp_path, RULES)
    read = record(eventName="ReadFromRepository")
    assert [c.rule.id for c in evaluator.candidates(read)] == ["anything-root"]
    token = record()
    assert [c.rule.id for c in evaluator.candidates(token)] == ["token", "fragile",
                                                                "anything-root"]


def test_failing_rule_is_isolated_and_counted(tmp_path: Path) -> None:
    """`length(null)` fails one rule on one record; the others still match; it is counted."""
    evaluator = _rules(tmp_path, RULES)
    matches = evaluator.evaluate(record(userIdentity__type="Root"))
    assert [m.rule.id for m in matches] == ["token", "anything-root"]
    assert evaluator.errors["fragile"] == 1
    assert "length" in evaluator.first_error["fragile"]
    evaluator.evaluate(record(requestParameters__durationSeconds="900"))
    assert evaluator.matches["fragile"] == 1


def test_conditions_use_jmespath_truthiness(tmp_path: Path) -> None:
    """A condition whose value is 0 matches (JMESPath truthiness); an empty list does not."""
    evaluator = _rules(tmp_path, """\
id: zero
title: z
severity: low
condition: length(requestParameters.upstreams || `[]`)
---
id: empty
title: e
severity: low
condition: requestParameters.upstreams || `[]`
""")
    assert [m.rule.id for m in evaluator.evaluate(record())] == ["zero"]


GROUPED = """\
id: by-principal
title: p
severity: low
condition: eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn || userIdentity.principalId
---
id: by-two
title: t
severity: low
condition: eventName == 'GetAuthorizationToken'
group_by: [requestParameters.domainName, requestParameters.durationSeconds]
---
id: fragile-group
title: f
severity: low
condition: eventName == 'GetAuthorizationToken'
group_by: length(requestParameters.missing)
---
id: ungrouped
title: u
severity: low
condition: eventName == 'GetAuthorizationToken'
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_group_keys_come_with_the_matches_and_fail_alone(tmp_path: Path, engine: str) -> None:
    """The compiled engine computes group keys in the bucket's one function, and a condition
    once when two rules share it: the same pairs as the interpreter. A group key that raises
    loses only its own rule's match (counted as that rule's error)."""
    documents = GROUPED.split("---\n")
    fragile = documents.pop(2)
    rest = "---\n".join(documents)
    expected = [("by-principal", "arn:aws:sts::123456789012:assumed-role/Developer/dev"),
                ("by-two", "acme|900"), ("ungrouped", None)]
    for text in (rest, GROUPED):
        evaluator = _rules(tmp_path, text, engine)
        found = evaluator.matched(record(requestParameters__durationSeconds=900))
        assert [(rule.id, group) for rule, group in found] == expected
        assert evaluator.matches == dict.fromkeys(["by-principal", "by-two", "ungrouped"], 1)
        assert evaluator.errors == ({"fragile-group": 1} if fragile in text else {})
        found = evaluator.matched(record(userIdentity__arn=None,
                                         requestParameters__domainName=7))
        assert [(rule.id, group) for rule, group in found][:2] == [
            ("by-principal", "AROAEXAMPLEID:dev"), ("by-two", "7|-")]
