"""Sequences, absent steps and absence (SPEC §8), as pure changes of stored values.

Like engine.state.windows, every function returns an `Update` for `StateStore.update`, so a
shared store can run it again after losing a compare-and-set race, and every backend keeps
the same plain JSON. Their result is `(results, hint)`: `results` are windows.Result tuples
(an alert opened, or folded into), `hint` a deadline the decider must register (None: none).

A sequence group's value (`q` keys):
  e: the calls that matched a step and may still be used, sorted by (eventTime, call), each
     [epoch, call key, eventTime text, eventIDs, accounts, step mask, record or null]; the call
     key is the sharedEventID, else the eventID, so copies of a call are one entry; only a
     sequence with an absent last step keeps records (its alert's event is the first step's)
  u: [epoch, call key] of the last call a fired chain used: later chains start after it
  k: eventTimes of recent matches of an absent step (for first steps that arrive late)
  w: alert windows (windows.Window dicts, plus `st`: the chain's steps), folded by dedup
  h: the deadline this group has registered with the decider, X: expiry
An absence group's value: the last match (t, ck, tm, ids, ac, ev), whether its gap has
fired (`fd`), and w, h, X as above.

Time: a change is decided at `now`, the group's own clock: its match's eventTime minus the
margin (the lateness, where matches may come out of order), never past the caller's clock
`cap` (the watermark minus the lateness). First steps of an absent sequence whose deadline
(eventTime + within) is behind `now` are settled before anything else, so the outcome does
not depend on whether a later match or the decider's tick got there first.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import Any

from engine.inputs.eventtime import iso
from engine.model import alert_id_for
from engine.state import NEVER, Change, Update
from engine.state import windows as win
from engine.state.windows import Hit, Result, Window

Entry = list[Any]
Value = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Chain:
    """A sequence or absence rule, as its state changes need it (seconds of event time)."""

    within: float
    counts: tuple[int, ...] = ()  # calls each positive step needs (empty: an absence rule)
    names: tuple[str, ...] = ()  # the positive steps' names
    absent: bool = False  # the last step must not happen
    dedup: float = 0.0
    keep: float = 3600.0  # how long an alert window stays for late folds and copies
    margin: float = 0.0
    lateness: float = 0.0  # a partial chain stays `within` + this after its first call

    @property
    def last(self) -> int:
        return len(self.counts)  # the index of the absent step, when there is one


def call_key(hit: Hit) -> str:
    return hit.call or hit.event_id or ""


def step(hit: Hit, index: int, chain: Chain, cap: float, live: bool) -> Update:
    """A match of step `index` of a sequence."""

    def change(value: Value | None) -> Change:
        value = value or {"e": [], "u": None, "k": [], "w": [], "h": None}
        now = min(hit.t - chain.margin, cap)
        results = _settle(value, now, chain, hit, live)
        _prune(value, now, chain)
        results += _place(value, hit, index, chain, live)
        return _finish(value, chain, results)

    return change


def absence(hit: Hit, chain: Chain, cap: float, live: bool) -> Update:
    """A match of an absence rule: the group's last match moves on (or a copy folds in)."""

    def change(value: Value | None) -> Change:
        results: list[Result] = []
        if value is not None:
            now = min(hit.t - chain.margin, cap)
            results = _settle(value, now, chain, hit, live)
            _prune_windows(value, now, chain)
        if value is None or hit.t > value["t"]:
            value = {"w": [], "h": None, **(value or {}), "t": hit.t, "ck": call_key(hit),
                     "tm": hit.time, "ids": _one(hit.event_id), "ac": _one(hit.account),
                     "ev": hit.record, "fd": False}
        elif hit.t == value["t"] and call_key(hit) == value["ck"]:
            win.append_new(value["ids"], hit.event_id)
            win.append_new(value["ac"], hit.account)
        else:
            results += _fold_copy(value, hit)
        return _finish(value, chain, results)

    return change


