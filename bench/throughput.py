"""Throughput of trailguard's scan path as ratios to parsing alone (issue 17's figures).

    python bench/throughput.py [--events N] [--runs R] [--engine E] [--all]

The default run prints, for R runs each (medians; default 5) and both events/s and CPU
seconds per run:
  (a)  parse only:   read + gunzip (isal, engine.inputs.decode) + orjson.loads of each whole file,
                     through engine.inputs.decode.decode as the scan path reads them
  (a') lean decode:  the scan's own lean decoding (engine.inputs.lean.LeanReader.read: read +
                     gunzip + msgspec into only the fields the shipped pack and the engine
                     read): what decoding costs the scan, so the overhead it adds is visible
  (c)  scan, shipped pack, --workers 1
  (d)  scan, pack + 200 generated rules (bench/rulegen.py), --workers 1
  (f)  scan, shipped pack, --workers 2
Each of (a'), (c) and (d) runs alternately with (a), and (f) with (c), so a shared machine
that speeds up or slows down during the bench moves both figures of a ratio alike; a ratio is
the median of the R paired runs' ratios. A final "targets" block sets them against issue 17's:
(c) >= 1.0x (a), (d) >= 0.8x (a), (f) >= 1.8x (c), peak RSS < 150 MB (the largest of (c),
(d) and (f)), each PASS or SHORT; the ratios by CPU seconds are printed beside those by
events/s (for (a)..(d), which run on one core, they should agree when the host is quiet).

--all adds the older comparisons (several minutes more: the interpreted 1,000-rule runs take
about a minute each at the default 150,000 events): (b) a naive loop calling jmespath's
`expression.search(record)` per rule (one run of --naive-events), (e) compiled vs
interpreted conditions with the pack and with 1,000 generated rules, and --workers 2 vs 1
with pack + 200 rules and with its stateless rules only.

The stream is an organisation trail's archive over 2 accounts x 3 regions (bench/streamgen.py:
gzipped {"Records": [...]} files under AWSLogs/<acct>/CloudTrail/<region>/...), scanned as a
directory, so walked in path order and read in eventTime order as `trailguard scan archive/`
does (bench/scan_order.py compares with one time-sorted file); (a) and (a') read the files in
path order. Every measurement runs in a fresh process so one's memory and garbage do not slow
the next. Events/s and CPU seconds count from the first record read: loading and compiling
the rules (and building the lean decoder) is a fixed cost, about 0.2-0.3 s whatever the
input, printed apart as "setup". CPU seconds are getrusage's user + system time of the
measuring process and its reaped children, so a --workers 2 run counts its worker's; forking
the workers is part of the scan. Peak RSS is the larger of the process's and a worker's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
LISTS = ("trusted_networks", "ci_publishers", "trusted_accounts")

Result = dict[str, float]
Mark = tuple[float, float]  # (wall clock, CPU seconds) where the measured part begins


def _cpu() -> float:
    """User + system CPU seconds of this process and of its children that were waited for."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _mark() -> Mark:
    return time.perf_counter(), _cpu()


def _parse_only(files: list[Path]) -> tuple[int, Mark]:
    from engine.inputs.decode import decode

    begun = _mark()
    count = 0
    for path in files:
        for item in decode(path.read_bytes(), str(path)):
            count += type(item) is dict
    return count, begun


def _lean_reader() -> Any:
    """The scan's own lean reader (engine.inputs.lean) for the shipped pack: what the scan
    decodes."""
    from engine.conditions.evaluator import Evaluator
    from engine.conditions.functions import TrailguardFunctions
    from engine.inputs.lean import LeanReader, fields_read
    from engine.rules import load_rules

    functions = TrailguardFunctions()
    rules = load_rules(_rules(0), functions, functions.lists.keys() | set(LISTS)).rules
    evaluator = Evaluator(rules, functions)
    paths = fields_read(c.rule for c in (*evaluator.rules, *evaluator.routes))
    if paths is None:
        raise SystemExit("lean decode: the pack reads whole records; the scan decodes whole")
    return LeanReader(paths)


def _shape_text(shape: dict[str, Any]) -> str:
    """`a, b{c, d}`: the keys decoded, and inside an object the keys decoded of it."""
    return ", ".join(key if inner is None else f"{key}{{{_shape_text(inner)}}}"
                     for key, inner in sorted(shape.items()))


