"""engine.conditions.compiler against the JMESPath compliance vectors and jmespath's own
interpreter.

Every non-bench compliance case is compiled and checked twice: against the vector's expected
result (or error) and against `TreeInterpreter` on the same input (same value, same types, same
exception type). Plus custom functions, exprefs, pathological nesting and the fallbacks.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import jmespath.exceptions
import jmespath.functions
import pytest
from jmespath.functions import signature
from jmespath.parser import Parser
from jmespath.visitor import Options, TreeInterpreter, _Expression

from engine.conditions.compiler import MAX_DEPTH, MAX_LOOPS, compile_tree, source_of

COMPLIANCE = Path(__file__).parent / "compliance"
_RAISED = object()


def strict_equal(a: Any, b: Any) -> bool:
    """Equal values *and* types all the way down (True != 1, 1 != 1.0, dict key order)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(strict_equal, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, _Expression):  # a bare `&expr` result: same expression node
        return a.expression == b.expression
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def run(func: Any, document: Any) -> tuple[Any, type[BaseException] | None]:
    try:
        return func(document), None
    except Exception as exc:  # the exception *type* is part of the contract
        return _RAISED, type(exc)


def interpreted(parsed: dict, functions: jmespath.functions.Functions) -> Any:
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return lambda document: interpreter.visit(parsed, document)


def assert_same(expression: str, document: Any, functions: Any = None) -> Any:
    """Compiled and interpreted agree on `document`; returns the compiled result."""
    functions = functions or jmespath.functions.Functions()
    parsed = Parser().parse(expression).parsed
    got, got_exc = run(compile_tree(parsed, functions), document)
    want, want_exc = run(interpreted(parsed, functions), document)
    assert got_exc is want_exc, (expression, got_exc, want_exc)
    assert strict_equal(got, want), (expression, got, want)
    return got


def _compliance_cases() -> list[Any]:
    cases = []
    for path in sorted(COMPLIANCE.glob("*.json")):
        for group_number, group in enumerate(json.loads(path.read_text())):
            for case_number, case in enumerate(group["cases"]):
                if "bench" in case:
                    continue
                case_id = f"{path.stem}-{group_number}-{case_number}"
                cases.append(pytest.param(group["given"], case, id=case_id))
    return cases


CASES = _compliance_cases()


def test_compliance_case_count() -> None:
    assert len(CASES) == 892  # 908 vectors in tests/compliance minus 16 bench-only ones


@pytest.mark.parametrize(("given", "case"), CASES)
def test_compliance(given: Any, case: dict[str, Any]) -> None:
    expression = case["expression"]
    if case.get("error") == "syntax":
        with pytest.raises(jmespath.exceptions.JMESPathError):
            Parser().parse(expression)
        return
    functions = jmespath.functions.Functions()
    parsed = Parser().parse(expression).parsed
    compiled = compile_tree(parsed, functions)
    assert source_of(compiled) is not None, "fell back to the interpreter"
    got, got_exc = run(compiled, given)
    want, want_exc = run(interpreted(parsed, functions), given)
    assert got_exc is want_exc
    assert strict_equal(got, want), (got, want)
    if "error" in case:
        assert got_exc is not None, f"expected {case['error']} error, got {got!r}"
        if case["error"] in ("invalid-type", "invalid-arity", "unknown-function"):
            assert issubclass(got_exc, jmespath.exceptions.JMESPathError)
    else:
        assert got_exc is None
        assert json_equal(got, case["result"]), (got, case["result"])


# ---- semantics worth pinning down explicitly ----