def settle(clock: float, chain: Chain, rule_id: str, group: str | None, summarise: Any,
           live: bool) -> Update:
    """The decider's tick: fire what is due at `clock`; the result's hint is the group's
    next deadline, or None (nothing left to wait for: unregister it)."""

    def change(value: Value | None) -> Change:
        if value is None:
            return Change(None, 0.0, ([], None))
        probe = Hit(rule_id, group, clock, iso(clock), None, None, None, {}, summarise)
        results = _settle(value, clock, chain, probe, live)
        if "e" in value:
            _prune(value, clock, chain)
        deadline = _deadline(value, chain)
        value["h"] = deadline
        state, expires, _ = _finish(value, chain, results)
        return Change(state, expires, (results, deadline))

    return change


def registry(changes: dict[str, tuple[float | None, float | None]]) -> Update:
    """A rule's index of groups waiting on a deadline: {key: (seen, new)} sets key's hint to
    `new` (None: removes it) where it still is `seen`; a newer registration stays, and the
    earlier of two hints wins (a hint is the earliest moment worth looking)."""

    def change(value: Value | None) -> Change:
        groups = dict((value or {}).get("g", {}))
        for key, (seen, new) in changes.items():
            current = groups.get(key)
            if current is None or current == seen:
                if new is None:
                    groups.pop(key, None)
                else:
                    groups[key] = new
            elif new is not None:
                groups[key] = min(current, new)
        if not groups:
            return Change(None, 0.0, groups)
        return Change({"g": groups}, NEVER, groups)

    return change


# --- placing one match ------------------------------------------------------------------

def _place(value: Value, hit: Hit, index: int, chain: Chain, live: bool) -> list[Result]:
    ck = call_key(hit)
    if chain.absent and index == chain.last:
        _cancel(value, hit.t, chain)
        return []
    used = value["u"]
    if used is not None and (hit.t, ck) <= (used[0], used[1]):
        return _fold_copy(value, hit)  # a copy of a used call lists itself; else too early
    entries: list[Entry] = value["e"]
    at = bisect_left(entries, (hit.t, ck), key=lambda e: (e[0], e[1]))
    bit = 1 << index
    if at < len(entries) and entries[at][0] == hit.t and entries[at][1] == ck:
        entry = entries[at]  # a copy of a call already here, or the same call for another step
        win.append_new(entry[3], hit.event_id)
        win.append_new(entry[4], hit.account)
        if index == 0 and chain.absent and _cancelled(value, hit.t, chain):
            bit = 0
        entry[5] |= bit
        if bit and index == 0 and chain.absent and entry[6] is None:
            entry[6] = hit.record
    else:
        if index == 0 and chain.absent and _cancelled(value, hit.t, chain):
            return []  # its absent step already happened within `within`
        if index > 0 and chain.margin == 0 and not _started(entries, hit.t, chain):
            return []  # in eventTime order nothing can start a chain before it any more
        record = hit.record if index == 0 and chain.absent else None
        entries.insert(at, [hit.t, ck, hit.time, _one(hit.event_id), _one(hit.account), bit,
                            record])
    if chain.absent:
        return []  # fires at a deadline (settle), never on a match
    if chain.margin == 0 and index != len(chain.counts) - 1:
        return []  # in eventTime order only a call of the last step can complete a chain
    found = _first_chain(entries, chain.counts, chain.within, None)
    if found is None:
        return []
    return [_fire(value, found, hit.record, chain, hit, live)]


def _started(entries: list[Entry], t: float, chain: Chain) -> bool:
    return any(e[5] & 1 and t - chain.within <= e[0] <= t for e in entries)


def _cancel(value: Value, t: float, chain: Chain) -> None:
    """An absent step happened at `t`: no first step within `within` before it may fire."""
    entries = value["e"]
    for entry in entries:
        if entry[5] & 1 and t - chain.within <= entry[0] <= t:
            entry[5] &= ~1
            entry[6] = None
    value["e"] = [e for e in entries if e[5]]
    if t not in value["k"]:
        insort(value["k"], t)  # first steps may still arrive out of order


