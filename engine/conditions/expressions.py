"""Static analysis of JMESPath conditions: checks at load time and the rule index.

jmespath only notices an unknown function or a wrong argument count at the first search,
which for a detection rule means in production, on the first matching event. So every
condition's syntax tree is walked when rules load: function names and arity, the names of
config lists, and the record fields it reads (linted against the CloudTrail catalogue).

The same walk derives which `eventSource`/`eventName` values an expression *requires*, so the
evaluator runs a rule only on records that can match it. Only necessary conditions are used:
conjuncts of `&&`, disjunctions that all constrain the same field, and `contains(<literal
list>, field)`. Anything else leaves the rule unindexed, which is slower but never wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath.exceptions
import jmespath.functions
from jmespath.parser import Parser

from engine.conditions.functions import LIST_ARGUMENT, REGEX_ARGUMENT, pattern_error

Node = Mapping[str, Any]
INDEXED_FIELDS = ("eventSource", "eventName")
_PARSER = Parser()


@dataclass(frozen=True, slots=True)
class Finding:
    message: str
    severity: str = "error"  # or "warning"
    # (token type, value) of what the finding is about, so a message can point at its line:
    # ("identifier", name) for a field or function name, ("literal", value) for a literal
    anchor: tuple[str, Any] | None = None


class ExpressionSyntaxError(ValueError):
    """jmespath's own message; `offset` is where in the expression, when jmespath knows."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def parse(expression: str) -> Node:
    """The syntax tree of `expression`; raises ExpressionSyntaxError (a ValueError)."""
    try:
        tree: Node = _PARSER.parse(expression).parsed  # jmespath (untyped) builds dict nodes
        return tree
    except jmespath.exceptions.JMESPathError as exc:
        offset = getattr(exc, "lex_position", None)
        raise ExpressionSyntaxError(_syntax_message(exc),
                                    offset if isinstance(offset, int) else None) from None


def _syntax_message(exc: jmespath.exceptions.JMESPathError) -> str:
    if isinstance(exc, jmespath.exceptions.ParseError):
        if exc.token_value is None:  # jmespath reports the end of input as a None token
            return "invalid JMESPath: the expression ends too early"
        column = exc.lex_position + 1
        return f"invalid JMESPath at column {column}: {exc.msg} (near {exc.token_value!r})"
    return f"invalid JMESPath: {exc}"


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            yield from walk(child)


def arity(functions: jmespath.functions.Functions, name: str) -> tuple[int, bool]:
    """(minimum argument count, variadic) from the function's declared signature."""
    signature = functions.FUNCTION_TABLE[name]["signature"]
    variadic = bool(signature) and bool(signature[-1].get("variadic"))
    return len(signature), variadic


def check_functions(
    tree: Node, functions: jmespath.functions.Functions, known_lists: frozenset[str]
) -> list[Finding]:
    """Unknown functions, wrong argument counts and unknown list names, as load errors."""
    findings: list[Finding] = []
    for node in walk(tree):
        if node["type"] != "function_expression":
            continue
        name, args = node["value"], node["children"]
        if name not in functions.FUNCTION_TABLE:
            findings.append(Finding(f"unknown function {name!r}", anchor=("identifier", name)))
            continue
        expected, variadic = arity(functions, name)
        if len(args) < expected or (len(args) > expected and not variadic):
            wanted = f"at least {expected}" if variadic else str(expected)
            findings.append(Finding(f"{name}() takes {wanted} argument(s), got {len(args)}",
                                    anchor=("identifier", name)))
            continue
        findings.extend(_check_list_argument(name, args, known_lists))
        findings.extend(_check_pattern(name, args))
    return findings


def _check_pattern(name: str, args: list[Node]) -> list[Finding]:
    """A literal regex that matches() could not run is a load error, not a silent false."""
    position = REGEX_ARGUMENT.get(name)
    arg = args[position] if position is not None else None
    if arg is None or arg["type"] != "literal" or not isinstance(arg["value"], str):
        return []
    problem = pattern_error(arg["value"])
    return [Finding(problem)] if problem else []


