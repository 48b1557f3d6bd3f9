"""`scan --workers N`: parse and evaluate on N processes, decide in one of them.

Choice: merge, not partition. The parent forks N - 1 workers (so they share the compiled
rules); each process, the parent too, takes the next file nobody has taken, reads it and
evaluates every condition, keeping the records that matched, each with its matches and the
watermark its file had reached (and of the others, only their eventIDs). The parent decides
the files' results in the same order a single process reads the files (engine.inputs.walk's
eventTime order; each file's records sorted by engine.inputs.order in whichever process reads it):
it drops repeated eventIDs and offers the matches to the one decider, advancing the
watermark exactly where a single process would have. The decider therefore sees the same
matches in the same order against the same watermark, and the alerts are identical to one
worker's, stateful rules included; no group's state is split between processes.

The parent scans a file itself only when the result it must decide next is not ready, so the
work balances itself: deciding is serial, and N processes on N cores never wait on a third
(a pool of N workers beside a deciding parent ran 3 processes on 2 cores, and its result and
task threads took the parent's GIL: 1.1-1.4x; this is 1.9-2.1x, bench/throughput.py (f)).

A threshold over every download (codeartifact-mass-download) makes nearly every record a
match, so sending each matched record whole would make the parent unpickle nearly the whole
input. A record whose one match is a threshold-lane rule's is sent as the values the lane
takes (Decider.hold), in one flat tuple - the few fields it counts with, and where the record
is in its file - and the parent reads the whole record back from the file only if the general
path needs it (a run completes, a match is late): rarely.

The files come from engine.inputs.walk lazily; they are taken WINDOW_FILES at a time, the workers
forked for each window, so an archive of millions of files is never a list in memory.

Every record's eventID crosses, matched or not, so repeats are dropped and counted, and their
matches uncounted, as one process would. One difference is left: a rule that fails on a
record that turns out to be a repeat is counted as an error here; one process would not have
evaluated the repeat.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import math
import multiprocessing
import os
import pickle
import select
import signal
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from engine.conditions.evaluator import Evaluator
from engine.decide.decider import Decider
from engine.decide.merge import Merge
from engine.decide.stubs import Resolver, stub_of, way_back
from engine.inputs.decode import Malformed
from engine.inputs.eventtime import event_epoch
from engine.inputs.files import REREAD_BYTES, ByteCounter, Entry, Refs, read_file
from engine.inputs.lean import LeanFile, LeanReader, fields_read
from engine.model import Alert, Match
from engine.scan.pipeline import SAMPLE_LIMIT, ScanStats, count_other, emit_counted, note_span
from engine.skips import Skips
from engine.state import StateStore
from engine.suppressor import Hit, Suppressor

if TYPE_CHECKING:  # for an annotation only: importing it costs ~8 ms at startup
    from multiprocessing.sharedctypes import Synchronized

PARENT = 1  # the process that decides; workers are 2, 3, ... (see _Claims)
AHEAD_FILES = 4  # files the parent scans ahead of their turn while a worker's is not ready
PIPE_BYTES = 1 << 20  # a worker's pipe: several files' results (Linux's default limit)
_FRAME = struct.Struct("<QBQ")  # a result's file index, failed flag, and length
# Matched records (and malformed lines) per FileResult: what a process holds of one file
# whatever the file's size (a JSON-lines export, say, where every record matches a rule).
CHUNK_RECORDS = 2_000
# The parent scans a file ahead of its turn only up to this size on disk: it keeps all of it.
AHEAD_BYTES = 1 << 20
# Files planned, and workers forked, at a time: the paths of one window are held, never the
# archive's (engine.inputs.walk yields them lazily). A fork costs a few milliseconds; 4,096
# CloudTrail log files take tens of seconds to scan.
WINDOW_FILES = 4096
# The lengths of FileResult.records' three kinds of item.
UNMATCHED_ITEM, GENERAL_ITEM, LANE_ITEM = 3, 4, 9

_EVALUATOR: Evaluator | None = None  # set in the parent before forking; inherited by workers
_LANE: frozenset[str] = frozenset()  # the rules on the decider's threshold lane
_SUPPRESSOR: Suppressor | None = None  # set in the parent before forking, like _EVALUATOR
_LEAN: LeanReader | None = None  # the same: decodes log files lean (engine.inputs.lean), if it can


@dataclass
class FileResult:
    """What a process found in one file, or in a chunk of it: matched records, counts, and
    problems."""

    # In file order, each record with an eventID as one of:
    # - a record that matched nothing: (eventID, epoch, watermark before it), so that the
    #   parent drops and counts its repeats as one process would;
    # - (record, epoch, watermark before it, [(rule index, group)]);
    # - a record whose one match is a threshold-lane rule's, as the lane takes it
    #   (Decider.hold): (eventID, epoch, watermark before it, rule index, group,
    #   sharedEventID, recipientAccountId, eventTime, way back: (path, its position in the
    #   file) or its JSON text). Flat but for the way back; pickle writes the path once.
    records: list[tuple[Any, ...]] = field(default_factory=list)
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


def _scan_file(path: str) -> Iterator[FileResult]:
    """Parse and evaluate one file; keep only the records that matched, CHUNK_RECORDS at a
    time, so memory stays flat however large the file. In a worker, or in the parent: the
    evaluator's own counts are as they were whenever a chunk is handed over, and the
    chunk's are its own, added when it is decided."""
    evaluator = _EVALUATOR
    assert evaluator is not None
    index = {(c.rule.id, c.rule.step): n for n, c in enumerate(evaluator.routes)}
    lean = _LEAN.read(path) if _LEAN is not None else None
    if lean is not None and (results := _scan_lean(path, lean, evaluator)) is not None:
        yield from results
        return
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
            watermark, last = _scan_records(items, refs, evaluator, index, result, watermark)
        finally:
            result.matches, result.errors = evaluator.matches, evaluator.errors
            result.first_error = evaluator.first_error
            evaluator.matches, evaluator.errors, evaluator.first_error = counts
            if _SUPPRESSOR and failed is not None:
                _SUPPRESSOR.errors = failed
        result.last_epoch, result.last = watermark, last
        yield result


