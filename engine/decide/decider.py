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

The threshold lane (engine.decide.lane; scan mode, on a store only this process writes) keeps in
process the threshold groups that have not reached their count, which is where a rule such
as codeartifact-mass-download puts nearly every record. The decider keeps the clock for it:
it hands the lane only matches within the lateness, asks it to count what the clock has
passed, and takes a group back onto the general path (the reorder buffer and the store)
when the lane cannot decide it as the general path would.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import orjson

from engine import jsonsafe
from engine.conditions.evaluator import Compiled, Evaluator
from engine.decide import correlation
from engine.decide.lane import Queued, ThresholdLane
from engine.decide.plan import Plan, plan_for
from engine.decide.stubs import RecordStub, Ref, Resolver
from engine.inputs.eventtime import event_epoch, iso, now_iso
from engine.model import Alert, Match, Record, Rule, alert_id_for, key_text
from engine.state import StateStore, Update, open_store
from engine.state import windows as win
from engine.state.windows import Hit, group_key

MODES = ("scan", "live")
REPORT_EVERY = 60.0  # seconds of event time between watermark reports to the store
BATCH = 512  # matches decided per store round trip (a shared store pipelines them)
RELEASE_EVERY = 60.0  # seconds of event time a match may wait past the lateness for its batch
_NOTHING: list[Alert] = []  # returned, never mutated: most calls have nothing to emit


