"""kill -9 with Redis state loses nothing (SPEC §4, §6): a daemon on SQS and Redis is killed
at its first eventID claim and at random moments; a restarted one delivers every alert.

Before the batch protocol (engine.state.redisbatch) a kill at the first claim lost 50 of the
135 alerts every time: the records were claimed before their alerts reached the outbox, so
the redelivered message's records were repeats. `bench/crash_redis.py` runs many trials;
set TRAILGUARD_CRASH_TRIALS to run more here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.crash import EXPECTED, kill_points, run_trial
from tests.support.moto_server import MotoServer
from tests.support.redis import DAEMON_DB, _client, ensure_redis, redis_namespace

TRIALS = int(os.environ.get("TRAILGUARD_CRASH_TRIALS", "4"))


@pytest.fixture(scope="module")
def aws() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not ensure_redis():
        pytest.fail("Redis is required for the crash tests (start redis-server)")
    yield from redis_namespace(DAEMON_DB)


def _claims(url: str):  # type: ignore[no-untyped-def]
    prefix = url.split("prefix=", 1)[1]
    client = _client(DAEMON_DB)
    return lambda: bool(client.keys(f"{prefix}:ids:*"))


@pytest.mark.parametrize("kill_after", kill_points(TRIALS, seed=15, spread=1.0))
def test_crash_redis_kill_9_loses_no_alert(aws: MotoServer, redis_url: str, tmp_path: Path,
                                           kill_after: float | None) -> None:
    """Killed at the first claim or at a random moment, then restarted: all 135 alerts
    reach Slack, and at most one twice (the post in flight at the kill)."""
    outcome = run_trial(aws, tmp_path, redis_url, _claims(redis_url), kill_after)
    assert outcome.lost == 0, f"{outcome.lost} of {EXPECTED} alerts lost ({outcome.kill})"
    assert outcome.repeats <= 1, outcome
