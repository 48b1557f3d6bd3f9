"""Matches -> alerts: fold the copies of one call, hold alerts until their window closes.

A CodeArtifact call can reach up to three accounts as records with their own eventIDs and a
shared `sharedEventID`; an analyst wants one alert listing every copy. Copies can arrive in
any order and in different log files, so an alert is held until the watermark (the latest
eventTime seen) has moved `allowed_lateness` past it, then emitted with everything folded in.
`flush()` emits the rest at the end of a scan.

This is the stateless core; dedup, threshold and first_seen windows build on the same
watermark (see engine.state when present).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from engine.evaluator import Evaluator
from engine.eventtime import event_epoch, iso, now_iso
from engine.model import Alert, Match, alert_id_for

Summarise = Callable[[Match], str]


class Decider:
    """Turns matches into alerts, folding cross-account copies of one call."""

    def __init__(self, allowed_lateness: float, summarise: Summarise) -> None:
        self.allowed_lateness = allowed_lateness
        self.summarise = summarise
        self.watermark = float("-inf")
        self._open: dict[tuple[str, str], Alert] = {}
        self._closing: list[tuple[float, int, tuple[str, str]]] = []
        self._tiebreak = itertools.count()

    def offer(self, match: Match) -> list[Alert]:
        """Fold `match` into its alert; return the alerts whose window has closed."""
        record = match.record
        epoch = event_epoch(record)
        if epoch is None:
            epoch = self.watermark if self.watermark > float("-inf") else 0.0
        self.watermark = max(self.watermark, epoch)
        call = str(record.get("sharedEventID") or record.get("eventID") or next(self._tiebreak))
        key = (match.rule.id, call)
        alert = self._open.get(key)
        if alert is None:
            self._open[key] = self._new_alert(match, call, epoch)
            heapq.heappush(self._closing, (epoch, next(self._tiebreak), key))
        else:
            fold(alert, match)
        return self._expire()

    def flush(self) -> list[Alert]:
        """Every alert still open, oldest first: the end of the input closes all windows."""
        alerts = sorted(self._open.values(), key=lambda a: (a.first_event_time, a.rule.id))
        self._open.clear()
        self._closing.clear()
        return alerts

    def _expire(self) -> list[Alert]:
        closed = []
        horizon = self.watermark - self.allowed_lateness
        while self._closing and self._closing[0][0] < horizon:
            _, _, key = heapq.heappop(self._closing)
            closed.append(self._open.pop(key))
        return closed

    def _new_alert(self, match: Match, call: str, epoch: float) -> Alert:
        record = match.record
        time = record.get("eventTime") or iso(epoch)
        alert = Alert(
            alert_id=alert_id_for(match.rule.id, match.group_key, call),
            rule=match.rule, summary=self.summarise(match), group_key=match.group_key,
            event=record, first_event_time=time, last_event_time=time,
            detected_at=now_iso(), event_count=1,
        )
        _add_ids(alert, record)
        return alert


def fold(alert: Alert, match: Match) -> None:
    """Add a match to an alert; a copy of a call already counted does not count again."""
    record = match.record
    shared = record.get("sharedEventID")
    if not (shared and shared == alert.event.get("sharedEventID")):
        alert.event_count += 1
    time = record.get("eventTime")
    if isinstance(time, str):
        alert.first_event_time = min(alert.first_event_time, time)
        alert.last_event_time = max(alert.last_event_time, time)
    _add_ids(alert, record)


def _add_ids(alert: Alert, record: dict[str, object]) -> None:
    event_id = record.get("eventID")
    if isinstance(event_id, str) and event_id not in alert.event_ids:
        alert.event_ids.append(event_id)
    account = record.get("recipientAccountId")
    if isinstance(account, str) and account not in alert.account_ids:
        alert.account_ids.append(account)


def new_decider(evaluator: Evaluator, allowed_lateness: float) -> Decider:
    """The decider for a rule set; the one place that chooses how alerts are decided."""
    compiled = {c.rule.id: c for c in evaluator.rules}
    return Decider(allowed_lateness, lambda m: compiled[m.rule.id].render_summary(m.record))
