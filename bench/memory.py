"""Peak memory of `trailguard scan` over a large input: it must stay flat (RSS < 200 MB).

    python bench/memory.py [--megabytes 1024] [--document]

Writes a JSON-lines file of realistic CodeArtifact records of the given size (streamed to
disk, reused between runs), scans it with the shipped pack through the real CLI, and prints
the child's peak RSS next to the input size. `--document`: the same records as one
CloudTrail-shaped document, `{"Records": [...]}` on one line, as an export tool might write.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.streamgen import make_record  # noqa: E402


def write_jsonl(path: Path, megabytes: int) -> int:
    if path.exists() and path.stat().st_size >= megabytes * 1_000_000:
        return sum(1 for _ in path.open("rb"))
    rng = random.Random(11)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    count = written = 0
    with path.open("wb") as out:
        while written < megabytes * 1_000_000:
            line = orjson.dumps(make_record(rng, start + timedelta(seconds=count // 20))) + b"\n"
            out.write(line)
            written += len(line)
            count += 1
    return count


def write_document(lines: Path, path: Path) -> None:
    """The JSON-lines records as one `{"Records": [...]}` line."""
    if path.exists() and path.stat().st_size >= lines.stat().st_size:
        return
    with lines.open("rb") as source, path.open("wb") as out:
        out.write(b'{"Records":[')
        for n, line in enumerate(source):
            out.write(b"," + line.rstrip(b"\n") if n else line.rstrip(b"\n"))
        out.write(b"]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--document", action="store_true")
    args = parser.parse_args()
    path = ROOT / "bench" / "out" / f"stream-{args.megabytes}MB.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    records = write_jsonl(path, args.megabytes)
    if args.document:
        write_document(path, path.with_suffix(".json"))
        path = path.with_suffix(".json")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine", "scan", str(path)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{path.stat().st_size / 1e6:,.0f} MB, {records:,} records scanned in {elapsed:.1f}s "
          f"({records / elapsed:,.0f} events/s): peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
