"""What reading a finite input in eventTime order costs and gives (SPEC §7, issue 16).

    python bench/scan_order.py [--events N] [--runs R] [--old-tree DIR]
    python bench/scan_order.py --files 1000,100000 [--old-tree DIR]

Over bench/streamgen.py's archive (2 accounts x 3 regions: a directory walked by name reads
one account-region after the other), through the real CLI with the shipped pack and
`--workers 1`, each run in a fresh process, paired runs alternating:
  * the archive as a directory ("path order" on disk), and the same records as one
    time-sorted JSON-lines file: their alerts must be the same, and `late:` absent;
  * CPU seconds (user + sys of the scan process) of the directory scan, with this tree and,
    with --old-tree (e.g. `git archive <commit> | tar -x -C DIR`), with that tree's code.
`--files`: peak RSS of `trailguard scan --workers 1` over archives of that many small log
files (one record each, 4 account-regions, a file every 5 minutes in each): memory must not
grow with the number of files.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def scan(tree: Path, *paths: str) -> tuple[float, str, str]:
    """(CPU seconds, stdout, stderr) of one `trailguard scan --workers 1` in `tree`."""
    before = os.times()
    done = subprocess.run([sys.executable, "-m", "engine", "scan", "--workers", "1", *paths],
                          cwd=tree, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return cpu, done.stdout, done.stderr


def signature(stdout: str) -> list[tuple[str, int]]:
    return sorted((a["alert_id"], a["event_count"]) for a in map(json.loads, stdout.splitlines()))


def time_sorted_lines(files: list[Path], target: Path) -> Path:
    """The archive's records as one time-sorted JSON-lines file (rewritten when older than
    the archive)."""
    if not target.exists() or target.stat().st_mtime < max(f.stat().st_mtime for f in files):
        from engine.inputs.decode import decode

        records = [r for f in files for r in decode(f.read_bytes(), str(f)) if type(r) is dict]
        records.sort(key=lambda r: r["eventTime"])
        target.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return target


def write_many(directory: Path, count: int) -> Path:
    """`count` log files of one record each over 4 account-regions (reused if there)."""
    import gzip
    import random
    from datetime import UTC, datetime, timedelta

    from bench.streamgen import PLACES, make_record

    marker = directory / ".complete"
    if marker.exists():
        return directory
    rng = random.Random(count)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    for n in range(count):
        account, region = PLACES[n % 4]
        stamp = start + timedelta(minutes=5 * (n // 4 + 1))
        record = make_record(rng, stamp - timedelta(minutes=2), account, region)
        path = directory / f"AWSLogs/{account}/CloudTrail/{region}/{stamp:%Y/%m/%d}" / (
            f"{account}_CloudTrail_{region}_{stamp:%Y%m%dT%H%MZ}_{n:08d}.json.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(orjson.dumps({"Records": [record]})))
    marker.touch()
    return directory


def peak_rss_mb(tree: Path, *paths: str) -> float:
    """Peak RSS of one `trailguard scan --workers 1` in `tree`, measured by a parent that
    runs nothing else."""
    measure = ("import resource, subprocess, sys; "
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "engine", "scan",
                           "--workers", "1", *paths], cwd=tree, capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return int(done.stdout) / 1024


def memory(counts: list[int], trees: dict[str, Path]) -> None:
    for count in counts:
        directory = write_many(OUT / f"many-{count}", count)
        for name, tree in trees.items():
            print(f"{count:>9,} files, {name}: peak RSS {peak_rss_mb(tree, str(directory)):.1f} MB",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=150_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old-tree", type=Path)
    parser.add_argument("--files", help="comma-separated counts: the memory measurement")
    args = parser.parse_args()
    trees = {"this tree": ROOT, **({"old tree": args.old_tree} if args.old_tree else {})}
    if args.files:
        memory([int(n) for n in args.files.split(",")], trees)
        return
    from bench.streamgen import generate

    archive = OUT / f"stream-{args.events}"
    files = generate(archive, args.events)
    lines = time_sorted_lines(files, OUT / f"stream-{args.events}-sorted.jsonl")
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    alerts: dict[str, tuple[list[tuple[str, int]], str]] = {}
    for _ in range(args.runs):
        for name, tree in trees.items():
            seconds, out, err = scan(tree, str(archive))
            cpu[name].append(seconds)
            alerts[name] = signature(out), err
    _, sorted_out, sorted_err = scan(ROOT, str(lines))
    print(f"{args.events:,} events in {len(files):,} files; median CPU s of {args.runs} "
          f"paired runs, --workers 1, shipped pack")
    for name in trees:
        same = alerts[name][0] == signature(sorted_out)
        late = [line.strip() for line in alerts[name][1].splitlines() if "late:" in line]
        print(f"  directory, {name}: {statistics.median(cpu[name]):.2f} s "
              f"(runs: {', '.join(f'{s:.2f}' for s in cpu[name])}); "
              f"{len(alerts[name][0])} alerts, same as the time-sorted stream: {same}; "
              f"{late[0] if late else 'late: 0'}")
    print(f"  time-sorted JSON lines: {len(signature(sorted_out))} alerts; "
          f"late line: {'late:' in sorted_err}")


if __name__ == "__main__":
    main()
