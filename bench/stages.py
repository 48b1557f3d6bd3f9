"""Where a scan's time goes, stage by stage, in CPU microseconds per record.

    python bench/stages.py [--events N] [--runs R]

On the bench archive (bench/streamgen.py, 2 accounts x 3 regions) with the shipped pack,
one process. Each stage is timed alone, in this order, the medians of R runs:

  read + gunzip         the files' bytes, inflated (isal)
  whole parse           orjson.loads of each inflated file: the parse-only bar's decode
  lean decode           msgspec into the fields the pack reads (engine.inputs.lean)
  order                 each file's records sorted on eventTime (engine.inputs.order's key)
  evaluate              Evaluator.matched on every lean record (the compiled buckets)
  scan loop             engine.scan.filescan.scan_lean whole, minus evaluate and order
  decide alone          merge and decide those items, held in memory (no scanning around it)
  decide                the full scan's CPU minus every stage above but "decide alone":
                        merge, dedup, threshold lane, alerts, in the scan's company

The full scan is `engine.scan.parallel.parallel_scan` over the archive, as `trailguard scan
--workers 1` runs it. The stages' sum is not exactly the scan's (allocator and cache state
differ when a stage runs alone): the point is which stage is worth a design change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def measure(events: int) -> dict[str, float]:
    """Seconds of CPU per stage, one run."""
    import orjson

    from bench.streamgen import generate
    from engine.conditions.evaluator import Evaluator
    from engine.conditions.functions import TrailguardFunctions
    from engine.decide.decider import new_decider
    from engine.inputs.decode import gunzip_at_most
    from engine.inputs.eventtime import event_epoch
    from engine.inputs.files import walk
    from engine.inputs.lean import LeanReader, fields_read
    from engine.pack import shipped_rules
    from engine.rules import load_rules
    from engine.scan import filescan, parallel
    from engine.scan.pipeline import tune_gc
    from engine.state import open_store

    files = [str(path) for path in generate(OUT / f"stream-{events}", events)]
    tune_gc()
    functions = TrailguardFunctions()
    rules = load_rules([str(shipped_rules())], functions, functions.lists.keys() | {
        "trusted_networks", "ci_publishers", "trusted_accounts"}).rules

    def fresh() -> tuple[Evaluator, Any, Any]:
        evaluator = Evaluator(rules, functions)
        store = open_store("memory://")
        return evaluator, store, new_decider(evaluator, 900.0, store)

    evaluator, store, decider = fresh()
    fields = fields_read(c.rule for c in (*evaluator.rules, *evaluator.routes))
    assert fields is not None
    reader = LeanReader(fields)
    costs = dict.fromkeys(("read + gunzip", "whole parse", "lean decode", "order", "evaluate"),
                          0.0)
    matched = evaluator.matched
    for path in files:  # one file at a time, as the scan holds them
        spent, text = _timed(lambda: gunzip_at_most(Path(path).read_bytes(), 16 << 20))  # noqa: B023
        costs["read + gunzip"] += spent
        costs["whole parse"] += _timed(lambda: orjson.loads(text))[0]  # noqa: B023
        spent, records = _timed(lambda: reader._decoder.decode(text)["Records"])  # noqa: B023
        costs["lean decode"] += spent
        costs["order"] += _timed(lambda: sorted(range(len(records)), key=[  # noqa: B023
            event_epoch(r) or 0.0 for r in records].__getitem__))[0]  # noqa: B023
        costs["evaluate"] += _timed(lambda: [matched(r) for r in records])[0]  # noqa: B023

    evaluator, store, decider = fresh()
    filescan.configure(evaluator, decider.lane_rules, None, reader)
    loop = 0.0
    archive = str(Path(files[0]).parents[6])
    scanned = []  # in the order the scan decides them
    for path in walk([archive]):
        assert isinstance(path, str)
        lean = reader.read(path)
        assert lean is not None
        spent, results = _timed(lambda: filescan.scan_lean(path, lean, evaluator))  # noqa: B023
        loop += spent
        scanned.extend(results)
    costs["scan loop"] = max(0.0, loop - costs["evaluate"] - costs["order"])
    costs["decide alone"] = _decide_alone(scanned, fresh)

    evaluator, store, decider = fresh()
    costs["full scan"], stats = _timed(lambda: parallel.parallel_scan(
        walk([archive]), 1, evaluator, decider, store, lambda a: None))
    assert stats.events == events
    parts = ("read + gunzip", "lean decode", "order", "evaluate", "scan loop")  # not alone
    costs["decide"] = max(0.0, costs["full scan"] - sum(costs[p] for p in parts))
    return costs


def _decide_alone(scanned: list[Any], fresh: Callable[[], tuple[Any, Any, Any]]) -> float:
    """CPU to merge and decide items already scanned (held in memory), as parallel_scan
    does: what deciding costs without the scan's other work around it."""
    from dataclasses import replace

    from engine.decide.merge import Merge
    from engine.decide.stubs import Resolver
    from engine.scan import filescan
    from engine.scan.deciding import decide_result
    from engine.scan.pipeline import ScanStats, emit_counted

    evaluator, store, decider = fresh()
    decider.resolve = Resolver(lean=True)
    stats = ScanStats()

    def emit(alert: Any) -> None:
        pass

    merge = Merge(lambda items, befores, hits: decide_result(
        filescan.FileResult(records=items, suppressed=hits), evaluator, decider, store, emit,
        stats, None, befores))
    started = time.process_time()
    for result in scanned:
        decide_result(replace(result, records=[], last_epoch=float("-inf")),
                      evaluator, decider, store, emit, stats)
        merge.add(result.records, result.last_epoch, result.path)
    merge.close()
    for alert in decider.flush():
        emit_counted(alert, emit, stats)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [measure(args.events) for _ in range(args.runs)]
    print(f"{args.events:,} records, shipped pack, one process; CPU, median of {args.runs}")
    parse_only = statistics.median(r["read + gunzip"] + r["whole parse"] for r in runs)
    for stage in runs[0]:
        seconds = statistics.median(r[stage] for r in runs)
        print(f"{stage:<16} {seconds:7.3f} s  {seconds / args.events * 1e6:6.2f} us/record  "
              f"{seconds / parse_only:5.2f}x parse-only")


if __name__ == "__main__":
    main()
