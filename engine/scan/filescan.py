"""Scanning records: decoded (a file lean when it can), evaluated, and kept as results.

What a scan hands to deciding (engine.scan.deciding) is a FileResult: the records that
matched, as few values as deciding needs (see FileResult.records), counts and problems,
CHUNK_RECORDS at a time, so a process holds little of a file whatever its size. It crosses
from a --workers process to the deciding parent; a stream's batch (engine.scan.pipeline) is
scanned into one by the same code (scan_stream), in the process that decides it.

A file of the usual shape is decoded lean (engine.inputs.lean: only the fields the rules
read); any other is read the general way (engine.inputs.files), and both give the same
results (tests/test_lean.py).

For files, the compiled rules, the lane's rules, the suppressions and the lean reader are set
once by `configure`, in the parent before it forks, and inherited by the workers: nothing is
pickled per file but the results. A stream passes its own (a Scanner) with each batch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any

import orjson

from engine.conditions.evaluator import Evaluator
from engine.decide.items import GENERAL, HELD_GENERAL, HELD_LANE, LANE, UNMATCHED, ScanItem
from engine.decide.stubs import way_back
from engine.inputs.decode import Malformed
from engine.inputs.eventtime import event_epoch
from engine.inputs.files import REREAD_BYTES, Refs, read_file
from engine.inputs.lean import LeanFile, LeanReader
from engine.skips import Skips
from engine.suppressor import Hit, Suppressor

# Matched records (and malformed lines) per FileResult: what a process holds of one file
# whatever the file's size (a JSON-lines export, say, where every record matches a rule).
CHUNK_RECORDS = 2_000

_EVALUATOR: Evaluator | None = None  # set by configure before forking; inherited by workers
_LANE: frozenset[str] = frozenset()  # the rules on the decider's threshold lane
_SUPPRESSOR: Suppressor | None = None  # as _EVALUATOR
_LEAN: LeanReader | None = None  # as _EVALUATOR: decodes log files lean, if it can


def configure(evaluator: Evaluator, lane: frozenset[str], suppressor: Suppressor | None,
              lean: LeanReader | None) -> None:
    """What every file's scan uses, in this process and the workers it forks next."""
    global _EVALUATOR, _LANE, _SUPPRESSOR, _LEAN
    _EVALUATOR, _LANE, _SUPPRESSOR, _LEAN = evaluator, lane, suppressor, lean




@dataclass
class FileResult:
    """What a process found in one file, or in a chunk of it: matched records, counts, and
    problems."""

    # In file order, each record with an eventID (a stream's: every record, see scan_stream)
    # as an item of engine.decide.items (its kinds, and why tuples).
    records: list[ScanItem] = field(default_factory=list)
    path: str = ""
    events: int = 0
    last_epoch: float = float("-inf")
    malformed: list[tuple[str, bool, int]] = field(default_factory=list)  # line, unreadable, n
    skipped: int = 0
    skips: Skips = field(default_factory=Skips)
    matches: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    last: bool = True  # False: more of the file follows, in the next result
    # Suppressed matches, as (index in `records` of their record, or -1 when the record was
    # not kept, [(rule id, suppression id)]): counted by the parent unless a repeat.
    suppressed: list[tuple[int, list[Hit]]] = field(default_factory=list)
    suppression_errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Scanner:
    """What scanning a record takes besides the record: the compiled rules, the ids of the
    threshold lane's rules, the suppressions, and each route's index in evaluator.routes
    (what FileResult.records name a rule by)."""

    evaluator: Evaluator
    lane: frozenset[str]
    suppressor: Suppressor | None
    index: dict[tuple[str, int], int]

    @classmethod
    def of(cls, evaluator: Evaluator, lane: frozenset[str], suppressor: Suppressor | None
           ) -> Scanner:
        return cls(evaluator, lane, suppressor, evaluator.route_index)


