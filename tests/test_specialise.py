"""Specialised conditions (engine.conditions.specialise) and bucket functions (compile_bucket) agree
with the interpreter on the original condition.

The contract: for a record whose eventSource/eventName are the known strings, the specialised
condition is exactly as truthy as the original. It may not raise where the original raised
(an operand that cannot change the outcome is skipped), but it never raises where the
original did not. A bucket function sets bit i exactly when condition i is truthy.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jmespath.parser import Parser
from jmespath.visitor import Options, TreeInterpreter

from engine.conditions.compiler import compile_bucket
from engine.conditions.evaluator import truthy
from engine.conditions.specialise import Specialiser
from tests.test_compiler_properties import (
    FIXED_DOCUMENTS,
    PropertyFunctions,
    cloudtrail,
    expressions,
    objects,
    run,
)

INDEXED = ("eventSource", "eventName")
# rule-shaped prefixes, so the indexed fields are tested as rules test them
PREFIXES = st.sampled_from([
    "", "eventSource == 'codeartifact.amazonaws.com' && ",
    "eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken' && ",
    "contains(['x', 'PublishPackageVersion'], eventName) && ",
    "starts_with(eventName, 'Get') || ", "eventName != 'x' && ", "!(eventName == 'x') || ",
    "(eventSource || eventName) == 'x' || ", "[eventSource, eventName][0] == 'x' && ",
])
records = st.one_of(cloudtrail, objects)


def _known(record: dict[str, Any]) -> dict[str, Any]:
    return {name: record[name] for name in INDEXED if type(record.get(name)) is str}


@settings(max_examples=1000, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(prefix=PREFIXES, body=expressions, docs=st.lists(records, min_size=1, max_size=3),
       other=expressions)
def test_specialised_conditions_are_as_truthy_as_the_original(
        prefix: str, body: str, docs: list[dict[str, Any]], other: str) -> None:
    functions = PropertyFunctions()
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    specialiser = Specialiser(functions)
    original = Parser().parse(prefix + body).parsed
    second = Parser().parse(other).parsed
    fixed = [doc for doc in FIXED_DOCUMENTS if isinstance(doc, dict)]
    buckets: dict[tuple[tuple[str, Any], ...], Any] = {}
    for record in [*docs, *fixed]:
        known = _known(record)
        folded = specialiser.specialise(original, known)
        folded_second = specialiser.specialise(second, known)
        bucket_key = tuple(sorted(known.items()))
        if bucket_key not in buckets:
            buckets[bucket_key] = compile_bucket([folded, folded_second], functions)
        want, want_exc = run(lambda d: interpreter.visit(original, d), record)
        got, got_exc = run(lambda d, t=folded: interpreter.visit(t, d), record)
        if want_exc is None:
            assert got_exc is None, (prefix + body, record, folded)
            assert truthy(got) == truthy(want), (prefix + body, record, folded, got, want)
        elif got_exc is not None:
            assert got_exc is want_exc
        # the bucket: both conditions in one function, bit by bit
        second_value, second_exc = run(lambda d, t=folded_second: interpreter.visit(t, d),
                                       record)
        mask, mask_exc = run(buckets[bucket_key], record)
        if got_exc is None and second_exc is None:
            assert mask_exc is None, (prefix + body, other, record)
            assert mask == truthy(got) | truthy(second_value) << 1, (prefix + body, other,
                                                                     record, mask)
        else:
            assert mask_exc is not None


def _for_codeartifact(condition: str, event_name: str) -> Any:
    return Specialiser(PropertyFunctions()).specialise(
        Parser().parse(condition).parsed,
        {"eventSource": "codeartifact.amazonaws.com", "eventName": event_name})


def test_a_rule_that_cannot_match_the_bucket_folds_to_false() -> None:
    condition = ("eventSource == 'codeartifact.amazonaws.com' && (starts_with(eventName, 'List')"
                 " || starts_with(eventName, 'Describe'))")
    assert _for_codeartifact(condition, "ReadFromRepository") == {
        "type": "literal", "value": False, "children": []}
    assert _for_codeartifact(condition, "ListPackages") == {
        "type": "literal", "value": True, "children": []}


def test_the_indexed_tests_fold_away_and_the_rest_stays() -> None:
    condition = ("eventSource == 'codeartifact.amazonaws.com' && eventName == "
                 "'ReadFromRepository' && !errorCode")
    assert _for_codeartifact(condition, "ReadFromRepository") == Parser().parse(
        "!errorCode").parsed


def test_a_bucket_reads_a_shared_field_once() -> None:
    conditions = [Parser().parse(text).parsed for text in
                  ("userIdentity.type == 'Root'", "userIdentity.type == 'IAMUser'", "!errorCode")]
    bucket = compile_bucket(conditions, PropertyFunctions())
    from engine.conditions.compiler import source_of

    assert source_of(bucket).count("'userIdentity'") == 1
    assert bucket({"userIdentity": {"type": "Root"}}) == 0b101
    assert bucket({"userIdentity": {"type": "IAMUser"}, "errorCode": "AccessDenied"}) == 0b010


def test_a_condition_two_rules_share_is_evaluated_once() -> None:
    conditions = [Parser().parse(text).parsed for text in
                  ("starts_with(userAgent, 'curl/')", "!errorCode",
                   "starts_with(userAgent, 'curl/')")]
    bucket = compile_bucket(conditions, PropertyFunctions())
    from engine.conditions.compiler import source_of

    assert source_of(bucket).count("'curl/'") == 1
    assert bucket({"userAgent": "curl/8.4"}) == 0b111
    assert bucket({"userAgent": "pip/24", "errorCode": "x"}) == 0