def _check_list_argument(name: str, args: list[Node], known: frozenset[str]) -> list[Finding]:
    position = LIST_ARGUMENT.get(name)
    if position is None:
        return []
    arg = args[position]
    if arg["type"] != "literal":
        if name == "list":
            return [Finding("list() takes a list name as a string literal: list('ci_roles')",
                            anchor=("identifier", name))]
        return []  # ip_in/in_list also accept a literal or computed list of values
    value = arg["value"]
    if isinstance(value, str) and value not in known:
        hint = ", ".join(sorted(known)) or "none defined"
        return [Finding(f"unknown list {value!r} in {name}() (known lists: {hint})",
                        anchor=("literal", value))]
    return []


def list_names(tree: Node) -> set[str]:
    """Config list names the expression reads (string literals in list positions)."""
    names = set()
    for node in walk(tree):
        position = LIST_ARGUMENT.get(node["value"]) if node["type"] == "function_expression" \
            else None
        if position is not None and len(node["children"]) > position:
            arg = node["children"][position]
            if arg["type"] == "literal" and isinstance(arg["value"], str):
                names.add(arg["value"])
    return names


def root_field_paths(tree: Node) -> Iterator[tuple[str, ...]]:
    """Field paths read from the record root (not inside projections, filters or pipes)."""
    yield from _paths(tree)


def _paths(node: Node) -> Iterator[tuple[str, ...]]:
    kind = node["type"]
    if kind == "field":
        yield (node["value"],)
    elif kind == "subexpression":
        prefix = _static_path(node)
        if prefix is not None:
            yield prefix
        else:
            yield from _paths(node["children"][0])
    elif kind in ("projection", "value_projection", "filter_projection", "flatten", "pipe",
                  "index_expression"):
        yield from _paths(node["children"][0])  # only the left side reads the root
    elif kind in ("and_expression", "or_expression", "not_expression", "comparator",
                  "function_expression", "multi_select_list", "multi_select_dict",
                  "key_val_pair"):
        for child in node["children"]:
            if isinstance(child, Mapping):
                yield from _paths(child)


def _static_path(node: Node) -> tuple[str, ...] | None:
    parts: list[str] = []
    for child in node["children"]:
        if child["type"] == "field":
            parts.append(child["value"])
        elif child["type"] == "subexpression" and (inner := _static_path(child)):
            parts.extend(inner)
        else:
            return tuple(parts) if parts else None
    return tuple(parts)


def required_values(tree: Node) -> dict[str, frozenset[str]]:
    """For each indexed field, the set of values a record must have for `tree` to be truthy.

    A field absent from the result is unconstrained.
    """
    kind = tree["type"]
    if kind == "and_expression":
        left, right = (required_values(child) for child in tree["children"])
        merged = dict(left)
        for field_name, values in right.items():
            merged[field_name] = merged[field_name] & values if field_name in merged else values
        return merged
    if kind == "or_expression":
        left, right = (required_values(child) for child in tree["children"])
        return {f: left[f] | right[f] for f in left.keys() & right.keys()}
    if kind == "comparator" and tree["value"] == "eq":
        return _equality(tree["children"])
    if kind == "function_expression" and tree["value"] == "contains":
        return _contains(tree["children"])
    return {}


def _equality(children: list[Node]) -> dict[str, frozenset[str]]:
    for field_node, literal in (children, children[::-1]):
        is_field = field_node["type"] == "field" and field_node["value"] in INDEXED_FIELDS
        if is_field and literal["type"] == "literal" and isinstance(literal["value"], str):
            return {field_node["value"]: frozenset({literal["value"]})}
    return {}


def _contains(children: list[Node]) -> dict[str, frozenset[str]]:
    haystack, needle = children
    if needle["type"] != "field" or needle["value"] not in INDEXED_FIELDS:
        return {}
    values = _literal_strings(haystack)
    return {needle["value"]: values} if values is not None else {}


def _literal_strings(node: Node) -> frozenset[str] | None:
    if node["type"] == "literal" and isinstance(node["value"], list):
        items = node["value"]
    elif node["type"] == "multi_select_list" and all(
        child["type"] == "literal" for child in node["children"]
    ):
        items = [child["value"] for child in node["children"]]
    else:
        return None
    return frozenset(items) if all(isinstance(item, str) for item in items) else None


