"""The decider's side of sequences and absence: state keys, deadlines and their registry.

engine.state.sequences holds the pure changes; this module decides *which* group to change
*when*. A sequence with an absent last step, and an absence rule, fire when time passes
rather than when a match arrives, so something must remember which groups wait on a
deadline. Each such rule keeps a registry value (`d` key: {group key: earliest deadline})
in the store itself, not only in this process: the next scan over a persistent store, and
the other daemons on a shared Redis, find the deadlines there. A group registers when its
earliest deadline comes before the one it registered (rarely: a new first step, a group
that matched again after its gap fired), not at every match.

This process keeps a heap of the deadlines it knows; `tick(clock)` settles the groups whose
deadline the clock has passed (one compare-and-set each, so two daemons settling one group
raise one alert) and moves or drops their registration. On a shared store it reads the
registries again at every tick, so a daemon picks up the deadlines another one registered
(e.g. one that died). The scan ticks on its watermark minus the lateness, the daemon also
on the wall clock minus the lateness.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.state import StateStore, Update
from engine.state import sequences as sq
from engine.state.windows import Hit, Result

if TYPE_CHECKING:
    from engine.decide.plan import Plan

NO_GROUP = "\x00"  # a rule without group_by, in a state key (a group may be the empty string)


def chain_key(rule_id: str, group: str | None) -> str:
    return f"q\x1f{rule_id}\x1f{NO_GROUP if group is None else group}"


def group_of(key: str) -> str | None:
    group = key.split("\x1f", 2)[2]
    return None if group == NO_GROUP else group


def registry_key(rule_id: str) -> str:
    return f"d\x1f{rule_id}"


def chain_op(plan: Plan, hit: Hit, cap: float, live: bool) -> tuple[str, Update]:
    """The store change for a match of a sequence step or an absence rule."""
    chain = plan.chain
    assert chain is not None
    key = chain_key(hit.rule_id, hit.group)
    if not chain.counts:
        return key, sq.absence(hit, chain, cap, live)
    return key, sq.step(hit, hit.step, chain, cap, live)


class Deadlines:
    """Which groups wait on a deadline, and settling them when it passes."""

    def __init__(self, plans: Mapping[str, Plan], store: StateStore, live: bool) -> None:
        self.plans = plans
        self.store = store
        self.live = live
        self.rules = tuple(rule_id for rule_id, plan in plans.items()
                           if plan.chain is not None and (plan.chain.absent
                                                          or not plan.chain.counts))
        self._heap: list[tuple[float, str]] = []
        self._hint: dict[str, float] = {}
        self._loaded = False

    def due(self, clock: float) -> bool:
        if not self.rules:
            return False
        return not self._loaded or (bool(self._heap) and self._heap[0][0] < clock)

    def register(self, key: str, hint: float) -> None:
        """A group's new earliest deadline (from a match's change): here and in the store."""
        self._note(key, hint)
        rule_id = key.split("\x1f", 2)[1]
        self.store.update(registry_key(rule_id), sq.registry({key: (None, hint)}))

    def tick(self, clock: float, reload: bool = False) -> list[tuple[str, str, Result]]:
        """Settle every group whose deadline is behind `clock`: (rule id, key, result) for
        each alert that opened or folded. `reload`: read the registries again first, on a
        store other processes change (the daemon's wall-clock tick, once a second)."""
        if not self.rules:
            return []
        if not self._loaded or (reload and self.store.shared):
            self._load()
        keys, seen = [], []
        while self._heap and self._heap[0][0] < clock:
            hint, key = heapq.heappop(self._heap)
            if self._hint.get(key) == hint:
                keys.append(key)
                seen.append(hint)
        if not keys:
            return []
        ops = []
        for key in keys:
            rule_id = key.split("\x1f", 2)[1]
            plan = self.plans[rule_id]
            assert plan.chain is not None
            ops.append((key, sq.settle(clock, plan.chain, rule_id, group_of(key),
                                       plan.summarise, self.live)))
        out: list[tuple[str, str, Result]] = []
        moved: dict[str, dict[str, tuple[float | None, float | None]]] = {}
        for key, hint, (results, new) in zip(keys, seen, self.store.update_many(ops),
                                             strict=True):
            rule_id = key.split("\x1f", 2)[1]
            moved.setdefault(rule_id, {})[key] = (hint, new)
            self._hint.pop(key, None)
            if new is not None:
                self._note(key, new)
            out.extend((rule_id, key, result) for result in results)
        self.store.update_many([(registry_key(rule_id), sq.registry(changes))
                                for rule_id, changes in moved.items()])
        return out

    def _load(self) -> None:
        """Read the registries (a plain read: they are hints, and the settling of a group is
        the compare-and-set that decides; a write here would make every tick of two daemons
        on one Redis conflict with the other's)."""
        self._loaded = True
        for rule_id in self.rules:
            value = self.store.get(registry_key(rule_id))
            for key, hint in ((value or {}).get("g") or {}).items():
                self._note(key, float(hint))

    def _note(self, key: str, hint: float) -> None:
        known = self._hint.get(key)
        if known is None or hint < known:
            self._hint[key] = hint
            heapq.heappush(self._heap, (hint, key))


def chain_results(result: Any) -> tuple[list[Result], float | None]:
    """A sequence or absence change's result: (alert results, deadline to register)."""
    results, register = result
    return list(results), register
