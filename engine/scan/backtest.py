"""`scan --report FILE.json|FILE.html`: what the rules would have done over the input.

The report is built from the very alerts the scan emits (each one passes through
`Backtest.note` on its way out) and from the counters the scan already keeps (the
evaluator's matches and errors, the suppressor's counts, the scan's event span), so its
numbers agree with the alerts written, by construction. SPEC §9 gives the JSON shape; the HTML
(engine.scan.report_html) shows the same data.

Choices: an alert's day is the UTC date of its `first_event_time` (the day it happened, not
the day it was detected); `top_groups` ranks group keys by alerts, ties by key, ten at most;
every enabled rule appears, including those with no match, since a backtest is also how one
finds a rule that never fires. `matches` counts every time the condition held, suppressed
matches included; `suppressed` says how many of those a suppression silenced.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from engine.conditions.evaluator import Evaluator
from engine.inputs.eventtime import iso
from engine.model import Alert
from engine.scan.pipeline import ScanStats
from engine.suppressor import Suppressor

TOP_GROUPS = 10
FORMATS = (".json", ".html", ".htm")


class Backtest:
    """Collects what a report needs while a scan runs."""

    def __init__(self) -> None:
        self.per_day: dict[str, Counter[str]] = defaultdict(Counter)
        self.groups: dict[str, Counter[str | None]] = defaultdict(Counter)

    def wrap(self, emit: Callable[[Alert], None]) -> Callable[[Alert], None]:
        """`emit`, noting each alert first."""
        def noted(alert: Alert) -> None:
            self.note(alert)
            emit(alert)

        return noted

    def note(self, alert: Alert) -> None:
        rule_id = alert.rule.id
        self.per_day[rule_id][alert.first_event_time[:10]] += 1
        self.groups[rule_id][alert.group_key] += 1

    def build(self, stats: ScanStats, evaluator: Evaluator,
              suppressor: Suppressor | None) -> dict[str, Any]:
        """The SPEC §9 JSON document."""
        span = stats.span or [float("inf"), float("-inf")]
        rule_ids = sorted({c.rule.id for c in evaluator.rules} | set(stats.alerts))
        suppressed = suppressor.by_rule if suppressor else Counter()
        return {
            "from": iso(span[0]) if span[0] <= span[1] else None,
            "to": iso(span[1]) if span[0] <= span[1] else None,
            "events": stats.events,
            "rules": {rule_id: {
                "matches": evaluator.matches[rule_id],
                "alerts": stats.alerts[rule_id],
                "suppressed": suppressed[rule_id],
                "errors": evaluator.errors[rule_id],
                "alerts_per_day": dict(sorted(self.per_day[rule_id].items())),
                "top_groups": _top(self.groups[rule_id]),
            } for rule_id in rule_ids},
            "suppressions": _suppressions(suppressor),
        }


def _top(groups: Counter[str | None]) -> list[list[Any]]:
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0] or ""))
    return [[key, count] for key, count in ranked[:TOP_GROUPS]]


def _suppressions(suppressor: Suppressor | None) -> dict[str, dict[str, Any]]:
    if not suppressor:
        return {}
    counts = suppressor.by_suppression
    return {s.id: {"suppressed": counts[s.id], "expires": s.expires, "owner": s.owner,
                   "reason": s.reason, "rules": list(s.rules),
                   "expired": suppressor.clock() >= s.expires_at}
            for s in suppressor.suppressions}


def check_target(path: str) -> None:
    """Refuse a report name whose format is unknown before the scan, not after it."""
    from engine.errors import ConfigError

    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError("the report must be a .json or .html file", "--report")


def write_report(path: str, document: dict[str, Any]) -> None:
    target = Path(path)
    if target.suffix.lower() == ".json":
        target.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        return
    from engine.scan.report_html import render

    target.write_text(render(document), encoding="utf-8")
