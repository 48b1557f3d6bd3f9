"""Dedup, threshold, first_seen and copy folding, as pure changes of stored values.

Every function here returns an `Update` for `StateStore.update`: given the stored value (or
None) it returns the new value, its expiry and a result, and it touches nothing else, so a
shared store can run it again after losing a compare-and-set race. The values are plain JSON
(dicts, lists, strings, numbers) so SQLite and Redis store them as they are.

Three kinds of value:

- an alert window (`Window`, a dict): one alert with everything folded into it so far. Keys:
  id (alert_id), s/e (span [s, e) of event time that folds in), lo (a late match in [lo, s)
  folds in too), n (event_count), ft/f and lt/l (first/last eventTime as epoch and text),
  ids, ac (event_ids, account_ids), cl (sharedEventIDs folded, for copies), ev (the record
  that opened it), su (its summary), g (group_key), r (revision: +1 per change), x (revision
  last emitted; 0: never), X (expiry of the value).
- a group (`{"p": pending, "w": windows, "X": expiry}`) for rules with dedup or threshold:
  `p` holds the counted matches not yet in an alert, sorted by eventTime, as
  [epoch, sharedEventID, [eventIDs], [accounts]]; `w` the recent windows.
- a first_seen value (`{"l": last seen epoch, "c": {sharedEventID: verdict}, "X": expiry}`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.inputs.eventtime import iso
from engine.model import Record, alert_id_for
from engine.state import NEVER, Change, Update

MAX_IDS = 100  # event_ids/account_ids kept per alert; event_count stays exact
CALLS_PRUNE_AT = 64  # prune remembered sharedEventIDs once a value holds this many
COPIES_WITHIN = 3600.0  # copies of a call arrive within this much eventTime of each other

Window = dict[str, Any]
Result = tuple[str, str | None, float, Window | None]  # (kind, alert_id, end, emitted snapshot)
COUNTED: Result = ("count", None, 0.0, None)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a rule turns matches into alerts, in seconds of event time."""

    count: int = 1  # matches that must fall within `window` (1: every match may open)
    window: float = 0.0  # the threshold span
    quiet: float = 0.0  # dedup window (after a threshold: the quiet period); 0: one per call
    keep: float = 3600.0  # how long a closed window stays for late folds and copies
    margin: float = 0.0  # how far behind the newest match a match may still be decided
    distinct: bool = False  # threshold.distinct: count distinct values, not matches


def as_is(record: Record) -> Record:
    """Hit.whole for a record that is whole already (every match but a lane stub's)."""
    return record


@dataclass(slots=True)
class Hit:
    """One match as the state functions need it."""

    rule_id: str
    group: str | None
    t: float
    time: str
    call: str | None  # sharedEventID, when the call was delivered as copies
    event_id: str | None
    account: str | None
    record: Record
    summarise: Callable[[Record], str]
    step: int = -1  # the sequence step it matched (engine.state.sequences)
    distinct: str | None = None  # threshold.distinct's value, as text
    # `record` as an alert shows it. A threshold-lane match may come as a stub (its four
    # counted fields: engine.decide.stubs) that is made whole only if it opens a window:
    # most matches only count or fold, and making each whole meant reading its file again.
    whole: Callable[[Record], Record] = as_is


def open_window(hit: Hit, alert_id: str, lo: float, end: float) -> Window:
    record = hit.whole(hit.record)
    w: Window = {"id": alert_id, "s": hit.t, "lo": lo, "e": end, "n": 0, "ft": hit.t,
                 "f": hit.time, "lt": hit.t, "l": hit.time, "ids": [], "ac": [], "cl": {},
                 "ev": record, "su": hit.summarise(record), "g": hit.group,
                 "r": 0, "x": 0}
    fold(w, hit, counted=True)
    return w


def fold(w: Window, hit: Hit, counted: bool) -> None:
    """Add a match to a window; a copy of a call already in it does not count again."""
    w["n"] += counted
    w["r"] += 1
    if hit.t < w["ft"]:
        w["ft"], w["f"] = hit.t, hit.time
    if hit.t > w["lt"]:
        w["lt"], w["l"] = hit.t, hit.time
    _add_ids(w, hit.event_id, hit.account)
    if hit.call is not None:
        w["cl"][hit.call] = hit.t
        if len(w["cl"]) > CALLS_PRUNE_AT:
            w["cl"] = {c: t for c, t in w["cl"].items() if t >= w["lt"] - COPIES_WITHIN}


