"""`trailguard explain`: why a condition is true or false for one event, part by part.

The condition's syntax tree is printed as an outline: every `&&`, `||` and `!` node and every
leaf test with its own value, so an author sees which part failed instead of re-reading a
one-line expression.

Every value is computed by the engine's own code path
(engine.conditions.evaluator.compile_expression, the compiled condition that `scan` and `test` run),
never by a second evaluator: explain once printed TRUE for `durationSeconds > '3600'` (an int
against a string) while scan and test reported a rule error and no match. An error is shown as ERROR
on the part that raised and on every part above it, and the verdict says what the engine does with
it (no match, counted as a rule error).

Printed expressions are parenthesised by JMESPath precedence, so `(a || b) != c` stays that
and never reads as `a || b != c`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jmespath.functions
from jmespath.visitor import Options, TreeInterpreter

from engine.conditions import expressions
from engine.model import Rule

Node = Mapping[str, Any]
_COMPARATORS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_BOOLEAN = {"and_expression": "&&", "or_expression": "||"}


class _Failed:
    """A part that raised: carries the engine's message (never mistaken for a value)."""

    def __init__(self, exc: Exception) -> None:
        self.message = f"{type(exc).__name__}: {exc}"


class _Explainer:
    def __init__(self, record: Any, functions: jmespath.functions.Functions,
                 engine: str) -> None:
        self.record = record
        self.functions = functions
        self.engine = engine

    def value(self, node: Node) -> Any:
        try:
            return _compile(node, self.functions, self.engine)(self.record)
        except Exception as exc:  # explain the error the engine meets instead of dying on it
            return _Failed(exc)

    def outline(self, node: Node, depth: int) -> Iterator[str]:
        value = self.value(node)
        pad = "  " * depth
        if node["type"] in _BOOLEAN:
            yield f"{pad}{_verdict(value)} {_BOOLEAN[node['type']]}"
            for child in _operands_of(node):
                yield from self.outline(child, depth + 1)
        elif node["type"] == "not_expression":
            yield f"{pad}{_verdict(value)} !"
            yield from self.outline(node["children"][0], depth + 1)
        else:
            yield f"{pad}{_verdict(value)} {unparse(node)}{self.operands(node, value)}"

    def operands(self, node: Node, value: Any) -> str:
        """For a comparison or function call, the values that went into it."""
        error = f"   -> {value.message}" if isinstance(value, _Failed) else ""
        if node["type"] not in ("comparator", "function_expression"):
            return error or f"   -> {_show(value)}"
        shown = [f"{unparse(child)} = {_show(self.value(child))}"
                 for child in node["children"] if not _constant(child)]
        return (f"   [{'; '.join(shown)}]" if shown else "") + error


def explain(condition: str, record: Any, functions: jmespath.functions.Functions,
            engine: str = "compiled") -> list[str]:
    """The outline of `condition` on `record`, then a verdict line: MATCH, NO MATCH, or
    RULE ERROR (which the engine counts and treats as no match)."""
    tree = expressions.parse(condition)
    explainer = _Explainer(record, functions, engine)
    lines = list(explainer.outline(tree, 0))
    whole = explainer.value(tree)
    if isinstance(whole, _Failed):
        lines.append(f"=> RULE ERROR: {whole.message} (scan and test count a rule error "
                     "and treat the record as no match)")
    else:
        lines.append("=> MATCH" if _truthy(whole) else "=> NO MATCH")
    return lines



def explain_rule(rule: Rule, record: Any, functions: jmespath.functions.Functions,
                 engine: str = "compiled") -> list[str]:
    """`explain` for a whole rule: its condition, or each step of a sequence part by part
    (the sequence's own condition, a filter, is part of every step's)."""
    if rule.sequence is None:
        return explain(rule.condition, record, functions, engine)
    lines = []
    for step, routed in zip(rule.sequence.steps, rule.step_rules(), strict=True):
        extra = (" (absent: must not happen)" if step.absent else "") + (
            f" (count: {step.count})" if step.count > 1 else "")
        lines.append(f"step {step.name}{extra}:")
        lines.extend("  " + line for line in explain(routed.condition, record, functions,
                                                     engine))
    return lines

def _compile(node: Node, functions: jmespath.functions.Functions, engine: str) -> Any:
    """What engine.conditions.evaluator.compile_expression builds for a condition, for any part of
    its tree: the generated Python of engine.conditions.compiler, or jmespath's interpreter when
    asked (or when the compiler is absent)."""
    if engine == "compiled":
        try:
            from engine.conditions.compiler import compile_tree
        except ImportError:
            pass
        else:
            return compile_tree(dict(node), functions)
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return lambda document: interpreter.visit(node, document)


def _verdict(value: Any) -> str:
    if isinstance(value, _Failed):
        return "ERROR"
    return "TRUE " if _truthy(value) else "FALSE"


def _constant(node: Node) -> bool:
    """A literal, or a list of literals: its value is its text, not worth repeating."""
    if node["type"] == "multi_select_list":
        return all(_constant(child) for child in node["children"])
    return bool(node["type"] == "literal")


