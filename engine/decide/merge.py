"""Record-level merge of consecutive files' results before they are decided (SPEC §7).

engine.inputs.walk hands files out in order of their time key and engine.inputs.order sorts
each file's records, but files of different accounts and regions cover overlapping spans (a
CloudTrail file, 5 minutes; an hourly export, an hour): decided one file after the other, a
file's early records would trail the previous file's newest by up to its span, and past
allowed_lateness they are late. The deciding parent of `scan` (engine.scan.parallel) therefore
merges the records of the files it receives, in order, as a k-way merge: a record is decided
once no file still to come can hold an earlier one. Files come in order of their key
(engine.inputs.walk): a file without a stamp is keyed by its earliest record, so nothing after
it is earlier; a file named by its delivery minute S was written after its records, which began
at most `span` before S (the longest any file so far began before its stamp, at least SPAN), so
records up to S - span are released. Files whose records are all decided are closed, so what is
held is `span` of records of the files open across it, at most MAX_OPEN files and MAX_HELD
items (past either, the earliest are decided anyway, and may then be late).

Its items (MergeItems, not engine.inputs.decode's Item) are engine.decide.items' tuples, which
begin (eventID or record, eventTime, watermark before it in its file, ...).
They are handed on as they are, each with the merged stream's watermark before it beside it (a float
in a list: rebuilding each tuple with it cost more than the heap). A file's last watermark (what
its records without an eventID reached) goes through the merge as a watermark-only item,
an UNMATCHED one without an eventID, which the decider's claim ignores.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable
from typing import Any

from engine.decide.items import UNMATCHED
from engine.inputs.walk import name_stamp

__all__ = ["MAX_OPEN", "Merge"]

# How far before its name's delivery minute a log file's records may begin: learnt from the
# files read (an hourly export: an hour), at least this (CloudTrail: about 5 minutes).
SPAN = 15 * 60.0
MAX_OPEN = 256  # files open at once: past this, the earliest record is decided anyway
MAX_HELD = 100_000  # items held at once (a file stamped days after a record): the same
BATCH = 2_000  # merged items handed to the decider at a time (as engine.scan.parallel's chunks)
MergeItems = list[tuple[Any, ...]]  # FileResult.records tuples, not engine.inputs.decode.Item
MergeHits = list[tuple[int, Any]]  # (index of an item in its batch, its suppressed matches)
# The decider's side: a batch of items, the merged stream's watermark before each (the
# newest eventTime released before it), and their suppressed matches.
Decide = Callable[[MergeItems, list[float], MergeHits], None]


class Merge:
    """Feed it each result's items in file order (`add`), then `close`; it calls `decide`
    with batches of items in eventTime order, the merged stream's watermark before each,
    and the suppressed matches of those items."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self._heap: list[tuple[float, int, _Run]] = []
        self._ties = itertools.count()
        self._watermark = float("-inf")
        self._span = SPAN
        self._out: MergeItems = []
        self._befores: list[float] = []
        self._hits: MergeHits = []
        self._held = 0

    def add(self, items: MergeItems, last_epoch: float, path: str,
            hits: dict[int, Any] | None = None) -> None:
        """One file's (or one chunk's) items, sorted on eventTime, the newest eventTime it
        reached, and its suppressed matches by item index; then decide what no later file
        can precede."""
        if last_epoch > float("-inf"):
            items = [*items, (None, last_epoch, last_epoch, UNMATCHED)]  # its watermark, last
        if not items:
            return
        key = _key(items[0])
        heapq.heappush(self._heap, (key, next(self._ties), _Run(items, hits or None)))
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
        many files have closed). The scan's hottest merge loop: kept flat on purpose."""
        heap, out, befores, ties = self._heap, self._out, self._befores, self._ties
        watermark = self._watermark
        closed = released = 0
        while heap and heap[0][0] <= upto:
            key, _, run = heap[0]
            items, at = run.items, run.at
            if run.hits is not None and (hit := run.hits.get(at)):
                self._hits.append((len(out), hit))
            out.append(items[at])
            befores.append(watermark)
            released += 1
            if key > watermark:
                watermark = key
            at += 1
            if at == len(items):
                heapq.heappop(heap)
                closed += 1
                if most is not None and closed >= most:
                    break
            else:
                run.at = at
                following = items[at]
                heapq.heapreplace(heap, (following[2] if following[1] is None else following[1],
                                         next(ties), run))
            if len(out) >= BATCH:
                self._watermark, self._held = watermark, self._held - released
                released = 0
                self._flush()
                out, befores = self._out, self._befores
        self._watermark, self._held = watermark, self._held - released

    def _flush(self) -> None:
        if self._out:
            out, befores, hits = self._out, self._befores, self._hits
            self._out, self._befores, self._hits = [], [], []
            self._decide(out, befores, hits)


class _Run:
    """One file's (or chunk's) items being merged: the next one to hand on is `items[at]`."""

    __slots__ = ("at", "hits", "items")

    def __init__(self, items: MergeItems, hits: dict[int, Any] | None) -> None:
        self.items, self.hits, self.at = items, hits, 0


def _key(item: tuple[Any, ...]) -> float:
    """An item's place: its eventTime, or (none) the watermark before it in its file."""
    epoch: float | None = item[1]
    return item[2] if epoch is None else epoch
