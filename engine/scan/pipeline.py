"""A stream of items, a batch at a time: drop repeats -> scan -> decide -> emit, with counts.

The driver of stdin (`trailguard scan -`), rule tests and the daemon (which calls scan_batch
per batch, then flushes, delivers and commits). A batch is scanned by the code that scans a
file's records (engine.scan.filescan.scan_stream) and decided by the code that decides them
(engine.scan.deciding): files and streams share one driver and differ only in how records
arrive. Alerts come as the stream flows, BATCH records at a time.

Exact eventID repeats are dropped through the decider's state store, so with a persistent
store (`--state sqlite:///...`) a record scanned in an earlier run is a repeat too. They are
claimed before the batch is scanned, so a repeat is never evaluated.

Everything a user needs to trust a scan is counted (engine.scan.counts): events, exact
eventID repeats, malformed and skipped payloads (with their origins), matches, alerts and rule
errors per rule. Nothing here stops the stream: a bad payload is a number and a line in the
summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from itertools import islice
from operator import itemgetter
from typing import Any

from engine.conditions.evaluator import Evaluator
from engine.decide.decider import Decider
from engine.decide.stubs import Ref, Resolver
from engine.inputs.decode import Item
from engine.inputs.eventtime import event_epoch
from engine.inputs.files import Refs
from engine.model import Alert
from engine.scan.counts import (
    SAMPLE_LIMIT,
    ScanStats,
    count_other,
    emit_counted,
    note_span,
)
from engine.scan.deciding import decide_result
from engine.scan.filescan import Scanner, scan_stream
from engine.state import StateStore
from engine.state.memory import MemoryStore
from engine.suppressor import Suppressor

# ScanStats and its helpers moved to engine.scan.counts (engine.scan.deciding counts too, and
# imports nothing from here); their callers may still import them from here.
__all__ = ["BATCH", "SAMPLE_LIMIT", "EventIdMemory", "ScanStats", "count_other", "emit_counted",
           "note_span", "run_scan", "scan_batch", "scan_items", "tune_gc"]

GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect the young generation every 50,000 allocations instead of 700.

    Parsed records are acyclic, but a scan keeps tens of thousands of them alive (the reorder
    buffer of stateful rules, the dedup memory), and every default young collection walks
    them: measured here, a quarter of a pack scan's time went to the collector. With this
    threshold the shipped pack scans 45% faster and its stateless rules 32%, at the same peak
    RSS (bench/throughput.py).
    """
    import gc

    gc.set_threshold(*GC_THRESHOLD)


BATCH = 256  # records whose eventIDs are claimed together


class EventIdMemory(MemoryStore):
    """eventID memory on its own, for callers that pass one to `run_scan` explicitly.

    Kept for bench/throughput.py; normally the decider's store remembers eventIDs.
    """

    def __init__(self, horizon: float) -> None:
        super().__init__("memory://", horizon)


def run_scan(
    items: Iterable[Item],
    evaluator: Evaluator,
    decider: Decider,
    emit: Callable[[Alert], None],
    memory: StateStore | None = None,
    stats: ScanStats | None = None,
    refs: Refs | None = None,
    suppressor: Suppressor | None = None,
) -> ScanStats:
    """Drive every item through the pipeline; emit alerts as their windows close.

    Exact repeats are recognised by `memory`, by default the decider's store. Records are
    taken in batches so that a shared store claims their eventIDs in one round trip; within a
    batch they are scanned, then decided, in arrival order.

    `refs`: the list `iter_paths(..., refs=)` fills for `items`. With it, a record whose
    matches all wait on the threshold lane is held there as a stub, made whole again only if
    needed (engine.decide.stubs): a scan's memory then grows far less with the records per minute
    of event time.

    `suppressor`: drops suppressed matches before they reach the decider (SPEC §9).
    """
    stats = stats or ScanStats()
    ids = memory or decider.store
    if refs is not None and decider.resolve is None:
        decider.resolve = Resolver()
    scan_items(items, evaluator, decider, ids, emit, stats, refs, suppressor)
    for alert in decider.flush():
        emit_counted(alert, emit, stats)
    ids.commit()
    if decider.store is not ids:
        decider.store.commit()
    stats.elapsed = time.perf_counter() - stats.started
    return stats


def scan_items(items: Iterable[Item], evaluator: Evaluator, decider: Decider, ids: StateStore,
               emit: Callable[[Alert], None], stats: ScanStats, refs: Refs | None,
               suppressor: Suppressor | None = None) -> None:
    """Every item through the pipeline, a batch at a time; the windows stay open (the caller
    flushes the decider at the end of its input)."""
    iterator = iter(items)
    placed = None
    while batch := list(islice(iterator, BATCH)):
        if refs is not None:
            placed = refs.copy()
            refs.clear()
        scan_batch(batch, evaluator, decider, ids, emit, stats, placed, suppressor)
        if ids is not decider.store and decider.watermark > float("-inf"):
            ids.advance(decider.watermark)


def scan_batch(batch: list[Item], evaluator: Evaluator, decider: Decider, ids: StateStore,
               emit: Callable[[Alert], None], stats: ScanStats,
               placed: list[Ref | None] | None = None,
               suppressor: Suppressor | None = None) -> None:
    """One batch of items: claim their eventIDs in one go, then scan the records that are not
    repeats as a file's are scanned (engine.scan.filescan) and decide them as a file's are
    decided (engine.scan.deciding), in order.

    A repeat is never evaluated, so its matches and rule errors are never counted: the
    eventIDs are claimed before the scan, not after it as a file's must be.
    `placed`: where each item can be read again (see run_scan), if known.
    The daemon calls this per source message, then `decider.flush()`, delivers, and commits
    the store: a crash before the commit leaves the message to be processed again."""
    claims = [(_event_id(item), event_epoch(item)) for item in batch if type(item) is dict]
    repeats = ids.seen_events(claims)
    if stats.span is not None:
        note_span(stats.span, (epoch for _, epoch in claims))
    items, refs, epochs = batch, placed, list(map(itemgetter(1), claims))
    if any(repeats):
        stats.duplicates += sum(repeats)
        fresh = iter(repeats)
        kept = [type(item) is not dict or not next(fresh) for item in batch]
        items = [item for item, keep in zip(batch, kept, strict=True) if keep]
        if placed is not None:
            refs = [ref for ref, keep in zip(placed, kept, strict=True) if keep]
        epochs = [epoch for epoch, repeat in zip(epochs, repeats, strict=True) if not repeat]
    scanner = Scanner.of(evaluator, decider.lane_rules, suppressor)
    reverse = None if refs is None else refs[::-1]  # popped from the end, as iter_paths' are
    for result in scan_stream(iter(items), iter(epochs), reverse, scanner, decider.watermark):
        decide_result(result, evaluator, decider, None, emit, stats, suppressor)


def _event_id(record: dict[str, Any]) -> str | None:
    event_id = record.get("eventID")
    return event_id if type(event_id) is str or event_id is None else str(event_id)