def _add_ids(w: Window, event_id: str | None, account: str | None) -> None:
    if event_id is not None and event_id not in w["ids"] and len(w["ids"]) < MAX_IDS:
        w["ids"].append(event_id)
    if account is not None and account not in w["ac"] and len(w["ac"]) < MAX_IDS:
        w["ac"].append(account)


def claim_now(w: Window, live: bool) -> Window | None:
    """In live mode an alert is emitted as it opens: mark it sent in the same change."""
    if not live:
        return None
    return claimed(w)


def claimed(w: Window) -> Window:
    """A snapshot of `w` to emit; `w` is marked as emitted up to its current revision."""
    snapshot = dict(w, ids=list(w["ids"]), ac=list(w["ac"]), upd=w["x"] > 0)
    w["x"] = w["r"]
    return snapshot


def per_call(hit: Hit, policy: Policy, live: bool) -> Update:
    """A rule without dedup or threshold: one alert per call, its copies folded in."""

    def change(w: Window | None) -> Change:
        if w is None:
            alert_id = alert_id_for(hit.rule_id, hit.group, str(hit.call))
            w = open_window(hit, alert_id, hit.t, hit.t)
            w["X"] = hit.t + policy.keep
            return Change(w, w["X"], ("open", alert_id, hit.t, claim_now(w, live)))
        fold(w, hit, counted=False)
        return Change(w, w["X"], ("fold", w["id"], w["e"], None))

    return change


def grouped(hit: Hit, policy: Policy, live: bool) -> Update:
    """A rule with dedup and/or threshold: fold, count, or open a window for `hit`."""

    def change(group: dict[str, Any] | None) -> Change:
        group = group or {"p": [], "w": []}
        _prune(group, policy, hit.t)
        result = _place(group, hit, policy, live)
        if not group["p"] and not group["w"]:
            return Change(None, 0.0, result)
        group["X"] = _expiry(group, policy)
        return Change(group, group["X"], result)

    return change


def _place(group: dict[str, Any], hit: Hit, policy: Policy, live: bool) -> Result:
    w = _window_for(group, hit)
    if w is not None:
        copy = hit.call is not None and hit.call in w["cl"]
        fold(w, hit, counted=not copy)
        return ("fold", w["id"], w["e"], None)
    if policy.count == 1:
        w = open_window(hit, alert_id_for(hit.rule_id, hit.group, iso(hit.t)),
                        hit.t - policy.quiet, hit.t + policy.quiet)
        group["w"].append(w)
        return ("open", w["id"], w["e"], claim_now(w, live))
    return _count(group, hit, policy, live)


def _window_for(group: dict[str, Any], hit: Hit) -> Window | None:
    """The window `hit` folds into: its copies', the one spanning it, or one just after it."""
    windows: list[Window] = group["w"]
    if hit.call is not None:
        for w in windows:
            if hit.call in w["cl"]:
                return w
    for w in windows:
        if w["s"] <= hit.t < w["e"]:
            return w
    for w in sorted(windows, key=lambda w: w["s"]):
        if w["lo"] <= hit.t < w["s"]:
            return w
    return None


def _count(group: dict[str, Any], hit: Hit, policy: Policy, live: bool) -> Result:
    pending: list[list[Any]] = group["p"]
    if hit.call is not None:
        for entry in pending:
            if entry[1] == hit.call:  # a copy of a counted call: list it, count it once
                add_copy(entry, hit.event_id, hit.account)
                return COUNTED
    if policy.distinct and hit.distinct is None:
        return COUNTED  # only non-null values are counted (SPEC §8)
    entry = pending_entry(hit.t, hit.call, hit.event_id, hit.account)
    if policy.distinct:
        entry.append(hit.distinct)
    if not pending or order(pending[-1]) <= order(entry):
        pending.append(entry)  # the usual case: matches are decided in eventTime order
        at = len(pending) - 1
    else:
        at = bisect_right(pending, order(entry), key=order)
        pending.insert(at, entry)
    at -= cut_to_window(pending, policy)
    if policy.distinct:
        span = _distinct_run(pending, at, policy) if at >= 0 else None
        if span is None:
            return COUNTED
        return _fire(group, pending[span[0]:span[1] + 1], hit, policy, live)
    run = _run_through(pending, at, policy) if at >= 0 else None
    if run is None:
        return COUNTED
    return _fire(group, pending[run:run + policy.count], hit, policy, live)


