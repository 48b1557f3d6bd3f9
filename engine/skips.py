"""Why a scan skipped what it skipped: a count and the first origin per reason.

"8 skipped" alone leaves a user guessing whether input was lost. A scan of S3 or SNS
notifications skips every object they name (a local scan has no S3 client: the daemon's sqs
source fetches them), digest files and test events are skipped on purpose: the summary says
which, how many, and where the first one was, so the user can find it or use the right tool.

Reasons are normalised (the bucket and key are dropped) so that one kind of skip is one line;
at most MAX_REASONS distinct reasons are kept, the rest are counted as "other".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.inputs.decode import ObjectRef, Skipped

MAX_REASONS = 20
NOT_FETCHED = ("notification naming an S3 object, which scan does not fetch (use the "
               "daemon's sqs source, or scan the objects themselves)")
_OBJECT = re.compile(r"\s*(?:for )?s3://\S*$")


def reason_of(item: Any) -> str:
    """The normalised reason an item was skipped."""
    if isinstance(item, ObjectRef):
        return NOT_FETCHED
    if isinstance(item, Skipped):
        return _OBJECT.sub("", item.reason) or item.reason
    return "not a CloudTrail record"


def origin_of(item: Any) -> str:
    return str(getattr(item, "origin", "?"))


@dataclass
class Skips:
    """Skipped items by reason: how many, and the origin of the first."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, item: Any) -> None:
        self.note(reason_of(item), origin_of(item))

    def note(self, reason: str, origin: str, count: int = 1) -> None:
        if reason not in self.counts and len(self.counts) >= MAX_REASONS:
            reason = "other"
        self.counts[reason] += count
        self.first.setdefault(reason, origin)

    def merge(self, other: Skips) -> None:
        """Add `other`'s counts; first origins already known stay (input order)."""
        for reason, count in other.counts.items():
            self.note(reason, other.first.get(reason, "?"), count)

    def lines(self) -> list[str]:
        """`skipped: N reason — first at origin`, the most frequent first."""
        return [f"skipped: {count:,} {reason} — first at {self.first.get(reason, '?')}"
                for reason, count in self.counts.most_common()]
