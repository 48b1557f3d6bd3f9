"""What the decider needs to know about each rule, resolved once from its compiled form.

A module of its own because it is the one place that turns a rule's YAML terms (threshold,
dedup, sequence, absence, the lateness) into the seconds the state functions count with;
the decider (engine.decide.decider) and engine.decide.correlation only read a Plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from engine.conditions.evaluator import Compiled, CompiledRule
from engine.model import Record, Rule
from engine.state.sequences import Chain
from engine.state.windows import Policy

KEEP_EXTRA = 3600.0  # a closed window stays this long past the lateness for late folds


@dataclass(frozen=True, slots=True)
class Plan:
    """What the decider needs to know about one rule, resolved once."""

    rule: Rule
    policy: Policy
    summarise: Callable[[Record], str]
    novelty: Compiled | None = None  # the first_seen value expression
    distinct: Compiled | None = None  # threshold.distinct
    chain: Chain | None = None  # a sequence or absence rule (engine.decide.correlation)

    @property
    def lazy(self) -> bool:
        """Its matches need their whole record only to open a window (engine.state.windows
        Hit.whole): no first_seen or distinct value, no sequence, not one alert per match."""
        return (self.novelty is None and self.distinct is None and self.chain is None
                and self.policy.quiet > 0)


def plan_for(compiled: CompiledRule, allowed_lateness: float, in_order: bool) -> Plan:
    """A rule's plan. `in_order`: its matches reach the store in eventTime order (a scan on a
    store of its own), so a threshold need not keep matches for late ones to pair with."""
    rule, threshold = compiled.rule, compiled.rule.threshold
    policy = Policy(count=threshold.count if threshold else 1,
                    window=threshold.window if threshold else 0.0,
                    quiet=rule.dedup or (threshold.window if threshold else 0.0),
                    keep=allowed_lateness + KEEP_EXTRA,
                    margin=0.0 if in_order else allowed_lateness,
                    distinct=compiled.distinct is not None)
    return Plan(rule, policy, compiled.render_summary, compiled.first_seen,
                compiled.distinct, _chain(rule, policy))


class _ChainTimes(TypedDict):
    """The Chain fields a sequence rule and an absence rule set alike (seconds)."""

    dedup: float
    keep: float
    margin: float
    lateness: float


def _chain(rule: Rule, policy: Policy) -> Chain | None:
    """What engine.state.sequences needs of a sequence or absence rule."""
    common: _ChainTimes = {"dedup": rule.dedup or 0.0, "keep": policy.keep, "margin": policy.margin,
              "lateness": policy.keep - KEEP_EXTRA}
    if rule.absence is not None:
        return Chain(within=rule.absence.within, **common)
    if rule.sequence is None:
        return None
    steps = [step for step in rule.sequence.steps if not step.absent]
    return Chain(within=rule.sequence.within, counts=tuple(step.count for step in steps),
                 names=tuple(step.name for step in steps), absent=rule.sequence.absent,
                 **common)