def group_key(rule_id: str, group: str | None) -> str:
    """The state key of a dedup/threshold group's value (`grouped`; engine.decide.lane too)."""
    return f"w\x1f{rule_id}\x1f{group}"


# The counting rules below are shared with the decider's threshold lane (engine.decide.lane), which
# counts in process what `_count` would count, on its own entries: tuples that start as a
# pending entry does, (eventTime, sharedEventID or "", ...). Each takes either kind.

def pending_entry(t: float, call: str | None, event_id: str | None,
                  account: str | None) -> list[Any]:
    """A counted match as a group's pending list holds it (the lane hands its counted
    matches to the store as these)."""
    return [t, call, [event_id] if event_id else [], [account] if account else []]


def add_copy(entry: list[Any], event_id: str | None, account: str | None) -> None:
    """A copy of a counted call is listed in its entry, and not counted again."""
    append_new(entry[2], event_id)
    append_new(entry[3], account)


def order(entry: Sequence[Any]) -> tuple[float, str]:
    """Pending matches are kept sorted by (eventTime, sharedEventID)."""
    return (entry[0], entry[1] or "")


def cut_to_window(pending: list[Any], policy: Policy) -> int:
    """Forget the pending matches too old to be in a run with the newest: a match can still
    arrive `margin` behind the newest one and form a run with older ones, none older than
    that less `window`. Returns how many were forgotten."""
    oldest = pending[-1][0] - policy.window - policy.margin
    if pending[0][0] > oldest:
        return 0  # the usual case once a group is counting: nothing is that old
    cut = bisect_right(pending, oldest, key=entry_time)
    del pending[:cut]
    return cut


def completes_run(pending: Sequence[Sequence[Any]], t: float, policy: Policy) -> bool:
    """Whether a match at `t`, counted after every pending one, completes a run with the
    `count - 1` newest: the lane asks before it counts, and hands such a match over."""
    first = len(pending) + 1 - policy.count
    return first >= 0 and in_window(pending[first][0], t, policy)


def in_window(first: float, last: float, policy: Policy) -> bool:
    """Matches from `first` to `last` (eventTime) fall within one threshold window."""
    return last - first < policy.window


def forget_stale(pending: list[Any], policy: Policy, now: float) -> None:
    """Forget the pending matches that can matter neither to a match at `now` nor to any
    later one, a late one `keep` behind included."""
    if pending and pending[0][0] + policy.window + policy.keep < now:
        del pending[:bisect_right(pending, now - policy.window - policy.keep,
                                  key=entry_time)]


def expiry(window_ends: list[float], pending: Sequence[Sequence[Any]], policy: Policy) -> float:
    """When a group's value expires: `keep` after its last window ends, or after the
    window of its newest pending match (the lane forgets a group as the store would)."""
    ends = [*window_ends, pending[-1][0] + policy.window] if pending else window_ends
    return float(max(ends)) + policy.keep


def counted_only(pending: list[list[Any]], policy: Policy) -> Update:
    """Set a group that has counted `pending` and opened no window (the lane hands its
    groups over so, as `grouped` would have left them)."""
    expires = expiry([], pending, policy)
    value = {"p": pending, "w": [], "X": expires}
    return lambda _: Change(value, expires, None)


def entry_time(entry: Sequence[Any]) -> float:
    # A pending_entry is a mixed list ([eventTime, call, event ids, accounts]), so its items
    # are Any; a typed local would make this bisect key ~5 ns slower per call.
    return entry[0]  # type: ignore[no-any-return]


def append_new(items: list[str], item: str | None) -> None:
    if item is not None and item not in items:
        items.append(item)