def _cancelled(value: Value, t: float, chain: Chain) -> bool:
    return any(t <= c <= t + chain.within for c in value["k"])


def _first_chain(entries: list[Entry], counts: tuple[int, ...], within: float,
                 only: int | None) -> list[int] | None:
    """The chain with the earliest first call: entry indices, step by step, each step's
    calls no earlier than the previous step's, all within `within` of the first. Greedy
    (the earliest calls that fit each step), which finds a chain whenever one exists.
    `only`: try that first call alone."""
    starts = [only] if only is not None else [
        n for n, e in enumerate(entries) if e[5] & 1]
    for start in starts:
        found = _chain_from(entries, start, counts, within)
        if found is not None:
            return found
    return None


def _chain_from(entries: list[Entry], start: int, counts: tuple[int, ...],
                within: float) -> list[int] | None:
    limit = entries[start][0] + within
    used: list[int] = []
    taken: set[int] = set()
    begin, earliest = start, entries[start][0]
    for index, need in enumerate(counts):
        bit, got = 1 << index, 0
        at = begin if index == 0 else bisect_left(entries, earliest, key=lambda e: e[0])
        while got < need and at < len(entries):
            entry = entries[at]
            if entry[0] > limit:
                return None
            if entry[5] & bit and at not in taken:
                taken.add(at)
                used.append(at)
                got += 1
                earliest = entry[0]
            at += 1
        if got < need:
            return None
    return used


# --- firing -----------------------------------------------------------------------------

def _fire(value: Value, used: list[int], record: Any, chain: Chain, hit: Hit,
          live: bool) -> Result:
    """A chain is complete: its calls are used up, and its alert opens or folds by dedup."""
    entries: list[Entry] = value["e"]
    chain_entries = [entries[n] for n in used]
    steps = []
    step_of = [n for n, need in enumerate(chain.counts) for _ in range(need)]
    for entry, index in zip(chain_entries, step_of, strict=True):
        steps.append({"name": chain.names[index], "event_id": entry[3][0] if entry[3] else None,
                      "event_time": entry[2]})
    last = max(chain_entries, key=lambda e: (e[0], e[1]))
    value["u"] = [last[0], last[1]]
    value["e"] = [e for e in entries if (e[0], e[1]) > (last[0], last[1])]
    first = chain_entries[0]
    return _open_or_fold(value, chain, hit, first, last, chain_entries, record, steps, live)


def _open_or_fold(value: Value, chain: Chain, hit: Hit, first: Entry, last: Entry,
                  calls: list[Entry], record: Any, steps: list[dict[str, Any]] | None,
                  live: bool) -> Result:
    t0 = first[0]
    cl = {e[1]: e[0] for e in calls}
    for w in value["w"]:
        if chain.dedup and w["lo"] <= t0 < w["e"]:
            w["n"] += len(calls)
            w["r"] += 1
            _widen(w, first, last, calls)
            w["cl"].update(cl)
            return ("fold", w["id"], max(w["e"], w["lt"]), None)
    w = {"id": alert_id_for(hit.rule_id, hit.group, iso(t0)), "s": t0, "lo": t0 - chain.dedup,
         "e": t0 + chain.dedup, "n": len(calls), "ft": t0, "f": first[2], "lt": last[0],
         "l": last[2], "ids": [], "ac": [], "cl": cl, "ev": record,
         "su": hit.summarise(record), "g": hit.group, "r": 1, "x": 0, "st": steps}
    _widen(w, first, last, calls)
    value["w"].append(w)
    return ("open", w["id"], max(w["e"], w["lt"]), win.claim_now(w, live))


def _widen(w: Window, first: Entry, last: Entry, calls: list[Entry]) -> None:
    if first[0] < w["ft"]:
        w["ft"], w["f"] = first[0], first[2]
    if last[0] > w["lt"]:
        w["lt"], w["l"] = last[0], last[2]
    for entry in calls:
        for event_id in entry[3]:
            _add(w["ids"], event_id)
        for account in entry[4]:
            _add(w["ac"], account)


