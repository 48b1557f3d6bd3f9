"""Partial evaluation: a condition rewritten for records whose eventSource/eventName are known.

The rule index already runs a rule only on records whose `eventSource`/`eventName` can
satisfy it, and then every record re-tests those same two fields: `eventSource == 'x' &&
eventName == 'y' && ...` costs two lookups and two comparisons before the part that matters.
For one (eventSource, eventName) bucket both values are constants, so the evaluator
substitutes them and folds what becomes constant. Whole rules fold away this way
(`starts_with(eventName, 'List')` on `ReadFromRepository`), and most of the rest lose their
first two conjuncts.

Exactness: a subtree is folded only when it no longer reads the record ("closed"), and it is
folded by running jmespath's own interpreter on it, so its value is the interpreter's. The two
`&&`/`||` rewrites that drop an operand are used only where nothing but truthiness matters
(the condition itself, and operands of `&&`, `||` and `!` under it); they keep the value's
truthiness but may skip evaluating an operand that would have raised - a rule can then no
longer fail on a record it cannot match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath.functions
from jmespath.visitor import Options, TreeInterpreter

Node = Mapping[str, Any]
_JSON = (str, int, float, bool, type(None), list, dict)
# Node kinds whose first child is evaluated against the current node and the rest against
# its result: the whole is closed when the first child is.
_LEFT_READS = frozenset({"subexpression", "pipe", "index_expression", "projection",
                         "value_projection", "filter_projection", "flatten"})
# Node kinds all of whose children are evaluated against the current node.
_ALL_READ = frozenset({"and_expression", "or_expression", "not_expression", "comparator",
                       "function_expression", "multi_select_list", "multi_select_dict",
                       "key_val_pair"})


class Specialiser:
    """Folds conditions for known root fields; one per function set (it runs the
    interpreter on closed subtrees, with the same functions as evaluation)."""

    def __init__(self, functions: jmespath.functions.Functions) -> None:
        self._interpreter = TreeInterpreter(Options(custom_functions=functions))

    def specialise(self, tree: Node, known: Mapping[str, Any]) -> Node:
        """`tree` for records whose root fields in `known` have those values."""
        folded, _ = self._fold(tree, known, truth=True)
        return folded

    def _fold(self, node: Node, known: Mapping[str, Any], truth: bool) -> tuple[Node, bool]:
        """(node rewritten, closed?): closed nodes read no record value. Only children that
        are evaluated against the record itself are visited; `truth`: only the truthiness
        of this node's value matters."""
        kind = node["type"]
        if kind == "literal":
            return node, True
        if kind == "field":
            if node["value"] in known:
                return _literal(known[node["value"]]), True
            return node, False
        if kind in ("and_expression", "or_expression") and len(node["children"]) == 2:
            return self._logic(node, known, truth)
        if kind == "not_expression":
            child, closed = self._fold(node["children"][0], known, truth=True)
            return self._close({**node, "children": [child]}, closed)
        if kind in _LEFT_READS and node.get("children"):
            first, closed = self._fold(node["children"][0], known, truth=False)
            rewritten = {**node, "children": [first, *node["children"][1:]]}
            return self._close(rewritten, closed)
        if kind in _ALL_READ:
            children, closed = [], True
            for child in node.get("children", ()):
                if not isinstance(child, Mapping):
                    children.append(child)
                    continue
                folded, child_closed = self._fold(child, known, truth=False)
                children.append(folded)
                closed = closed and child_closed
            if kind == "key_val_pair":  # its value, not the pair: the dict around it folds
                return {**node, "children": children}, closed
            return self._close({**node, "children": children}, closed)
        return node, False

    def _logic(self, node: Node, known: Mapping[str, Any], truth: bool) -> tuple[Node, bool]:
        conjunction = node["type"] == "and_expression"
        left, left_closed = self._fold(node["children"][0], known, truth)
        right, right_closed = self._fold(node["children"][1], known, truth)
        if left_closed:  # `a && b` is a when a is false, else b (`||`: the other way round)
            decides = _falsy(left["value"]) if conjunction else not _falsy(left["value"])
            return (left, True) if decides else (right, right_closed)
        if truth and right_closed:
            if _falsy(right["value"]) == conjunction:  # `a && false`, `a || true`
                return _literal(not conjunction), True
            return left, False  # `a && true`, `a || false`: as truthy as `a`
        return {**node, "children": [left, right]}, False

    def _close(self, node: Node, closed: bool) -> tuple[Node, bool]:
        """Evaluate a closed node now; leave it be if the interpreter raises on it (so it
        still raises at evaluation, as before) or its value is not plain JSON.

        Only nodes evaluated against the record itself get here, so the current node is a
        record (never null: a multi-select of literals is a list, as it would be)."""
        if not closed:
            return node, False
        try:
            value = self._interpreter.visit(node, {})
        except Exception:
            return node, False
        if not isinstance(value, _JSON):
            return node, False
        return _literal(value), True


def _literal(value: Any) -> Node:
    return {"type": "literal", "value": value, "children": []}


def _falsy(value: Any) -> bool:
    """jmespath's `_is_false`."""
    return value == "" or value == [] or value == {} or value is None or value is False


def is_constant(tree: Node) -> bool:
    kind: str = tree["type"]
    return kind == "literal"


def constant_truth(tree: Node) -> bool:
    return not _falsy(tree["value"])