def _run_through(pending: list[list[Any]], at: int, policy: Policy) -> int | None:
    """The first index of `count` pending matches within `window` that include index `at`.

    Runs without `at` were checked when their own last match was counted.
    """
    count = policy.count
    for i in range(max(0, at - count + 1), min(at, len(pending) - count) + 1):
        if in_window(pending[i][0], pending[i + count - 1][0], policy):
            return i
    return None


def _distinct_run(pending: list[list[Any]], at: int, policy: Policy) -> tuple[int, int] | None:
    """threshold.distinct: the first span [i, j] through index `at`, less than `window`
    long, holding `count` distinct values; the shortest such span ending at the earliest j.

    As for _run_through, spans without `at` were checked when their own last match came.
    """
    newest = pending[at][0]
    for j in range(at, len(pending)):
        if pending[j][0] - newest >= policy.window:
            break
        values: set[Any] = set()
        for i in range(j, -1, -1):
            if pending[j][0] - pending[i][0] >= policy.window:
                break
            values.add(pending[i][4])
            if len(values) >= policy.count:
                if i <= at:
                    return i, j
                break
    return None


def _fire(group: dict[str, Any], run: list[list[Any]], hit: Hit, policy: Policy,
          live: bool) -> Result:
    first, crossing = run[0], run[-1]
    w = open_window(hit, alert_id_for(hit.rule_id, hit.group, iso(first[0])),
                    crossing[0] - policy.window, crossing[0] + policy.quiet)
    w.update(n=len(run), s=first[0], ft=first[0], f=iso(first[0]), lt=crossing[0],
             l=iso(crossing[0]), ids=[], ac=[], cl={e[1]: e[0] for e in run if e[1] is not None})
    for entry in run:
        for event_id in entry[2]:
            _add_ids(w, event_id, None)
        for account in entry[3]:
            _add_ids(w, None, account)
    group["p"] = []  # counting starts again after the quiet period
    group["w"].append(w)
    return ("open", w["id"], w["e"], claim_now(w, live))


def _prune(group: dict[str, Any], policy: Policy, now: float) -> None:
    """Forget what can matter neither to a match at `now` nor to any later one."""
    windows = group["w"]
    if windows and min(w["e"] for w in windows) + policy.keep < now:
        group["w"] = [w for w in windows if w["e"] + policy.keep >= now]
    forget_stale(group["p"], policy, now)


def _expiry(group: dict[str, Any], policy: Policy) -> float:
    return expiry([w["e"] for w in group["w"]], group["p"], policy)


def claim(alert_id: str) -> Update:
    """Mark window `alert_id` emitted; the result is its snapshot, or None if nothing new."""

    def change(value: dict[str, Any] | None) -> Change:
        if value is None:
            return Change(None, 0.0, None)
        windows = value.get("w", [value])
        for w in windows:
            if w["id"] == alert_id and w["r"] > w["x"]:
                return Change(value, value["X"], claimed(w))
        return Change(value, value["X"], None)

    return change


def learn_start(t: float) -> Update:
    """When a first_seen rule's learning began: set by its first match, then fixed."""

    def change(value: dict[str, float] | None) -> Change:
        value = value or {"t": t}
        return Change(value, NEVER, value["t"])

    return change


def novelty(hit: Hit, remember: float, learn_until: float, keep: float) -> Update:
    """Whether `hit`'s value is new for its group (not seen within `remember`); records it.

    A copy of a call already judged gets the same verdict, so copies count once. A value is
    never new before `learn_until`, and a late record older than the last sighting is not new.
    """

    def change(value: dict[str, Any] | None) -> Change:
        calls = value["c"] if value else {}
        if hit.call is not None and hit.call in calls:
            return Change(value, value["X"] if value else 0.0, calls[hit.call][1])
        new = (value is None or hit.t - value["l"] >= remember) and hit.t >= learn_until
        last = hit.t if value is None else max(value["l"], hit.t)
        if hit.call is not None:
            if len(calls) > CALLS_PRUNE_AT:
                calls = {c: v for c, v in calls.items() if v[0] >= last - keep}
            calls[hit.call] = [hit.t, new]
        expires = last + remember
        return Change({"l": last, "c": calls, "X": expires}, expires, new)

    return change
