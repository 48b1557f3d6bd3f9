"""The daemon's Prometheus metrics, on a registry of its own (tests can create several).

Labels stay few and bounded: per rule, per output, per source *type* (`files`, `stdin`,
`sqs`, `s3`; never a file name or message id, which would make one series per payload).
`trailguard_alerts_total` counts new alerts; what folds into an alert already sent is
`trailguard_alert_updates_total`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter("trailguard_events", "CloudTrail records evaluated", registry=r)
        self.duplicates = Counter("trailguard_duplicates", "records dropped as eventID repeats",
                                  registry=r)
        self.malformed = Counter("trailguard_malformed", "payloads that could not be decoded",
                                 ["source"], registry=r)
        self.late = Counter("trailguard_late_events",
                            "records later than allowed_lateness", registry=r)
        self.matches = Counter("trailguard_matches", "condition matches", ["rule"], registry=r)
        self.alerts = Counter("trailguard_alerts", "new alerts raised (updates not counted)",
                              ["rule"], registry=r)
        self.alert_updates = Counter("trailguard_alert_updates",
                                     "updates of alerts already sent (matches folded in later)",
                                     ["rule"], registry=r)
        self.rule_errors = Counter("trailguard_rule_errors", "rule evaluation errors", ["rule"],
                                   registry=r)
        self.deliveries = Counter("trailguard_deliveries", "alerts delivered", ["output"],
                                  registry=r)
        self.delivery_failures = Counter("trailguard_delivery_failures",
                                         "failed delivery attempts", ["output"], registry=r)
        self.outbox = Gauge("trailguard_outbox_size", "alerts waiting in the outbox", registry=r)
        self.lag = Gauge("trailguard_lag_seconds", "now minus the eventTime of the newest record",
                         registry=r)
        self.evaluation = Histogram("trailguard_evaluation_seconds",
                                    "time to evaluate one payload's records", registry=r,
                                    buckets=(1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.suppressed = Counter("trailguard_suppressed",
                                  "matches silenced by a suppression (SPEC §9)",
                                  ["suppression"], registry=r)
        self.reloads = Counter("trailguard_rule_reloads", "rule reloads", ["result"], registry=r)


def source_type(delivery: Any) -> str:
    """The metrics label of where a delivery came from: its source's type, not its origin
    (a file path or message id would make a series per payload)."""
    if getattr(delivery, "path", None) is not None:
        return "files"
    if getattr(delivery, "lines", None) is not None:
        return "stdin"
    if getattr(delivery, "object", None) is not None:
        return "s3"
    origin = str(getattr(delivery, "origin", ""))
    scheme = origin.split(":", 1)[0] if ":" in origin else ""
    return scheme if scheme in ("sqs", "s3") else "other"