def scan_file(path: str) -> Iterator[FileResult]:
    """Parse and evaluate one file; keep only the records that matched, CHUNK_RECORDS at a
    time, so memory stays flat however large the file. In a worker, or in the parent: the
    evaluator's own counts are as they were whenever a chunk is handed over, and the
    chunk's are its own, added when it is decided."""
    evaluator = _EVALUATOR
    assert evaluator is not None
    lean = _LEAN.read(path) if _LEAN is not None else None
    if lean is not None and (results := scan_lean(path, lean, evaluator)) is not None:
        yield from results
        return
    scanner = Scanner.of(evaluator, _LANE, _SUPPRESSOR)
    refs: Refs = []
    items = iter(read_file(path, refs=refs))
    watermark, last = float("-inf"), False
    while not last:
        result = FileResult(path=path)
        counts = evaluator.matches, evaluator.errors, evaluator.first_error
        evaluator.matches, evaluator.errors, evaluator.first_error = Counter(), Counter(), {}
        failed = _SUPPRESSOR.errors if _SUPPRESSOR else None  # as the evaluator's, the same way
        if _SUPPRESSOR:
            _SUPPRESSOR.errors = result.suppression_errors
        try:
            watermark, last = _scan_records(items, refs, scanner, result, watermark)
        finally:
            result.matches, result.errors = evaluator.matches, evaluator.errors
            result.first_error = evaluator.first_error
            evaluator.matches, evaluator.errors, evaluator.first_error = counts
            if _SUPPRESSOR and failed is not None:
                _SUPPRESSOR.errors = failed
        result.last_epoch, result.last = watermark, last
        yield result


def scan_stream(items: Iterator[Any], epochs: Iterator[float | None], refs: Refs | None,
                scanner: Scanner, watermark: float) -> Iterator[FileResult]:
    """A stream's items (engine.scan.pipeline's batch, its repeats dropped before) scanned as
    a file's are, CHUNK_RECORDS at a time; `epochs`: its records' eventTimes, as their
    eventIDs were claimed with; `refs` and `watermark` as for _scan_records. The evaluator
    and suppressor count as they go: a result's own counts stay empty.

    Two differences from a file, both to decide as that pipeline did a record at a time:
    every record is kept, with an eventID or not, so that the decider's clock moves at each;
    and with `refs`, a record with a lane match keeps the record beside its way back
    (HELD_LANE, HELD_GENERAL): the lane holds the way back, and a match it cannot take
    (late, say) is offered with the record, which is at hand, instead of a stub to read
    back. A file's scan makes neither, so that lean and whole reading give the same results
    (tests/test_lean.py)."""
    last = False
    while not last:
        result = FileResult()
        watermark, last = _scan_records(items, refs, scanner, result, watermark, epochs)
        yield result


def _scan_records(items: Iterator[Any], refs: Refs | None, scanner: Scanner,
                  result: FileResult, watermark: float,
                  stream: Iterator[float | None] | None = None) -> tuple[float, bool]:
    """Items into `result` until it holds CHUNK_RECORDS; (the watermark, whether the items
    are done). `watermark`: the newest eventTime before the first item.

    `refs`: each item's place, popped as the items are read (engine.inputs.files.iter_paths
    appends them), for a lane match's way back (engine.decide.stubs); None when the items
    have no place to be read again from, and the lane holds the record itself.
    `stream`: scan_stream's items' epochs (see there), read instead of each eventTime."""
    kept, malformed, limit = result.records, result.malformed, CHUNK_RECORDS
    evaluator, lane, suppressor, index = (
        scanner.evaluator, scanner.lane, scanner.suppressor, scanner.index)
    held = stream is not None and refs is not None  # lane items with records (scan_stream)
    # Chosen once, not per record: C callables for a stream (no place; its epochs given).
    pop = refs.pop if refs is not None else repeat(None).__next__
    epoch_of = event_epoch if stream is None else partial(next, stream)  # next(it, item)
    events = 0
    for item in items:
        ref = pop()
        if type(item) is not dict:
            _note(item, result)
            continue
        events += 1
        epoch = epoch_of(item)
        matches = evaluator.matched(item)
        hits, at = None, len(kept)
        if matches and suppressor is not None:
            matches, hits = suppressor.split(item, matches)
        if matches:
            rule, group = matches[0]
            if len(matches) == 1 and rule.id in lane and epoch is not None and (
                    back := item if refs is None else way_back(item, ref)
            ) is not None:  # the lane's values cross
                get = item.get
                if held:  # and the record, at hand (see scan_stream)
                    kept.append((
                        get("eventID"), epoch, watermark, HELD_LANE, index[rule.id, rule.step],
                        group, get("sharedEventID"), get("recipientAccountId"),
                        get("eventTime"), back, item))
                else:
                    kept.append((
                        get("eventID"), epoch, watermark, LANE, index[rule.id, rule.step],
                        group, get("sharedEventID"), get("recipientAccountId"),
                        get("eventTime"), back))
            elif held and epoch is not None and any(r.id in lane for r, _ in matches) and (
                    way := way_back(item, ref)) is not None:  # see scan_stream
                kept.append((item, epoch, watermark, HELD_GENERAL,
                             [(index[rule.id, rule.step], group) for rule, group in matches],
                             way))
            else:
                kept.append((item, epoch, watermark, GENERAL,
                             [(index[rule.id, rule.step], group) for rule, group in matches]))
        elif (event_id := item.get("eventID")) is not None or stream is not None:  # repeat?
            kept.append((event_id, epoch, watermark, UNMATCHED))
        if hits:
            result.suppressed.append((at if len(kept) > at else -1, hits))
        if epoch is not None and epoch > watermark:
            watermark = epoch
        if len(kept) + len(malformed) >= limit:
            result.events += events
            return watermark, False
    result.events += events
    return watermark, True


