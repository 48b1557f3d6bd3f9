"""A real Redis for tests, in a namespace of this test run's own.

Every URL handed out names a key prefix unique to this pytest session (and to each use:
`redis://127.0.0.1:6379/DB?prefix=tgtest-<session>-<n>`), and cleanup deletes that prefix's
keys instead of flushing the database: two test runs on one machine (two engineers, CI
jobs) share a Redis without failing each other. The three databases, the daemon tests',
the state suites' and the outbox's, default to 12, 13 and 14 and can be chosen with
TRAILGUARD_TEST_REDIS_DBS="1,2,3".

`ensure_redis()` starts `redis-server` (no persistence) when nothing answers and the binary is
installed, as CI does; when Redis cannot be had at all the Redis tests are skipped, and say so.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

HOST, PORT = "127.0.0.1", 6379
DAEMON_DB, DB, OUTBOX_DB = (int(n) for n in
                            os.environ.get("TRAILGUARD_TEST_REDIS_DBS", "12,13,14").split(","))
SESSION = f"tgtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
_uses = itertools.count(1)


def namespace() -> str:
    """A key prefix nobody else uses: this session's, numbered per use."""
    return f"{SESSION}-{next(_uses)}"


def url_for(db: int, prefix: str) -> str:
    return f"redis://{HOST}:{PORT}/{db}?prefix={prefix}"


def _client(db: int = DB):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis(host=HOST, port=PORT, db=db, socket_connect_timeout=1)


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


def delete_namespace(url: str) -> int:
    """Delete every key of the namespace `url` names (never anything else); return how many."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    prefix = parse_qs(parts.query)["prefix"][-1]
    client = _client(int(parts.path.strip("/") or 0))
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start:start + 1000])
    return len(keys)


def redis_namespace(db: int = DB) -> Iterator[str]:
    """For a fixture: the URL of an empty namespace in `db`, its keys deleted afterwards."""
    if not ensure_redis():
        no_redis()
    url = url_for(db, namespace())
    delete_namespace(url)
    yield url
    delete_namespace(url)


def empty_redis() -> Iterator[str]:
    """For a fixture: an empty namespace in the state suites' database."""
    yield from redis_namespace(DB)
