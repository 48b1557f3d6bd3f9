"""What the correlation rules (SPEC §8) cost a scan: CPU seconds with and without them.

    python bench/correlation.py [--events N] [--runs R]

Scans bench/streamgen.py's stream (downloads, tokens, listings: nearly no record matches a
sequence step) with the shipped pack, in a fresh process per run, and prints the median CPU
seconds (user + system of the process, from the first record read) of:
  without: the pack minus its sequence and absence rules
  with:    the pack as shipped (its sequences; codeartifact-trail-silent is disabled)
  all:     the pack with codeartifact-trail-silent enabled too: an absence rule matches every
           CodeArtifact record, so every record changes its group's state
"without" -> "with" is what sequences cost the records that match no step: the rule index
sends a record only to the steps that can match it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
MODES = ("without", "with", "all")
CONFIG = ROOT / "tests" / "data" / "baseline" / "trailguard.yml"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, events: int) -> dict[str, float]:
    from bench.streamgen import generate
    from engine.conditions.evaluator import Evaluator
    from engine.decide.decider import new_decider
    from engine.inputs.files import iter_paths
    from engine.scan.pipeline import run_scan, tune_gc
    from engine.startup import prepare, rules_of

    files = generate(OUT / f"stream-{events}", events)
    setup = prepare(str(CONFIG), None)  # the pack with the lists it reads
    functions = setup.functions
    rules = rules_of(setup).rules
    if mode == "without":
        rules = tuple(r for r in rules if r.sequence is None and r.absence is None)
    elif mode == "all":
        rules = tuple(replace(r, enabled=True) for r in rules)
    evaluator = Evaluator(rules, functions)
    tune_gc()
    alerts: list[object] = []
    started = _cpu()
    items = iter_paths([str(path) for path in files])
    stats = run_scan(items, evaluator, new_decider(evaluator, 900.0), alerts.append)
    return {"cpu": _cpu() - started, "events": stats.events, "rules": len(rules),
            "alerts": len(alerts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.events)))
        return
    for mode in MODES:
        runs = [json.loads(subprocess.run(
            [sys.executable, __file__, "--one", mode, "--events", str(args.events)],
            capture_output=True, text=True, check=True).stdout) for _ in range(args.runs)]
        cpu = statistics.median(run["cpu"] for run in runs)
        first = runs[0]
        each = ", ".join(f"{run['cpu']:.2f}" for run in runs)
        print(f"{mode:8} {first['rules']:3} rules  {first['events']:,} events  "
              f"{cpu:6.2f} CPU s (median of {args.runs}: {each})  "
              f"{first['events'] / cpu:,.0f} events/CPU s  {first['alerts']} alerts")


if __name__ == "__main__":
    main()
