"""'This S3 object / file was processed' marks, kept in the state store.

They let the s3 and files sources survive restarts without reprocessing everything, and let
several daemons on one Redis share what is done. Marks expire after `KEEP` seconds of wall
time: CloudTrail never rewrites a delivered object, so a month is plenty.
"""

from __future__ import annotations

import time
from typing import Any

from engine.state import Change, StateStore

KEEP = 30 * 86400.0


class StoreMarks:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def is_done(self, source: str, key: str) -> bool:
        return self.store.get(_name(source, key)) is not None

    def mark_done(self, source: str, key: str) -> None:
        expires = time.time() + KEEP

        def mark(_: Any) -> Change:
            return Change(state=1, expires=expires)

        self.store.update(_name(source, key), mark)
        self.store.commit()


def _name(source: str, key: str) -> str:
    return f"mark\x1f{source}\x1f{key}"
