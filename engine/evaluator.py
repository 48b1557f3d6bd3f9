"""Compiled rules, the rule index, and `evaluate(record) -> matches`.

Two choices make this fast and safe:
- Conditions are compiled once, at load, to Python (engine.compiler) when available; the
  jmespath tree interpreter stays selectable (`engine="interpreted"`) as the reference.
- Rules are indexed by the `eventSource`/`eventName` values their condition requires (derived
  from the syntax tree by engine.expressions), so a `ReadFromRepository` record is evaluated
  only by the few rules that can match it. Candidate lists are cached per (source, name).

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

from engine import expressions
from engine.model import Match, Record, Rule
from engine.rules import SUMMARY_FIELD

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
            from engine.compiler import compile_expression as to_python
        except ImportError:  # the compiler is optional; the interpreter is the reference
            pass
        else:
            return to_python(tree, functions)
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

    def group_key(self, record: Record) -> str | None:
        if not self.group_by:
            return None
        return "|".join(_text(part(record)) for part in self.group_by)

    def render_summary(self, record: Record) -> str:
        if not self.summary:
            return self.rule.title
        return "".join(part if isinstance(part, str) else _text(_safe(part, record))
                       for part in self.summary)


def compile_rule(rule: Rule, functions: jmespath.functions.Functions, engine: str) -> CompiledRule:
    def compiled(text: str) -> Compiled:
        return compile_expression(text, functions, engine)

    return CompiledRule(
        rule=rule,
        predicate=compiled(rule.condition),
        group_by=tuple(compiled(text) for text in rule.group_by),
        summary=_summary_parts(rule.summary, compiled),
        first_seen=compiled(rule.first_seen.value) if rule.first_seen else None,
        requires=expressions.required_values(expressions.parse(rule.condition)),
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


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class Evaluator:
    """Evaluates records against an indexed, compiled rule set."""

    def __init__(
        self,
        rules: Sequence[Rule],
        functions: jmespath.functions.Functions,
        engine: str = "compiled",
    ) -> None:
        self.rules = tuple(compile_rule(rule, functions, engine) for rule in rules if rule.enabled)
        self.engine = engine
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self.matches: Counter[str] = Counter()
        self._candidates: dict[tuple[Any, Any], tuple[CompiledRule, ...]] = {}

    def candidates(self, record: Record) -> tuple[CompiledRule, ...]:
        key = (record.get("eventSource"), record.get("eventName"))
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            found = self._candidates[key] = tuple(
                compiled for compiled in self.rules if _can_match(compiled.requires, key)
            )
        return found

    def evaluate(self, record: Record) -> list[Match]:
        """The matches of `record`: one pass over its candidate rules.

        The common case (no rule raises) runs the predicates in one comprehension; a record on
        which a rule raises is evaluated again rule by rule, so only that rule loses it.
        """
        candidates = self.candidates(record)
        try:
            hits = [c for c in candidates if truthy(c.predicate(record))]
        except Exception:
            hits = self._isolated(record, candidates)
        if not hits:
            return _NO_MATCHES
        matches = []
        for compiled in hits:
            try:
                group_key = compiled.group_key(record)
            except Exception as exc:
                self._record_error(compiled.rule, record, exc)
                continue
            self.matches[compiled.rule.id] += 1
            matches.append(Match(compiled.rule, record, group_key))
        return matches

    def _isolated(self, record: Record, candidates: tuple[CompiledRule, ...]) -> list[CompiledRule]:
        hits = []
        for compiled in candidates:
            try:
                if truthy(compiled.predicate(record)):
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


_NO_MATCHES: list[Match] = []  # returned for most records; never mutated


def _can_match(requires: dict[str, frozenset[str]], key: tuple[Any, Any]) -> bool:
    source, name = key
    if "eventSource" in requires and source not in requires["eventSource"]:
        return False
    return not ("eventName" in requires and name not in requires["eventName"])
