"""End-to-end latency and throughput of `trailguard run` against moto, Slack and Redis.

    python bench/daemon.py [--objects 40] [--records 500]

Latency: a gzipped log file with one matching record is put into S3 (notification -> SQS);
the time until the local Slack receiver gets the alert, median of 10. Throughput: `--objects`
log files of `--records` records each (bench stream, shipped-pack-like rules) consumed by one
daemon, then by two daemons sharing the queue and Redis; events/s from /metrics.
moto stands in for AWS, so absolute numbers include its own cost (S3 GET, SQS calls).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.streamgen import make_record  # noqa: E402
from tests.support.daemon import Daemon, make_trail, publishes  # noqa: E402
from tests.support.moto_server import MotoServer  # noqa: E402
from tests.support.slack_receiver import SlackReceiver  # noqa: E402


def _events_total(daemons: list[Daemon]) -> float:
    total = 0.0
    for daemon in daemons:
        found = re.search(r"^trailguard_events_total (\S+)$", daemon.get("/metrics")[1], re.M)
        total += float(found.group(1)) if found else 0.0
    return total


def latency(tmp: Path) -> list[float]:
    with MotoServer() as aws, SlackReceiver() as slack:
        trail = make_trail(aws, slack, tmp, f"sqlite:///{tmp}/latency.db")
        daemon = Daemon(trail.config, tmp / "latency.log")
        samples = []
        try:
            for n in range(10):
                started = time.perf_counter()
                trail.put_log_file(publishes(1, start=n))
                trail.wait_for_alerts(n + 1, timeout=30)
                samples.append(time.perf_counter() - started)
        finally:
            daemon.stop()
        return samples


def throughput(tmp: Path, daemons: int, objects: int, records: int) -> float:
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/11").flushdb()
    with MotoServer() as aws, SlackReceiver() as slack:
        trail = make_trail(aws, slack, tmp, "redis://127.0.0.1:6379/11")
        rng = random.Random(3)
        start = datetime(2024, 3, 1, tzinfo=UTC)
        batches = [[make_record(rng, start + timedelta(seconds=n * 30 + k % 30))
                    for k in range(records)] for n in range(objects)]
        running = [Daemon(trail.config, tmp / f"tp{daemons}-{n}.log") for n in range(daemons)]
        try:
            started = time.perf_counter()
            for batch in batches:
                trail.put_log_file(batch)
            while _events_total(running) < objects * records:
                if time.perf_counter() - started > 600:
                    raise SystemExit("throughput run did not finish in 10 minutes")
                time.sleep(0.05)
            return objects * records / (time.perf_counter() - started)
        finally:
            for daemon in running:
                daemon.stop()


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--records", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "l").mkdir()
        samples = latency(Path(tmp) / "l")
        print(f"latency, S3 put -> Slack post: median {statistics.median(samples) * 1000:.0f} ms,"
              f" max {max(samples) * 1000:.0f} ms (10 objects)")
        for count in (1, 2):
            (Path(tmp) / f"t{count}").mkdir()
            rate = throughput(Path(tmp) / f"t{count}", count, args.objects, args.records)
            print(f"throughput, {count} daemon(s) on one queue + Redis: {rate:,.0f} events/s "
                  f"({args.objects} objects x {args.records} records)")


if __name__ == "__main__":
    main()