def _lean(files: list[Path]) -> tuple[int, Mark]:
    reader = _lean_reader()
    begun = _mark()
    count = 0
    for path in files:
        lean = reader.read(str(path))
        assert lean is not None, f"{path}: not read lean"
        count += len(lean.records)
    return count, begun


def _rules(extra: int) -> list[str]:
    from bench.rulegen import write_rules
    from engine.pack import shipped_rules

    paths = [str(shipped_rules())]
    if extra:
        paths.append(str(write_rules(OUT / f"rules-{extra}", extra)))
    return paths


def _naive(files: list[Path], extra: int, limit: int) -> tuple[int, Mark]:
    import jmespath

    from engine.conditions.functions import TrailguardFunctions
    from engine.inputs.decode import decode
    from engine.rules import load_rules

    functions = TrailguardFunctions()
    rules = load_rules(_rules(extra), functions, LISTS).rules
    options = jmespath.Options(custom_functions=functions)
    expressions = [jmespath.compile(rule.condition) for rule in rules]
    begun = _mark()
    count = 0
    for path in files:
        for record in decode(path.read_bytes(), str(path)):
            for expression in expressions:
                with contextlib.suppress(Exception):  # a failing rule is no match
                    expression.search(record, options)
            count += 1
            if count >= limit:
                return count, begun
    return count, begun


def _scan(files: list[Path], extra: int, engine: str, workers: int = 1,
          stateless: bool = False) -> tuple[int, Mark]:
    from engine.conditions.evaluator import Evaluator
    from engine.conditions.functions import TrailguardFunctions
    from engine.decide.decider import new_decider
    from engine.inputs.files import walk
    from engine.rules import load_rules
    from engine.scan.parallel import parallel_scan
    from engine.state import open_store

    functions = TrailguardFunctions()
    rules = load_rules(_rules(extra), functions, functions.lists.keys() | set(LISTS)).rules
    if stateless:
        rules = tuple(rule for rule in rules if not rule.stateful)
    evaluator = Evaluator(rules, functions, engine)
    store = open_store("memory://")
    decider = new_decider(evaluator, 900.0, store)
    begun = _mark()  # rules loaded and compiled: a fixed cost, reported apart
    # as `trailguard scan archive/` does, whatever the number of workers: the archive's
    # directory walked in eventTime order (engine.inputs.walk), across its accounts and regions
    stats = parallel_scan(walk([str(files[0].parents[6])]), workers, evaluator, decider,
                          store, lambda alert: None)
    return stats.events, begun


def measure(mode: str, events: int, naive_events: int, engine: str) -> Result:
    """One measurement in this process: events/s, CPU seconds and peak RSS (MB)."""
    from bench.streamgen import generate
    from engine.scan.pipeline import tune_gc

    files = generate(OUT / f"stream-{events}", events)
    tune_gc()  # every mode, as `trailguard scan` runs: the baselines get the same help
    started = time.perf_counter()
    if mode == "parse":
        count, begun = _parse_only(files)
    elif mode == "lean":
        count, begun = _lean(files)
    elif mode.startswith("naive"):
        count, begun = _naive(files, 200 if mode.endswith("200") else 0, naive_events)
    else:  # scan[-EXTRA][-stateless][-wN]
        parts = mode.split("-")
        extra = next((int(p) for p in parts[1:] if p.isdigit()), 0)
        workers = next((int(p[1:]) for p in parts if p.startswith("w")), 1)
        count, begun = _scan(files, extra, engine, workers, "stateless" in parts)
    elapsed, cpu = time.perf_counter() - begun[0], _cpu() - begun[1]
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # a worker's, when forked
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"events": count, "rate": count / elapsed, "cpu_s": cpu, "rss_mb": peak,
            "setup_s": begun[0] - started}


def _once(mode: str, args: argparse.Namespace, engine: str | None = None) -> Result:
    done = subprocess.run(
        [sys.executable, __file__, "--one", mode, "--events", str(args.events),
         "--naive-events", str(args.naive_events), "--engine", engine or args.engine],
        capture_output=True, text=True, check=True, cwd=ROOT)
    result: Result = json.loads(done.stdout)
    return result


