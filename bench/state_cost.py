"""What state costs: `scan` events/s with the full rule pack on memory, SQLite and Redis.

    python bench/state_cost.py [--events N] [--million] [--runs R] [--redis URL]

The stream is bench/streamgen.py's (about 90% ReadFromRepository from 300 sessions, records
up to five minutes out of order), so every download is a match of the mass-download
threshold rule: the worst case for state, one store change per event. Rows:

  memory, stateless rules only   the pack without dedup/threshold/first_seen rules: no state
  memory / sqlite / redis        the whole pack on each backend

and, per backend, the state left after the run: eventIDs remembered, values kept, and bytes
(memory: serialised size; SQLite: the database and WAL files; Redis: growth of used_memory).
`--million` runs a million events (a couple of minutes per backend). Each row runs in a
fresh process. The Redis database given (default db 14) is emptied before and after.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
LISTS = frozenset({"trusted_networks", "ci_publishers", "trusted_accounts"})


def measure(backend: str, events: int, redis_url: str) -> dict[str, float]:
    """One run in this process: events/s, alerts, peak RSS and the state left behind."""
    from bench.streamgen import generate
    from engine.conditions.evaluator import Evaluator
    from engine.conditions.functions import TrailguardFunctions
    from engine.decide.decider import new_decider
    from engine.inputs.files import iter_paths
    from engine.pack import shipped_rules
    from engine.rules import load_rules
    from engine.scan.pipeline import run_scan, tune_gc
    from engine.state import open_store

    tune_gc()  # as `trailguard scan` runs
    files = [str(p) for p in generate(OUT / f"stream-{events}", events)]
    functions = TrailguardFunctions()
    rules = load_rules([shipped_rules()], functions, functions.lists.keys() | LISTS).rules
    if backend == "stateless":
        rules = tuple(rule for rule in rules if not rule.stateful)
    with tempfile.TemporaryDirectory() as scratch:
        url = {"sqlite": f"sqlite:///{scratch}/state.db", "redis": redis_url}.get(
            backend, "memory://")
        before = _redis_memory(redis_url) if backend == "redis" else 0
        store = open_store(url)
        evaluator = Evaluator(rules, functions)
        alerts = 0

        def count(_: object) -> None:
            nonlocal alerts
            alerts += 1

        started = time.perf_counter()
        refs: list[tuple[str, int] | None] = []  # as `trailguard scan` does (engine.decide.stubs)
        stats = run_scan(iter_paths(files, refs=refs), evaluator,
                         new_decider(evaluator, 900.0, store), count, refs=refs)
        elapsed = time.perf_counter() - started
        state = store.stats()
        store.close()
        if backend == "sqlite":
            state["bytes"] = sum(p.stat().st_size for p in Path(scratch).glob("state.db*"))
        elif backend == "redis":
            state["bytes"] -= before
    return {"events": stats.events, "rate": stats.events / elapsed, "alerts": alerts,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **state}


def _redis_memory(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    return int(client.info("memory")["used_memory"])


def _run(backend: str, args: argparse.Namespace) -> dict[str, float]:
    runs = []
    for _ in range(args.runs):
        if backend == "redis":
            _redis_memory(args.redis)
        done = subprocess.run(
            [sys.executable, __file__, "--one", backend, "--events", str(args.events),
             "--redis", args.redis], capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(done.stdout))
    if backend == "redis":
        _redis_memory(args.redis)
    result = dict(runs[-1])
    result["rate"] = statistics.median(r["rate"] for r in runs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="run 1,000,000 events")
    parser.add_argument("--runs", type=int, default=1, help="runs per row (median rate)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14",
                        help="Redis database to use (emptied before and after)")
    parser.add_argument("--backends", default="stateless,memory,sqlite,redis")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.million:
        args.events = 1_000_000
    if args.one:
        print(json.dumps(measure(args.one, args.events, args.redis)))
        return
    from bench.streamgen import generate

    generate(OUT / f"stream-{args.events}", args.events)
    print(f"{args.events:,} events, full shipped pack, lateness 15m, runs={args.runs}")
    print(f"{'backend':<28} {'events/s':>10} {'alerts':>7} {'RSS MB':>7} "
          f"{'eventIDs':>10} {'values':>8} {'state MB':>9}")
    for backend in args.backends.split(","):
        r = _run(backend, args)
        name = "memory, stateless rules only" if backend == "stateless" else backend
        print(f"{name:<28} {r['rate']:>10,.0f} {r['alerts']:>7,} {r['rss_mb']:>7.0f} "
              f"{r['event_ids']:>10,} {r['keys']:>8,} {r['bytes'] / 1e6:>9.1f}")


if __name__ == "__main__":
    main()
