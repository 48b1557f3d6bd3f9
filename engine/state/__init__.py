"""The state store: what trailguard must remember between records, runs and processes.

One interface, three backends chosen by URL (`open_store`):

    memory://                   a scan's default: a dict, gone when the process ends
    sqlite:///relative.db       the daemon's default: one process, survives restarts (WAL)
    sqlite:////abs/path.db
    redis://host:port/db        shared by several daemons: every change is atomic in Redis
    redis://host:port/db?prefix=NAME   the same, its keys under NAME: instead of trailguard:

The store knows nothing about rules. It offers two primitives, and the decider
(engine.decide.decider, engine.state.windows) builds dedup, threshold, first_seen and copy folding
on them, so the semantics live in one place and every backend gives the same answers:

- `seen_events(batch)`: claim eventIDs; True for each one already claimed (an exact repeat).
  IDs are kept in buckets of one hour of their own eventTime, because a repeat is the same
  record and carries the same eventTime.
- `update(key, change)`: an atomic read-modify-write of one JSON-shaped value. `change`
  receives the current value (or None) and returns a `Change`: the new value (None deletes),
  its expiry in event time, and a result handed back to the caller. `change` must be a pure
  function of its argument: a shared store may call it again when another process changed the
  value in between (compare-and-set), and only the result of the call that won is returned.
  `update_many` does a batch of them, in order, in one round trip where that matters.

Memory is bounded on event time, never the wall clock: every value carries an expiry epoch,
and `advance(watermark)` (the newest eventTime seen) purges values whose expiry is behind the
watermark and eventID buckets older than `event_id_horizon`. docs/state.md has the details.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from engine.durations import parse_duration
from engine.errors import ConfigError

BUCKET = 3600.0  # seconds of eventTime per eventID bucket
NEVER = 2.0**53  # an expiry that is never reached (JSON-safe, unlike inf)
PURGE_EVERY = 600.0  # purge when the watermark has moved this far (event time)
MEMORY_EVENT_IDS = 3600.0  # how long a scan in memory remembers eventIDs (event time)
PERSISTENT_EVENT_IDS = 86400.0  # SQLite and Redis: long enough to rescan a day's input


class Change(NamedTuple):
    """What an `update` writes: the new value (None deletes it), its expiry, the result."""

    state: Any
    expires: float
    result: Any = None


Update = Callable[[Any], Change]
Claim = tuple[str | None, float | None]  # (eventID, eventTime epoch)


class StateStore(ABC):
    """The interface every backend implements; see the module docstring."""

    url: str
    event_id_horizon: float
    shared: bool = False  # several processes may change it at once (their orders interleave)
    autocommit: bool = True  # may commit on its own (SQLite, in a scan, every 20k changes)

    def __init__(self, url: str, event_id_horizon: float) -> None:
        self.url = url
        self.event_id_horizon = event_id_horizon
        self.newest = float("-inf")  # the newest eventTime claimed (see id_cutoff)
        self._purged_at = float("-inf")

    @abstractmethod
    def seen_events(self, claims: Sequence[Claim]) -> list[bool]:
        """Claim each eventID; True where it was claimed before (an exact repeat)."""

    @abstractmethod
    def update(self, key: str, change: Update) -> Any:
        """Atomically replace the value under `key` with `change(value)`; return its result."""

    def update_many(self, items: Sequence[tuple[str, Update]]) -> list[Any]:
        """`update` for each (key, change), in order; a shared store batches the round trips."""
        return [self.update(key, change) for key, change in items]

    @abstractmethod
    def get(self, key: str) -> Any:
        """The value under `key`, or None (for inspection and tests; not for decisions)."""

    _watermark: float = float("-inf")

    @property
    def purged_at(self) -> float:
        """The watermark of the last purge: values that expired before it are gone."""
        return self._purged_at

    @property
    def watermark(self) -> float:
        """The newest eventTime any user of this store has reported (persisted)."""
        return self._watermark

    @abstractmethod
    def purge(self, watermark: float) -> int:
        """Drop values that expired before `watermark` and old eventID buckets; return count."""

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Sizes for people and benchmarks: event_ids, keys, bytes (best effort)."""

    def advance(self, watermark: float) -> None:
        """Record the newest eventTime seen; purge when it has moved PURGE_EVERY since last."""
        self._save_watermark(watermark)
        if watermark - self._purged_at >= PURGE_EVERY:
            self._purged_at = watermark
            self.purge(watermark)

    def _save_watermark(self, watermark: float) -> None:
        """Keep the newest; a backend shared by several processes overrides this."""
        self._watermark = max(self._watermark, watermark)

    def commit(self) -> None:  # noqa: B027 - deliberately optional: most backends need none
        """Make everything so far durable (SQLite); a no-op where each change already is."""

    def close(self) -> None:
        self.commit()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def id_cutoff(self, watermark: float) -> int:
        """The oldest eventID bucket still kept when the watermark is `watermark`.

        An older bucket is kept too while it was written to late: a record already past the
        horizon when it is claimed (old logs backfilled after new ones) is remembered until
        the watermark is a horizon past the newest eventTime claimed before it, so its repeats
        are still dropped. Each backend keeps, per such bucket, the bucket of that newest
        eventTime (`late_mark`), and every claim's epoch moves `newest`, even without an
        eventID: a caller that claims only some records passes the others' epochs that way.
        """
        return int((watermark - self.event_id_horizon) // BUCKET)

    def late_mark(self, bucket: int, epoch: float | None) -> int | None:
        """Note `epoch` as claimed; for a new eventID in `bucket`, the mark to keep it by if
        the bucket is already past the horizon (else None)."""
        if epoch is not None and epoch > self.newest:
            self.newest = epoch
        if self.newest == float("-inf") or bucket >= self.id_cutoff(self.newest):
            return None
        return int(self.newest // BUCKET)


def bucket_of(epoch: float | None, watermark: float) -> int:
    """The eventID bucket of a record; one without eventTime goes with the watermark."""
    moment = epoch if epoch is not None else (watermark if watermark > float("-inf") else 0.0)
    return int(moment // BUCKET)


def open_store(url: str) -> StateStore:
    """The store a URL names; raises ConfigError for a URL no backend understands.

    A query string may set `event_ids`, how long (in eventTime) exact-repeat memory lasts,
    e.g. `sqlite:///state.db?event_ids=2d`.
    """
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    horizon = _horizon(options.pop("event_ids", None), parts.scheme, url)
    prefix = options.pop("prefix", None) if parts.scheme in ("redis", "rediss") else None
    if options:
        raise ConfigError(f"state {url!r}: unknown option(s) {', '.join(sorted(options))}",
                          "state")
    opener = _BACKENDS.get(parts.scheme)
    if opener is None:
        raise ConfigError(f"state {url!r}: use memory://, sqlite:///PATH or "
                          "redis://HOST:PORT/DB", "state")
    # A Redis namespace stays in the URL: RedisStore reads it there (redis_prefix).
    return opener(url.split("?", 1)[0] + (f"?prefix={prefix}" if prefix else ""), horizon)


def _horizon(text: str | None, scheme: str, url: str) -> float:
    if text is None:
        return MEMORY_EVENT_IDS if scheme == "memory" else PERSISTENT_EVENT_IDS
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"state {url!r}: event_ids: {exc}", "state") from None


def _open_memory(url: str, horizon: float) -> StateStore:
    from engine.state.memory import MemoryStore

    return MemoryStore(url, horizon)


def _open_sqlite(url: str, horizon: float) -> StateStore:
    from engine.state.sqlite import SqliteStore

    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
    if not path:
        raise ConfigError(f"state {url!r}: give a file, sqlite:///relative.db or "
                          "sqlite:////absolute.db", "state")
    return SqliteStore(url, horizon, path)


def _open_redis(url: str, horizon: float) -> StateStore:
    from engine.state.redisdb import RedisStore

    return RedisStore(url, horizon)


def redis_prefix(url: str) -> str:
    """The key prefix a `redis://` URL names (`?prefix=NAME`; default `trailguard`): several
    users of one Redis database (test runs, environments) keep their keys apart with it."""
    values = parse_qs(urlsplit(url).query).get("prefix")
    prefix = values[-1] if values else "trailguard"
    if not prefix or any(c in prefix for c in "*?[]{} "):
        raise ConfigError(f"state {url!r}: prefix must be a plain name", "state")
    return prefix


_BACKENDS: dict[str, Callable[[str, float], StateStore]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
}

__all__ = ["BUCKET", "NEVER", "Change", "Claim", "StateStore", "Update", "bucket_of",
           "open_store"]