def _scan_records(items: Iterator[Any], refs: Refs, evaluator: Evaluator,
                  index: dict[tuple[str, int], int], result: FileResult, watermark: float
                  ) -> tuple[float, bool]:
    """Items into `result` until it holds CHUNK_RECORDS; (the watermark, whether the file
    is done)."""
    kept = result.records
    for item in items:
        ref = refs.pop()
        if type(item) is not dict:
            _note(item, result)
            continue
        result.events += 1
        epoch = event_epoch(item)
        matches = evaluator.matched(item)
        hits, at = None, len(kept)
        if matches and _SUPPRESSOR is not None:
            matches, hits = _SUPPRESSOR.split(item, matches)
        if matches:
            rule, group = matches[0]
            if len(matches) == 1 and rule.id in _LANE and epoch is not None and (
                    back := way_back(item, ref)) is not None:  # the lane's values cross
                get = item.get
                kept.append((
                    get("eventID"), epoch, watermark, index[rule.id, rule.step], group,
                    get("sharedEventID"), get("recipientAccountId"), get("eventTime"),
                    back))
            else:
                kept.append((item, epoch, watermark,
                             [(index[rule.id, rule.step], group) for rule, group in matches]))
        elif (event_id := item.get("eventID")) is not None:  # a repeat, maybe: the parent says
            kept.append((event_id, epoch, watermark))
        if hits:
            result.suppressed.append((at if len(kept) > at else -1, hits))
        if epoch is not None and epoch > watermark:
            watermark = epoch
        if len(kept) + len(result.malformed) >= CHUNK_RECORDS:
            return watermark, False
    return watermark, True


