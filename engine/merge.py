"""Record-level merge of consecutive files' results before they are decided (SPEC §7).

engine.walk hands files out in order of their time key and engine.order sorts each file's
records, but files of different accounts and regions cover overlapping spans (a CloudTrail
file, 5 minutes; an hourly export, an hour): decided one file after the other, a file's early
records would trail the previous file's newest by up to its span, and past allowed_lateness
they are late. The deciding parent of `scan` (engine.parallel) therefore merges the records
of the files it receives, in order, as a k-way merge: a record is decided once no file still
to come can hold an earlier one. Files come in order of their key (engine.walk): a file
without a stamp is keyed by its earliest record, so nothing after it is earlier; a file named
by its delivery minute S was written after its records, which began at most `span` before S
(the longest any file so far began before its stamp, at least SPAN), so records up to
S - span are released. Files whose records are all decided are closed, so what is held is
`span` of records of the files open across it, at most MAX_OPEN files and MAX_HELD items
(past either, the earliest are decided anyway, and may then be late).

Its items (MergeItems, not engine.decode's Item) are engine.parallel's FileResult.records
tuples: (eventID or record, eventTime, watermark before it, ...). The merge rewrites the
watermark before each item as the merged stream's, and a threshold-lane item's way back to
its record as (path, position), since a batch now mixes files. A file's last watermark
(what its records without an eventID reached) goes through the merge as a watermark-only
item, (None, epoch, ...), which the decider's claim ignores.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

from engine.walk import name_stamp

__all__ = ["MAX_OPEN", "Merge"]

# How far before its name's delivery minute a log file's records may begin: learnt from the
# files read (an hourly export: an hour), at least this (CloudTrail: about 5 minutes).
SPAN = 15 * 60.0
MAX_OPEN = 256  # files open at once: past this, the earliest record is decided anyway
MAX_HELD = 100_000  # items held at once (a file stamped days after a record): the same
BATCH = 2_000  # merged items handed to the decider at a time (as engine.parallel's chunks)
LANE_ITEM = 9  # the length of a threshold-lane item, whose last field is its way back
MergeItems = list[tuple[Any, ...]]  # FileResult.records tuples, not engine.decode.Item
MergeHits = list[tuple[int, Any]]  # (index of an item in its batch, its suppressed matches)
Decide = Callable[[MergeItems, MergeHits], None]


class Merge:
    """Feed it each result's items in file order (`add`), then `close`; it calls `decide`
    with batches of items in eventTime order, and the suppressed matches of those items."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self._heap: list[tuple[float, int, tuple[Any, ...], Any, Iterator[Any], str]] = []
        self._ties = itertools.count()
        self._watermark = float("-inf")
        self._span = SPAN
        self._out: MergeItems = []
        self._hits: MergeHits = []
        self._held = 0

    def add(self, items: MergeItems, last_epoch: float, path: str,
            hits: dict[int, Any] | None = None) -> None:
        """One file's (or one chunk's) items, sorted on eventTime, the newest eventTime it
        reached, and its suppressed matches by item index; then decide what no later file
        can precede."""
        if last_epoch > float("-inf"):
            items = [*items, (None, last_epoch, last_epoch)]  # the file's watermark, at its end
        run = ((item, hits.get(n) if hits else None) for n, item in enumerate(items))
        first, hit = next(run, (None, None))
        if first is None:
            return
        key = _key(first)
        heapq.heappush(self._heap, (key, next(self._ties), first, hit, run, path))
        self._held += len(items)
        stamp = name_stamp(os.path.basename(path))
        if stamp is None:  # walked by its earliest eventTime: nothing later comes before it
            self._release(key)
        else:  # files named by later minutes may begin as far before them as any did so far
            self._span = max(self._span, stamp - key)
            self._release(min(key, stamp - self._span))
        if len(self._heap) > MAX_OPEN:
            self._release(self._heap[0][0], most=len(self._heap) - MAX_OPEN)
        while self._held > MAX_HELD:
            self._release(self._heap[0][0])
        self._flush()

    def close(self) -> None:
        """Decide everything left (the end of the input)."""
        self._release(float("inf"))
        self._flush()

    def _release(self, upto: float, most: int | None = None) -> None:
        """Hand on, in order, every item whose key is at most `upto` (with `most`: until that
        many files have closed)."""
        heap = self._heap
        closed = 0
        while heap and heap[0][0] <= upto:
            key, _, item, hit, run, path = heap[0]
            if hit:
                self._hits.append((len(self._out), hit))
            self._out.append(_rewrite(item, self._watermark, path))
            self._held -= 1
            if key > self._watermark:
                self._watermark = key
            following, hit = next(run, (None, None))
            if following is None:
                heapq.heappop(heap)
                closed += 1
                if most is not None and closed >= most:
                    return
            else:
                heapq.heapreplace(heap, (_key(following), next(self._ties), following, hit, run,
                                         path))
            if len(self._out) >= BATCH:
                self._flush()

    def _flush(self) -> None:
        if self._out:
            out, hits, self._out, self._hits = self._out, self._hits, [], []
            self._decide(out, hits)


def _key(item: tuple[Any, ...]) -> float:
    """An item's place: its eventTime, or (none) the watermark before it in its file."""
    epoch: float | None = item[1]
    return item[2] if epoch is None else epoch


def _rewrite(item: tuple[Any, ...], watermark: float, path: str) -> tuple[Any, ...]:
    """The item with the merged stream's watermark before it (the newest eventTime released
    before it), and a lane item's way back naming its file."""
    if len(item) == LANE_ITEM and type(item[8]) is int:
        return (item[0], item[1], watermark, *item[3:8], (path, item[8]))
    return (item[0], item[1], watermark, *item[3:])
