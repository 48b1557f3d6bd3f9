"""What a scan counts, whichever input it reads: the numbers a person needs to trust it.

Events, exact eventID repeats, malformed and skipped payloads (with their origins), records
past the lateness, alerts per rule, and the eventTime span a report wants. Both halves of a
scan write them (engine.scan.filescan counts what it reads, engine.scan.deciding what it
decides), and engine.scan.report prints them: they live here, below both.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.inputs.decode import Item, Malformed, ObjectRef
from engine.model import Alert
from engine.skips import Skips

SAMPLE_LIMIT = 20  # malformed origins listed in the summary; the count is always exact


@dataclass
class ScanStats:
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    skipped: int = 0
    late: int = 0  # records more than allowed_lateness behind the newest eventTime
    unreadable: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    malformed_samples: list[str] = field(default_factory=list)
    skips: Skips = field(default_factory=Skips)  # why, by reason, with the first origin
    span: list[float] | None = None  # [first, last] eventTime epoch, when a report wants them
    started: float = field(default_factory=time.perf_counter)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


def note_span(span: list[float], epochs: Iterable[float | None]) -> None:
    """Widen `span` ([first, last] eventTime epoch) to take in `epochs`."""
    known = [epoch for epoch in epochs if epoch is not None]
    if known:
        span[0], span[1] = min(span[0], *known), max(span[1], *known)


def emit_counted(alert: Alert, emit: Callable[[Alert], None], stats: ScanStats) -> None:
    """Hand `alert` on, counted in the summary's per-rule alerts."""
    stats.alerts[alert.rule.id] += 1
    emit(alert)


def count_other(item: Item, stats: ScanStats) -> None:
    if isinstance(item, Malformed):
        stats.malformed += item.count
        if item.unreadable:
            stats.unreadable += 1
        if len(stats.malformed_samples) < SAMPLE_LIMIT:
            stats.malformed_samples.append(f"{item.origin}: {item.reason}")
    elif isinstance(item, ObjectRef):
        stats.skipped += 1  # a local scan has no S3 client; the daemon's sources fetch these
        stats.skips.add(item)
    else:
        stats.skipped += 1
        stats.skips.add(item)
