"""Matches -> alerts, on eventTime: copies, dedup, threshold and first_seen (docs/state.md).

The Decider owns *when*; engine.state.windows owns *what* (pure changes of stored values) and
the StateStore owns *where*. Two modes:

- `scan`: matches wait in a reorder buffer until the watermark (the newest eventTime seen) is
  `allowed_lateness` past them, and are then decided in eventTime order. Every record that is
  no later than the lateness allows is therefore decided as if the input had been sorted:
  the alerts do not depend on arrival order. Each alert is written once, when the watermark
  has passed its window's end by the lateness, or at `flush()` (end of input).
- `live` (the daemon): every match is decided as it arrives. An alert is returned by the
  `offer()` that opens it (or reaches its threshold); what folds in later is returned by the
  next `flush()` as an update (`update=True`, same alert_id), one per alert per flush, so the
  daemon calls `flush()` after each batch.

A rule with no dedup, threshold or first_seen costs no store access for a record without
`sharedEventID`: it cannot have copies, and exact repeats were dropped before evaluation.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from engine.evaluator import Compiled, CompiledRule, Evaluator
from engine.eventtime import event_epoch, iso, now_iso
from engine.model import Alert, Match, Record, Rule, alert_id_for
from engine.state import StateStore, Update, open_store
from engine.state import windows as win
from engine.state.windows import Hit, Policy

MODES = ("scan", "live")
REPORT_EVERY = 60.0  # seconds of event time between watermark reports to the store
KEEP_EXTRA = 3600.0  # a closed window stays this long past the lateness for late folds
BATCH = 512  # matches decided per store round trip (a shared store pipelines them)
RELEASE_EVERY = 60.0  # seconds of event time a match may wait past the lateness for its batch
_NOTHING: list[Alert] = []  # returned, never mutated: most calls have nothing to emit


@dataclass(frozen=True, slots=True)
class Plan:
    """What the decider needs to know about one rule, resolved once."""

    rule: Rule
    policy: Policy
    summarise: Callable[[Record], str]
    novelty: Compiled | None = None  # the first_seen value expression


class Decider:
    """Turns matches into alerts, in `scan` or `live` mode, with state in `store`."""

    def __init__(self, plans: dict[str, Plan], store: StateStore, allowed_lateness: float,
                 mode: str = "scan") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.plans = plans
        self.store = store
        self.allowed_lateness = allowed_lateness
        self.mode = mode
        self.live = mode == "live"
        self.watermark = float("-inf")
        self.late = 0  # matches decided after the lateness had passed them
        self._reported = float("-inf")
        self._released = float("-inf")
        self._buffer: list[tuple[float, str, int, Match]] = []
        self._closing: list[tuple[float, int, str, str]] = []
        self._tracked: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], None] = {}
        self._learn: dict[str, float] = {}
        self._seq = itertools.count()
        self._epoch_of: tuple[Record | None, float | None] = (None, None)

    def advance(self, epoch: float) -> list[Alert]:
        """Move the watermark to `epoch` if newer (call it for every record, not only matches).

        Returns the scan alerts that became due: a window closes on event time even when no
        later match arrives to notice it. The store hears the watermark minus the lateness,
        or the oldest match still waiting if older: everything still to be decided (unless
        late) is younger than that, so nothing it purges can change a decision.
        """
        if epoch <= self.watermark:
            return _NOTHING
        self.watermark = epoch
        clock = epoch - self.allowed_lateness
        due = _NOTHING
        if not self.live and self._due(clock):
            due = self._release()
        if clock - self._reported >= REPORT_EVERY:
            self._reported = clock
            self.store.advance(min(clock, self._buffer[0][0]) if self._buffer else clock)
        return due

    def offer(self, match: Match) -> list[Alert]:
        """Take one match; return the alerts that are due now."""
        t = self._epoch(match.record)
        due = self.advance(t)
        if self.live:
            return due + self._decide([(match, t)])
        if t < self.watermark - self.allowed_lateness:
            self.late += 1  # decided at once, after what waited in the buffer
            return due + self._release() + self._decide([(match, t)]) + self._release()
        # Not late: decided, in eventTime order, once the watermark is the lateness past it.
        heapq.heappush(self._buffer, (t, _order(match.record), next(self._seq), match))
        return due

    def flush(self) -> list[Alert]:
        """scan: the end of the input closes every window. live: the updates due now."""
        out = []
        if not self.live:
            items = []
            while self._buffer:
                t, _, _, match = heapq.heappop(self._buffer)
                items.append((match, t))
            out.extend(self._decide(items))
            out.extend(self._close(math.inf))
        else:
            out.extend(self._updates())
        if self.watermark > float("-inf"):
            self._reported = self.watermark - self.allowed_lateness
            self.store.advance(self._reported)
        return out  # the caller commits the store once these alerts are safe (delivered)

    def _epoch(self, record: Record) -> float:
        last, cached = self._epoch_of  # several rules often match one record
        if last is not record:
            cached = event_epoch(record)
            self._epoch_of = (record, cached)
        if cached is None:  # no usable eventTime: it happened "now" in event time
            return self.watermark if self.watermark > float("-inf") else 0.0
        return cached

    def _due(self, clock: float) -> bool:
        """Release when a window closes, or a batch has gathered (decisions cost a round trip
        each batch on a shared store), or a minute of event time has passed."""
        if self._closing and self._closing[0][0] < clock:
            return True
        buffer = self._buffer
        return bool(buffer) and buffer[0][0] < clock and (
            len(buffer) >= BATCH or clock - self._released >= RELEASE_EVERY)

    def _release(self) -> list[Alert]:
        clock = self._released = self.watermark - self.allowed_lateness
        buffer, items = self._buffer, []
        while buffer and buffer[0][0] < clock:
            t, _, _, match = heapq.heappop(buffer)
            items.append((match, t))
        out = self._decide(items) if items else []
        if self._closing and self._closing[0][0] < clock:
            out.extend(self._close(clock))
        return out

    def _close(self, clock: float) -> list[Alert]:
        due = []
        while self._closing and self._closing[0][0] < clock:
            _, _, key, alert_id = heapq.heappop(self._closing)
            self._tracked.discard((key, alert_id))
            due.append((key, alert_id))
        return self._claim(due)

    def _updates(self) -> list[Alert]:
        due, self._dirty = list(self._dirty), {}
        return self._claim(due)

    def _claim(self, due: list[tuple[str, str]]) -> list[Alert]:
        snapshots = self.store.update_many([(key, win.claim(a)) for key, a in due])
        return [_alert(self.plans[key.split("\x1f", 2)[1]].rule, snapshot)
                for (key, _), snapshot in zip(due, snapshots, strict=True) if snapshot]

    def _decide(self, items: list[tuple[Match, float]]) -> list[Alert]:
        """Decide matches in the order given, in batches: one store round trip per batch."""
        out: list[Alert] = []
        for start in range(0, len(items), BATCH):
            hits = [(self.plans[m.rule.id], t, m) for m, t in items[start:start + BATCH]]
            out.extend(self._decide_batch(
                [(plan, _hit(m, t, plan.summarise)) for plan, t, m in hits]))
        return out

    def _decide_batch(self, hits: list[tuple[Plan, Hit]]) -> list[Alert]:
        slots: list[Alert | int] = []
        ops: list[tuple[str, Update]] = []
        rules: list[Rule] = []
        for plan, hit in self._new_values_only(hits):
            policy = plan.policy
            if policy.quiet == 0 and hit.call is None:
                slots.append(_direct_alert(plan.rule, hit))
                continue
            if policy.quiet == 0:
                op = (f"c\x1f{hit.rule_id}\x1f{hit.call}", win.per_call(hit, policy, self.live))
            else:
                op = (f"w\x1f{hit.rule_id}\x1f{hit.group}", win.grouped(hit, policy, self.live))
            slots.append(len(ops))
            ops.append(op)
            rules.append(plan.rule)
        results = self.store.update_many(ops) if ops else []
        out: list[Alert] = []
        for slot in slots:
            if isinstance(slot, Alert):
                out.append(slot)
            else:
                out.extend(self._after(rules[slot], ops[slot][0], results[slot]))
        return out

    def _after(self, rule: Rule, key: str, result: win.Result) -> list[Alert]:
        kind, alert_id, end, snapshot = result
        if alert_id is None:
            return []
        if self.live:
            if snapshot is not None:
                return [_alert(rule, snapshot)]
            if kind == "fold":
                self._dirty[(key, alert_id)] = None
            return []
        if (key, alert_id) not in self._tracked:
            self._tracked.add((key, alert_id))
            heapq.heappush(self._closing, (end, next(self._seq), key, alert_id))
        return []

    def _new_values_only(self, hits: list[tuple[Plan, Hit]]) -> list[tuple[Plan, Hit]]:
        """Drop first_seen matches whose value is not new for their group (S15-S18)."""
        asked: list[tuple[int, str, Update]] = []
        dropped: set[int] = set()
        for n, (plan, hit) in enumerate(hits):
            if plan.novelty is not None:
                key, change = self._novelty(plan, hit)
                if change is None:
                    dropped.add(n)
                else:
                    asked.append((n, key, change))
        if not asked and not dropped:
            return hits
        verdicts = self.store.update_many([(key, change) for _, key, change in asked])
        dropped.update(n for (n, _, _), new in zip(asked, verdicts, strict=True) if not new)
        return [item for n, item in enumerate(hits) if n not in dropped]

    def _novelty(self, plan: Plan, hit: Hit) -> tuple[str, Update | None]:
        spec = plan.rule.first_seen
        assert plan.novelty is not None and spec is not None
        try:
            value = plan.novelty(hit.record)
        except Exception:  # a value that cannot be computed is not a new value
            value = None
        if value is None:
            return "", None
        start = self._learn.get(hit.rule_id)
        if start is None:
            start = self._learn[hit.rule_id] = self.store.update(
                f"l\x1f{hit.rule_id}", win.learn_start(hit.t))
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        key = f"f\x1f{hit.rule_id}\x1f{hit.group}\x1f{text}"
        return key, win.novelty(hit, spec.remember, start + spec.learn, plan.policy.keep)


def _order(record: Record) -> str:
    """Ties in eventTime are decided in one fixed order: by call, then by eventID."""
    return f"{record.get('sharedEventID') or ''}\x1f{record.get('eventID') or ''}"


def _hit(match: Match, t: float, summarise: Callable[[Record], str]) -> Hit:
    record = match.record
    time, call = record.get("eventTime"), record.get("sharedEventID")
    event_id, account = record.get("eventID"), record.get("recipientAccountId")
    return Hit(
        rule_id=match.rule.id, group=match.group_key, t=t,
        time=time if isinstance(time, str) else iso(t),
        call=call if isinstance(call, str) and call else None,
        event_id=event_id if isinstance(event_id, str) else None,
        account=account if isinstance(account, str) else None,
        record=record, summarise=summarise,
    )


def _direct_alert(rule: Rule, hit: Hit) -> Alert:
    """One alert for one call that cannot have copies: no state involved."""
    anchor = hit.event_id or hashlib.blake2b(
        orjson.dumps(hit.record, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
    return Alert(
        alert_id=alert_id_for(rule.id, hit.group, anchor), rule=rule,
        summary=hit.summarise(hit.record), group_key=hit.group, event=hit.record,
        first_event_time=hit.time, last_event_time=hit.time, detected_at=now_iso(),
        event_ids=[hit.event_id] if hit.event_id else [],
        account_ids=[hit.account] if hit.account else [], event_count=1,
    )


def _alert(rule: Rule, snapshot: dict[str, Any]) -> Alert:
    return Alert(
        alert_id=snapshot["id"], rule=rule, summary=snapshot["su"], group_key=snapshot["g"],
        event=snapshot["ev"], first_event_time=snapshot["f"], last_event_time=snapshot["l"],
        detected_at=now_iso(), event_ids=snapshot["ids"], account_ids=snapshot["ac"],
        event_count=snapshot["n"], update=snapshot["upd"],
    )


def plan_for(compiled: CompiledRule, allowed_lateness: float, in_order: bool) -> Plan:
    """A rule's plan. `in_order`: its matches reach the store in eventTime order (a scan on a
    store of its own), so a threshold need not keep matches for late ones to pair with."""
    rule, threshold = compiled.rule, compiled.rule.threshold
    policy = Policy(count=threshold.count if threshold else 1,
                    window=threshold.window if threshold else 0.0,
                    quiet=rule.dedup or (threshold.window if threshold else 0.0),
                    keep=allowed_lateness + KEEP_EXTRA,
                    margin=0.0 if in_order else allowed_lateness)
    return Plan(rule, policy, compiled.render_summary, compiled.first_seen)


def new_decider(evaluator: Evaluator, allowed_lateness: float, store: StateStore | None = None,
                mode: str = "scan") -> Decider:
    """The decider for a rule set; the one place that chooses how alerts are decided.

    `store` defaults to a fresh memory store. Its eventID memory is made to last at least as
    long as the lateness, so a repeat that is allowed to be late is still recognised.
    """
    store = store or open_store("memory://")
    store.event_id_horizon = max(store.event_id_horizon, allowed_lateness)
    in_order = mode == "scan" and not store.shared
    plans = {c.rule.id: plan_for(c, allowed_lateness, in_order) for c in evaluator.rules}
    return Decider(plans, store, allowed_lateness, mode)
