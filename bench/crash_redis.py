"""kill -9 loop: the daemon on SQS and Redis, killed at random moments, loses no alert.

    python bench/crash_redis.py [--trials 30] [--seed 1] [--state redis://127.0.0.1:6379/1]

Each trial (tests/support/crash.py) starts a daemon, puts three log files (135 alerts owed),
kills the daemon with SIGKILL at its first eventID claim in Redis (every third trial) or a
random 0-1.5 s after the puts, restarts it, and counts the alerts that never reached Slack
and those posted twice. tests/test_crash_redis.py runs a handful of the same trials.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.crash import EXPECTED, kill_points, run_trial  # noqa: E402
from tests.support.moto_server import MotoServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--state", default="redis://127.0.0.1:6379/1",
                        help="a Redis URL; each trial adds a prefix of its own")
    parser.add_argument("--no-prefix", action="store_true",
                        help="flush the database instead (for code without ?prefix=)")
    args = parser.parse_args()
    import redis

    base = args.state.split("?", 1)[0]
    client = redis.Redis.from_url(base)
    lost_trials = lost = repeats = 0
    with MotoServer() as aws, tempfile.TemporaryDirectory() as tmp:
        for n, kill_after in enumerate(kill_points(args.trials, args.seed)):
            prefix = f"crash-{uuid.uuid4().hex[:8]}"
            if args.no_prefix:
                client.flushdb()
                state, pattern = base, "trailguard:ids:*"
            else:
                state, pattern = f"{base}?prefix={prefix}", f"{prefix}:ids:*"

            def claims(pattern: str = pattern) -> bool:
                return bool(client.keys(pattern))

            outcome = run_trial(aws, Path(tmp) / f"t{n}", state, claims, kill_after)
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)
            lost_trials += outcome.lost > 0
            lost += outcome.lost
            repeats += outcome.repeats
            print(f"trial {n:3d}: kill at {outcome.kill:>11}: lost {outcome.lost:3d} of "
                  f"{EXPECTED}, posted twice {outcome.repeats}, {outcome.seconds:.1f}s",
                  flush=True)
    if args.no_prefix:
        client.flushdb()
    print(f"{args.trials} trials: {lost_trials} lost alerts ({lost} of "
          f"{args.trials * EXPECTED}); {repeats} posted twice")
    return 1 if lost else 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"{time.monotonic() - started:.0f}s", file=sys.stderr)
    raise SystemExit(code)