SEMANTICS = [
    ("a == `1`", {"a": True}),
    ("a == `1`", {"a": 1.0}),
    ("a == `0`", {"a": False}),
    ("a == `true`", {"a": 1}),
    ("a != `false`", {"a": 0}),
    ("a == b", {"a": 0, "b": False}),
    ("a == b", {"a": [0], "b": [False]}),  # only the top level is special-cased
    ("a == `[false]`", {"a": [0]}),
    ("a == `2`", {"a": 2.0}),
    ("a < `2`", {"a": True}),
    ("a < b", {"a": "a", "b": "b"}),  # strings order in 1.1.0
    ("a < `\"b\"`", {"a": 1}),  # str vs number: Python's TypeError
    ("a >= b", {"a": [1], "b": [1]}),
    ("a < b", {"a": None, "b": 1}),
    ("!a", {"a": 0}),
    ("!a", {"a": 0.0}),
    ("!a", {"a": ""}),
    ("!a", {"a": "x"}),
    ("!a", {"a": {}}),
    ("!a", {"a": False}),
    ("a || b", {"a": 0, "b": 1}),
    ("a && b", {"a": 0, "b": 1}),
    ("a && b", {"a": [], "b": 1}),
    ("a || `0`", {"a": {}}),
    ("a[?b]", {"a": [{"b": 0}, {"b": ""}, {"b": []}, {"b": {}}, {"b": None}, {"b": "x"}]}),
    ("a.b", {"a": "string"}),
    ("a.b", {"a": [1]}),
    ("a[0]", {"a": "string"}),
    ("a[-3]", {"a": [1, 2]}),
    ("a[-2]", {"a": [1, 2]}),
    ("a[5:-7:-2]", {"a": list(range(10))}),
    ("a[::0]", {"a": [1]}),
    ("a[::0]", {"a": "not a list"}),
    ("a.*", {"a": [1, 2]}),
    ("a.*.b", {"a": {"x": {"b": 1}, "y": {"c": 2}, "z": {"b": None}}}),
    ("a[]", {"a": [[1, [2]], 3, None, [None]]}),
    ("[a, b]", None),
    ("{a: a}", None),
    ("{a: a}", "string"),
    ("{a: a, a: b}", {"a": 1, "b": 2}),
    ("contains(`[1]`, `true`)", {}),
    ("contains('abc', `1`)", {}),
    ("length(a)", {"a": 5}),
    ("to_string(a)", {"a": {"b": [1, 2.5, None]}}),
    ("not_null(a, b, c)", {"c": 0}),
    ("not_null(a)", {}),
    ("type(a)", {"a": 1.5}),
    ("sort_by(a, &b)", {"a": [{"b": 2}, {"b": 1}]}),
    ("sort_by(a, &b)", {"a": [{"b": 2}, {"b": "x"}]}),
    ("max_by(a, &b).b", {"a": [{"b": 2}, {"b": 1}]}),
    ("min_by(a, &b)", {"a": [{"b": [1]}]}),
    ("map(&b, a)", {"a": [{"b": 2}, {}, 3]}),
    ("map(&(b || `0`), a)", {"a": [{"b": 2}, {}, 3]}),
    ("map(&map(&c, b), a)", {"a": [{"b": [{"c": 1}]}, {"b": []}]}),
    ("&a", {}),
    ("length(&a)", {}),
    ("unknown_fn(a)", {}),
    ("length(a, b)", {}),
    ("not_null()", {}),
    ("`1.5` > a", {"a": 1}),
    ("a == `\"x\"` && b", {"a": "x", "b": "y"}),
]


@pytest.mark.parametrize(("expression", "document"), SEMANTICS)
def test_semantics_match_interpreter(expression: str, document: Any) -> None:
    assert_same(expression, document)


def test_field_of_mapping_subclass_and_non_mapping() -> None:
    document = OrderedDict(a=OrderedDict(b=1))
    assert assert_same("a.b", document) == 1
    assert assert_same("keys(a)", document) == ["b"]
    assert assert_same("length(a)", document) == 1

    class Getter:
        def get(self, key: str) -> str:
            return f"got {key}"

    assert assert_same("a", Getter()) == "got a"


def test_literals_are_the_nodes_own_objects() -> None:
    parsed = Parser().parse("`[1, 2]`").parsed
    compiled = compile_tree(parsed, jmespath.functions.Functions())
    assert compiled({}) is parsed["value"]


def test_generated_code_is_straight_line() -> None:
    parsed = Parser().parse("eventSource == 'x' && eventName == 'y'").parsed
    source = source_of(compile_tree(parsed, jmespath.functions.Functions()))
    assert source is not None
    assert "_visit" not in source and "call_function" not in source
    assert "d.get('eventSource') if type(d) is dict" in source


# ---- custom functions ----