# Nodes whose first child is evaluated against the current value and whose other children
# against what that produced (a projection's elements, a pipe's left result, a subexpression's
# object, an index's array).
_LEFT_ONLY = frozenset(("subexpression", "index_expression", "projection", "value_projection",
                        "filter_projection", "pipe"))
# Nodes that read their first child from their input and the rest only inside what it gave.
_LEADS_WITH_LEFT = frozenset(("index_expression", "projection", "value_projection",
                              "filter_projection", "pipe", "flatten"))
# Nodes whose children are all evaluated against the current value.
_ALL_CHILDREN = frozenset(("and_expression", "or_expression", "not_expression", "comparator",
                           "function_expression", "multi_select_list", "multi_select_dict",
                           "key_val_pair", "flatten"))


def root_fields(tree: Node) -> frozenset[str] | None:
    """The record's top-level keys that `tree` can read; None when it may read the whole
    record (see read_paths)."""
    paths = read_paths(tree)
    return None if paths is None else frozenset(path[0] for path in paths)


def read_paths(tree: Node) -> frozenset[tuple[str, ...]] | None:
    """The field paths `tree` reads from the record, each a chain of keys whose value it may
    use whole (`userIdentity.arn` reads ("userIdentity", "arn"), not the rest of
    userIdentity); None when it may read the whole record (`@`, `*`, `[0]` at the root, or a
    node this does not know).

    The scan decodes only these paths of each record (engine.inputs.lean), so this must never
    leave one out: anything it cannot place reads the value whole, or answers None, which
    costs speed, not correctness. An expression reference (`&x` in sort_by) runs on an
    argument's elements, never on the root."""
    found: set[tuple[str, ...]] = set()
    return frozenset(found) if _read_paths(tree, found) else None


def _read_paths(node: Node, found: set[tuple[str, ...]]) -> bool:
    kind = node["type"]
    if kind == "field":
        found.add((node["value"],))
        return True
    if kind in ("literal", "raw_string", "expref"):
        return True
    if kind == "subexpression" and (chain := _field_chain(node)) is not None:
        found.add(chain)
        return True
    if kind in _LEFT_ONLY:
        if (lead := _leading_chain(node)) is not None:  # `a.b[0]` reads b whole, not a
            found.add(lead)
            return True
        left = node["children"][0]
        if left["type"] in ("current", "identity") and kind == "subexpression":
            return _read_paths(node["children"][1], found)  # `@.x` reads x
        return _read_paths(left, found)  # the right side reads inside what the left gave
    if kind in _ALL_CHILDREN:
        return all(_read_paths(child, found) for child in node["children"])
    return False  # current, identity, index, slice at the root, or unknown: the whole record


def _leading_chain(node: Node) -> tuple[str, ...] | None:
    """The chain of keys a node of _LEFT_ONLY reads before it reads only inside what that
    chain gave (`a.b[0]`, `a.b[*].c`, `a.b | c`, `a.b.length(@)`: ("a", "b")); None when it
    does not begin with a field. Why: `requestParameters.versions[0]` must not make the scan
    decode all of requestParameters."""
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind == "subexpression":
        chain: tuple[str, ...] = ()
        for child in node["children"]:
            part = _field_chain(child)
            if part is None:  # from here on it reads inside what the chain so far gave
                lead = _leading_chain(child)
                return chain + lead if lead is not None else chain or None
            chain += part
        return chain or None
    if kind in _LEADS_WITH_LEFT:
        return _leading_chain(node["children"][0])
    return None


def _field_chain(node: Node) -> tuple[str, ...] | None:
    """`a.b.c` as ("a", "b", "c"); None unless the subexpression is fields only."""
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] != "subexpression":
        return None
    chain: tuple[str, ...] = ()
    for child in node["children"]:  # jmespath nests two at a time, or lists a run of fields
        part = _field_chain(child)
        if part is None:
            return None
        chain += part
    return chain
