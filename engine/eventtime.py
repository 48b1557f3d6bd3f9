"""CloudTrail `eventTime` as epoch seconds: windows are measured on it, never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def event_epoch(record: dict[str, Any]) -> float | None:
    """Seconds since the epoch of the record's eventTime, or None when absent or unreadable."""
    text = record.get("eventTime")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(epoch: float) -> str:
    """`2018-12-17T02:05:46Z`, the form CloudTrail writes."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(datetime.now(UTC).timestamp())
