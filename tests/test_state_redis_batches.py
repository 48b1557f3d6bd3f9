"""The daemon's batch protocol on Redis (engine.state.redisbatch, engine.daemon.handoff):
nothing of a batch is in Redis before its commit, everything after it, alerts included;
a batch that raced another commits nothing; a journal reaches the outbox exactly once.
Also the `?prefix=` namespaces that keep users of one database apart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.daemon.handoff import JournalHandoff, handoff_for
from engine.errors import ConfigError
from engine.outputs.outbox import open_outbox
from engine.state import Change, StateStore, open_store
from engine.state.redisbatch import Conflict, journal_fields
from tests.support.delivery import make_alert
from tests.support.redis import DB, delete_namespace, empty_redis, namespace, url_for

EPOCH = 1_709_287_200.0  # 2024-03-01T10:00:00Z


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from empty_redis()


def _batch(url: str) -> StateStore:
    store = open_store(url)
    store.autocommit = False  # as the daemon opens it
    return store


def _add(n: int) -> Any:
    return lambda value: Change((value or 0) + n, EPOCH + 3600, (value or 0) + n)


def test_redis_batch_writes_nothing_before_commit_and_all_at_it(redis_url: str) -> None:
    """Claims and changes of an open batch are invisible to others until commit."""
    batch, other = _batch(redis_url), open_store(redis_url)
    assert batch.seen_events([("e1", EPOCH), ("e2", EPOCH), ("e1", EPOCH)]) == [
        False, False, True]  # a repeat within the batch is still a repeat
    assert batch.update_many([("k", _add(2)), ("k", _add(3))]) == [2, 5]
    assert other.get("k") is None
    assert other.seen_events([("e9", EPOCH)]) == [False]  # reading e1 would claim it
    batch.commit()
    assert other.get("k") == 5
    assert other.seen_events([("e1", EPOCH), ("e2", EPOCH)]) == [True, True]


def test_redis_batch_that_raced_another_commits_nothing(redis_url: str) -> None:
    """Two batches change one key: the second to commit gets Conflict and writes none of
    its claims; decided again after rollback, it builds on the first's value."""
    first, second = _batch(redis_url), _batch(redis_url)
    first.update_many([("k", _add(1))])
    second.seen_events([("e-second", EPOCH)])
    second.update_many([("k", _add(10))])
    first.commit()
    with pytest.raises(Conflict):
        second.commit()
    check = open_store(redis_url)
    assert check.get("k") == 1
    assert check.seen_events([("e-second", EPOCH)]) == [False]  # the claim was not written
    second.seen_events([("e-second2", EPOCH)])
    assert second.update_many([("k", _add(10))]) == [11]
    second.commit()
    assert check.get("k") == 11


def test_redis_batch_claiming_an_event_id_claimed_meanwhile_conflicts(redis_url: str) -> None:
    """Two batches claim one eventID: exactly one commits it; the other decides again and
    then sees it as a repeat."""
    first, second = _batch(redis_url), _batch(redis_url)
    assert first.seen_events([("e1", EPOCH)]) == [False]
    assert second.seen_events([("e1", EPOCH)]) == [False]
    first.commit()
    with pytest.raises(Conflict):
        second.commit()
    assert second.seen_events([("e1", EPOCH)]) == [True]


@dataclass
class _Worker:
    submitted: list[str] = field(default_factory=list)

    def submit(self, alert_id: str) -> None:
        self.submitted.append(alert_id)


@dataclass
class _Router:
    def route(self, rule: Any) -> list[str]:
        return ["slack"]


class _Dispatcher:
    """What the handoff uses of engine.outputs.Dispatcher: router, workers, outbox, owner."""

    def __init__(self, url: str, owner: str) -> None:
        self.router, self.owner = _Router(), owner
        self.store = open_outbox(url)
        self.workers = {"slack": _Worker()}


def test_redis_journal_reaches_the_outbox_exactly_once(redis_url: str) -> None:
    """A batch committed with its alerts and killed before handing them on: the next
    daemon replays the journal into the outbox; replaying it again adds nothing."""
    store = _batch(redis_url)
    dead = _Dispatcher(redis_url, "elsewhere:1:dead")  # another host: its lease decides
    handoff = handoff_for(store, dead)
    assert isinstance(handoff, JournalHandoff)
    store.seen_events([("e1", EPOCH)])
    for n in range(3):
        handoff.emit(make_alert(n=n))
    items = [("slack", make_alert(n=n).to_dict()) for n in range(3)]
    key = store.journal_key("b1")
    store.commit(journal_fields(dead.owner, items, 0.0), key)  # committed long ago, then killed
    assert dead.store.count("slack") == 0
    alive = _Dispatcher(redis_url, "here:2:alive")
    assert JournalHandoff(open_store(redis_url), alive).recover() == 1
    assert dead.store.count("slack") == 3
    assert len(alive.workers["slack"].submitted) == 3
    assert JournalHandoff(open_store(redis_url), alive).recover() == 0
    outbox = alive.store
    assert not outbox.put("slack", items[0][1], alive.owner, settle=(key, "000000"))
    assert outbox.count("slack") == 3


def test_redis_journal_of_a_live_owner_is_left_to_it(redis_url: str) -> None:
    """A fresh journal of a process on another host is not taken (it is settling it)."""
    store = _batch(redis_url)
    store.seen_events([("e1", EPOCH)])
    store.commit(journal_fields("elsewhere:1:busy", [("slack", make_alert().to_dict())],
                                time.time()), store.journal_key("b2"))
    assert JournalHandoff(open_store(redis_url), _Dispatcher(redis_url, "here:2:x")).recover() \
        == 0


def test_redis_handoff_commits_alerts_with_the_batch(redis_url: str) -> None:
    """commit() puts the batch's alerts in the outbox and tells the workers; no journal
    is left behind."""
    store = _batch(redis_url)
    dispatcher = _Dispatcher(redis_url, "here:3:x")
    handoff = JournalHandoff(store, dispatcher)
    store.seen_events([("e1", EPOCH)])
    handoff.emit(make_alert(n=1))
    handoff.emit(make_alert(n=1, count=2, update=True))
    handoff.commit()
    assert dispatcher.store.count("slack") == 1
    entry = dispatcher.store.entries("slack")[0]
    assert entry.fresh and entry.alert["event_count"] == 2  # the update merged, still new
    assert store.journals() == []  # type: ignore[attr-defined]


def test_redis_prefixes_keep_namespaces_of_one_database_apart(redis_url: str) -> None:
    """Two prefixes in one database: neither sees the other's claims, values or outbox;
    deleting one namespace leaves the other whole."""
    other = url_for(DB, namespace())
    try:
        a, b = open_store(redis_url), open_store(other)
        assert a.seen_events([("e1", EPOCH)]) == [False]
        assert b.seen_events([("e1", EPOCH)]) == [False]
        a.update("k", _add(1))
        assert b.get("k") is None and a.get("k") == 1
        open_outbox(redis_url).put("slack", make_alert().to_dict(), "o")
        assert open_outbox(other).count("slack") == 0
        assert delete_namespace(other) > 0
        assert a.get("k") == 1 and open_outbox(redis_url).count("slack") == 1
    finally:
        delete_namespace(other)


def test_prefix_is_a_redis_option_only(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="prefix"):
        open_store(f"sqlite:///{tmp_path}/s.db?prefix=x")
    with pytest.raises(ConfigError, match="plain name"):
        open_store("redis://127.0.0.1:6379/0?prefix=a*")
