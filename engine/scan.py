"""The one-shot pipeline: items -> drop repeats -> evaluate -> decide -> emit, with counts.

Everything a user needs to trust a scan is counted here: events, exact eventID repeats,
malformed and skipped payloads (with their origins), matches, alerts and rule errors per rule.
Nothing here stops the stream: a bad payload is a number and a line in the summary.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.decide import Decider
from engine.decode import Malformed, ObjectRef, Skipped
from engine.evaluator import Evaluator
from engine.eventtime import event_epoch
from engine.model import Alert

SAMPLE_LIMIT = 20  # malformed origins listed in the summary; the count is always exact


@dataclass
class ScanStats:
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    skipped: int = 0
    unreadable: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    malformed_samples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


class EventIdMemory:
    """Exact eventID repeats seen within `horizon` seconds of event time.

    Bounded by event time, not by count: a repeat delivered with the same record arrives
    close to it, and forgetting IDs older than the horizon keeps a 1 GB scan's memory flat.
    """

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self._seen: dict[str, float] = {}
        self._newest = float("-inf")
        self._next_purge = 0

    def seen(self, event_id: str, epoch: float | None) -> bool:
        if event_id in self._seen:
            return True
        moment = self._newest if epoch is None else epoch
        self._seen[event_id] = moment
        self._newest = max(self._newest, moment)
        if len(self._seen) >= self._next_purge:
            self._purge()
        return False

    def _purge(self) -> None:
        cutoff = self._newest - self.horizon
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
        self._next_purge = max(2 * len(self._seen), 10_000)


Item = dict[str, Any] | Malformed | Skipped | ObjectRef


def run_scan(
    items: Iterable[Item],
    evaluator: Evaluator,
    decider: Decider,
    emit: Callable[[Alert], None],
    memory: EventIdMemory,
    stats: ScanStats | None = None,
) -> ScanStats:
    """Drive every item through the pipeline; emit alerts as their windows close."""
    stats = stats or ScanStats()
    evaluate, offer = evaluator.evaluate, decider.offer
    for item in items:
        if type(item) is not dict:
            _count_other(item, stats)
            continue
        event_id = item.get("eventID")
        if event_id is not None and memory.seen(event_id, event_epoch(item)):
            stats.duplicates += 1
            continue
        stats.events += 1
        for match in evaluate(item):
            for alert in offer(match):
                _emit(alert, emit, stats)
    for alert in decider.flush():
        _emit(alert, emit, stats)
    stats.elapsed = time.perf_counter() - stats.started
    return stats


def _emit(alert: Alert, emit: Callable[[Alert], None], stats: ScanStats) -> None:
    stats.alerts[alert.rule.id] += 1
    emit(alert)


def _count_other(item: Item, stats: ScanStats) -> None:
    if isinstance(item, Malformed):
        stats.malformed += 1
        if item.reason.startswith("cannot read"):
            stats.unreadable += 1
        if len(stats.malformed_samples) < SAMPLE_LIMIT:
            stats.malformed_samples.append(f"{item.origin}: {item.reason}")
    elif isinstance(item, ObjectRef):
        stats.skipped += 1  # a local scan has no S3 client; the daemon's sources fetch these
    else:
        stats.skipped += 1