def _operands_of(node: Node) -> Iterator[Node]:
    """`a && b && c` parses as `(a && b) && c`; show it as one level of three parts."""
    for child in node["children"]:
        if child["type"] == node["type"]:
            yield from _operands_of(child)
        else:
            yield child


def _truthy(value: Any) -> bool:
    return not (value is None or value is False or value in ("", [], {}))


def _show(value: Any) -> str:
    if isinstance(value, _Failed):
        return f"<{value.message}>"
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


# --- unparsing: JMESPath text for a syntax tree, parenthesised by precedence -------------

# jmespath's binding powers (jmespath.parser.Parser.BINDING_POWER): a child binding less
# tightly than its parent operator must be parenthesised.
_PRECEDENCE = {"pipe": 1, "or_expression": 2, "and_expression": 3, "comparator": 5,
               "flatten": 9, "projection": 20, "value_projection": 20,
               "filter_projection": 21, "not_expression": 45}
_ATOM = 100  # fields, literals, calls, multi-selects: never need parentheses


def unparse(node: Node) -> str:
    """JMESPath text for a syntax tree (equivalent, not byte-identical, to the source)."""
    kind, children = node["type"], node.get("children", [])
    handler = _UNPARSERS.get(kind)
    return handler(node, children) if handler else f"<{kind}>"


def _precedence(node: Node) -> int:
    return _PRECEDENCE.get(node["type"], _ATOM)


def _side(child: Node, parent: Node, right: bool = False) -> str:
    """`child` as an operand of `parent`; the right operand of a left-associative operator
    needs parentheses at equal precedence too (`a == (b == c)`)."""
    text = unparse(child)
    mine, theirs = _precedence(child), _precedence(parent)
    return f"({text})" if mine < theirs or (right and mine == theirs) else text


def _binary(operator: str) -> Any:
    return lambda node, c: f"{_side(c[0], node)} {operator} {_side(c[1], node, right=True)}"


def _literal(value: Any) -> str:
    if isinstance(value, str) and "\\" not in value:  # a raw string: only \' is an escape
        return "'" + value.replace("'", "\\'") + "'"
    return "`" + json.dumps(value).replace("`", "\\`") + "`"


def _field(name: str) -> str:
    return name if name.isidentifier() and name not in ("true", "false", "null") \
        else json.dumps(name)


def _args(children: list[Node]) -> str:
    return ", ".join(unparse(x) for x in children)


_UNPARSERS: dict[str, Any] = {
    "field": lambda node, _: _field(node["value"]),
    "current": lambda *_: "@",
    "identity": lambda *_: "@",
    "literal": lambda node, _: _literal(node["value"]),
    "subexpression": lambda node, c: _side(c[0], node) + "".join(f".{unparse(x)}"
                                                               for x in c[1:]),
    "pipe": _binary("|"),
    "and_expression": _binary("&&"),
    "or_expression": _binary("||"),
    "not_expression": lambda node, c: f"!{_side(c[0], node)}",
    "comparator": lambda node, c: _binary(_COMPARATORS[node["value"]])(node, c),
    "function_expression": lambda node, c: f"{node['value']}({_args(c)})",
    "multi_select_list": lambda _, c: f"[{_args(c)}]",
    "multi_select_dict": lambda _, c: "{" + _args(c) + "}",
    "key_val_pair": lambda node, c: f"{_field(node['value'])}: {unparse(c[0])}",
    "index": lambda node, _: f"[{node['value']}]",
    "slice": lambda node, c: "[" + _slice(*c) + "]",
    "index_expression": lambda node, c: _head(c[0], node) + "".join(unparse(x) for x in c[1:]),
    "flatten": lambda node, c: f"{_head(c[0], node)}[]",
    "projection": lambda node, c: _projection(node, c, "[*]"),
    "value_projection": lambda node, c: _projection(node, c, "*" if c[0]["type"] == "identity"
                                                    else ".*"),
    "filter_projection": lambda node, c: _projection(node, c[:2], f"[?{unparse(c[2])}]"),
    "expref": lambda _, c: f"&{unparse(c[0])}",
}


def _head(child: Node, parent: Node) -> str:
    """The operand before a bracket: nothing for the current node (`[0]`, `[]`)."""
    return "" if child["type"] == "identity" else _side(child, parent)


def _slice(start: int | None, stop: int | None, step: int | None) -> str:
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text if step is None else f"{text}:{step}"


def _projection(node: Node, children: list[Node], marker: str) -> str:
    left, right = children
    sliced = left["type"] == "index_expression" and left["children"][1]["type"] == "slice"
    if marker == "[*]" and (left["type"] == "flatten" or sliced):
        head, marker = unparse(left), ""  # `a[].b`, `a[1:2].b`: the projection is implicit
    else:
        head = "" if left["type"] == "identity" else _side(left, node)
    if right["type"] == "identity":
        return f"{head}{marker}"
    tail = unparse(right)
    return f"{head}{marker}{tail if tail.startswith('[') else '.' + tail}"
