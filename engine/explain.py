"""`trailguard explain`: why a condition is true or false for one event, part by part.

The condition's syntax tree is printed as an outline: every `&&`, `||` and `!` node and every
leaf test with its own value, so an author sees which part failed instead of re-reading a
one-line expression. Values are computed with jmespath's interpreter, the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jmespath.functions
from jmespath.visitor import Options, TreeInterpreter

from engine import expressions
from engine.model import Rule

_COMPARATORS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_BOOLEAN = {"and_expression": "&&", "or_expression": "||"}


def explain(condition: str, record: Any, functions: jmespath.functions.Functions) -> list[str]:
    tree = expressions.parse(condition)
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return list(_outline(tree, record, interpreter, 0))


def explain_rule(rule: Rule, record: Any, functions: jmespath.functions.Functions) -> list[str]:
    """`explain` for a whole rule: its condition, or each step of a sequence part by part
    (the sequence's own condition, a filter, is part of every step's)."""
    if rule.sequence is None:
        return explain(rule.condition, record, functions)
    lines = []
    for step, routed in zip(rule.sequence.steps, rule.step_rules(), strict=True):
        extra = (" (absent: must not happen)" if step.absent else "") + (
            f" (count: {step.count})" if step.count > 1 else "")
        lines.append(f"step {step.name}{extra}:")
        lines.extend("  " + line for line in explain(routed.condition, record, functions))
    return lines


def _outline(node: Mapping[str, Any], record: Any, interpreter: TreeInterpreter,
             depth: int) -> Iterator[str]:
    value = _value(node, record, interpreter)
    verdict = "TRUE " if _truthy(value) else "FALSE"
    pad = "  " * depth
    if node["type"] in _BOOLEAN:
        yield f"{pad}{verdict} {_BOOLEAN[node['type']]}"
        for child in _operands_of(node):
            yield from _outline(child, record, interpreter, depth + 1)
    elif node["type"] == "not_expression":
        yield f"{pad}{verdict} !"
        yield from _outline(node["children"][0], record, interpreter, depth + 1)
    else:
        yield f"{pad}{verdict} {unparse(node)}{_operands(node, record, interpreter)}"


def _operands_of(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """`a && b && c` parses as `(a && b) && c`; show it as one level of three parts."""
    for child in node["children"]:
        if child["type"] == node["type"]:
            yield from _operands_of(child)
        else:
            yield child


def _operands(node: Mapping[str, Any], record: Any, interpreter: TreeInterpreter) -> str:
    """For a comparison or function call, the values that went into it."""
    if node["type"] not in ("comparator", "function_expression"):
        return f"   -> {_show(_value(node, record, interpreter))}"
    shown = [f"{unparse(child)} = {_show(_value(child, record, interpreter))}"
             for child in node["children"] if child["type"] != "literal"]
    return f"   [{'; '.join(shown)}]" if shown else ""


def _value(node: Mapping[str, Any], record: Any, interpreter: TreeInterpreter) -> Any:
    try:
        return interpreter.visit(node, record)
    except Exception as exc:  # explain the error instead of dying on it
        return f"<error: {exc}>"


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or value in ("", [], {}))


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def unparse(node: Mapping[str, Any]) -> str:
    """JMESPath text for a syntax tree (equivalent, not byte-identical, to the source)."""
    kind, children = node["type"], node.get("children", [])
    handler = _UNPARSERS.get(kind)
    return handler(node, children) if handler else f"<{kind}>"


def _join(sep: str) -> Any:
    return lambda node, children: sep.join(unparse(c) for c in children)


_UNPARSERS: dict[str, Any] = {
    "field": lambda node, _: node["value"] if node["value"].isidentifier()
    else json.dumps(node["value"]),
    "current": lambda *_: "@",
    "identity": lambda *_: "@",
    "literal": lambda node, _: (f"'{node['value']}'" if isinstance(node["value"], str)
                                else f"`{json.dumps(node['value'])}`"),
    "subexpression": _join("."),
    "pipe": _join(" | "),
    "and_expression": _join(" && "),
    "or_expression": _join(" || "),
    "not_expression": lambda _, c: f"!{unparse(c[0])}",
    "comparator": lambda node, c: f"{unparse(c[0])} {_COMPARATORS[node['value']]} {unparse(c[1])}",
    "function_expression": lambda node, c: f"{node['value']}({', '.join(unparse(x) for x in c)})",
    "multi_select_list": lambda _, c: f"[{', '.join(unparse(x) for x in c)}]",
    "index": lambda node, _: f"[{node['value']}]",
    "index_expression": lambda _, c: f"{unparse(c[0])}{unparse(c[1])}",
    "flatten": lambda _, c: f"{unparse(c[0])}[]",
    "projection": lambda _, c: f"{unparse(c[0])}[*].{unparse(c[1])}",
    "value_projection": lambda _, c: f"{unparse(c[0])}.*.{unparse(c[1])}",
    "filter_projection": lambda _, c: f"{unparse(c[0])}[?{unparse(c[2])}].{unparse(c[1])}",
    "expref": lambda _, c: f"&{unparse(c[0])}",
}