class Decider:
    """Turns matches into alerts, in `scan` or `live` mode, with state in `store`."""

    def __init__(self, plans: dict[str, Plan], store: StateStore, allowed_lateness: float,
                 mode: str = "scan", lane: bool = False) -> None:
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
        self._left = 0  # matches the last release left waiting (not yet the lateness old)
        self._buffer: list[Queued] = []
        self._closing: list[tuple[float, str, str]] = []  # (end, alert_id, key)
        self._seq = itertools.count()
        self.lane = ThresholdLane(
            {rule_id: plan.policy for rule_id, plan in plans.items()
             if lane and mode == "scan" and plan.policy.count > 1 and plan.novelty is None
             and plan.distinct is None}, store, self._buffer, self._seq)
        # Lane matches hold their record, or a way back to it (engine.decide.stubs); a group handed
        # to the general path takes stubs into the buffer, and this makes them whole for
        # _decide.
        self.resolve: Resolver | None = None
        self._tracked: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], None] = {}
        self._learn: dict[str, float] = {}
        self._epoch_of: tuple[Record | None, float | None] = (None, None)
        self.deadlines = correlation.Deadlines(plans, store, self.live)
        self._wall_clock = float("-inf")  # live: the wall clock minus the lateness (tick)

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
            self.store.advance(min(clock, self._oldest_waiting()))
            self.lane.purge(self.store.purged_at)
        return due

    def _oldest_waiting(self) -> float:
        return min(self._buffer[0][0] if self._buffer else math.inf, self.lane.oldest())

    @property
    def lane_rules(self) -> frozenset[str]:
        """The ids of the rules whose matches go to the threshold lane (see the module's doc)."""
        return self.lane.rules

    def offer(self, match: Match, epoch: float | None = None) -> list[Alert]:
        """Take one match (`epoch`: its record's eventTime, if the caller has it); return the
        alerts that are due now."""
        t = epoch if epoch is not None else self._epoch(match.record)
        due = self.advance(t) if t > self.watermark else _NOTHING
        if self.live:
            return due + self._decide([(match, t)])
        rule_id = match.rule.id
        plan = self.plans[rule_id]
        if plan.novelty is None and plan.policy.quiet == 0 and plan.chain is None:  # no state
            call = match.record.get("sharedEventID")
            if not (isinstance(call, str) and call):  # and a call without copies: no order
                return [*due, _direct_alert(plan.rule, _hit(match, t, plan.summarise))]
        if t < self.watermark - self.allowed_lateness:
            self.late += 1  # decided at once, after what waited in the buffer
            if rule_id in self.lane.rules:  # its group's waiting matches join that buffer
                self.lane.hand_over(group_key(rule_id, match.group_key))  # before the release
            due = due + self._release()
            return due + self._decide([(match, t)]) + self._release()
        # Not late: decided, in eventTime order, once the watermark is the lateness past it.
        record = match.record
        if rule_id in self.lane.rules:
            if self.hold(match.rule, match.group_key, t, record.get("eventID"),
                         record.get("sharedEventID"), record.get("recipientAccountId"),
                         record.get("eventTime"),
                         # not a plain dict: a RecordStub (engine.decide.stubs). mypy does not
                         # narrow on `type(x) is dict` failing, and isinstance would cost per match.
                         record if type(record) is dict else record.back):  # type: ignore[attr-defined]
                return due
            self.lane.hand_over(group_key(rule_id, match.group_key))  # e.g. odd ids: general
        call, event_id = _order(record)
        heapq.heappush(self._buffer, (t, call, event_id, next(self._seq), match))
        return due

    def hold(self, rule: Rule, group: str | None, t: float, event_id: Any, call: Any,
             account: Any, time: Any, record: Record | Ref | bytes) -> bool:
        """`offer` for a match of a lane rule, without a Match: the scans call this for
        nearly every record, with its eventID, sharedEventID, recipientAccountId and
        eventTime; `record` is the record, or its way back (engine.decide.stubs) when the caller has
        one. False when the lane cannot take the match (late, newer than the watermark, or
        ThresholdLane.hold's reasons): offer it. engine.scan.deciding.decide_result inlines this
        (once per record): change both together.
        """
        return self.watermark - self.allowed_lateness <= t <= self.watermark and (
            self.lane.hold(rule, group, t, event_id, call, account, time, record))

    def flush(self) -> list[Alert]:
        """scan: the end of the input closes every window. live: the updates due now."""
        out = []
        if not self.live:
            items = self._take(math.inf)
            self.lane.close()  # the store holds what the general path would have
            out.extend(self._decide(items))
            out.extend(self._tick(self.watermark - self.allowed_lateness))
            out.extend(self._close(math.inf))
        else:
            out.extend(self._updates())
            out.extend(self._tick(self._clock()))
        if self.watermark > float("-inf"):
            self._reported = self.watermark - self.allowed_lateness
            self.store.advance(self._reported)
        return out  # the caller commits the store once these alerts are safe (delivered)

    def tick(self, now: float) -> list[Alert]:
        """live: time passes on the wall clock too (`now`, epoch seconds), so a deadline
        (an absent step, an absence gap) fires while no record arrives; SPEC §8."""
        self._wall_clock = max(self._wall_clock, now - self.allowed_lateness)
        return self._tick(self._clock(), reload=True) + self._updates()

    def _clock(self) -> float:
        """Where deadlines stand: the watermark minus the lateness, or in live mode the wall
        clock minus the lateness when that is later."""
        return max(self.watermark - self.allowed_lateness, self._wall_clock)

    def _tick(self, clock: float, reload: bool = False) -> list[Alert]:
        out: list[Alert] = []
        for rule_id, key, result in self.deadlines.tick(clock, reload):
            out.extend(self._after(self.plans[rule_id].rule, key, result))
        return out

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
        if (self._closing and self._closing[0][0] < clock) or self.deadlines.due(clock):
            return True
        if self._oldest_waiting() >= clock:
            return False
        # A batch is BATCH matches more than the last release left: when more than BATCH
        # wait within the lateness (a busy general path), the buffer's size alone would
        # release at every record, a few matches at a time (measured: 720 releases instead
        # of 87 on the bench stream with the sequence rules, +15% CPU).
        return (len(self._buffer) - self._left >= BATCH
                or clock - self._released >= RELEASE_EVERY)

    def _release(self) -> list[Alert]:
        clock = self._released = self.watermark - self.allowed_lateness
        items = self._take(clock)
        self._left = len(self._buffer)
        out = self._decide(items) if items else []
        if self.deadlines.due(clock):
            out.extend(self._tick(clock))
        if self._closing and self._closing[0][0] < clock:
            out.extend(self._close(clock))
        return out

    def _take(self, clock: float) -> list[tuple[Match, float]]:
        """The waiting matches older than `clock`, in (eventTime, call, eventID) order, for
        `_decide`; lane groups count theirs first (a group handed over adds its own to the
        general buffer, in order)."""
        self.lane.settle(clock)
        buffer, items = self._buffer, []
        while buffer and buffer[0][0] < clock:
            t, _, _, _, match = heapq.heappop(buffer)
            items.append((match, t))
        return items

    def _close(self, clock: float) -> list[Alert]:
        due = []
        while self._closing and self._closing[0][0] < clock:
            _, alert_id, key = heapq.heappop(self._closing)
            self._tracked.discard((key, alert_id))
            due.append((key, alert_id))
        return self._claim(due)

    def _updates(self) -> list[Alert]:
        due, self._dirty = list(self._dirty), {}
        return self._claim(due)

    def _claim(self, due: list[tuple[str, str]]) -> list[Alert]:
        snapshots = self.store.update_many([(key, win.claim(a)) for key, a in due])
        return [_alert(self.plans[_rule_of(key)].rule, snapshot)
                for (key, _), snapshot in zip(due, snapshots, strict=True) if snapshot]

    def _decide(self, items: list[tuple[Match, float]]) -> list[Alert]:
        """Decide matches in the order given, in batches: one store round trip per batch."""
        out: list[Alert] = []
        whole = self.resolve.whole if self.resolve is not None else win.as_is
        plans = self.plans
        for start in range(0, len(items), BATCH):
            # A stub (engine.decide.stubs) waits as one. A lazy plan's is made whole only if it
            # opens a window (Hit.whole); any other's here, a batch at a time: the end of a scan
            # decides everything still waiting at once.
            hits = []
            for match, t in items[start:start + BATCH]:
                plan = plans[match.rule.id]
                if type(match.record) is RecordStub and not plan.lazy:
                    match = match._replace(record=whole(match.record))
                hits.append((plan, _hit(match, t, plan.summarise, plan.distinct, whole)))
            out.extend(self._decide_batch(hits))
        return out

    def _decide_batch(self, hits: list[tuple[Plan, Hit]]) -> list[Alert]:
        slots: list[Alert | int] = []
        ops: list[tuple[str, Update]] = []
        rules: list[Rule] = []
        chains: set[int] = set()
        cap = self._clock()
        for plan, hit in self._new_values_only(hits):
            policy = plan.policy
            if plan.chain is not None:
                chains.add(len(ops))
                slots.append(len(ops))
                ops.append(correlation.chain_op(plan, hit, cap, self.live))
                rules.append(plan.rule)
                continue
            if policy.quiet == 0 and hit.call is None:
                slots.append(_direct_alert(plan.rule, hit))
                continue
            if policy.quiet == 0:
                op = (f"c\x1f{hit.rule_id}\x1f{hit.call}", win.per_call(hit, policy, self.live))
            else:
                op = (group_key(hit.rule_id, hit.group), win.grouped(hit, policy, self.live))
            slots.append(len(ops))
            ops.append(op)
            rules.append(plan.rule)
        results = self.store.update_many(ops) if ops else []
        out: list[Alert] = []
        for slot in slots:
            if isinstance(slot, Alert):
                out.append(slot)
            elif slot in chains:
                found, register = correlation.chain_results(results[slot])
                if register is not None:
                    self.deadlines.register(ops[slot][0], register)
                for result in found:
                    out.extend(self._after(rules[slot], ops[slot][0], result))
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
            heapq.heappush(self._closing, (end, alert_id, key))
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
        text = value if isinstance(value, str) else jsonsafe.dumps(value).decode()
        key = f"f\x1f{hit.rule_id}\x1f{hit.group}\x1f{text}"
        return key, win.novelty(hit, spec.remember, start + spec.learn, plan.policy.keep)


