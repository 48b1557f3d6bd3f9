"""Compiled rules, the rule index, and `evaluate(record) -> matches`.

Two choices make this fast and safe:
- Conditions are compiled once, at load, to Python (engine.conditions.compiler) when available; the
  jmespath tree interpreter stays selectable (`engine="interpreted"`) as the reference.
- Rules are indexed by the `eventSource`/`eventName` values their condition requires (derived
  from the syntax tree by engine.conditions.expressions), so a `ReadFromRepository` record is
  evaluated only by the few rules that can match it. Candidate lists are cached per (source, name).
- With the compiled engine, each (source, name) bucket gets one generated function for all its
  candidates, their conditions specialised for that source and name (engine.conditions.specialise):
  the re-tests of the two indexed fields fold away, so do rules that cannot match there, and the
  fields several conditions read are looked up once, and the matching rules' group keys
  are computed in the same function (engine.conditions.compiler.compile_matcher).

A rule that raises on a record (e.g. `length(null)`) is counted and treated as no match; the
other rules still run. The first error of each rule is kept, with the record's eventID, so
`scan` can say what failed where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath.functions
import orjson
from jmespath.visitor import Options, TreeInterpreter

from engine.conditions import expressions
from engine.conditions.specialise import Specialiser
from engine.model import Match, Record, Rule, key_text
from engine.rules import SUMMARY_FIELD

try:
    from engine.conditions.compiler import compile_matcher as _compile_matcher
except ImportError:  # the compiler is optional; the interpreter is the reference
    _compile_matcher = None  # type: ignore[assignment]

Compiled = Callable[[Any], Any]
SummaryPart = str | Compiled
ENGINES = ("compiled", "interpreted")
_CACHE_LIMIT = 10_000  # distinct (eventSource, eventName) pairs; more means hostile input


def compile_expression(
    text: str, functions: jmespath.functions.Functions, engine: str = "compiled"
) -> Compiled:
    """A callable evaluating `text` on a document, with the standard and our functions."""
    tree = expressions.parse(text)
    if engine == "compiled":
        try:
            from engine.conditions.compiler import compile_tree
        except ImportError:  # the compiler is optional; the interpreter is the reference
            pass
        else:
            return compile_tree(tree, functions)
    interpreter = TreeInterpreter(Options(custom_functions=functions))
    return lambda document: interpreter.visit(tree, document)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    predicate: Compiled
    group_by: tuple[Compiled, ...]
    summary: tuple[SummaryPart, ...]
    first_seen: Compiled | None
    requires: dict[str, frozenset[str]]
    distinct: Compiled | None = None  # threshold.distinct

    def group_key(self, record: Record) -> str | None:
        group_by = self.group_by
        if not group_by:
            return None
        if len(group_by) == 1:  # the usual case (a principal): no generator, no join
            value = group_by[0](record)
            return value if type(value) is str else key_text(value)
        return "|".join(key_text(part(record)) for part in group_by)

    def render_summary(self, record: Record) -> str:
        if not self.summary:
            return self.rule.title
        return "".join(part if isinstance(part, str) else key_text(_safe(part, record))
                       for part in self.summary)


def compile_rule(rule: Rule, functions: jmespath.functions.Functions, engine: str) -> CompiledRule:
    def compiled(text: str) -> Compiled:
        return compile_expression(text, functions, engine)

    # A sequence as a whole matches what any of its steps matches; its steps are indexed
    # one by one (Evaluator.routes).
    condition = rule.any_condition()
    distinct = rule.threshold.distinct if rule.threshold else None
    return CompiledRule(
        rule=rule,
        predicate=compiled(condition),
        group_by=tuple(compiled(text) for text in rule.group_by),
        summary=_summary_parts(rule.summary, compiled),
        first_seen=compiled(rule.first_seen.value) if rule.first_seen else None,
        requires=expressions.required_values(expressions.parse(condition)),
        distinct=compiled(distinct) if distinct else None,
    )


def _summary_parts(template: str, compiled: Callable[[str], Compiled]) -> tuple[SummaryPart, ...]:
    parts: list[SummaryPart] = []
    position = 0
    for found in SUMMARY_FIELD.finditer(template):
        parts.append(template[position:found.start()])
        parts.append(compiled(found.group(1)))
        position = found.end()
    parts.append(template[position:])
    return tuple(part for part in parts if part != "")


def _safe(function: Compiled, record: Record) -> Any:
    try:
        return function(record)
    except Exception:  # a summary must never lose an alert
        return None


class Evaluator:
    """Evaluates records against an indexed, compiled rule set."""

    def __init__(
        self,
        rules: Sequence[Rule],
        functions: jmespath.functions.Functions,
        engine: str = "compiled",
    ) -> None:
        self.rules = tuple(compile_rule(rule, functions, engine) for rule in rules if rule.enabled)
        # What records are routed to: each rule, but each step of a sequence on its own
        # (a Rule with the sequence's id and `step` set), so that the index sends a record
        # only to the steps that can match it and a match says which step it is.
        self.routes = tuple(
            route for compiled in self.rules for route in (
                (compiled,) if compiled.rule.sequence is None else
                tuple(compile_rule(step, functions, engine)
                      for step in compiled.rule.step_rules())))
        # What a scanned item names a rule by (engine.decide.items): its route's index.
        self.route_index = {(c.rule.id, c.rule.step): n for n, c in enumerate(self.routes)}
        self.route_rules = tuple(c.rule for c in self.routes)
        self.engine = engine
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self.matches: Counter[str] = Counter()
        self._candidates: dict[tuple[Any, Any], tuple[CompiledRule, ...]] = {}
        self._buckets: dict[tuple[Any, Any], _Bucket] = {}
        self._bucket_code: dict[bytes, Callable[[Record], list[tuple[Rule, str | None]]]] = {}
        self._fused = engine == "compiled" and _compile_matcher is not None
        self._specialiser = Specialiser(functions)
        self._functions = functions

    def candidates(self, record: Record) -> tuple[CompiledRule, ...]:
        return self._candidates_for(_bucket_key(record))

    def _candidates_for(self, key: tuple[Any, Any]) -> tuple[CompiledRule, ...]:
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            found = self._candidates[key] = tuple(
                compiled for compiled in self.routes if _can_match(compiled.requires, key)
            )
        return found

    def evaluate(self, record: Record) -> list[Match]:
        """The matches of `record` (see `matched`)."""
        return [Match(rule, record, group) for rule, group in self.matched(record)]

    def matched(self, record: Record) -> Sequence[tuple[Rule, str | None]]:
        """(rule, group key) of each rule `record` matches: one pass over its candidates.

        The common case (no rule raises) runs the bucket's one function, which computes the
        group keys too (or, interpreted, the predicates in one comprehension); a record on
        which a rule raises is evaluated again rule by rule, so only that rule loses it. The
        scan makes Matches from these only where it needs them (engine.decide.decider: the lane
        takes the pairs as they are). Never mutate the result: it may be shared.
        """
        if self._fused:
            key = _bucket_key(record)
            bucket = self._buckets.get(key) or self._bucket(key)
            try:
                pairs = bucket.run(record)
            except Exception:  # a condition or a group key raised: find which, rule by rule
                hits = self._isolated(record, bucket.rules, bucket.predicates())
            else:
                counts = self.matches
                for rule, _ in pairs:
                    counts[rule.id] += 1
                return pairs
        else:
            candidates = self._candidates_for(_bucket_key(record))
            try:
                hits = [c for c in candidates if truthy(c.predicate(record))]
            except Exception:
                hits = self._isolated(record, candidates)
            if not hits:
                return _NO_MATCHES
        found: list[tuple[Rule, str | None]] = []
        counts = self.matches
        for compiled in hits:
            try:
                group_key = compiled.group_key(record) if compiled.group_by else None
            except Exception as exc:
                self._record_error(compiled.rule, record, exc)
                continue
            rule = compiled.rule
            counts[rule.id] += 1
            found.append((rule, group_key))
        return found

    def _bucket(self, key: tuple[Any, Any]) -> _Bucket:
        """Specialise the candidates for `key`, drop those that fold to false, and compile
        the rest into one function (shared by buckets whose specialised conditions are equal,
        as most are for event names no rule names)."""
        if len(self._buckets) >= _CACHE_LIMIT:
            self._buckets.clear()
            self._bucket_code.clear()
        known = {name: value for name, value in zip(expressions.INDEXED_FIELDS, key, strict=True)
                 if value is not None}
        kept: list[tuple[CompiledRule, Any]] = []
        for compiled in self._candidates_for(key):
            tree = self._specialiser.specialise(expressions.parse(compiled.rule.condition), known)
            if tree["type"] != "literal" or truthy(tree["value"]):
                kept.append((compiled, tree))
        trees = [tree for _, tree in kept]
        code_key = orjson.dumps([trees, [(c.rule.id, c.rule.step) for c, _ in kept]])
        run = self._bucket_code.get(code_key)
        if run is None:
            outcomes = [(c.rule, [expressions.parse(text) for text in c.rule.group_by])
                        for c, _ in kept]
            run = self._bucket_code[code_key] = _compile_matcher(trees, outcomes, self._functions)
        bucket = self._buckets[key] = _Bucket(tuple(c for c, _ in kept), tuple(trees), run,
                                              self._functions)
        return bucket

    def _isolated(self, record: Record, candidates: tuple[CompiledRule, ...],
                  predicates: tuple[Compiled, ...] | None = None) -> list[CompiledRule]:
        hits = []
        for n, compiled in enumerate(candidates):
            predicate = compiled.predicate if predicates is None else predicates[n]
            try:
                if truthy(predicate(record)):
                    hits.append(compiled)
            except Exception as exc:  # isolate the rule: count, remember, carry on
                self._record_error(compiled.rule, record, exc)
        return hits

    def compiled(self, rule_id: str) -> CompiledRule:
        return next(c for c in self.rules if c.rule.id == rule_id)

    def _record_error(self, rule: Rule, record: Record, exc: Exception) -> None:
        self.errors[rule.id] += 1
        if rule.id not in self.first_error:
            self.first_error[rule.id] = (
                f"{type(exc).__name__}: {exc} (eventID {record.get('eventID', '-')})"
            )


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, and empty strings, lists and objects are false; 0 is
    true (unlike Python)."""
    if value is True:
        return True
    if value is False or value is None:
        return False
    return not (value == "" or value == [] or value == {})


