"""Mistakes that parse and run but do not do what the author meant, and where they are.

A JMESPath condition is easy to get subtly wrong in ways jmespath accepts:
- `eventName == 'A' || 'B'` parses as `(eventName == 'A') || 'B'`; a non-empty string is
  truthy, so the rule matches every record (73 of 73 on the shipped examples). A literal
  that makes `||`/`&&` constant where a truth value is wanted is an error (one that only
  does nothing, `x || null`, a warning), and so is `'A' || 'B'` anywhere (it is just `'A'`).
  A default inside a value, `to_number(a || `43200`)`, is fine and is not flagged.
- `"GetAuthorizationToken"` in double quotes is a quoted identifier: a field lookup, not a
  string; bare `true`/`null` are fields named true/null. The catalogue already warns that
  CloudTrail has no such field; `field_hint` adds what the author meant.

`Tokens` finds where a finding is in the expression (jmespath's syntax tree has no
positions, its lexer does), so `validate` can point at the line inside a block-scalar
condition rather than at the `condition:` key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from jmespath.exceptions import LexerError
from jmespath.lexer import Lexer

from engine.conditions.expressions import Finding, Node

_JUNCTIONS = {"or_expression": "||", "and_expression": "&&"}
_KEYWORDS = {"true": "`true`", "false": "`false`", "null": "`null`"}


def constant_operands(tree: Node) -> list[Finding]:
    """Literals used as operands of `||`/`&&` where a truth value is wanted, each with a
    hint: an error when it makes the result the same for every record, else a warning."""
    findings: list[Finding] = []
    _visit(tree, True, findings)
    return findings


def _visit(node: Node, as_truth: bool, findings: list[Finding]) -> None:
    kind, children = node["type"], node.get("children", [])
    if kind in _JUNCTIONS:
        _check_junction(node, as_truth, findings)
    for position, child in enumerate(children):
        if isinstance(child, Mapping):
            # the operands of ||, && and ! and a filter's condition are used as truth values
            truth = (kind in _JUNCTIONS and as_truth) or kind == "not_expression" or (
                kind == "filter_projection" and position == 2)
            _visit(child, truth, findings)


def _check_junction(node: Node, as_truth: bool, findings: list[Finding]) -> None:
    from engine.conditions.explain import unparse

    left, right = node["children"]
    operator = _JUNCTIONS[node["type"]]
    if left["type"] == "literal" and right["type"] == "literal":
        findings.append(Finding(
            f"`{unparse(node)}` is a constant (it is just {unparse(_pick(node))}): to test a "
            f"field against several values use contains([...], field)",
            anchor=("literal", right["value"])))
        return
    if not as_truth:
        return  # `a || 'default'` gives a value, not a truth: a fallback, not a mistake
    for literal, other in ((right, left), (left, right)):
        if literal["type"] == "literal":
            # `x || 'B'` and `x && null` decide every record: an error. `x || null` and
            # `x && 'B'` only do nothing: a warning.
            constant = _truthy(literal["value"]) == (operator == "||")
            findings.append(Finding(_constant_message(node, literal, operator)
                                    + _comparison_hint(literal, other, operator),
                                    "error" if constant else "warning",
                                    anchor=("literal", literal["value"])))


def _constant_message(node: Node, literal: Node, operator: str) -> str:
    from engine.conditions.explain import unparse

    truthy = _truthy(literal["value"])
    kind = "a non-empty literal is always true" if truthy else "it is always false"
    if truthy == (operator == "||"):  # `x || 'B'`, `x && null`: the whole is constant
        whole = "true" if truthy else "false"
        return f"`{unparse(node)}` is {whole} for every record: {unparse(literal)} is a " \
               f"literal operand of {operator}, and {kind}"
    return f"{unparse(literal)} is a literal operand of {operator} and {kind}, so it does " \
           f"nothing in `{unparse(node)}`"


def _comparison_hint(literal: Node, other: Node, operator: str) -> str:
    """`eventName == 'A' || 'B'` -> the two ways of writing what was meant."""
    from engine.conditions.explain import unparse

    if operator != "||" or other["type"] != "comparator" or other["value"] not in ("eq", "ne"):
        return ": compare the value with a field, e.g. `eventName == 'X'`"
    field, value = other["children"]
    if field["type"] == "literal":
        field, value = value, field
    name, comparison = unparse(field), "==" if other["value"] == "eq" else "!="
    spelled = (f"{name} {comparison} {unparse(value)} {operator} "
               f"{name} {comparison} {unparse(literal)}")
    if value["type"] == "literal" and other["value"] == "eq" and operator == "||":
        values = ", ".join(unparse(v) for v in (value, literal))
        return f": write `{spelled}` or `contains([{values}], {name})`"
    return f": write `{spelled}`"


def _pick(node: Node) -> Node:
    left: Node
    right: Node
    left, right = node["children"]
    chosen = _truthy(left["value"]) == (node["type"] == "or_expression")
    return left if chosen else right


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or value in ("", [], {}))


def field_hint(token: Mapping[str, Any] | None) -> str:
    """What the author probably meant by a field name CloudTrail does not have."""
    if token is None:
        return ""
    name = token["value"]
    if token["type"] == "quoted_identifier":
        return (f"; \"{name}\" in double quotes is a field name (a JMESPath quoted "
                f"identifier): use '{name}' in single quotes for a string")
    if name in _KEYWORDS:
        return f"; bare {name} is a field name: use {_KEYWORDS[name]} for the literal"
    return ""


def stray_brace(template: str) -> str | None:
    """A summary template with its `{expr}` fields removed: a brace left over is a field
    the author did not close (rendered literally, it would never be filled in)."""
    for char in template:
        if char == "{":
            return "unclosed '{' in the template: a field is written {expr}"
        if char == "}":
            return "'}' without a '{' before it in the template"
    return None


class Tokens:
    """The expression's tokens, to find the offset of what a finding is about. Asked
    several times for the same name or value, it gives its successive occurrences."""

    def __init__(self, expression: str) -> None:
        try:
            self.tokens: list[Mapping[str, Any]] = [  # jmespath's (untyped) token dicts
                t for t in Lexer().tokenize(expression) if t["type"] != "eof"]
        except LexerError:
            self.tokens = []
        self._asked: Counter[tuple[str, str]] = Counter()

    def find(self, anchor: tuple[str, Any] | None) -> Mapping[str, Any] | None:
        if anchor is None:
            return None
        kind, value = anchor
        types = ("literal",) if kind == "literal" else ("unquoted_identifier",
                                                        "quoted_identifier")
        found = [t for t in self.tokens if t["type"] in types and t["value"] == value]
        if not found:
            return None
        key = (kind, repr(value))
        self._asked[key] += 1
        return found[min(self._asked[key], len(found)) - 1]

    def offset(self, anchor: tuple[str, Any] | None) -> int | None:
        token = self.find(anchor)
        return None if token is None else int(token["start"])