def _scan_lean(path: str, lean: LeanFile, evaluator: Evaluator) -> list[FileResult] | None:
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
                        append((event_id, epoch, watermark))
                elif len(matches) == 1 and id(matches[0][0]) in lane and epoch is not None:
                    rule, group = matches[0]
                    get = item.get
                    append((get("eventID"), epoch, watermark, route_of[id(rule)], group,
                            get("sharedEventID"), get("recipientAccountId"), get("eventTime"),
                            (path, position - 1) if placed else bytes(lean.raw(n))))
                else:
                    append((lean.whole(n), epoch, watermark,
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


def parallel_scan(
    files: Iterable[Entry], workers: int, evaluator: Evaluator, decider: Decider,
    store: StateStore, emit: Callable[[Alert], None], stats: ScanStats | None = None,
    on_bytes: ByteCounter | None = None, suppressor: Suppressor | None = None,
) -> ScanStats:
    """Scan `files` (engine.inputs.walk: paths in time order, and what could not be read on the
    way) on `workers` processes, this one included; alerts as a single process would emit
    them. The files are taken WINDOW_FILES at a time, the workers forked anew for each
    window, so that an archive of millions of files is never held as a list.

    `on_bytes` hears each file's size once its matches are decided (the progress bar).
    `suppressor` drops suppressed matches where the record is read (the whole record is
    there for its conditions); they are counted here, where repeats are known."""
    global _EVALUATOR, _LANE, _SUPPRESSOR, _LEAN
    stats = stats or ScanStats()
    _EVALUATOR = evaluator
    _LANE = decider.lane_rules
    _SUPPRESSOR = suppressor
    fields = fields_read((c.rule for c in (*evaluator.rules, *evaluator.routes)),
                         (s.condition for s in suppressor.suppressions if s.condition)
                         if suppressor else ())
    # TRAILGUARD_WHOLE_RECORDS=1 decodes every record whole: to compare, or to rule lean
    # decoding out when a scan surprises (docs/performance.md)
    whole = os.environ.get("TRAILGUARD_WHOLE_RECORDS", "") not in ("", "0")
    _LEAN = LeanReader(fields) if fields is not None and not whole else None
    decider.resolve = Resolver(lean=_LEAN is not None)
    merge = Merge(lambda items, befores, hits: _decide_file(
        FileResult(records=items, suppressed=hits), evaluator, decider, store, emit, stats,
        suppressor, befores))
    entries = iter(files)
    while window := list(itertools.islice(entries, WINDOW_FILES)):
        _scan_window(window, workers, evaluator, decider, store, emit, stats, on_bytes, merge,
                     suppressor)
    merge.close()
    for alert in decider.flush():
        emit_counted(alert, emit, stats)
    store.commit()
    stats.elapsed = time.perf_counter() - stats.started
    return stats


def _scan_window(files: Sequence[Entry], workers: int, evaluator: Evaluator, decider: Decider,
                 store: StateStore, emit: Callable[[Alert], None], stats: ScanStats,
                 on_bytes: ByteCounter | None, merge: Merge,
                 suppressor: Suppressor | None) -> None:
    """Decide `files` in their order, their records merged in eventTime order
    (engine.decide.merge), scanned by `workers` processes (see parallel_scan)."""
    sizes = [_size(path) if type(path) is str else 0 for path in files]
    claims = _Claims(sizes, [type(path) is not str for path in files])
    pool: dict[int, _Worker] = {}
    finished = False
    try:
        for who in range(PARENT + 1, PARENT + workers):
            pool[who] = _Worker.start(who, files, claims, pool.values())
        ahead: dict[int, list[FileResult]] = {}  # files this process scanned before their turn
        for n, path in enumerate(files):
            chunks: Iterable[FileResult] | None = ahead.pop(n, None)
            if not isinstance(path, str):  # found on the walk: counted in its turn
                claims.claim(n)
                count_other(path, stats)
                continue
            if chunks is None:
                owner = claims.claim(n)
                if owner == PARENT:
                    chunks = _scan_file(path)  # each chunk decided as it is scanned
                else:
                    worker = pool[owner]
                    while not worker.ready() and len(ahead) < AHEAD_FILES and (
                            (later := claims.take(PARENT, AHEAD_BYTES)) is not None):
                        ahead[later] = list(_scan_file(_path(files[later])))  # not wait
                    chunks = worker.results(n, path)
            for result in chunks:  # its counts now; its records as the merge releases them
                _decide_file(replace(result, records=[], last_epoch=float("-inf"), suppressed=[
                    (at, hits) for at, hits in result.suppressed if at == -1]),
                    evaluator, decider, store, emit, stats, suppressor)
                merge.add(result.records, result.last_epoch, result.path,
                          {at: hits for at, hits in result.suppressed if at >= 0})
            if on_bytes is not None:
                on_bytes(sizes[n])
        finished = True
    finally:
        for worker in pool.values():
            worker.stop(finished)


class _SharedInts(Protocol):
    """RawArray("i", n) as used here; typeshed types an array made from a typecode as Any."""

    def __getitem__(self, n: int, /) -> int: ...

    def __setitem__(self, n: int, value: int, /) -> None: ...


class _Claims:
    """Which process scans which file, in shared memory made before forking.

    Each process takes the next file nobody has taken, so one that is ahead takes more: the
    parent, which also decides, scans only when the result it needs next is not ready."""

    def __init__(self, sizes: list[int], parents: list[bool]) -> None:
        context = multiprocessing.get_context("fork")
        self._sizes = sizes
        self._parents = parents  # entries only the parent handles
        # the first file nobody has taken; with a lock
        self._next: Synchronized[int] = context.Value("q", 0)
        self._owner: _SharedInts = context.RawArray("i", len(sizes))  # 0: nobody yet

    def take(self, who: int, at_most: float = math.inf) -> int | None:
        """The next file for `who` to scan; None when every file is taken, or the next is
        larger than `at_most` bytes."""
        with self._next.get_lock():
            while (n := self._next.value) < len(self._sizes) and self._sizes[n] <= at_most:
                self._next.value = n + 1
                self._owner[n] = PARENT if self._parents[n] else who
                if not self._parents[n]:
                    return n
            return None

    def claim(self, n: int) -> int:
        """Who scans file `n`, which is the parent's next to decide: the parent, if nobody
        has taken it yet (every file before it is taken)."""
        with self._next.get_lock():
            if self._next.value == n:
                self._next.value = n + 1
                self._owner[n] = PARENT
            return self._owner[n]


class _Worker:
    """A forked process that scans the files it takes and writes each FileResult, pickled,
    to its own pipe in the order it took them: the parent reads file n's result from the
    worker that took n, which has nothing older left in the pipe. A full pipe stops the
    worker, so memory stays bounded however far behind the parent is."""

    def __init__(self, pid: int, reader: int) -> None:
        self.pid = pid
        self.reader = reader

    @classmethod
    def start(cls, who: int, files: Sequence[Entry], claims: _Claims,
              others: Iterable[_Worker]) -> _Worker:
        reader, writer = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux: room for a few files
            fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                os.close(reader)
                for other in others:
                    os.close(other.reader)
                _work(who, files, claims, writer)
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        return cls(pid, reader)

    def ready(self) -> bool:
        return bool(select.select([self.reader], [], [], 0)[0])

    def results(self, n: int, path: str) -> Iterator[FileResult]:
        """File `n`'s results, a chunk at a time."""
        while True:
            result = self._receive(n, path)
            yield result
            if result.last:
                return

    def _receive(self, n: int, path: str) -> FileResult:
        index, failed, size = _FRAME.unpack(self._read(_FRAME.size, path))
        data = self._read(size, path)
        if failed:
            raise RuntimeError(f"a --workers process failed on {path}:\n{data.decode()}")
        if index != n:
            raise RuntimeError(f"a --workers process sent file {index}, not {n} ({path})")
        result: FileResult = pickle.loads(data)  # what _work pickled
        return result

    def _read(self, size: int, path: str) -> bytes:
        parts = []
        while size:
            part = os.read(self.reader, min(size, PIPE_BYTES))
            if not part:
                raise RuntimeError(f"a --workers process (pid {self.pid}) exited before "
                                   f"it sent its result for {path}")
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def stop(self, finished: bool) -> None:
        """Reap the worker. Once every file is decided it has nothing left to take and is
        exiting; if the scan failed, it is terminated first."""
        os.close(self.reader)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _work(who: int, files: Sequence[Entry], claims: _Claims,
          writer: int) -> None:
    """In a worker: scan the files it takes until none is left."""
    while (n := claims.take(who)) is not None:
        try:
            for result in _scan_file(_path(files[n])):
                _send(writer, n, 0, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
        except Exception:  # a bug: the parent stops the scan and shows it
            _send(writer, n, 1, traceback.format_exc().encode())


def _send(writer: int, n: int, failed: int, data: bytes) -> None:
    frame = memoryview(_FRAME.pack(n, failed, len(data)) + data)
    while frame:
        frame = frame[os.write(writer, frame):]


def _path(entry: Entry) -> str:
    assert type(entry) is str  # _Claims leaves the rest to the parent
    return entry


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # a worker reports it
        return 0


def _decide_file(result: FileResult, evaluator: Evaluator, decider: Decider, store: StateStore,
                 emit: Callable[[Alert], None], stats: ScanStats,
                 suppressor: Suppressor | None = None, befores: list[float] | None = None
                 ) -> None:
    """A result's counts, and its records' matches offered to the decider in order.
    `befores`: the merged stream's watermark before each record (engine.decide.merge), where a
    record's own (its file's) would be wrong."""
    rules = [c.rule for c in evaluator.routes]  # a sequence's steps are routes of their own
    stats.events += result.events
    stats.skipped += result.skipped
    stats.skips.merge(result.skips)
    for line, unreadable, count in result.malformed:
        stats.malformed += count
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
    records = result.records
    if befores is None:
        befores = [item[2] for item in records]
    newest, claimed = float("-inf"), []
    for item, before in zip(records, befores, strict=True):
        epoch = item[1]
        if before > newest:
            claims.append((None, before))
            newest = before
        claimed.append(len(claims))
        claims.append((item[0] if len(item) != GENERAL_ITEM else item[0].get("eventID"), epoch))
        if epoch is not None and epoch > newest:
            newest = epoch
    if result.last_epoch > newest:
        claims.append((None, result.last_epoch))
    seen = store.seen_events(claims)
    if stats.span is not None:
        note_span(stats.span, (epoch for _, epoch in claims))
    repeats = [seen[n] for n in claimed]
    offer, lane_hold = decider.offer, decider.lane.hold
    # Decider.hold inlined (its lateness check, then the lane's), and the watermark kept
    # here between the calls that move it: this loop runs for every record of the scan.
    watermark, lateness = decider.watermark, decider.allowed_lateness
    suppressed = dict(result.suppressed)
    if suppressor:
        suppressor.errors.update(result.suppression_errors)
    if suppressor and -1 in suppressed:  # records without an eventID: never repeats
        suppressor.count(hit for at, hits in result.suppressed if at == -1 for hit in hits)
    for n, (item, repeat, before) in enumerate(zip(records, repeats, befores, strict=True)):
        hits = suppressed.get(n) if suppressed else None
        size = len(item)
        if repeat:  # one process would not have evaluated it: nor counted its matches
            stats.duplicates += 1
            stats.events -= 1
            if hits:
                evaluator.matches.subtract(rule_id for rule_id, _ in hits)
            if size == LANE_ITEM:
                evaluator.matches[rules[item[3]].id] -= 1
            elif size == GENERAL_ITEM:
                evaluator.matches.subtract(rules[index].id for index, _ in item[3])
            continue
        if hits and suppressor:
            suppressor.count(hits)
        epoch = item[1]
        if before > watermark:  # where a single process would have advanced
            for alert in decider.advance(before):
                emit_counted(alert, emit, stats)
            watermark = decider.watermark
        if epoch is not None and epoch > watermark:
            for alert in decider.advance(epoch):
                emit_counted(alert, emit, stats)
            watermark = decider.watermark
        if size == UNMATCHED_ITEM:
            continue
        if size == LANE_ITEM:  # see FileResult.records
            event_id, _, _, rule_index, group, call, account, time, back = item
            if not (watermark - lateness <= epoch <= watermark and lane_hold(
                    rules[rule_index], group, epoch, event_id, call, account, time, back)):
                stub = stub_of((event_id, call, account, time), back)
                for alert in offer(Match(rules[rule_index], stub, group), epoch):
                    emit_counted(alert, emit, stats)
                watermark = decider.watermark
            continue
        record, _, _, found = item
        for rule_index, group_key in found:
            for alert in offer(Match(rules[rule_index], record, group_key), epoch):
                emit_counted(alert, emit, stats)
        watermark = decider.watermark
    if result.last_epoch > decider.watermark:
        for alert in decider.advance(result.last_epoch):
            emit_counted(alert, emit, stats)

