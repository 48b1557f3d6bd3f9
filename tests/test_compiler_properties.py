"""Property test: compiled == interpreted for random expressions over random documents.

Expressions come from a grammar of fields, literals, comparators, `&&`/`||`/`!`, pipes,
projections, filters, index/slice, multi-selects and functions (standard, expref-taking and a
custom one); documents are random JSON, biased towards the same keys, plus CloudTrail-shaped
records. For each case both evaluators must give the same value with the same types, or raise
the same exception type. Deterministic: `derandomize=True`, fixed example count, no database.
"""

from __future__ import annotations

import json
from typing import Any

import jmespath.functions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jmespath.functions import signature
from jmespath.parser import Parser
from jmespath.visitor import Options, TreeInterpreter

from engine.conditions.compiler import compile_tree, source_of
from tests.test_compiler import strict_equal

MAX_EXAMPLES = 1500

KEYS = ["a", "b", "c", "eventName", "eventSource", "type", "userIdentity", "sourceIPAddress",
        "requestParameters", "upstreams", "0"]
STRINGS = ["", "x", "a", "Root", "IAMUser", "GetAuthorizationToken", "PublishPackageVersion",
           "codeartifact.amazonaws.com", "1.2.3.4", "true", "10", "a,b", "Ab"]


class PropertyFunctions(jmespath.functions.Functions):
    @signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()




def run(func: Any, document: Any) -> tuple[Any, type[BaseException] | None]:
    try:
        return func(document), None
    except Exception as exc:  # the exception *type* is part of the contract
        return None, type(exc)


# ---- documents ----

# values where JMESPath and Python disagree (0 is true, 0 != false, '' and [] are false, ...)
TRICKY = [0, 1, 0.0, 1.0, True, False, None, "", -1, 2, 1.5]
scalars = st.one_of(
    st.sampled_from(TRICKY), st.integers(-5, 5), st.sampled_from(STRINGS),
)
json_values = st.recursive(
    st.one_of(scalars, st.sampled_from([[], {}])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=20,
)
cloudtrail = st.fixed_dictionaries(
    {
        "eventSource": st.sampled_from(["codeartifact.amazonaws.com", "sts.amazonaws.com"]),
        "eventName": st.sampled_from(["GetAuthorizationToken", "PublishPackageVersion", "x"]),
        "sourceIPAddress": st.sampled_from(["1.2.3.4", "10.0.0.1", "codeartifact.amazonaws.com"]),
    },
    optional={
        "userIdentity": st.fixed_dictionaries(
            {"type": st.sampled_from(["Root", "IAMUser", "AssumedRole"])},
            optional={"arn": st.sampled_from(STRINGS), "sessionContext": json_values},
        ),
        "requestParameters": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"domainName": st.sampled_from(STRINGS)},
                optional={"upstreams": st.lists(
                    st.fixed_dictionaries({"repositoryName": st.sampled_from(["x", "y"])}),
                    max_size=3)},
            ),
        ),
        "a": json_values,
        "b": json_values,
    },
)
objects = st.dictionaries(st.sampled_from(KEYS), json_values, min_size=1, max_size=6)
documents = st.one_of(objects, cloudtrail, json_values)


def _everywhere(value: Any) -> list[Any]:
    """Documents where every key (at two levels, and inside lists) holds `value`."""
    flat = dict.fromkeys(KEYS, value)
    return [flat, {key: [flat, value] for key in KEYS}, {key: flat for key in KEYS}]


# Every example is also checked against these, so each path in it meets each tricky value.
FIXED_DOCUMENTS = [
    doc for value in [*TRICKY, [], {}, "x", "Root", [0, False, None, "x"], [[1], [True]]]
    for doc in _everywhere(value)
]


# ---- expressions ----

literal_json = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=4
).map(lambda value: f"`{json.dumps(value)}`")
fields = st.sampled_from(KEYS[:-1])
segments = st.one_of(
    fields.map(lambda key: f".{key}"),
    st.sampled_from(['."0"', "[0]", "[-1]", "[1]", "[*]", ".*", "[]", "[1:]", "[::-1]", "[?a]",
                     "[?!a]", "[?type == 'Root']", "[?a > `0`]", "[?contains(@, 'x')]",
                     ".[a, b]", ".{a: a, t: type}", "[?@ == `1`]", "[?a == b]"]),
)
# field paths such as a.b[*].c[?a].type, which hit the documents' keys
paths = st.tuples(fields, st.lists(segments, max_size=4)).map(lambda t: t[0] + "".join(t[1]))
tricky_literals = st.sampled_from([*TRICKY, [], {}, [0], [False]]).map(
    lambda value: f"`{json.dumps(value)}`")
