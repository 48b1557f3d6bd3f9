"""`trailguard test`: run the tests written inside rule files.

A single-event test (`event` + `expect`) asks whether the condition matches. A test may
carry `lists:` that replace the config's lists of those names, so a shipped rule's tests
give the same verdict whatever lists a user configures. A scenario
(`events` + `expect_alerts`) runs the events, in order, through the same pipeline as `scan`
(repeat removal, copy folding, and the rule's dedup/threshold/first_seen) and counts alerts,
so a stateful rule is tested the way it will run.

Suppressions apply as in `scan`, before any state: the config's, or the test's own
`suppressions:`, which replace them for that test (like `lists:`). A test whose verdict a
suppression changed says which one did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.decide.decider import new_decider
from engine.model import Alert, Rule, RuleTest
from engine.scan.pipeline import run_scan
from engine.suppressions import Suppression
from engine.suppressor import Suppressor, build_suppressor


@dataclass(frozen=True)
class Outcome:
    rule: Rule
    test: RuleTest
    passed: bool
    detail: str

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.rule.path}:{self.test.line}: {self.rule.id}: {self.test.name}" + (
            "" if self.passed else f": {self.detail}")


def run_tests(
    rules: tuple[Rule, ...],
    functions: TrailguardFunctions,
    pattern: str | None = None,
    engine: str = "compiled",
    allowed_lateness: float = 900.0,
    suppressions: Sequence[Suppression] = (),
) -> Iterator[Outcome]:
    for rule in rules:
        selected = [t for t in rule.tests if _selected(rule, t, pattern)]
        if not selected:
            continue
        evaluator = Evaluator([_enabled(rule)], functions, engine)
        for test in selected:
            own = functions
            if test.lists:  # the test brings its own lists: it must not depend on the config
                own = TrailguardFunctions({**functions.lists, **test.lists})
            chosen = suppressions if test.suppressions is None else test.suppressions
            suppressor = build_suppressor(chosen, own, engine) if chosen else None
            tested = evaluator if own is functions else Evaluator([_enabled(rule)], own, engine)
            yield _run_one(rule, test, tested, own, engine, allowed_lateness, suppressor)


def _selected(rule: Rule, test: RuleTest, pattern: str | None) -> bool:
    return pattern is None or pattern in rule.id or pattern in test.name


def _enabled(rule: Rule) -> Rule:
    from dataclasses import replace

    return rule if rule.enabled else replace(rule, enabled=True)  # disabled rules stay testable


def _run_one(rule: Rule, test: RuleTest, evaluator: Evaluator, functions: TrailguardFunctions,
             engine: str, lateness: float, suppressor: Suppressor | None = None) -> Outcome:
    outcome = _verdict(rule, test, evaluator, functions, engine, lateness, suppressor)
    if suppressor and suppressor.by_suppression:
        by = ", ".join(sorted(suppressor.by_suppression))
        outcome = Outcome(rule, test, outcome.passed, f"{outcome.detail} (suppressed by {by})")
    return outcome


def _verdict(rule: Rule, test: RuleTest, evaluator: Evaluator, functions: TrailguardFunctions,
             engine: str, lateness: float, suppressor: Suppressor | None) -> Outcome:
    if test.expect is not None and len(test.events) == 1:
        record = test.events[0]
        matches = evaluator.evaluate(record)
        if suppressor:
            matches = [m for m in matches if suppressor.suppressed_by(m.rule.id, record) is None]
        if evaluator.first_error.get(rule.id):
            return Outcome(rule, test, False, f"rule error: {evaluator.first_error.pop(rule.id)}")
        matched = bool(matches)
        detail = f"expected {'a match' if test.expect else 'no match'}, got " + (
            "a match" if matched else "no match")
        return Outcome(rule, test, matched == test.expect, detail)
    fresh = Evaluator([_enabled(rule)], functions, engine)
    alerts: list[Alert] = []
    run_scan(test.events, fresh, new_decider(fresh, lateness), alerts.append,
             suppressor=suppressor)
    expected = test.expect_alerts if test.expect_alerts is not None else int(bool(test.expect))
    got = len(alerts) if test.expect_alerts is not None else int(bool(alerts))
    error = fresh.first_error.get(rule.id)
    detail = f"expected {expected} alert(s), got {got}"
    if error:
        detail += f"; rule error: {error}"
    return Outcome(rule, test, got == expected and not error, detail)