def _add(items: list[str], item: str) -> None:
    if item not in items and len(items) < win.MAX_IDS:
        items.append(item)


def _fold_copy(value: Value, hit: Hit) -> list[Result]:
    """A copy of a call an alert already used folds into that alert (listed, not counted)."""
    if hit.call is None:
        return []
    for w in value["w"]:
        if hit.call in w["cl"]:
            win.fold(w, hit, counted=False)
            return [("fold", w["id"], max(w["e"], w["lt"]), None)]
    return []


# --- time passing -----------------------------------------------------------------------

def _settle(value: Value, now: float, chain: Chain, hit: Hit, live: bool) -> list[Result]:
    """Fire (or drop) what is due at `now`: first steps of an absent sequence past their
    deadline, an absence group's gap."""
    if not chain.counts:
        if value["fd"] or value["t"] + chain.within >= now:
            return []
        value["fd"] = True
        entry = [value["t"], value["ck"], value["tm"], value["ids"], value["ac"], 1, None]
        return [_open_or_fold(value, chain, hit, entry, entry, [entry], value["ev"], None,
                              live)]
    if not chain.absent:
        return []
    results: list[Result] = []
    while True:
        entries = value["e"]
        due = next((n for n, e in enumerate(entries)
                    if e[5] & 1 and e[0] + chain.within < now), None)
        if due is None:
            return results
        used = _first_chain(entries, chain.counts, chain.within, due)
        if used is None:
            entries[due][5] &= ~1
            entries[due][6] = None
            value["e"] = [e for e in entries if e[5]]
        else:
            results.append(_fire(value, used, entries[due][6], chain, hit, live))


def _prune(value: Value, now: float, chain: Chain) -> None:
    """Forget calls no chain can use any more, absent-step times no late first step can
    meet, and windows past their keep."""
    horizon = now - chain.within
    entries = value["e"]
    if entries and entries[0][0] < horizon:
        value["e"] = [e for e in entries if e[0] >= horizon or (chain.absent and e[5] & 1)]
    value["k"] = [t for t in value["k"] if t >= now]
    _prune_windows(value, now, chain)


def _prune_windows(value: Value, now: float, chain: Chain) -> None:
    windows = value["w"]
    if windows:
        value["w"] = [w for w in windows if max(w["e"], w["lt"]) + chain.keep >= now
                      or w["x"] < w["r"]]  # never before the decider has written it


def _deadline(value: Value, chain: Chain) -> float | None:
    if not chain.counts:
        return None if value["fd"] else value["t"] + chain.within
    if not chain.absent:
        return None
    firsts = [e[0] for e in value["e"] if e[5] & 1]
    return min(firsts) + chain.within if firsts else None


def _finish(value: Value, chain: Chain, results: list[Result]) -> Change:
    deadline = _deadline(value, chain)
    register = None
    if deadline is not None and (value.get("h") is None or deadline < value["h"]):
        value["h"] = register = deadline
    ends = [max(w["e"], w["lt"]) for w in value["w"]]
    if "e" in value:
        # A partial chain is forgotten `within` + the lateness after its first call; the
        # last call a chain used, the lateness after it (later copies and late calls).
        ends += [e[0] + chain.within + chain.lateness - chain.keep for e in value["e"]]
        ends += [t + chain.within + chain.lateness - chain.keep for t in value["k"]]
        if value.get("u") is not None:
            ends.append(value["u"][0] + chain.lateness - chain.keep)
        if not ends:
            return Change(None, 0.0, (results, register))
    else:
        ends.append(value["t"] + chain.within)
    expires = max(ends) + chain.keep
    value["X"] = expires
    return Change(value, expires, (results, register))


def _one(item: str | None) -> list[str]:
    return [item] if item else []