comparators = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
# rule-like predicates: a.b == `0`, !a, a[?b] || `[]`
predicates = st.one_of(
    st.tuples(paths, comparators, st.one_of(tricky_literals, literal_json)).map(" ".join),
    paths.map(lambda path: f"!{path}"),
    st.tuples(paths, st.sampled_from(["&&", "||"]), paths).map(" ".join),
    st.tuples(paths, st.sampled_from(["&&", "||"]), tricky_literals).map(" ".join),
)
atoms = st.one_of(
    paths,
    predicates,
    st.sampled_from(['"0"', "@"]),
    st.sampled_from(STRINGS).map(lambda s: f"'{s}'"),
    literal_json,
)
slice_parts = st.sampled_from(["", "0", "1", "-1", "2", "-3"])
steps = st.sampled_from(["", ":1", ":-1", ":2", ":0"])

ONE_ARG = ["length", "to_string", "keys", "values", "type", "to_number", "abs", "reverse",
           "sort", "max", "min", "sum", "avg", "floor", "ceil", "not_null", "to_array", "lower"]
TWO_ARGS = ["contains", "starts_with", "ends_with", "not_null", "merge", "join", "length"]
EXPREF = ["sort_by", "max_by", "min_by"]


def _extend(expr: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = st.one_of(
        st.tuples(expr, fields).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(expr, st.integers(-3, 3)).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(expr, slice_parts, slice_parts, steps).map(
            lambda t: f"({t[0]})[{t[1]}:{t[2]}{t[3]}]"),
        expr.map(lambda e: f"({e})[*]"),
        st.tuples(expr, fields).map(lambda t: f"({t[0]})[*].{t[1]}"),
        expr.map(lambda e: f"({e}).*"),
        expr.map(lambda e: f"({e})[]"),
        expr.map(lambda e: f"!({e})"),
        st.sampled_from(ONE_ARG).flatmap(lambda f: expr.map(lambda e: f"{f}({e})")),
    )
    binary = st.one_of(
        st.tuples(expr, comparators, expr).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(expr, st.sampled_from(["&&", "||", "|"]), expr).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(expr, expr).map(lambda t: f"({t[0]})[?{t[1]}]"),
        st.tuples(expr, expr, fields).map(lambda t: f"({t[0]})[?{t[1]}].{t[2]}"),
        st.tuples(expr, expr).map(lambda t: f"[({t[0]}), ({t[1]})]"),
        st.tuples(expr, expr).map(lambda t: f"{{k: ({t[0]}), j: ({t[1]})}}"),
        st.tuples(st.sampled_from(TWO_ARGS), expr, expr).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(EXPREF), expr, expr).map(lambda t: f"{t[0]}({t[1]}, &{t[2]})"),
        st.tuples(expr, expr).map(lambda t: f"map(&({t[0]}), {t[1]})"),
    )
    return st.one_of(unary, binary)


# half plain rule-like conditions, half free combinations (which often nest into nulls)
expressions = st.one_of(
    atoms,
    _extend(atoms),
    st.recursive(atoms, _extend, max_leaves=5),
)


@settings(
    max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(expression=expressions, docs=st.lists(documents, min_size=1, max_size=3))
def test_compiled_matches_interpreter(expression: str, docs: list[Any]) -> None:
    functions = PropertyFunctions()
    parsed = Parser().parse(expression).parsed  # the grammar only builds valid expressions
    compiled = compile_tree(parsed, functions)
    assert source_of(compiled) is not None
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    for document in [*docs, *FIXED_DOCUMENTS]:
        got, got_exc = run(compiled, document)
        want, want_exc = run(lambda d: interpreter.visit(parsed, d), document)
        assert got_exc is want_exc, (expression, document, got_exc, want_exc)
        assert strict_equal(got, want), (expression, document, got, want)
