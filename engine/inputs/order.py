"""A file's records in eventTime order, so that a scan decides a finite input as if sorted
(SPEC §7); engine.inputs.walk puts the files themselves in order.

CloudTrail writes a log file's records in no particular order, `aws cloudtrail lookup-events`
writes newest first, and an export may be anything. Three cases, by the file's size on disk:

* up to IN_MEMORY_BYTES (2 MB: every CloudTrail log file, a lookup-events document of
  thousands of events): its items are sorted in memory, stably, on eventTime. The file is
  decoded whole anyway (engine.inputs.files), so this holds nothing more than its records;
* larger, and in order already: each eventTime is at most SORTED_LAG behind the newest before
  it (checked by a regular expression over its text, without parsing JSON: about a tenth of
  what parsing costs). It is streamed as it is; the decider's reorder buffer
  (allowed_lateness) absorbs the rest;
* larger, and out of order: an external sort. Runs of RUN_RECORDS records are sorted in
  memory and written to temporary files as JSON lines, then merged, one record per run in
  memory. This costs a second serialisation and parse of every record.

Pipes and stdin are read as they come: they cannot be read twice, and their records count as
late if they are. A record without a readable eventTime, or an item that is not a record (a
malformed line, a skipped payload), is placed at the newest eventTime before it: at the
watermark, as the decider takes it; a failure that cut a file short stays last. An external
sort yields what is not a record at once: it decides nothing.
Sorting is deterministic, so a file read again (engine.decide.stubs) yields its records in the same
order, at the same positions.
"""

from __future__ import annotations

import heapq
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import IO, Any

import orjson

from engine.inputs.decode import Item
from engine.inputs.eventtime import event_epoch
from engine.inputs.walk import event_times

__all__ = ["IN_MEMORY_BYTES", "RUN_RECORDS", "SORTED_LAG", "in_time_order", "lag_exceeds",
           "sort_in_memory"]

IN_MEMORY_BYTES = 2 << 20
SORTED_LAG = 60.0  # seconds: well inside any sensible allowed_lateness (default 15 minutes)
RUN_RECORDS = 20_000
_KEY = itemgetter(0, 1)


def in_time_order(items: Iterable[Item], path: str) -> Iterator[Item]:
    """The items of the file at `path`, records in eventTime order (see the module doc)."""
    size = _regular_size(path)
    if size is None:  # a pipe, or gone: as it comes
        yield from items
    elif size <= IN_MEMORY_BYTES:
        yield from sort_in_memory(items)
    elif not lag_exceeds(path, SORTED_LAG):
        yield from items
    else:
        yield from external_sort(items)


def _regular_size(path: str) -> int | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def lag_exceeds(path: str, most: float) -> bool:
    """Whether some eventTime in the file is more than `most` seconds behind an earlier one."""
    newest = float("-inf")
    for epoch in event_times(path):
        if epoch > newest:
            newest = epoch
        elif newest - epoch > most:
            return True
    return False


def _keyed(items: Iterable[Item]) -> Iterator[tuple[float, int, Item]]:
    """(eventTime, position, item). What has no eventTime (a record without one, a malformed
    line) takes the newest eventTime before it: a record without one is taken to happen at
    the watermark (docs/state.md), and a failure that cut a file short stays last."""
    newest = -1e18  # finite: written to a run as JSON, where infinity is not
    for position, item in enumerate(items):
        key = newest
        if type(item) is dict and (epoch := event_epoch(item)) is not None:
            key = epoch
            newest = max(newest, epoch)
        yield key, position, item


def sort_in_memory(items: Iterable[Item]) -> Iterator[Item]:
    """`items` sorted stably on eventTime, held in memory."""
    keyed = list(_keyed(items))
    keyed.sort(key=_KEY)
    for _, _, item in keyed:
        yield item


def external_sort(items: Iterable[Item], run_records: int | None = None) -> Iterator[Item]:
    """`items` sorted stably on eventTime through sorted runs (RUN_RECORDS) in temporary
    files; what is not a record is yielded at once (it decides nothing)."""
    run_records = run_records or RUN_RECORDS
    runs: list[IO[bytes]] = []
    try:
        run: list[tuple[float, int, Item]] = []
        for entry in _keyed(items):
            if type(entry[2]) is not dict:
                yield entry[2]
                continue
            run.append(entry)
            if len(run) >= run_records:
                runs.append(_spill(run))
                run = []
        if not runs:  # small after all
            run.sort(key=_KEY)
            yield from (item for _, _, item in run)
            return
        if run:
            runs.append(_spill(run))
        del run
        for _, _, record in heapq.merge(*(_read_run(r) for r in runs), key=_KEY):
            yield record
    finally:
        for spilled in runs:
            spilled.close()


def _spill(run: list[tuple[float, int, Any]]) -> IO[bytes]:
    run.sort(key=_KEY)
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by external_sort
    for key, position, record in run:
        spool.write(orjson.dumps([key, position, record], option=orjson.OPT_APPEND_NEWLINE))
    spool.seek(0)
    return spool


def _read_run(spool: IO[bytes]) -> Iterator[tuple[float, int, Any]]:
    for line in spool:
        key, position, record = orjson.loads(line)
        yield key, position, record
