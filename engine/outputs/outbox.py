"""The outbox: alerts not yet delivered, per (output, alert_id), in the state store.

Delivery writes ahead: `Dispatcher.send` puts the alert here *before* the first attempt and
removes it only after the output accepted it. A crash at any point therefore loses nothing;
the worst case is a second delivery after a restart (at-least-once, as SPEC §4 promises).

Each entry is leased by the process that works on it (`owner`, `lease_until`), so several
daemons sharing one Redis drain one outbox without sending an alert twice; a crashed owner's
lease simply expires. A later version of the same alert (a dedup update) merges into the entry
instead of queueing beside it: the newest counts win, and `fresh` remembers that the first
message has not gone out yet, so it is sent in full rather than as an "N more matches" reply.

The same store keeps, per output and alert, what was last sent (`recall`/`remember`): the
Slack thread `ts` that later updates reply to, and the count they say "more" than.

Backends: `memory://` (gone with the process), `sqlite:///PATH`, `redis://HOST:PORT/DB`.
They share one algorithm (`Outbox`) over four primitives, run under a per-key lock.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from engine import jsonsafe
from engine.errors import ConfigError, StateError
from engine.state.sqlite import immediate_transaction

LEASE = 120.0  # seconds an owner keeps an entry between attempts; renewed at each attempt
SENT_RETENTION = 14 * 86400.0  # how long a Slack thread stays the target of updates
Clock = Callable[[], float]


@dataclass
class Entry:
    output: str
    alert_id: str
    alert: dict[str, Any]
    version: int = 1
    fresh: bool = True  # the first message for this alert has not been delivered yet
    attempts: int = 0
    last_error: str = ""
    permanent: bool = False  # failed in a way retrying cannot fix; only an explicit retry
    created: float = 0.0
    updated: float = 0.0
    owner: str = ""
    lease_until: float = 0.0

    def message(self) -> dict[str, Any]:
        """The alert as it should be sent now: in full until the first message went out."""
        doc = dict(self.alert)
        if self.fresh:
            doc.pop("update", None)
        else:
            doc["update"] = True
        return doc

    def claimable(self, owner: str, now: float) -> bool:
        return self.owner in ("", owner) or self.lease_until <= now or owner_is_gone(self.owner)


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` was a process on this host that no longer runs.

    A daemon restarted after `kill -9` then takes its predecessor's entries at once instead of
    waiting for their leases to expire; owners on other hosts are left to their leases.
    """
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # our pid, but not our owner id: a previous life of this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Outbox:
    """The outbox algorithm; subclasses provide storage and a per-key lock."""

    url = ""

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    # -- the algorithm -------------------------------------------------------------------
    def put(self, output: str, alert: dict[str, Any], owner: str, lease: float = LEASE,
            settle: tuple[str, str] | None = None) -> bool:
        """Store (or merge into) the entry for this alert and lease it to `owner`.

        `settle`: the (journal, field) the alert comes from (engine.state.redisbatch): the
        field is deleted in the same transaction, and when it is already gone (another
        process moved it) nothing is written and False is returned."""
        alert_id, now = str(alert["alert_id"]), self.clock()
        with self._locked(output, alert_id):
            if settle is not None and not self._journaled(*settle):
                return False
            entry = self._get(output, alert_id)
            if entry is None:
                entry = Entry(output, alert_id, alert, fresh=not alert.get("update"), created=now)
            else:
                if int(alert.get("event_count", 0)) >= int(entry.alert.get("event_count", 0)):
                    entry.alert = alert
                entry.version += 1
                entry.permanent = False
            if entry.claimable(owner, now):
                entry.owner, entry.lease_until = owner, now + lease
            entry.updated = now
            self._set(entry, settle)
            return True

    def claim(self, output: str, alert_id: str, owner: str, lease: float = LEASE) -> Entry | None:
        """The entry, leased to `owner`; None when delivered already or leased by another."""
        now = self.clock()
        with self._locked(output, alert_id):
            entry = self._get(output, alert_id)
            if entry is None or not entry.claimable(owner, now):
                return None
            entry.owner, entry.lease_until = owner, now + lease
            self._set(entry)
            return entry

    def finish(self, output: str, alert_id: str, version: int) -> bool:
        """Delivered `version`: drop the entry; False when a newer version is still to send."""
        with self._locked(output, alert_id):
            entry = self._get(output, alert_id)
            if entry is None:
                return True
            if entry.version == version:
                self._delete(output, alert_id)
                return True
            entry.fresh = False
            self._set(entry)
            return False

    def release(self, output: str, alert_id: str, owner: str, error: str = "",
                permanent: bool = False, attempted: bool = True) -> None:
        """Give the entry back for a later try, recording why this one failed."""
        with self._locked(output, alert_id):
            entry = self._get(output, alert_id)
            if entry is None or entry.owner != owner:
                return
            entry.owner, entry.lease_until = "", 0.0
            if error:
                entry.last_error, entry.permanent = error, permanent
            entry.attempts += 1 if attempted else 0
            entry.updated = self.clock()
            self._set(entry)

    def remove(self, output: str, alert_id: str) -> bool:
        with self._locked(output, alert_id):
            found = self._get(output, alert_id) is not None
            self._delete(output, alert_id)
            return found

    def entries(self, output: str | None = None) -> list[Entry]:
        found = [e for e in self._all() if output is None or e.output == output]
        return sorted(found, key=lambda e: (e.created, e.output, e.alert_id))

    def count(self, output: str) -> int:
        return len(self.entries(output))

    # -- what was sent, for Slack threads ------------------------------------------------
    def recall(self, output: str, alert_id: str) -> dict[str, Any] | None:
        raw = self._get_sent(output, alert_id)
        return orjson.loads(raw) if raw else None

    def remember(self, output: str, alert_id: str, record: dict[str, Any]) -> None:
        self._set_sent(output, alert_id, jsonsafe.dumps(record))

    def close(self) -> None:
        """Release the backend's connections."""

    # -- storage primitives ----------------------------------------------------------------
    def _locked(self, output: str, alert_id: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _get(self, output: str, alert_id: str) -> Entry | None:
        raise NotImplementedError

    def _set(self, entry: Entry, settle: tuple[str, str] | None = None) -> None:
        raise NotImplementedError

    def _journaled(self, journal: str, field: str) -> bool:
        raise StateError(f"state {self.url}: only Redis keeps batch journals")

    def _delete(self, output: str, alert_id: str) -> None:
        raise NotImplementedError

    def _all(self) -> list[Entry]:
        raise NotImplementedError

    def _get_sent(self, output: str, alert_id: str) -> bytes | None:
        raise NotImplementedError

    def _set_sent(self, output: str, alert_id: str, raw: bytes) -> None:
        raise NotImplementedError


def _encode(entry: Entry) -> bytes:
    return jsonsafe.dumps(asdict(entry))


def _decode(raw: bytes | str) -> Entry:
    return Entry(**orjson.loads(raw))


class MemoryOutbox(Outbox):
    """Process-local; what `memory://` promises: nothing outlives the process."""

    url = "memory://"

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._lock = threading.RLock()
        self._entries: dict[tuple[str, str], bytes] = {}
        self._sent: dict[tuple[str, str], bytes] = {}

    @contextmanager
    def _locked(self, output: str, alert_id: str) -> Iterator[None]:
        with self._lock:
            yield

    def _get(self, output: str, alert_id: str) -> Entry | None:
        raw = self._entries.get((output, alert_id))
        return _decode(raw) if raw else None

    def _set(self, entry: Entry, settle: tuple[str, str] | None = None) -> None:
        self._entries[(entry.output, entry.alert_id)] = _encode(entry)

    def _delete(self, output: str, alert_id: str) -> None:
        self._entries.pop((output, alert_id), None)

    def _all(self) -> list[Entry]:
        with self._lock:
            return [_decode(raw) for raw in self._entries.values()]

    def _get_sent(self, output: str, alert_id: str) -> bytes | None:
        return self._sent.get((output, alert_id))

    def _set_sent(self, output: str, alert_id: str, raw: bytes) -> None:
        with self._lock:
            self._sent[(output, alert_id)] = raw


class SqliteOutbox(Outbox):
    """Two small tables beside the detection state; `BEGIN IMMEDIATE` makes each step atomic
    across processes, WAL lets readers (`outbox list`) run while a daemon writes."""

    def __init__(self, path: str, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.url = f"sqlite:///{path}"
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS delivery_outbox (output TEXT NOT NULL, "
                "alert_id TEXT NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (output, alert_id));"
                "CREATE TABLE IF NOT EXISTS delivery_sent (output TEXT NOT NULL, "
                "alert_id TEXT NOT NULL, record BLOB NOT NULL, updated REAL NOT NULL, "
                "PRIMARY KEY (output, alert_id));")
        except sqlite3.Error as exc:
            raise StateError(f"state {self.url}: {exc}") from None

    @contextmanager
    def _locked(self, output: str, alert_id: str) -> Iterator[None]:
        with self._lock:
            try:
                with immediate_transaction(self._db):
                    yield
            except sqlite3.Error as exc:
                raise StateError(f"state {self.url}: {exc}") from None

    def _get(self, output: str, alert_id: str) -> Entry | None:
        row = self._db.execute("SELECT entry FROM delivery_outbox WHERE output=? AND alert_id=?",
                               (output, alert_id)).fetchone()
        return _decode(row[0]) if row else None

    def _set(self, entry: Entry, settle: tuple[str, str] | None = None) -> None:
        self._db.execute("INSERT OR REPLACE INTO delivery_outbox VALUES (?, ?, ?)",
                         (entry.output, entry.alert_id, _encode(entry)))

    def _delete(self, output: str, alert_id: str) -> None:
        self._db.execute("DELETE FROM delivery_outbox WHERE output=? AND alert_id=?",
                         (output, alert_id))

    def _all(self) -> list[Entry]:
        with self._lock:
            rows = self._db.execute("SELECT entry FROM delivery_outbox").fetchall()
        return [_decode(row[0]) for row in rows]

    def _get_sent(self, output: str, alert_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM delivery_sent WHERE output=? AND "
                                   "alert_id=?", (output, alert_id)).fetchone()
        return bytes(row[0]) if row else None

    def _set_sent(self, output: str, alert_id: str, raw: bytes) -> None:
        now = self.clock()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO delivery_sent VALUES (?, ?, ?, ?)",
                             (output, alert_id, raw, now))
            self._db.execute("DELETE FROM delivery_sent WHERE updated < ?",
                             (now - SENT_RETENTION,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


_UNLOCK = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
           "return redis.call('DEL', KEYS[1]) end return 0")


class RedisOutbox(Outbox):
    """One hash of entries (`trailguard:outbox`), one key per sent record with a TTL; a short
    `SET NX PX` lock per entry makes each read-modify-write atomic across daemons. Keys start
    with the URL's prefix (`?prefix=NAME`, default `trailguard`), as the state's do."""

    def __init__(self, url: str, clock: Clock = time.time) -> None:
        super().__init__(clock)
        import redis  # lazily: only a redis:// state needs the client

        from engine.state import redis_prefix

        self.url = url
        self.PREFIX = redis_prefix(url)
        self._redis = redis.Redis.from_url(url.split("?", 1)[0], socket_timeout=10,
                                           socket_connect_timeout=5)
        self._hash = f"{self.PREFIX}:outbox"
        self._unlock = self._redis.register_script(_UNLOCK)

    @contextmanager
    def _locked(self, output: str, alert_id: str) -> Iterator[None]:
        import redis

        key, token = f"{self.PREFIX}:outbox-lock:{output}\x1f{alert_id}", uuid.uuid4().hex
        deadline = time.monotonic() + 10.0
        try:
            while not self._redis.set(key, token, nx=True, px=5000):
                if time.monotonic() > deadline:
                    raise StateError(f"state {self.url}: outbox entry {alert_id} stays locked")
                time.sleep(0.005)
            try:
                yield
            finally:
                self._unlock(keys=[key], args=[token])
        except redis.RedisError as exc:
            raise StateError(f"state {self.url}: {exc}") from None

    def _field(self, output: str, alert_id: str) -> str:
        return f"{output}\x1f{alert_id}"

    def _get(self, output: str, alert_id: str) -> Entry | None:
        raw = self._redis.hget(self._hash, self._field(output, alert_id))
        return _decode(raw) if raw else None

    def _set(self, entry: Entry, settle: tuple[str, str] | None = None) -> None:
        field = self._field(entry.output, entry.alert_id)
        if settle is None:
            self._redis.hset(self._hash, field, _encode(entry))
            return
        pipe = self._redis.pipeline(transaction=True)  # the entry in, its journal field out
        pipe.hset(self._hash, field, _encode(entry))
        pipe.hdel(*settle)
        pipe.execute()

    def _journaled(self, journal: str, field: str) -> bool:
        return bool(self._redis.hexists(journal, field))

    def _delete(self, output: str, alert_id: str) -> None:
        self._redis.hdel(self._hash, self._field(output, alert_id))

    def _all(self) -> list[Entry]:
        import redis

        try:
            raw = self._redis.hvals(self._hash)
        except redis.RedisError as exc:
            raise StateError(f"state {self.url}: {exc}") from None
        return [_decode(item) for item in raw]

    def _get_sent(self, output: str, alert_id: str) -> bytes | None:
        return self._redis.get(f"{self.PREFIX}:sent:{output}\x1f{alert_id}")

    def _set_sent(self, output: str, alert_id: str, raw: bytes) -> None:
        self._redis.set(f"{self.PREFIX}:sent:{output}\x1f{alert_id}", raw,
                        ex=int(SENT_RETENTION))

    def close(self) -> None:
        self._redis.close()


def open_outbox(url: str | None, clock: Clock = time.time) -> Outbox:
    """The outbox in the state store named by `url` (default `memory://`)."""
    url = url or "memory://"
    if url.startswith("memory://"):
        return MemoryOutbox(clock)
    if url.startswith("sqlite:///"):
        return SqliteOutbox(url[len("sqlite:///"):], clock)
    if url.startswith(("redis://", "rediss://")):
        return RedisOutbox(url, clock)
    raise ConfigError(f"unsupported state URL {url!r} (memory://, sqlite:///PATH, "
                      "redis://HOST:PORT/DB)", "state")