def _order(record: Record) -> tuple[str, str]:
    """Ties in eventTime are decided in one fixed order: by call, then by eventID."""
    call, event_id = record.get("sharedEventID"), record.get("eventID")
    return (call if type(call) is str else "" if call is None else str(call),
            event_id if type(event_id) is str else "" if event_id is None else str(event_id))


def _rule_of(key: str) -> str:
    """The rule id in a state key (kind, rule, then the rest, joined by \\x1f)."""
    return key.split("\x1f", 2)[1]


def _hit(match: Match, t: float, summarise: Callable[[Record], str],
         distinct: Compiled | None = None, whole: Callable[[Record], Record] = win.as_is) -> Hit:
    record = match.record
    time, call = record.get("eventTime"), record.get("sharedEventID")
    event_id, account = record.get("eventID"), record.get("recipientAccountId")
    return Hit(
        rule_id=match.rule.id, group=match.group_key, t=t,
        time=time if isinstance(time, str) else iso(t),
        call=call if isinstance(call, str) and call else None,
        event_id=event_id if isinstance(event_id, str) else None,
        account=account if isinstance(account, str) else None,
        record=record, summarise=summarise, step=match.rule.step,
        distinct=_distinct_value(distinct, record) if distinct is not None else None,
        whole=whole,
    )


def _distinct_value(distinct: Compiled, record: Record) -> str | None:
    """threshold.distinct's value as text, None when null or it cannot be computed."""
    try:
        value = distinct(record)
    except Exception:  # a value that cannot be computed is not a value
        return None
    return None if value is None else key_text(value)


def _direct_alert(rule: Rule, hit: Hit) -> Alert:
    """One alert for one call that cannot have copies: no state involved."""
    anchor = hit.event_id or hashlib.blake2b(
        jsonsafe.dumps(hit.record, orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()
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
        event_count=snapshot["n"], update=snapshot["upd"], steps=snapshot.get("st"),
    )


def new_decider(evaluator: Evaluator, allowed_lateness: float, store: StateStore | None = None,
                mode: str = "scan", lane: bool = True) -> Decider:
    """The decider for a rule set; the one place that chooses how alerts are decided.

    `store` defaults to a fresh memory store. Its eventID memory is made to last at least as
    long as the lateness, so a repeat that is allowed to be late is still recognised.
    """
    store = store or open_store("memory://")
    store.event_id_horizon = max(store.event_id_horizon, allowed_lateness)
    in_order = mode == "scan" and not store.shared
    plans = {c.rule.id: plan_for(c, allowed_lateness, in_order) for c in evaluator.rules}
    return Decider(plans, store, allowed_lateness, mode, lane=in_order and lane)
