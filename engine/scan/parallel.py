"""`scan --workers N`: parse and evaluate on N processes, decide in one of them.

Choice: merge, not partition. The parent forks N - 1 workers (so they share the compiled
rules); each process, the parent too, takes the next file nobody has taken, reads it and
evaluates every condition, keeping the records that matched, each with its matches and the
watermark its file had reached (and of the others, only their eventIDs). The parent decides
the files' results in the same order a single process reads the files (engine.inputs.walk's
eventTime order; each file's records sorted by engine.inputs.order in whichever process reads it)
with engine.scan.deciding, which stdin and the daemon decide with too: it drops repeated
eventIDs and offers the matches to the one decider, advancing the watermark exactly where a
single process would have. The decider therefore sees the same matches in the same order
against the same watermark, and the alerts are identical to one worker's, stateful rules
included; no group's state is split between processes.

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
matches uncounted, as one process would (engine.scan.deciding says the one difference left).
"""


from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from engine.conditions.evaluator import Evaluator
from engine.decide.decider import Decider
from engine.decide.merge import Merge
from engine.decide.stubs import Resolver
from engine.inputs.files import ByteCounter, Entry
from engine.inputs.lean import LeanReader, fields_read
from engine.model import Alert
from engine.scan import filescan
from engine.scan.counts import ScanStats, count_other, emit_counted
from engine.scan.deciding import decide_result
from engine.scan.filescan import FileResult, scan_file
from engine.scan.workers import PARENT, Claims, Worker, path_of, size_of
from engine.state import StateStore
from engine.suppressor import Suppressor

AHEAD_FILES = 4  # files the parent scans ahead of their turn while a worker's is not ready
# The parent scans a file ahead of its turn only up to this size on disk: it keeps all of it.
AHEAD_BYTES = 1 << 20
# Files planned, and workers forked, at a time: the paths of one window are held, never the
# archive's (engine.inputs.walk yields them lazily). A fork costs a few milliseconds; 4,096
# CloudTrail log files take tens of seconds to scan.
WINDOW_FILES = 4096

# What decides each result (engine.scan.deciding), under the name this module calls it by,
# so that a test can watch the results handed to it (tests/test_parallel.py).
_decide_file = decide_result


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
    stats = stats or ScanStats()
    fields = fields_read((c.rule for c in (*evaluator.rules, *evaluator.routes)),
                         (s.condition for s in suppressor.suppressions if s.condition)
                         if suppressor else ())
    # TRAILGUARD_WHOLE_RECORDS=1 decodes every record whole: to compare, or to rule lean
    # decoding out when a scan surprises (docs/performance.md)
    whole = os.environ.get("TRAILGUARD_WHOLE_RECORDS", "") not in ("", "0")
    lean = LeanReader(fields) if fields is not None and not whole else None
    filescan.configure(evaluator, decider.lane_rules, suppressor, lean)
    decider.resolve = Resolver(lean=lean is not None)
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
    sizes = [size_of(path) if type(path) is str else 0 for path in files]
    claims = Claims(sizes, [type(path) is not str for path in files])
    pool: dict[int, Worker] = {}
    finished = False
    try:
        for who in range(PARENT + 1, PARENT + workers):
            pool[who] = Worker.start(who, files, claims, pool.values())
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
                    chunks = scan_file(path)  # each chunk decided as it is scanned
                else:
                    worker = pool[owner]
                    while not worker.ready() and len(ahead) < AHEAD_FILES and (
                            (later := claims.take(PARENT, AHEAD_BYTES)) is not None):
                        ahead[later] = list(scan_file(path_of(files[later])))  # not wait
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
