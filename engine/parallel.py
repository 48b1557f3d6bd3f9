"""`scan --workers N`: parse and evaluate on N processes, decide in one.

Choice: merge, not partition. Workers (forked, so they share the compiled rules) read whole
files and evaluate every condition; they send back only the records that matched, each with
its matches and the watermark its file had reached. The parent consumes the files' results in
the same order a single process reads the files, drops repeated eventIDs, and offers the
matches to the one decider, advancing the watermark exactly where a single process would
have. The decider therefore sees the same matches in the same order against the same
watermark, and the alerts are identical to one worker's, stateful rules included; no group's
state is split between processes.

What it buys depends on how many records match: conditions and parsing run in parallel,
deciding does not. A threshold over every download (codeartifact-mass-download) makes nearly
every record a match, so sending each matched record whole would make the parent unpickle
nearly the whole input. A record whose one match is a threshold-lane rule's is sent as the
values the lane takes (Decider.hold), in one flat tuple - the few fields it counts with, and
where the record is in its file - and the parent reads the whole record back from the file
only if the general path needs it (a run completes, a match is late): rarely.

Counts that only workers see (events, repeats that matched nothing) are summed from their
reports; a record repeated across two files is counted as a duplicate only when it matched.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.decide import Decider
from engine.decode import Malformed
from engine.evaluator import Evaluator
from engine.eventtime import event_epoch
from engine.inputs import ByteCounter, Refs, iter_paths
from engine.model import Alert, Match
from engine.scan import SAMPLE_LIMIT, ScanStats, scan_items
from engine.state import StateStore
from engine.stubs import Resolver, stub_of, way_back

IN_FLIGHT_PER_WORKER = 4  # files handed out ahead of the parent: bounds memory
# A worker returns a file's matches at once, so a file larger than this on disk (a JSON-lines
# export, say; CloudTrail's own log files are far smaller) is scanned by the parent itself, in
# its turn, at one process's speed: memory stays flat whatever the size of one file.
LOCAL_BYTES = 8 << 20
LANE_ITEM = 9  # the length of a lane match's values in FileResult.records

_EVALUATOR: Evaluator | None = None  # set in the parent before forking; inherited by workers
_LANE: frozenset[str] = frozenset()  # the rules on the decider's threshold lane


@dataclass
class FileResult:
    """What a worker found in one file: matched records, counts, and problems."""

    # In file order, each matched record as one of:
    # - (record, epoch, watermark before it, [(rule index, group)]);
    # - a record whose one match is a threshold-lane rule's, as the lane takes it
    #   (Decider.hold): (eventID, epoch, watermark before it, rule index, group,
    #   sharedEventID, recipientAccountId, eventTime, way back: its position in the file or
    #   its JSON text). Flat, so that unpickling it in the parent makes one tuple.
    records: list[tuple[Any, ...]] = field(default_factory=list)
    path: str = ""
    events: int = 0
    last_epoch: float = float("-inf")
    malformed: list[tuple[str, bool]] = field(default_factory=list)  # (line, unreadable)
    skipped: int = 0
    matches: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)


def list_files(paths: Sequence[str]) -> list[str] | None:
    """The files `iter_paths` would read, in its order; None when stdin is among them."""
    files: list[str] = []
    for path in paths:
        if path == "-":
            return None
        if os.path.isdir(path):
            files.extend(_walk(path))
        else:
            files.append(path)
    return files


def _walk(directory: str) -> Iterator[str]:
    with os.scandir(directory) as scan:
        entries = sorted((e for e in scan if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir():
            yield from _walk(entry.path)
        else:
            yield entry.path


def _scan_file(path: str) -> FileResult:
    """In a worker: parse and evaluate one file; keep only the records that matched."""
    evaluator = _EVALUATOR
    assert evaluator is not None
    index = {c.rule.id: n for n, c in enumerate(evaluator.rules)}
    result = FileResult(path=path)
    watermark = float("-inf")
    refs: Refs = []
    for item in iter_paths([path], refs=refs):
        ref = refs.pop()
        if type(item) is not dict:
            _note(item, result)
            continue
        result.events += 1
        epoch = event_epoch(item)
        matches = evaluator.matched(item)
        if matches:
            rule, group = matches[0]
            if len(matches) == 1 and rule.id in _LANE and epoch is not None and (
                    back := way_back(item, ref)) is not None:  # the lane's values cross
                get = item.get
                result.records.append((
                    get("eventID"), epoch, watermark, index[rule.id], group,
                    get("sharedEventID"), get("recipientAccountId"), get("eventTime"),
                    back if type(back) is bytes else back[1]))
            else:
                result.records.append((item, epoch, watermark,
                                       [(index[rule.id], group) for rule, group in matches]))
        if epoch is not None and epoch > watermark:
            watermark = epoch
    result.last_epoch = watermark
    result.matches, result.errors = evaluator.matches, evaluator.errors
    result.first_error = evaluator.first_error
    evaluator.matches, evaluator.errors, evaluator.first_error = Counter(), Counter(), {}
    return result


def _note(item: Any, result: FileResult) -> None:
    if isinstance(item, Malformed):
        result.malformed.append((f"{item.origin}: {item.reason}", item.unreadable))
    else:
        result.skipped += 1  # Skipped, or an S3 reference a local scan cannot fetch
        del item


def parallel_scan(
    files: list[str], workers: int, evaluator: Evaluator, decider: Decider,
    store: StateStore, emit: Callable[[Alert], None], stats: ScanStats | None = None,
    on_bytes: ByteCounter | None = None,
) -> ScanStats:
    """Scan `files` on `workers` processes; alerts as a single process would emit them.

    `on_bytes` hears each file's size once its matches are decided (the progress bar)."""
    global _EVALUATOR, _LANE
    stats = stats or ScanStats()
    _EVALUATOR = evaluator
    _LANE = decider.lane_rules
    decider.resolve = Resolver()
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:

        def submit(path: str) -> tuple[str, int, Any]:
            size = _size(path)
            return path, size, None if size > LOCAL_BYTES else pool.apply_async(_scan_file,
                                                                                   (path,))

        pending: deque[tuple[str, int, Any]] = deque()
        queue = iter(files)
        for path in queue:
            pending.append(submit(path))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                break
        refs: Refs = []
        while pending:
            path, size, task = pending.popleft()
            result = task.get() if task is not None else None
            for following in queue:  # keep the workers busy while this result is decided
                pending.append(submit(following))
                break
            if result is None:  # a large file: scanned here, in its turn
                scan_items(iter_paths([path], on_bytes, refs), evaluator, decider, store, emit,
                           stats, refs)
                continue
            _decide_file(result, evaluator, decider, store, emit, stats)
            if on_bytes is not None:
                on_bytes(size)
    for alert in decider.flush():
        _emit(alert, emit, stats)
    store.commit()
    stats.elapsed = time.perf_counter() - stats.started
    return stats


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # a worker reports it
        return 0


