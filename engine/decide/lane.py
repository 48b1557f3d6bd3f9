"""The threshold lane: threshold groups that have not reached their count, kept in process.

Why it exists: a rule such as codeartifact-mass-download matches nearly every record (90% of
the bench stream), and each match joins a threshold group that seldom reaches its count. On
the decider's general path every such match costs a reorder-heap push and a store round
trip, to change nothing but the group's pending list. In a scan on a store only this process
writes (engine.decide.decider.new_decider), the lane keeps those groups here instead: a match is
appended to its group's list (no heap, no store), and when the clock passes it the group's
list is sorted and counted into the same pending list the store would hold, with a few list
operations per match.

The counting rules are engine.state.windows' (pending entries, the window cut, when a run
completes, when a group expires): the lane only applies them where they are cheap. The moment
a match would do anything but count (complete a run, arrive late, sort before its group's
newest counted match), the group is written to the store exactly as the general path would
have left it, and the general path takes that group over from that match on.
tests/test_decide_lane.py decides random streams both ways and compares every alert.

The decider owns the clock: it asks the lane to `settle` up to it, and hands `hold` only
matches within the lateness.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.decide.stubs import Ref, stub_of
from engine.model import Match, Record, Rule
from engine.state import StateStore
from engine.state import windows as win
from engine.state.windows import Policy

# Lane groups count their waiting matches at most this often (seconds of event time): each
# count costs a sort and a few list operations per group whatever its size, so counting
# less often costs less; it decides nothing differently (see settle). Measured on the bench
# stream: 60 s -> 300 s, +7% events/s for the scan, +1 MB peak RSS.
SETTLE_EVERY = 300.0

# A lane match: (eventTime epoch, sharedEventID or "", eventID, arrival seq, recipientAccountId,
# eventTime, the record or its way back), sorted as the general buffer is, by the first four.
# A plain tuple, not a NamedTuple: one is made per record, and a NamedTuple is made 7x slower
# (+200 ns) and sorted 1.6x slower (tuple subclasses miss CPython's fast tuple compare).
Held = tuple[float, str, str, int, Any, Any, Any]
# A counted lane match: the first five of its Held, all a group's pending entry is made of
# (windows.pending_entry, when the group is handed over). Not the record's way back: counted
# matches stay a threshold window, and a JSON text each (a large JSON-lines input) was 18 MB
# more peak RSS for bench/memory.py. A tuple for the same reason as Held.
Counted = tuple[float, str, str, int, Any]
# The general path's reorder buffer entry: (eventTime epoch, call, eventID, seq, match).
Queued = tuple[float, str, str, int, Match]


@dataclass(slots=True, eq=False)
class LaneGroup:
    """One threshold group on the lane: what its matches need, and what they are so far."""

    rule: Rule
    group: str | None
    policy: Policy
    waiting: list[Held]  # not yet counted, in arrival order (sorted when counted)
    pending: list[Counted]  # counted, as the store's pending list would hold them
    copies: dict[int, list[Counted]] | None = None  # per counted match's seq: its copies
    calls: bool = False  # its waiting matches may have copies (a sharedEventID among them)
    due_at: float = math.inf  # its oldest waiting eventTime, once scheduled


class ThresholdLane:
    """The lane's groups, for the threshold rules in `policies` (see the module's doc).

    `buffer` is the decider's reorder heap, where a group handed over puts its waiting
    matches; `seq` the decider's arrival counter, so ties sort as they would there.
    """

    def __init__(self, policies: dict[str, Policy], store: StateStore, buffer: list[Queued],
                 seq: Iterator[int]) -> None:
        self.rules = frozenset(policies)
        self.groups: dict[str, LaneGroup] = {}
        self._policies = policies
        self._store = store
        self._buffer = buffer
        self._seq = seq
        self._general: set[str] = set()  # groups the general path has taken over
        self._due: list[tuple[float, str]] = []  # (when, group); stale ones skipped
        self._settled = float("-inf")  # the clock groups were last counted up to
        self._purged = float("-inf")

    def hold(self, rule: Rule, group: str | None, t: float, event_id: Any, call: Any,
             account: Any, time: Any, record: Record | Ref | bytes) -> bool:
        """Keep a match of a lane rule, not yet late, until it is counted. False when the
        lane cannot take it (a group the general path holds, an eventID that is not a
        string or a sharedEventID neither a string nor null): the general path decides it.
        """
        if type(event_id) is not str or not (call is None or type(call) is str):
            return False
        call = call or ""
        key = f"w\x1f{rule.id}\x1f{group}"  # windows.group_key, inlined: once per record
        lane = self.groups.get(key)
        if lane is None and (key in self._general or (lane := self._open(key, rule, group))
                             is None):
            return False
        if t < lane.due_at:  # the group is due by its oldest
            lane.due_at = t
            heapq.heappush(self._due, (t, key))
        lane.waiting.append((t, call, event_id, next(self._seq), account, time, record))
        if call:
            lane.calls = True
        return True

    def oldest(self) -> float:
        """The oldest eventTime that may still wait here (inf: none)."""
        return self._due[0][0] if self._due else math.inf

    def settle(self, clock: float) -> None:
        """Count the waiting matches older than `clock` (inf: all of them, the input's end).

        At most once every SETTLE_EVERY of event time, however often the decider releases:
        counting later changes no decision (a group's matches are still counted in order),
        only which release first writes an alert that a handed-over match completes.
        """
        if clock - self._settled < SETTLE_EVERY and clock != math.inf:
            return
        self._settled = clock
        due, groups = self._due, self.groups
        while due and due[0][0] < clock:
            when, key = heapq.heappop(due)
            lane = groups.get(key)
            if lane is not None and lane.due_at == when:
                lane.due_at = math.inf
                self._settle(key, lane, clock)

    def hand_over(self, key: str) -> None:
        """Give a group to the general path: its waiting matches go to the decider's buffer,
        its pending ones to the store as windows.grouped would have left them (unless the
        store would already have purged them)."""
        self._general.add(key)
        lane = self.groups.pop(key, None)
        if lane is None:
            return
        for held in lane.waiting:
            heapq.heappush(self._buffer, (*held[:4], Match(lane.rule, _record(held), lane.group)))
        pending, copies = lane.pending, lane.copies or {}
        if pending and win.expiry([], pending, lane.policy) >= self._store.purged_at:
            entries = [_pending_entry(held, copies.get(held[3], ())) for held in pending]
            self._store.update(key, win.counted_only(entries, lane.policy))

    def close(self) -> None:
        """The input's end: every group goes to the store (settle(inf) first), so the store
        holds what the general path would have left; a next run may use the lane again."""
        for key in list(self.groups):
            self.hand_over(key)
        self._general.clear()

    def purge(self, watermark: float) -> None:
        """Forget the groups the store would have purged at `watermark` (when it purges)."""
        if watermark <= self._purged:
            return
        self._purged = watermark
        gone = [key for key, lane in self.groups.items() if not lane.waiting and (
            not lane.pending or win.expiry([], lane.pending, lane.policy) < watermark)]
        for key in gone:
            del self.groups[key]

    def _open(self, key: str, rule: Rule, group: str | None) -> LaneGroup | None:
        """A group's first match in this run: a lane group, unless the store holds it (an
        earlier run's state, on a persistent store), which the general path continues."""
        if self._store.get(key) is not None:
            self._general.add(key)
            return None
        lane = self.groups[key] = LaneGroup(rule, group, self._policies[rule.id], [], [])
        return lane

    def _settle(self, key: str, lane: LaneGroup, clock: float) -> None:
        """Count, in order, a group's waiting matches older than `clock`."""
        waiting = lane.waiting
        if not waiting:
            return
        waiting.sort()
        if waiting[-1][0] < clock:
            ready, later = waiting, []
        else:
            split = bisect_left(waiting, (clock,))  # the first at or after clock
            ready, later = waiting[:split], waiting[split:]
        if ready and (not lane.calls or not any(held[1] for held in ready)) and (
                _count_all(lane.pending, ready, lane.policy)):
            ready = []
        for n, held in enumerate(ready):
            if not _count_one(lane, held):
                lane.waiting = ready[n:] + later
                self.hand_over(key)
                return
        lane.waiting = later
        if later:
            lane.due_at = later[0][0]
            heapq.heappush(self._due, (later[0][0], key))
        else:
            lane.calls = False
        copies = lane.copies
        if copies is not None and len(copies) > len(lane.pending):  # forget pruned ones'
            counted = {entry[3] for entry in lane.pending}
            lane.copies = {seq: held for seq, held in copies.items() if seq in counted}


def _count_all(pending: list[Counted], ready: list[Held], policy: Policy) -> bool:
    """Count sorted matches at once when nothing but counting can happen: too few for a
    run, no copies, none before the newest counted. Then what _count_one would leave, one
    by one, is every match within a window of the newest. False: count one by one."""
    if len(pending) + len(ready) >= policy.count or (
            pending and win.order(pending[-1]) > (ready[0][0], "")):
        return False
    pending += [held[:5] for held in ready]  # the record is not needed to count
    win.cut_to_window(pending, policy)
    return True


def _count_one(lane: LaneGroup, held: Held) -> bool:
    """Count one match in its group's pending list, as windows._count would; False when
    that would not be a plain count (the general path must decide it)."""
    pending, policy = lane.pending, lane.policy
    t, call = held[0], held[1]
    win.forget_stale(pending, policy, t)  # windows._prune
    if call:
        for counted in pending:
            if counted[1] == call:  # a copy of a counted call: list it, count it once
                copies = lane.copies if lane.copies is not None else {}
                lane.copies = copies
                copies.setdefault(counted[3], []).append(held[:5])
                return True
    if (pending and win.order(pending[-1]) > (t, call)) or win.completes_run(pending, t, policy):
        return False  # an insertion before the newest, or a run completes
    pending.append(held[:5])
    win.cut_to_window(pending, policy)
    return True


def _record(held: Held) -> Record:
    """The record a lane match holds, or its stub (made whole by the decider's resolve)."""
    record = held[6]
    if type(record) is dict:
        return record
    return stub_of((held[2], held[1] or None, held[4], held[5]), record)


def _pending_entry(held: Counted, copies: Any) -> list[Any]:
    """A counted lane match, and its copies, as windows._count leaves it in a group's
    pending list."""
    account = held[4]
    entry = win.pending_entry(held[0], held[1] or None, held[2] or None,
                              account if isinstance(account, str) else None)
    for copy in copies:
        win.add_copy(entry, copy[2], copy[4] if isinstance(copy[4], str) else None)
    return entry