_NO_MATCHES: list[Any] = []  # returned for most records; never mutated


class _Bucket:
    """The rules that can match one (eventSource, eventName) and the one function that
    evaluates them: `run(record)` gives (rule, group key) for each rule `record` matches."""

    __slots__ = ("_functions", "_predicates", "rules", "run", "trees")

    def __init__(self, rules: tuple[CompiledRule, ...], trees: tuple[Any, ...],
                 run: Callable[[Record], Sequence[tuple[Rule, str | None]]],
                 functions: jmespath.functions.Functions) -> None:
        self.rules, self.trees, self.run = rules, trees, run
        self._functions = functions
        self._predicates: tuple[Compiled, ...] | None = None

    def predicates(self) -> tuple[Compiled, ...]:
        """Each specialised condition on its own, compiled the first time a record raises."""
        if self._predicates is None:
            from engine.conditions.compiler import compile_tree

            self._predicates = tuple(compile_tree(tree, self._functions) for tree in self.trees)
        return self._predicates


def _bucket_key(record: Record) -> tuple[Any, Any]:
    """(eventSource, eventName), each None unless a string: a list or number cannot satisfy
    an index entry (they are strings), and only strings are substituted into conditions."""
    source, name = record.get("eventSource"), record.get("eventName")
    return (source if type(source) is str else None, name if type(name) is str else None)


def _can_match(requires: dict[str, frozenset[str]], key: tuple[Any, Any]) -> bool:
    source, name = key
    if "eventSource" in requires and source not in requires["eventSource"]:
        return False
    return not ("eventName" in requires and name not in requires["eventName"])
