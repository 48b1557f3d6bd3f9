"""What `scan` tells a person on stderr: a progress bar while it runs, a summary at the end."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.conditions.evaluator import Evaluator
from engine.model import Alert
from engine.scan.pipeline import ScanStats
from engine.suppressor import Suppressor


class Progress:
    """A one-line bar on a terminal, redrawn at most a few times a second; silent elsewhere."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr) -> None:
        self.total = total_bytes
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty() and total_bytes > 0
        self._drawn = 0.0

    def advance(self, consumed: int) -> None:
        self.done += consumed
        now = time.monotonic()
        if self.enabled and now - self._drawn > 0.2:
            self._drawn = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            self.stream.write(f"\r[{bar:<30}] {share:6.1%} {self.done / 1e6:,.1f} MB")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


LATE_EXPLAINED = (
    "        Late matches were still evaluated and can alert; only their order differs: each",
    "        was decided when it arrived, not in eventTime order, so a dedup, threshold or",
    "        first_seen rule may fold or count it differently than a time-ordered scan would.",
    "        Input that is not in time order (files named out of order, a shuffled or",
    "        newest-first document) causes this. More: docs/state.md, \"Order and lateness\".",
)


def summary(stats: ScanStats, evaluator: Evaluator, late_matches: int = 0,
            lateness: float = 0.0, suppressor: Suppressor | None = None) -> str:
    """The counts a person needs to trust a scan. `late_matches`: matches that arrived more
    than `lateness` seconds of event time behind the newest record, so were decided on
    arrival, where sorted input might have decided them otherwise (docs/state.md S22)."""
    lines = [
        f"trailguard: {stats.events:,} events in {stats.elapsed:.2f}s "
        f"({stats.rate:,.0f} events/s); {stats.duplicates:,} duplicates, "
        f"{stats.malformed:,} malformed, {stats.skipped:,} skipped; "
        f"{sum(stats.alerts.values()):,} alerts",
    ]
    rule_ids = sorted(set(evaluator.matches) | set(stats.alerts) | set(evaluator.errors))
    if rule_ids:
        width = max(len(r) for r in rule_ids)
        lines.append(f"  {'rule':<{width}}  {'matches':>8}  {'alerts':>7}  {'errors':>7}")
        for rule_id in rule_ids:
            lines.append(f"  {rule_id:<{width}}  {evaluator.matches[rule_id]:>8,}  "
                         f"{stats.alerts[rule_id]:>7,}  {evaluator.errors[rule_id]:>7,}")
    lines.extend(f"  {line}" for line in stats.skips.lines())
    if late_matches:
        lines.append(f"  late: {late_matches:,} matches arrived more than {lateness:g}s of event "
                     "time behind newer records (allowed_lateness): decided on arrival")
        lines.extend(LATE_EXPLAINED)
    if suppressor:
        lines.extend(suppressed_lines(suppressor))
    for rule_id, message in sorted(evaluator.first_error.items()):
        lines.append(f"  rule error: {rule_id}: {message}")
    for sample in stats.malformed_samples:
        lines.append(f"  malformed: {sample}")
    if stats.malformed > len(stats.malformed_samples):
        lines.append(f"  ... and {stats.malformed - len(stats.malformed_samples):,} more malformed")
    return "\n".join(lines)


def suppressed_lines(suppressor: Suppressor) -> list[str]:
    """One line per suppression: what it silenced, and whether it still can."""
    now = suppressor.clock()
    lines = []
    for s in suppressor.suppressions:
        state = "EXPIRED" if now >= s.expires_at else "expires"
        errors = suppressor.errors[s.id]
        lines.append(f"  suppressed: {s.id}: {suppressor.by_suppression[s.id]:,} matches "
                     f"({state} {s.expires}, owner {s.owner})"
                     + (f"; its condition failed on {errors:,} records" if errors else ""))
    return lines


def alert_text(alert: Alert) -> str:
    count = f" ({alert.event_count} events)" if alert.event_count > 1 else ""
    return (f"[{alert.rule.severity.upper()}] {alert.rule.id}: {alert.summary}{count} "
            f"at {alert.first_event_time} [{alert.alert_id}]")
