"""Throughput of trailguard's scan path against parsing alone and a naive JMESPath loop.

    python bench/throughput.py [--events N] [--naive-events N] [--runs R]

Prints events/s (median of R runs), peak RSS and setup time for:
  (a) parse:      gunzip + orjson of the CloudTrail log files, nothing else
  (b) naive:      the same, then `expression.search(record)` for every rule on every record
                  (precompiled, jmespath's interpreter; shipped pack, and pack + 200 rules)
  (c) scan:       trailguard's scan path (inputs -> dedup -> index -> evaluate -> decide)
                  with the shipped pack
  (d) scan+200:   the same with 200 generated rules added
  (e) compiled vs interpreted conditions, with the shipped pack and with 1,000 generated rules
  (f) --workers 2 vs 1, with the pack and with its stateless rules only
and the ratios the issues ask for, with the peak RSS of each. The stream is an organisation
trail's archive over 2 accounts x 3 regions (bench/streamgen.py), scanned as a directory, so
the figures include what reading an archive in eventTime order costs (bench/scan_order.py
compares with path order). Every measurement runs in a
fresh process so one's memory and garbage do not slow the next. Events/s counts from the
first record read: loading and compiling the rules (and the naive loop's jmespath.compile)
is a fixed cost, about 0.2-0.3 s whatever the input, printed apart as "setup"; forking the
--workers processes is part of the scan.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def _parse_only(files: list[Path]) -> int:
    from engine.decode import decode

    count = 0
    for path in files:
        for item in decode(path.read_bytes(), str(path)):
            count += type(item) is dict
    return count


def _rules(extra: int) -> list[str]:
    from bench.rulegen import write_rules
    from engine.pack import shipped_rules

    paths = [str(shipped_rules())]
    if extra:
        paths.append(str(write_rules(OUT / f"rules-{extra}", extra)))
    return paths


def _naive(files: list[Path], extra: int, limit: int) -> tuple[int, float]:
    import jmespath

    from engine.decode import decode
    from engine.functions import TrailguardFunctions
    from engine.rules import load_rules

    functions = TrailguardFunctions()
    rules = load_rules(_rules(extra), functions, ["trusted_networks", "ci_publishers",
                                                   "trusted_accounts"]).rules
    options = jmespath.Options(custom_functions=functions)
    expressions = [jmespath.compile(rule.condition) for rule in rules]
    started = time.perf_counter()
    count = 0
    for path in files:
        for record in decode(path.read_bytes(), str(path)):
            for expression in expressions:
                with contextlib.suppress(Exception):  # a failing rule is no match
                    expression.search(record, options)
            count += 1
            if count >= limit:
                return count, started
    return count, started


def _scan(files: list[Path], extra: int, engine: str, workers: int = 1,
          stateless: bool = False) -> tuple[int, float]:
    from engine.decide import new_decider
    from engine.evaluator import Evaluator
    from engine.functions import TrailguardFunctions
    from engine.inputs import walk
    from engine.parallel import parallel_scan
    from engine.rules import load_rules
    from engine.state import open_store

    functions = TrailguardFunctions()
    rules = load_rules(_rules(extra), functions, functions.lists.keys() | {
        "trusted_networks", "ci_publishers", "trusted_accounts"}).rules
    if stateless:
        rules = tuple(rule for rule in rules if not rule.stateful)
    evaluator = Evaluator(rules, functions, engine)
    store = open_store("memory://")
    decider = new_decider(evaluator, 900.0, store)
    started = time.perf_counter()  # rules loaded and compiled: a fixed cost, reported apart
    # as `trailguard scan archive/` does, whatever the number of workers: the archive's
    # directory walked in eventTime order (engine.walk), across its accounts and regions
    stats = parallel_scan(walk([str(files[0].parents[6])]), workers, evaluator, decider,
                          store, lambda alert: None)
    return stats.events, started


def measure(mode: str, events: int, naive_events: int, engine: str) -> dict[str, float]:
    """One measurement in this process: events/s and peak RSS (MB)."""
    from bench.streamgen import generate
    from engine.scan import tune_gc

    files = generate(OUT / f"stream-{events}", events)
    tune_gc()  # every mode, as `trailguard scan` runs: the baselines get the same help
    started = begun = time.perf_counter()
    if mode == "parse":
        count = _parse_only(files)
    elif mode.startswith("naive"):
        count, begun = _naive(files, 200 if mode.endswith("200") else 0, naive_events)
    else:  # scan[-EXTRA][-stateless][-wN]
        parts = mode.split("-")
        extra = next((int(p) for p in parts[1:] if p.isdigit()), 0)
        workers = next((int(p[1:]) for p in parts if p.startswith("w")), 1)
        count, begun = _scan(files, extra, engine, workers, "stateless" in parts)
    elapsed = time.perf_counter() - begun
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # a worker's, when forked
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return {"events": count, "rate": count / elapsed, "rss_mb": peak,
            "setup_s": begun - started}


def _once(mode: str, args: argparse.Namespace, engine: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--one", mode, "--events", str(args.events),
         "--naive-events", str(args.naive_events), "--engine", engine],
        capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


def _summary(runs: list[dict[str, float]]) -> dict[str, float]:
    return {"rate": statistics.median(r["rate"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs), "events": runs[0]["events"],
            "setup_s": statistics.median(r["setup_s"] for r in runs)}


def _run(mode: str, args: argparse.Namespace, engine: str = "compiled") -> dict[str, float]:
    runs = [_once(mode, args, engine) for _ in range(1 if mode.startswith("naive") else args.runs)]
    return _summary(runs)


def _pair(first: str, second: str, args: argparse.Namespace) -> tuple[dict[str, float], ...]:
    """Two modes run alternately, so a machine that speeds up or slows down during the
    bench (shared hosts do) moves both figures of a ratio alike."""
    runs: tuple[list[dict[str, float]], list[dict[str, float]]] = ([], [])
    for _ in range(args.runs):
        runs[0].append(_once(first, args, args.engine))
        runs[1].append(_once(second, args, args.engine))
    return _summary(runs[0]), _summary(runs[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="compiled", choices=("compiled", "interpreted"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.events, args.naive_events, args.engine)))
        return
    from bench.streamgen import generate

    generate(OUT / f"stream-{args.events}", args.events)
    f1, f2 = _pair("scan-200", "scan-200-w2", args)
    s1, s2 = _pair("scan-200-stateless", "scan-200-stateless-w2", args)
    results = {
        "(a) parse only (gzip + orjson)": _run("parse", args),
        "(b) naive jmespath loop, shipped pack": _run("naive", args),
        "(b') naive jmespath loop, pack + 200 rules": _run("naive-200", args),
        "(c) trailguard scan, shipped pack": _run("scan", args, args.engine),
        "(d) trailguard scan, pack + 200 rules": _run("scan-200", args, args.engine),
        "(e) scan, pack, interpreted": _run("scan", args, "interpreted"),
        "(e) scan, pack + 1000 rules, compiled": _run("scan-1000", args, "compiled"),
        "(e) scan, pack + 1000 rules, interpreted": _run("scan-1000", args, "interpreted"),
        "(f) scan, pack + 200, --workers 1": f1,
        "(f) scan, pack + 200, --workers 2": f2,
        "(f) stateless pack + 200, --workers 1": s1,
        "(f) stateless pack + 200, --workers 2": s2,
    }
    parse = results["(a) parse only (gzip + orjson)"]["rate"]
    print(f"{args.events:,} events, median of {args.runs} runs (naive: 1 run of "
          f"{args.naive_events:,} events), engine={args.engine}")
    for name, result in results.items():
        print(f"{name:<45} {result['rate']:>10,.0f} events/s  {result['rate'] / parse:6.1%} "
              f"of (a)  peak RSS {result['rss_mb']:.0f} MB  setup {result['setup_s']:.2f} s")
    b, b200, c, d = (result["rate"] for result in list(results.values())[1:5])
    e_pack, e1000c, e1000i, f1, f2, s1, s2 = (r["rate"] for r in list(results.values())[5:])
    print(f"(c)/(a) = {c / parse:.2f}   (d)/(a) = {d / parse:.2f}   (d)/(b') = {d / b200:.1f}x   "
          f"(c)/(b) = {c / b:.1f}x")
    print(f"compiled/interpreted: pack {c / e_pack:.2f}x, pack + 1000 rules "
          f"{e1000c / e1000i:.2f}x")
    print(f"--workers 2 / 1: pack + 200 {f2 / f1:.2f}x, stateless pack + 200 {s2 / s1:.2f}x; "
          f"stateless pack + 200 on one core = {s1 / parse:.0%} of (a), "
          f"{s1 / b200:.0f}x (b')")


if __name__ == "__main__":
    main()