def _decide_file(result: FileResult, evaluator: Evaluator, decider: Decider, store: StateStore,
                 emit: Callable[[Alert], None], stats: ScanStats) -> None:
    rules = [c.rule for c in evaluator.rules]
    stats.events += result.events
    stats.skipped += result.skipped
    for line, unreadable in result.malformed:
        stats.malformed += 1
        stats.unreadable += unreadable
        if len(stats.malformed_samples) < SAMPLE_LIMIT:
            stats.malformed_samples.append(line)
    evaluator.matches.update(result.matches)
    evaluator.errors.update(result.errors)
    for rule_id, message in result.first_error.items():
        evaluator.first_error.setdefault(rule_id, message)
    # Where the newest eventTime before a record in its file is newer than any claimed so far,
    # a claim without eventID carries it, and the file's newest closes them: the store sees
    # the eventTimes one process would have claimed.
    claims: list[tuple[str | None, float | None]] = []
    records, path = result.records, result.path
    newest, claimed = float("-inf"), []
    for item in records:
        epoch, before = item[1], item[2]
        if before > newest:
            claims.append((None, before))
            newest = before
        claimed.append(len(claims))
        claims.append((item[0] if len(item) == LANE_ITEM else item[0].get("eventID"), epoch))
        if epoch is not None and epoch > newest:
            newest = epoch
    if result.last_epoch > newest:
        claims.append((None, result.last_epoch))
    seen = store.seen_events(claims)
    repeats = [seen[n] for n in claimed]
    hold, offer = decider.hold, decider.offer
    for item, repeat in zip(records, repeats, strict=True):
        if repeat:
            stats.duplicates += 1
            stats.events -= 1
            continue
        epoch, before = item[1], item[2]
        if before > decider.watermark:  # where a single process would have advanced
            for alert in decider.advance(before):
                _emit(alert, emit, stats)
        if epoch is not None and epoch > decider.watermark:
            for alert in decider.advance(epoch):
                _emit(alert, emit, stats)
        if len(item) == LANE_ITEM:  # see FileResult.records
            event_id, _, _, rule_index, group, call, account, time, back = item
            back = (path, back) if type(back) is int else back
            if not hold(rules[rule_index], group, epoch, event_id, call, account, time, back):
                stub = stub_of((event_id, call, account, time), back)
                for alert in offer(Match(rules[rule_index], stub, group), epoch):
                    _emit(alert, emit, stats)
            continue
        record, _, _, found = item
        for rule_index, group_key in found:
            for alert in offer(Match(rules[rule_index], record, group_key), epoch):
                _emit(alert, emit, stats)
    if result.last_epoch > decider.watermark:
        for alert in decider.advance(result.last_epoch):
            _emit(alert, emit, stats)


def _emit(alert: Alert, emit: Callable[[Alert], None], stats: ScanStats) -> None:
    stats.alerts[alert.rule.id] += 1
    emit(alert)

