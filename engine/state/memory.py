"""`memory://`: the state of one process, in dicts; the default for `scan` and rule tests.

Values are the live Python objects the decider built (no serialisation), so a stateful rule
costs a dict lookup. Purging walks the values once per PURGE_EVERY of event time, which keeps
the cost per record constant while memory stays bounded by what has not yet expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine import jsonsafe
from engine.state import BUCKET, Claim, StateStore, Update, bucket_of


class MemoryStore(StateStore):
    """A StateStore in this process's memory; everything is lost when it exits."""

    def __init__(self, url: str = "memory://", event_id_horizon: float = 3600.0) -> None:
        super().__init__(url, event_id_horizon)
        self._ids: dict[int, set[str]] = {}
        self._late: dict[int, int] = {}  # buckets written past the horizon -> their late_mark
        self._values: dict[str, Any] = {}
        self._expiry: dict[str, float] = {}
        self._watermark = float("-inf")

    def seen_events(self, claims: Sequence[Claim]) -> list[bool]:
        out: list[bool] = []
        append, buckets = out.append, self._ids
        fallback = bucket_of(None, self._watermark)
        newest = self.newest
        late_below = self.id_cutoff(newest) if newest > float("-inf") else -(1 << 62)
        for event_id, epoch in claims:  # the scan's hottest loop: kept flat on purpose
            if epoch is not None and epoch > newest:
                newest = epoch
                late_below = int((newest - self.event_id_horizon) // BUCKET)
            if event_id is None:
                append(False)
                continue
            bucket = int(epoch // BUCKET) if epoch is not None else fallback
            ids = buckets.get(bucket)
            if ids is None:
                ids = buckets[bucket] = set()
            if event_id in ids:
                append(True)
            else:
                ids.add(event_id)
                append(False)
                if bucket < late_below:  # see StateStore.id_cutoff
                    mark = int(newest // BUCKET)
                    if self._late.get(bucket, bucket) < mark:
                        self._late[bucket] = mark
        self.newest = newest
        return out

    def update(self, key: str, change: Update) -> Any:
        done = change(self._values.get(key))
        if done.state is None:
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        else:
            self._values[key] = done.state
            self._expiry[key] = done.expires
        return done.result

    def get(self, key: str) -> Any:
        return self._values.get(key)

    def purge(self, watermark: float) -> int:
        expired = [key for key, when in self._expiry.items() if when < watermark]
        for key in expired:
            del self._values[key], self._expiry[key]
        cutoff = self.id_cutoff(watermark)
        old = [bucket for bucket in self._ids
               if bucket < cutoff and self._late.get(bucket, bucket) < cutoff]
        for bucket in old:
            del self._ids[bucket]
            self._late.pop(bucket, None)
        return len(expired) + len(old)

    def stats(self) -> dict[str, int]:
        """`bytes` is the size the values and eventIDs would have serialised, not RSS."""
        ids = sum(len(ids) for ids in self._ids.values())
        size = sum(len(i) for bucket in self._ids.values() for i in bucket)
        size += sum(len(key) + len(jsonsafe.dumps(value)) for key, value in self._values.items())
        return {"event_ids": ids, "keys": len(self._values), "bytes": size}