class CustomFunctions(jmespath.functions.Functions):
    calls: list[str]

    def __init__(self) -> None:
        self.calls = []

    @signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        self.calls.append(value)
        return value.lower()

    @signature({"types": ["array", "string"]}, {"types": []})
    def _func_contains(self, subject: Any, search: Any) -> bool:  # overrides the standard one
        self.calls.append("contains")
        return search in subject

    @signature({"types": ["expref"]}, {"types": ["array"]})
    def _func_count_by(self, expref: Any, values: list[Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for value in values:
            key = str(expref.visit(expref.expression, value))
            counts[key] = counts.get(key, 0) + 1
        return counts


CUSTOM_CASES = [
    ("lower(eventName)", {"eventName": "GetAuthorizationToken"}),
    ("lower(eventName) == 'getauthorizationtoken'", {"eventName": "GetAuthorizationToken"}),
    ("lower(eventName)", {"eventName": 5}),  # the custom function's own type error
    ("lower(eventName)", {}),
    ("lower()", {}),
    ("contains(['a'], lower(x))", {"x": "A"}),
    ("count_by(&type, records)", {"records": [{"type": "a"}, {"type": "b"}, {"type": "a"}]}),
    ("count_by(&lower(type), records)", {"records": [{"type": "A"}, {"type": 1}]}),
    ("records[?lower(type) == 'a'].type", {"records": [{"type": "A"}, {"type": "b"}]}),
    ("length(lower(x))", {"x": "ABC"}),
]


@pytest.mark.parametrize(("expression", "document"), CUSTOM_CASES)
def test_custom_functions(expression: str, document: Any) -> None:
    compiled_functions, interpreted_functions = CustomFunctions(), CustomFunctions()
    parsed = Parser().parse(expression).parsed
    got, got_exc = run(compile_tree(parsed, compiled_functions), document)
    want, want_exc = run(interpreted(parsed, interpreted_functions), document)
    assert got_exc is want_exc
    assert strict_equal(got, want)
    assert compiled_functions.calls == interpreted_functions.calls  # same calls, same order


def test_overridden_standard_function_is_not_inlined() -> None:
    functions = CustomFunctions()
    parsed = Parser().parse("contains(['a'], x)").parsed
    compiled = compile_tree(parsed, functions)
    assert compiled({"x": "a"}) is True
    assert functions.calls == ["contains"]


def test_overridden_validation_disables_inlining() -> None:
    class Lenient(jmespath.functions.Functions):
        def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
            if function_name == "length" and not isinstance(resolved_args[0], str | list | dict):
                return -1
            return super().call_function(function_name, resolved_args)

    assert_same("length(a)", {"a": 5}, Lenient())
    parsed = Parser().parse("length(a)").parsed
    assert compile_tree(parsed, Lenient())({"a": 5}) == -1


# ---- pathological inputs ----

DEEP = [
    "!" * 150 + "a",
    "a" + "[*]" * 40 + ".b",
    "a" + "[?b]" * 30,
    "a" + "[]" * 30,
    "a" + ".*" * 30,
    "(" * 80 + "a" + " || b)" * 80,
    "a || " * 200 + "b",
    "a && " * 200 + "b",
    "x" + "".join(f" && (y{i} || (z{i}" for i in range(60)) + "))" * 60,
    "length(" * 100 + "a" + ")" * 100,
    "a" + " | b" * 300,
    "a." * 500 + "b",
    "[" * 100 + "a" + "]" * 100,
    "not_null(" + ", ".join(f"a{i}" for i in range(50)) + ")",
]


def _deep_document(depth: int = 45) -> Any:
    leaf: Any = {"a": "x", "b": "y"}
    for level in range(depth):  # one path down, so results stay linear in size
        leaf = {"a": [leaf, [level]], "b": {"a": level}}
    return leaf


@pytest.mark.parametrize("expression", DEEP)
def test_deep_nesting_matches_interpreter(expression: str) -> None:
    for document in ({"a": [[1], {"b": 2}]}, _deep_document(), {"a": 0, "b": [], "x": 1}):
        assert_same(expression, document)


def test_deep_nesting_still_generates_code() -> None:
    parsed = Parser().parse("a" + "[*]" * (MAX_LOOPS + 10) + ".b").parsed
    source = source_of(compile_tree(parsed, jmespath.functions.Functions()))
    assert source is not None and "_visit(" in source  # the inner subtree is delegated
    parsed = Parser().parse("!" * (MAX_DEPTH + 10) + "a").parsed
    source = source_of(compile_tree(parsed, jmespath.functions.Functions()))
    assert source is not None and "_visit(" in source


def test_unknown_node_type_behaves_like_interpreter() -> None:
    parsed = {"type": "no_such_node", "children": []}
    compiled = compile_tree(parsed, jmespath.functions.Functions())
    with pytest.raises(NotImplementedError):
        compiled({})


def test_fallback_when_compile_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("too deep")

    monkeypatch.setattr("engine.conditions.compiler.compile", refuse, raising=False)
    parsed = Parser().parse("a.b").parsed
    compiled = compile_tree(parsed, jmespath.functions.Functions())
    assert source_of(compiled) is None
    assert compiled({"a": {"b": 3}}) == 3
