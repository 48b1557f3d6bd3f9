"""Applying suppressions (engine.suppressions loads them): drop suppressed matches, count them.

A suppression drops a *match* before any state: engine.scan.pipeline, engine.scan.parallel, the
daemon and rule tests call `Suppressor.filter` (or `split` then `count`) on the (rule, group) pairs
the evaluator gives, before the decider sees them. Expiry is read from the wall clock at each
match (`clock`), so a daemon stops suppressing at `expires` without a reload; a condition
that raises suppresses nothing and is counted in `errors`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jmespath.functions

from engine.conditions.evaluator import compile_expression, truthy
from engine.model import Rule
from engine.suppressions import Suppression, load_for

Clock = Callable[[], float]
Compile = Callable[[str], Callable[[Any], Any]]


Pair = tuple[Rule, Any]  # (rule, group key) as Evaluator.matched gives them


Hit = tuple[str, str]  # (rule id, suppression id): one suppressed match


class Suppressor:
    """Drops suppressed matches and counts them: per suppression id and per rule.

    Built once per rule set. `filter` costs one dict lookup per matched rule that no
    suppression names. `split` finds without counting, for a process that is not the one
    that knows whether the record is a repeat (engine.scan.parallel): that one `count`s."""

    def __init__(self, suppressions: Sequence[Suppression], compile_: Compile,
                 clock: Clock | None = None) -> None:
        self.suppressions = tuple(suppressions)
        self.clock = clock or _wall_clock
        self.by_suppression: Counter[str] = Counter()
        self.by_rule: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self._compiled = {s.id: (compile_(s.condition) if s.condition else None)
                          for s in self.suppressions}
        self._for_rule: dict[str, tuple[Suppression, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.suppressions)

    def applies_to(self, rule_id: str) -> tuple[Suppression, ...]:
        found = self._for_rule.get(rule_id)
        if found is None:
            found = self._for_rule[rule_id] = tuple(
                s for s in self.suppressions if s.covers(rule_id))
        return found

    def filter(self, record: Mapping[str, Any], pairs: Sequence[Pair]) -> Sequence[Pair]:
        """`pairs` without the suppressed ones, which are counted."""
        kept, hits = self.split(record, pairs)
        if hits:
            self.count(hits)
        return kept

    def split(self, record: Mapping[str, Any], pairs: Sequence[Pair]
              ) -> tuple[Sequence[Pair], list[Hit]]:
        """(`pairs` without the suppressed ones, what suppressed them), nothing counted."""
        named = self._for_rule
        for rule, _ in pairs:
            found = named.get(rule.id)
            if found is None:
                found = self.applies_to(rule.id)
            if found:
                break
        else:
            return pairs, _NO_HITS  # the usual case: no suppression names these rules
        kept: list[Pair] = []
        hits: list[Hit] = []
        for pair in pairs:
            ident = self._first(pair[0].id, record)
            if ident is None:
                kept.append(pair)
            else:
                hits.append((pair[0].id, ident))
        return kept, hits

    def count(self, hits: Iterable[Hit]) -> None:
        for rule_id, ident in hits:
            self.by_suppression[ident] += 1
            self.by_rule[rule_id] += 1

    def suppressed_by(self, rule_id: str, record: Mapping[str, Any]) -> str | None:
        """The id of the suppression that silences this match (counted), or None."""
        ident = self._first(rule_id, record)
        if ident is not None:
            self.count([(rule_id, ident)])
        return ident

    def _first(self, rule_id: str, record: Mapping[str, Any]) -> str | None:
        candidates = self.applies_to(rule_id)
        if not candidates:
            return None
        now = self.clock()
        for suppression in candidates:
            if now >= suppression.expires_at:
                continue
            condition = self._compiled[suppression.id]
            try:
                hit = condition is None or truthy(condition(record))
            except Exception:  # a broken condition must not silence anything
                self.errors[suppression.id] += 1
                continue
            if hit:
                return suppression.id
        return None

    def drain(self) -> Counter[str]:
        """The per-suppression counts since the last drain (the daemon's metrics)."""
        counts, self.by_suppression = self.by_suppression, Counter()
        return counts


_NO_HITS: list[Hit] = []  # returned for most records; never mutated


def build_suppressor(suppressions: Sequence[Suppression],
                     functions: jmespath.functions.Functions, engine: str = "compiled",
                     clock: Clock | None = None) -> Suppressor:
    return Suppressor(suppressions,
                      lambda text: compile_expression(text, functions, engine), clock)


def _wall_clock() -> float:
    return time.time()  # looked up at each call, so freezegun's clock is the one read


def suppressor_for(config: Any, functions: jmespath.functions.Functions, rules: Sequence[Rule],
                   engine: str = "compiled", clock: Clock | None = None) -> Suppressor | None:
    """The config's suppressions, ready to filter matches; None when it has none (the scan's
    hot path then pays nothing)."""
    loaded = load_for(config, functions, rules)
    if not loaded.suppressions:
        return None
    return build_suppressor(loaded.suppressions, functions, engine, clock)
