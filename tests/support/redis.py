"""A real Redis for tests: db 13 on 127.0.0.1:6379, flushed before and after each use.

`ensure_redis()` starts `redis-server` (no persistence) when nothing answers and the binary is
installed, as CI does; when Redis cannot be had at all the Redis tests are skipped, and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

HOST, PORT = "127.0.0.1", 6379
# Three databases: the daemon tests', the state suites' and the outbox's. Overridable so that
# concurrent runs on one machine can be kept apart (TRAILGUARD_TEST_REDIS_DBS="9,10,11").
DAEMON_DB, DB, OUTBOX_DB = (int(n) for n in
                            os.environ.get("TRAILGUARD_TEST_REDIS_DBS", "12,13,14").split(","))
REDIS_URL = f"redis://{HOST}:{PORT}/{DB}"


def _client():  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(host=HOST, port=PORT, db=DB, socket_connect_timeout=1)


def _answers() -> bool:
    try:
        return bool(_client().ping())
    except Exception:
        return False


def ensure_redis() -> bool:
    """True when Redis answers, after starting a server if none runs and one is installed."""
    if _answers():
        return True
    server = shutil.which("redis-server")
    if server is None:
        return False
    subprocess.run([server, "--daemonize", "yes", "--port", str(PORT), "--save", ""],
                   check=False, capture_output=True)
    for _ in range(50):
        if _answers():
            return True
        time.sleep(0.1)
    return False


def no_redis() -> None:
    """Skip a Redis test on a laptop without Redis; in CI a missing Redis is a failure."""
    message = f"no Redis at {HOST}:{PORT} and no redis-server to start"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def flush() -> None:
    _client().flushdb()


def empty_redis() -> Iterator[str]:
    """For a fixture: the URL of an empty Redis database, emptied again afterwards."""
    if not ensure_redis():
        no_redis()
    flush()
    yield REDIS_URL
    flush()