def _summary(runs: list[Result]) -> Result:
    return {"rate": statistics.median(r["rate"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs), "events": runs[0]["events"],
            "setup_s": statistics.median(r["setup_s"] for r in runs)}


def _run(mode: str, args: argparse.Namespace, engine: str | None = None) -> Result:
    runs = [_once(mode, args, engine)
            for _ in range(1 if mode.startswith("naive") else args.runs)]
    return _summary(runs)


class Pair:
    """Two modes run alternately, so a machine that speeds up or slows down during the
    bench (shared hosts do) moves both figures of a ratio alike."""

    def __init__(self, base: str, other: str, args: argparse.Namespace,
                 engines: tuple[str | None, str | None] = (None, None)) -> None:
        self.runs: tuple[list[Result], list[Result]] = ([], [])
        for _ in range(args.runs):
            self.runs[0].append(_once(base, args, engines[0]))
            self.runs[1].append(_once(other, args, engines[1]))
        self.base, self.other = _summary(self.runs[0]), _summary(self.runs[1])

    def ratio(self) -> float:
        """Median over the runs of other's events/s over base's, run by run."""
        return statistics.median(o["rate"] / b["rate"] for b, o in zip(*self.runs, strict=True))

    def cpu_ratio(self) -> float:
        """The same by CPU seconds per event: base's CPU seconds over other's, as both read
        the same events (for a --workers run, how much CPU it spends more or less)."""
        return statistics.median(b["cpu_s"] / b["events"] / (o["cpu_s"] / o["events"])
                                 for b, o in zip(*self.runs, strict=True))


def _line(name: str, result: Result) -> str:
    return (f"{name:<46} {result['rate']:>9,.0f} {result['cpu_s']:>7.2f} "
            f"{result['rss_mb']:>6.0f} MB {result['setup_s']:>6.2f}")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "SHORT"


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _default(args: argparse.Namespace) -> dict[str, Result]:
    """Issue 17's figures and targets; returns (a)'s runs pooled, for --all's table."""
    _progress("(a) / (a') lean decode ...")
    lean = Pair("parse", "lean", args)
    _progress("(a) / (c) scan, shipped pack ...")
    pack = Pair("parse", "scan", args)
    _progress("(a) / (d) scan, pack + 200 rules ...")
    more = Pair("parse", "scan-200", args)
    _progress("(c) / (f) --workers 1 / 2 ...")
    workers = Pair("scan", "scan-w2", args)

    print(f"{'':<46} {'events/s':>9} {'CPU s':>7} {'peak RSS':>9} {'setup s':>6}")
    for pair, base, other, ratio in (
            (lean, "(a)  parse only: gunzip + orjson",
             "(a') lean decode: gunzip + msgspec, pack fields", "(a')/(a)"),
            (pack, "(a)  parse only", "(c)  scan, shipped pack, --workers 1", "(c)/(a)"),
            (more, "(a)  parse only", "(d)  scan, pack + 200 rules, --workers 1", "(d)/(a)")):
        print(_line(base, pair.base))
        print(_line(other, pair.other))
        print(f"     {ratio} = {pair.ratio():.2f}x  (by CPU {pair.cpu_ratio():.2f}x)")
    print(_line("(c)  scan, shipped pack, --workers 1", workers.base))
    print(_line("(f)  scan, shipped pack, --workers 2", workers.other))
    print(f"     (f)/(c) = {workers.ratio():.2f}x  (CPU per event: (f) spends "
          f"{1 / workers.cpu_ratio():.2f}x (c)'s)")
    parse = _summary(lean.runs[0] + pack.runs[0] + more.runs[0])  # (a)'s runs pooled
    counts = {int(r["events"]) for r in (parse, lean.other, pack.other, more.other,
                                         workers.other)}
    if counts != {args.events}:  # every mode must have read every record, no more
        print(f"WARNING: modes read different numbers of events: {sorted(counts)}")
    scan_us, lean_us, parse_us = (r["cpu_s"] / r["events"] * 1e6
                                  for r in (pack.other, lean.other, parse))
    print(f"CPU per event (medians): parse {parse_us:.2f} us, lean decode {lean_us:.2f} us, "
          f"scan with the pack {scan_us:.2f} us, {scan_us - lean_us:.2f} us past lean decoding")

    peak = max(result["rss_mb"] for result in (pack.other, more.other, workers.base,
                                                  workers.other))
    targets = [
        ("(c)/(a)  scan, shipped pack", ">= 1.00", pack.ratio(), pack.ratio() >= 1.0,
         f"by CPU {pack.cpu_ratio():.2f}"),
        ("(d)/(a)  scan, pack + 200 rules", ">= 0.80", more.ratio(), more.ratio() >= 0.8,
         f"by CPU {more.cpu_ratio():.2f}"),
        ("(f)/(c)  --workers 2 / 1", ">= 1.80", workers.ratio(), workers.ratio() >= 1.8, ""),
    ]
    print("targets (issue 17; ratios by events/s, medians of the paired runs)")
    for name, target, ratio, ok, note in targets:
        print(f"  {name:<34} {target:>8}  {ratio:>6.2f}x  {_verdict(ok):<5}  {note}".rstrip())
    if args.start_load > 0.5:  # before the bench ran: others' work
        print(f"  (load average {args.start_load:.2f} before the bench: others' work takes "
              "part of the core a second worker needs, so (f)/(c) reads low)")
    print(f"  {'peak RSS, largest of (c) (d) (f)':<34} {'< 150 MB':>8}  {peak:>4.0f} MB  "
          f"{_verdict(peak < 150)}")
    reference = "(a')/(a) lean decode, for reference"
    print(f"  {reference:<34} {'':>8}  {lean.ratio():>6.2f}x")
    return {"parse": parse, "scan": pack.other, "scan-200": more.other}


def _extras(args: argparse.Namespace, done: dict[str, Result]) -> None:
    """The comparisons kept from before issue 17, against (a) pooled from the default run."""
    _progress("--all: naive loops, compiled / interpreted, stateless --workers ...")
    f200 = Pair("scan-200", "scan-200-w2", args)
    stateless = Pair("scan-200-stateless", "scan-200-stateless-w2", args)
    interpreted = _run("scan", args, "interpreted")
    thousand = Pair("scan-1000", "scan-1000", args, ("compiled", "interpreted"))
    results = {
        "(b)  naive jmespath loop, shipped pack": _run("naive", args),
        "(b') naive jmespath loop, pack + 200 rules": _run("naive-200", args),
        "(e)  scan, pack, interpreted": interpreted,
        "(e)  scan, pack + 1000 rules, compiled": thousand.base,
        "(e)  scan, pack + 1000 rules, interpreted": thousand.other,
        "(f)  scan, pack + 200, --workers 1": f200.base,
        "(f)  scan, pack + 200, --workers 2": f200.other,
        "(f)  stateless pack + 200, --workers 1": stateless.base,
        "(f)  stateless pack + 200, --workers 2": stateless.other,
    }
    parse = done["parse"]["rate"]
    print(f"\n--all (naive: 1 run of {args.naive_events:,} events; 'of (a)' against (a)'s "
          f"{parse:,.0f} events/s, its runs above pooled)")
    for name, result in results.items():
        print(f"{_line(name, result)}  {result['rate'] / parse:6.1%} of (a)")
    naive, naive200 = (results[k]["rate"] for k in list(results)[:2])
    c, d = done["scan"]["rate"], done["scan-200"]["rate"]
    print(f"(d)/(b') = {d / naive200:.1f}x   (c)/(b) = {c / naive:.1f}x")
    print(f"compiled/interpreted: pack {c / interpreted['rate']:.2f}x (unpaired), "
          f"pack + 1000 rules {1 / thousand.ratio():.2f}x")
    print(f"--workers 2 / 1: pack + 200 {f200.ratio():.2f}x, stateless pack + 200 "
          f"{stateless.ratio():.2f}x; stateless pack + 200 on one core = "
          f"{stateless.base['rate'] / parse:.0%} of (a)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--naive-events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="compiled", choices=("compiled", "interpreted"))
    parser.add_argument("--all", action="store_true",
                        help="also the naive loop, interpreted and stateless comparisons")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.events, args.naive_events, args.engine)))
        return
    from bench.streamgen import PLACES, generate

    args.start_load = os.getloadavg()[0]
    files = generate(OUT / f"stream-{args.events}", args.events)
    shape = _lean_reader().shape
    accounts = len({account for account, _ in PLACES})
    print(f"{args.events:,} events in {len(files)} files ({accounts} accounts x "
          f"{len(PLACES) // accounts} regions, scanned as a directory), medians of "
          f"{args.runs} runs, engine={args.engine}; load average {_load()}")
    print(f"lean decode fields: {_shape_text(shape)}")
    started = time.perf_counter()
    done = _default(args)
    if args.all:
        _extras(args, done)
    print(f"bench took {time.perf_counter() - started:.0f} s; load average {_load()}")


if __name__ == "__main__":
    main()