def scan_lean(path: str, lean: LeanFile, evaluator: Evaluator) -> list[FileResult] | None:
    """A file decoded lean (engine.inputs.lean) into the same FileResults as _scan_records makes of
    it read whole; None if a matched record cannot be decoded whole after all (orjson is
    stricter than msgspec on nesting), for the caller to read the file the general way.

    The whole file is scanned before any result is handed on, so that giving up leaves
    nothing half-counted: a lean file is at most engine.inputs.lean.WHOLE_BYTES of text."""
    records = lean.records
    order, epochs = lean.time_order()
    placed = os.stat(path).st_size <= REREAD_BYTES  # engine.inputs.files._rereadable
    # A matched Rule is one of evaluator.routes' own: known by identity, it needs no hash of
    # its fields (a frozen dataclass hashes them all) for its index or lane membership.
    route_of = {id(c.rule): n for n, c in enumerate(evaluator.routes)}
    lane = {id(c.rule) for c in evaluator.routes if c.rule.id in _LANE}
    results: list[FileResult] = []
    suppressor, matched = _SUPPRESSOR, evaluator.matched
    counts = evaluator.matches, evaluator.errors, evaluator.first_error
    failed = _SUPPRESSOR.errors if _SUPPRESSOR else None
    watermark, position, total = float("-inf"), 0, len(order)
    try:
        while True:
            result = FileResult(path=path)
            results.append(result)
            evaluator.matches, evaluator.errors, evaluator.first_error = Counter(), Counter(), {}
            result.matches, result.errors = evaluator.matches, evaluator.errors
            result.first_error = evaluator.first_error
            if suppressor:
                suppressor.errors = result.suppression_errors
            kept, append, began = result.records, result.records.append, position
            while position < total:
                n = order[position]
                item = records[n]
                position += 1
                epoch = epochs[n]
                matches = matched(item)
                hits, at = None, len(kept)
                if matches and suppressor is not None:
                    matches, hits = suppressor.split(item, matches)
                if not matches:
                    if (event_id := item.get("eventID")) is not None:  # a repeat, maybe
                        append((event_id, epoch, watermark, UNMATCHED))
                elif len(matches) == 1 and id(matches[0][0]) in lane and epoch is not None:
                    rule, group = matches[0]
                    get = item.get
                    append((get("eventID"), epoch, watermark, LANE, route_of[id(rule)], group,
                            get("sharedEventID"), get("recipientAccountId"), get("eventTime"),
                            (path, position - 1) if placed else bytes(lean.raw(n))))
                else:
                    append((lean.whole(n), epoch, watermark, GENERAL,
                            [(route_of[id(rule)], group) for rule, group in matches]))
                if hits:
                    result.suppressed.append((at if len(kept) > at else -1, hits))
                if epoch is not None and epoch > watermark:
                    watermark = epoch
                if len(kept) >= CHUNK_RECORDS:
                    break
            else:
                result.events = position - began
                result.last_epoch = watermark
                return results
            result.events = position - began
            result.last_epoch, result.last = watermark, False
    except orjson.JSONDecodeError:
        return None
    finally:
        evaluator.matches, evaluator.errors, evaluator.first_error = counts
        if suppressor and failed is not None:
            suppressor.errors = failed


def _note(item: Any, result: FileResult) -> None:
    if isinstance(item, Malformed):
        result.malformed.append((f"{item.origin}: {item.reason}", item.unreadable, item.count))
    else:
        result.skipped += 1  # Skipped, or an S3 reference a local scan cannot fetch
        result.skips.add(item)
        del item


