"""One suite, every backend: memory://, sqlite:/// (a temporary file) and redis:// (a
namespace of this run's own, tests/support/redis.py).

Whatever the backend, the decider must see the same store: the same repeat answers, the same
atomic updates, the same purge on event time, and (for the persistent ones) the same state
after a restart. The last tests run whole scenarios through the decider on each backend and
compare the alerts with memory's.
"""

from __future__ import annotations

import copy
import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.state import BUCKET, PURGE_EVERY, Change, StateStore, open_store
from tests.support.redis import empty_redis
from tests.support.state import copies, make_rule, read, scan, views

BACKENDS = ["memory", "sqlite", "redis"]
T0 = 1_709_546_400.0  # 2024-03-04T10:00:00Z


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL of each backend."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from empty_redis()


@pytest.fixture(params=["sqlite", "redis"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh URL of each backend that outlives its process."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from empty_redis()


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from empty_redis()


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    with open_store(url) as opened:
        yield opened


def _put(value: Any, expires: float = T0 + 3600, result: Any = None) -> Any:
    return lambda _old: Change(value, expires, result)


def _increment(old: dict[str, int] | None) -> Change:
    count = (old or {"n": 0})["n"] + 1
    return Change({"n": count}, T0 + 3600, count)


# --- eventIDs ---

def test_store_claims_each_event_id_once(store: StateStore) -> None:
    """The first claim is new, every later one a repeat, within a batch and across batches."""
    assert store.seen_events([("a", T0), ("b", T0), ("a", T0)]) == [False, False, True]
    assert store.seen_events([("b", T0), ("c", T0 + 10)]) == [True, False]


def test_store_never_calls_a_record_without_event_id_a_repeat(store: StateStore) -> None:
    """No eventID, no repeat: such records are always evaluated."""
    assert store.seen_events([(None, T0), (None, T0)]) == [False, False]


def test_store_forgets_event_ids_past_the_horizon_only(store: StateStore) -> None:
    """Purging at the horizon drops old buckets and keeps the ones inside it."""
    store.seen_events([("old", T0), ("recent", T0 + 2 * BUCKET)])
    store.purge(T0 + 2 * BUCKET + store.event_id_horizon)
    assert store.seen_events([("old", T0), ("recent", T0 + 2 * BUCKET)]) == [False, True]


def test_store_remembers_a_late_event_id_for_a_horizon_from_its_arrival(
        store: StateStore) -> None:
    """A record already past the horizon when it is claimed (old logs backfilled after new
    ones) is still recognised when repeated, until the watermark is a horizon past the newest
    eventTime claimed before it."""
    now = T0 + 10 * BUCKET + store.event_id_horizon
    store.advance(now)
    assert store.seen_events([("recent", now), ("backfilled", T0)]) == [False, False]
    store.commit()
    store.purge(now + BUCKET / 2)
    assert store.seen_events([("backfilled", T0)]) == [True]
    store.advance(now + store.event_id_horizon + 2 * BUCKET)
    store.purge(now + store.event_id_horizon + 2 * BUCKET)
    assert store.seen_events([("backfilled", T0)]) == [False]


# --- values ---

def test_store_update_passes_none_for_a_missing_value(store: StateStore) -> None:
    """`change` sees None first, then what it stored; its result is returned."""
    seen: list[Any] = []

    def change(old: Any) -> Change:
        seen.append(copy.deepcopy(old))
        return Change({"n": 1, "list": [1, "x"], "map": {"k": None}}, T0 + 60, "done")

    assert store.update("k", change) == "done"
    assert store.update("k", change) == "done"
    assert seen == [None, {"n": 1, "list": [1, "x"], "map": {"k": None}}]
    assert store.get("k") == {"n": 1, "list": [1, "x"], "map": {"k": None}}


def test_store_update_to_none_deletes(store: StateStore) -> None:
    """A change returning None removes the value."""
    store.update("k", _put({"v": 1}))
    store.update("k", _put(None))
    assert store.get("k") is None
    assert store.stats()["keys"] == 0


def test_store_keeps_text_and_numbers_exactly(store: StateStore) -> None:
    """Unicode, big and fractional numbers and nesting survive the round trip."""
    value = {"s": "café \u2713 \x1f", "f": 1709546400.123456, "i": 2**40, "n": [[[]]]}
    store.update("k\x1fwith\x1fseparators", _put(value))
    assert store.get("k\x1fwith\x1fseparators") == value


def test_store_purges_values_whose_expiry_the_clock_passed(store: StateStore) -> None:
    """A value expiring before the purge clock goes; one expiring later stays."""
    store.update("old", _put({"v": 1}, expires=T0 + 10))
    store.update("new", _put({"v": 2}, expires=T0 + 1000))
    assert store.purge(T0 + 500) >= 1
    assert (store.get("old"), store.get("new")) == (None, {"v": 2})


def test_store_purges_only_after_the_clock_moved_far_enough(store: StateStore) -> None:
    """advance() purges at most once per PURGE_EVERY of event time."""
    store.advance(T0)
    store.update("v", _put({"v": 1}, expires=T0 + 10))
    store.advance(T0 + PURGE_EVERY - 1)
    assert store.get("v") == {"v": 1}
    store.advance(T0 + PURGE_EVERY)
    assert store.get("v") is None


def test_store_watermark_only_moves_forward(store: StateStore) -> None:
    """The recorded watermark is the newest reported, whatever the order of reports."""
    store.advance(T0 + 100)
    store.advance(T0 + 50)
    assert store.watermark == T0 + 100


def test_store_stats_count_event_ids_and_values(store: StateStore) -> None:
    """stats() reports what is kept, for people and benchmarks."""
    store.seen_events([("a", T0), ("b", T0)])
    store.update("k", _put({"v": 1}))
    stats = store.stats()
    assert (stats["event_ids"], stats["keys"]) == (2, 1)


# --- persistence ---

def test_persistent_store_survives_a_restart(persistent_url: str) -> None:
    """eventIDs, values and the watermark are there after close and reopen."""
    url = persistent_url
    with open_store(url) as first:
        first.seen_events([("a", T0)])
        first.update("k", _put({"v": 1}))
        first.advance(T0 + 5)
    with open_store(url) as second:
        assert second.seen_events([("a", T0)]) == [True]
        assert second.get("k") == {"v": 1}
        assert second.watermark == T0 + 5


def test_persistent_store_keeps_a_deletion_through_purge_and_restart(
        persistent_url: str) -> None:
    """A value deleted, then purged before any commit, stays deleted after a restart."""
    url = persistent_url
    with open_store(url) as first:
        first.update("k", _put({"v": 1}, expires=T0 + 10 * 86400))
        first.commit()
        first.update("k", _put(None))
        first.purge(T0 + 3600)
    with open_store(url) as second:
        assert second.get("k") is None


def test_sqlite_commit_makes_changes_visible_to_a_new_connection(tmp_path: Path) -> None:
    """After commit() another connection (a restarted daemon) sees every change."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    writer = open_store(url)
    writer.seen_events([("a", T0)])
    writer.update("k", _put({"v": 1}))
    writer.commit()
    with open_store(url) as reader:
        assert reader.seen_events([("a", T0)]) == [True]
        assert reader.get("k") == {"v": 1}
    writer.close()


def test_sqlite_relative_url_is_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///x.db is x.db here; sqlite:////abs.db is absolute."""
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///sub/x.db"):
        pass
    assert (tmp_path / "sub" / "x.db").exists()


def test_open_store_rejects_what_no_backend_understands() -> None:
    """Unknown schemes, a missing SQLite path and unknown options are config errors."""
    for bad in ("postgres://db", "sqlite://", "memory://?colour=red", "memory://?event_ids=x"):
        with pytest.raises(ConfigError):
            open_store(bad)


# --- concurrency (Redis) ---

def _hammer(url: str, key: str, times: int, barrier: Any, ids: list[str], out: Any) -> None:
    store = open_store(url)
    barrier.wait()
    new = [not seen for seen in store.seen_events([(i, T0) for i in ids])]
    for _ in range(times):
        store.update(key, _increment)
    out.put(sum(new))


def _two_processes(url: str, keys: list[str], times: int, ids: list[str]) -> int:
    """Run `_hammer` in two processes released together; the eventIDs new to either."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_hammer, args=(url, key, times, barrier, ids, out))
               for key in keys]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return int(out.get(timeout=5) + out.get(timeout=5))


def test_redis_updates_from_two_processes_are_atomic(redis_url: str) -> None:
    """Two processes increment one value 300 times each and claim the same 500 eventIDs."""
    ids = [f"id-{n}" for n in range(500)]
    assert _two_processes(redis_url, ["counter", "counter"], 300, ids) == 500
    with open_store(redis_url) as store:
        assert store.get("counter") == {"n": 600}


def test_redis_claims_split_event_ids_between_processes(redis_url: str) -> None:
    """Each eventID is new to exactly one of two processes claiming it at once."""
    ids = [f"id-{n}" for n in range(2000)]
    assert _two_processes(redis_url, ["c0", "c1"], 0, ids) == 2000


def test_redis_stale_cache_is_corrected_by_compare_and_set(redis_url: str) -> None:
    """A value changed by another connection is re-read, not overwritten."""
    url = redis_url
    with open_store(url) as one, open_store(url) as two:
        one.update("k", _increment)
        two.update("k", _increment)
        assert one.update("k", _increment) == 3
        two.update("k", _put(None))
        assert one.update("k", _increment) == 1


# --- whole scenarios ---

def test_backend_decides_exactly_like_memory(url: str) -> None:
    """Dedup, threshold, first_seen and copies give memory's alerts on every backend."""
    rules = [make_rule("plain"), make_rule("dedup", dedup="30m"),
             make_rule("burst", threshold=(3, "10m")),
             make_rule("new-ip", first_seen=("sourceIPAddress", "90d", "10m"))]
    timeline = [read(m, who=("alice", "bob")[m % 2], ip=f"192.0.2.{m % 5}")
                for m in range(0, 120, 3)] + copies(20) + copies(61, who="bob")
    expected = scan(rules, copy.deepcopy(timeline))
    with open_store(url) as store:
        assert views(scan(rules, copy.deepcopy(timeline), store=store)) == views(expected)


def test_backend_continues_a_scenario_after_reopening(persistent_url: str) -> None:
    """Split in two runs over a persistent store, a scenario alerts as in one run."""
    url = persistent_url
    rules = [make_rule("dedup", dedup="30m"), make_rule("burst", threshold=(3, "10m"))]
    timeline = [read(m) for m in (0, 2, 4, 40, 41, 90)]
    whole = scan(rules, copy.deepcopy(timeline))
    with open_store(url) as store:
        first = scan(rules, copy.deepcopy(timeline[:2]), store=store)
    with open_store(url) as store:
        second = scan(rules, copy.deepcopy(timeline[2:]), store=store)
    latest = {a.alert_id: a for a in first + second}
    assert sorted((a.alert_id, a.event_count) for a in latest.values()) == sorted(
        (a.alert_id, a.event_count) for a in whole)


def test_sqlite_purge_makes_nothing_durable_before_commit(tmp_path: Path) -> None:
    """The daemon commits a batch only once its alerts are durable: a purge in the middle of
    the batch must not commit its claims or decisions (a kill then would lose the alerts)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = open_store(url)
    first.autocommit = False
    first.seen_events([("claimed", T0)])
    first.update("k", _put({"v": 1}, expires=T0 + 10 * 86400))
    first.advance(T0 + 7 * 86400)  # far enough on to purge
    first.purge(T0 + 7 * 86400)
    other = open_store(url)
    assert other.seen_events([("claimed", T0)]) == [False]
    assert other.get("k") is None
    other.close()
    first.commit()
    with open_store(url) as after:
        assert after.get("k") == {"v": 1}
