"""`redis://host:port/db`: state shared by several processes, every change atomic.

Two processes evaluating the same group at once must produce one alert and one count, so
nothing here is read, changed in Python and blindly written back:

- eventIDs are claimed with `SADD` (a script claims a batch of records in one round trip):
  exactly one process gets "new" for an eventID, the others drop the record as a repeat.
- a value is changed by compare-and-set in a Lua script. Each write gives the value a new
  version, made of the writer's random id and a count (so a deleted and re-created value
  never reuses one); the script writes only when the version is still the one the caller
  read, else it returns the current value and the caller runs its change again on that.
  Values this process wrote last are cached with their version, and `update_many` sends a
  batch of changes in one pipeline, one compare-and-set per key however many changes it
  has: a process that owns its groups pays one round trip per batch; a lost race costs one
  more per key that lost.
- expiries live in one sorted set scored by event time; `purge` deletes what the watermark
  has passed, a thousand keys per script call. eventID buckets are indexed the same way.
- every key starts with the URL's prefix (`?prefix=NAME`, default `trailguard`), so several
  namespaces (test runs, environments) can share one Redis database.

With `autocommit` off (the daemon), none of that is written as it happens: a batch's claims
and changes are staged and committed at once with its alerts (engine.state.redisbatch).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import orjson

from engine import jsonsafe
from engine.errors import StateError
from engine.state import Change, Claim, StateStore, Update, bucket_of, redis_prefix
from engine.state.redisbatch import _COMMIT, _SEEN, Batch, Conflict, Journal, read_journal

CACHE_LIMIT = 200_000
PURGE_BATCH = 1000

_CAS = """
local v = redis.call('HGET', KEYS[1], 'v') or ''
if v ~= ARGV[1] then
  return {0, v, redis.call('HGET', KEYS[1], 'd') or ''}
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
else
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'd', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
end
return {1, '', ''}
"""

_CLAIM = """
local added = {}
for i, key in ipairs(KEYS) do added[i] = redis.call('SADD', key, ARGV[i]) end
return added
"""

_PURGE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[3])
for _, k in ipairs(keys) do redis.call('DEL', k) end
if #keys > 0 then redis.call('ZREM', KEYS[1], unpack(keys)) end
local buckets = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, b in ipairs(buckets) do redis.call('DEL', ARGV[4] .. b) end
if #buckets > 0 then redis.call('ZREM', KEYS[2], unpack(buckets)) end
return #keys + #buckets
"""

_MAX = """
local c = redis.call('GET', KEYS[1])
if (not c) or tonumber(c) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('GET', KEYS[1])
"""


class RedisStore(StateStore):
    """A StateStore in a Redis database, safe for several processes at once."""

    shared = True

    def __init__(self, url: str, event_id_horizon: float) -> None:
        super().__init__(url, event_id_horizon)
        import redis  # imported here so that memory and SQLite users never pay for it

        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._redis = redis.Redis.from_url(url.split("?", 1)[0])
        self.prefix = prefix = redis_prefix(url) + ":"
        self._expiry, self._index = prefix + "expiry", prefix + "idx"  # value -> expiry epoch;
        self._mark = prefix + "watermark"  # eventID bucket -> itself, or its latest late_mark
        self._journals = prefix + "batches"  # committed batches' alerts not yet in the outbox
        self._batch: Batch | None = None
        try:
            raw = self._redis.get(self._mark)
        except redis.RedisError as exc:
            raise StateError(f"state {url}: {exc}") from exc
        self._watermark = float(raw) if raw else float("-inf")
        self._cas = self._redis.register_script(_CAS)
        self._claim = self._redis.register_script(_CLAIM)
        self._purge = self._redis.register_script(_PURGE)
        self._max = self._redis.register_script(_MAX)
        self._seen = self._redis.register_script(_SEEN)
        self._commit = self._redis.register_script(_COMMIT)
        self._cache: dict[str, tuple[str, Any, float]] = {}
        self._buckets: set[int] = set()
        self._writer = os.urandom(6).hex() + ":"  # versions: this writer's id and a count
        self._writes = itertools.count(1)

    def seen_events(self, claims: Sequence[Claim]) -> list[bool]:
        keys, ids, marks, new_buckets = [], [], [], {}
        for event_id, epoch in claims:
            if event_id is None:
                self.late_mark(0, epoch)
                continue
            bucket = bucket_of(epoch, self._watermark)
            mark = self.late_mark(bucket, epoch)
            if mark is None and bucket not in self._buckets:
                self._buckets.add(bucket)
                new_buckets[str(bucket)] = bucket
            keys.append(f"{self.prefix}ids:{bucket}")
            ids.append(event_id)
            marks.append((str(bucket), mark))
        if new_buckets:
            self._run(self._redis.zadd, self._index, new_buckets, gt=True)
        if self._batch is not None:
            added = self._stage_claims(keys, ids)
        else:
            added = self._run(self._claim, keys=keys, args=ids) if ids else []
        late = {bucket: mark for (bucket, mark), new in zip(marks, added, strict=True)
                if new and mark is not None}
        if late:  # kept until the watermark is a horizon past the mark, not past the bucket
            self._run(self._redis.zadd, self._index, late, gt=True)
        fresh = iter(added)
        return [False if event_id is None else not next(fresh) for event_id, _ in claims]

    @property
    def autocommit(self) -> bool:
        """Off (the daemon): claims and changes wait for `commit`, as one batch."""
        return self._batch is None

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if value and self._batch is not None and not self._batch.empty():
            raise StateError(f"state {self.url}: a batch is still open")
        self._batch = None if value else Batch()

    def _stage_claims(self, keys: list[str], ids: list[str]) -> list[int]:
        """Which eventIDs are new (1) and staged, read from Redis without writing."""
        assert self._batch is not None
        known = self._run(self._seen, keys=keys, args=ids) if ids else []
        claims, added = self._batch.claims, []
        for key, event_id, stored in zip(keys, ids, known, strict=True):
            fresh = claims.setdefault(key, set())
            new = not stored and event_id not in fresh
            if new:
                fresh.add(event_id)
            added.append(int(new))
        return added

    def _stage_changes(self, items: Sequence[tuple[str, Update]],
                       chains: dict[str, list[int]]) -> list[Any]:
        """Run each key's changes on its staged (else cached) value; stage the outcome."""
        assert self._batch is not None
        batch, out = self._batch, [None] * len(items)
        for name, indexes in chains.items():
            if name in batch.staged:
                value = batch.staged[name][0]
            else:
                version, value = self._cache[name][:2]
                batch.read.setdefault(name, version)
            done, results = _apply(value, [items[i][1] for i in indexes])
            batch.staged[name] = (done.state, done.expires)
            for i, result in zip(indexes, results, strict=True):
                out[i] = result
        return out

    def commit(self, journal: Sequence[tuple[str, bytes]] = (), journal_key: str = "") -> None:
        """Write the open batch (claims, values, and `journal`: the alerts it raised, as
        hash fields under `journal_key`) in one script, or raise Conflict and write nothing."""
        batch = self._batch
        if batch is None or (batch.empty() and not journal):
            return
        sets = [(key, ids) for key, ids in batch.claims.items() if ids]
        args: list[Any] = [len(sets), len(batch.staged), len(journal)]
        for _, ids in sets:
            args += [len(ids), *ids]
        values = []
        for name, (state, expires) in batch.staged.items():
            data, version = self._encode(Change(state, expires))
            values.append((name, version, state, expires))
            args += [batch.read.get(name, ""), data, version, expires]
        args += [part for pair in journal for part in pair]
        ok, what, which = self._run(self._commit, keys=[
            self._expiry, self._journals, journal_key or self.prefix + "batch:none",
            *(key for key, _ in sets), *(v[0] for v in values)], args=args)
        if not ok:
            self.rollback()
            raise Conflict(f"state {self.url}: {what.decode()} {which.decode()!r} changed "
                           "by another process; the batch is decided again")
        for name, version, state, expires in values:
            self._remember(name, version, Change(state, expires))
        self._batch = Batch()

    def rollback(self) -> None:
        """Forget the open batch; what it read may be stale, so it leaves the cache too."""
        if self._batch is None:
            return
        for name in [*self._batch.read, *self._batch.staged]:
            self._cache.pop(name, None)
        self._batch = Batch()

    def journal_key(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    def journals(self) -> list[Journal]:
        """Every committed batch whose alerts are not all in the outbox yet."""
        found = []
        for key in sorted(self._run(self._redis.smembers, self._journals)):
            raw = self._run(self._redis.hgetall, key)
            if raw:
                found.append(read_journal(key.decode(), raw))
            else:
                self._run(self._redis.srem, self._journals, key)
        return found

    def drop_journal(self, key: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.srem(self._journals, key)
        self._run(pipe.execute)

    def update(self, key: str, change: Update) -> Any:
        return self.update_many([(key, change)])[0]

    def update_many(self, items: Sequence[tuple[str, Update]]) -> list[Any]:
        """All changes in one pipeline: one compare-and-set per key, on what this process saw.

        The changes of one key are applied in order to its cached value and written at once;
        if another process changed the key in between, they run again, in order, on its
        current value, until a compare-and-set succeeds.
        """
        names = [self.prefix + "v:" + key for key, _ in items]
        self._load_missing(names)
        chains: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            chains.setdefault(name, []).append(i)
        if self._batch is not None:
            return self._stage_changes(items, chains)
        pipe = self._redis.pipeline(transaction=False)
        planned = []
        for name, indexes in chains.items():
            version = self._cache[name][0]
            done, results = _apply(self._cache[name][1], [items[i][1] for i in indexes])
            data, new_version = self._encode(done)
            self._cas(keys=[name, self._expiry],
                      args=[version, data, new_version, done.expires], client=pipe)
            planned.append((name, indexes, done, results, new_version))
        out: list[Any] = [None] * len(items)
        for (name, indexes, done, results, new_version), reply in zip(
                planned, self._run(pipe.execute), strict=True):
            if reply[0]:
                self._remember(name, new_version, done)
            else:
                self._cache[name] = (*self._decode(reply[1], reply[2]), 0.0)
                results = self._retry(name, [items[i][1] for i in indexes])
            for i, result in zip(indexes, results, strict=True):
                out[i] = result
        return out

    def _encode(self, done: Change) -> tuple[bytes, str]:
        if done.state is None:
            return b"", ""
        return jsonsafe.dumps(done.state), f"{self._writer}{next(self._writes)}"

    def _retry(self, name: str, changes: list[Update]) -> list[Any]:
        while True:
            version, value = self._cache[name][:2]
            done, results = _apply(value, changes)
            data, new_version = self._encode(done)
            ok, current_version, current = self._run(
                self._cas, keys=[name, self._expiry],
                args=[version, data, new_version, done.expires])
            if ok:
                self._remember(name, new_version, done)
                return results
            self._cache[name] = (*self._decode(current_version, current), 0.0)

    def _remember(self, name: str, version: str, done: Change) -> None:
        if done.state is None:
            self._cache.pop(name, None)
            return
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[name] = (version, done.state, done.expires)

    def _load_missing(self, names: list[str]) -> None:
        staged = self._batch.staged if self._batch is not None else {}
        missing = [name for name in dict.fromkeys(names)
                   if name not in self._cache and name not in staged]
        if not missing:
            return
        pipe = self._redis.pipeline(transaction=False)
        for name in missing:
            pipe.hmget(name, ["v", "d"])
        for name, (version, data) in zip(missing, self._run(pipe.execute), strict=True):
            self._cache[name] = (*self._decode(version, data), 0.0)

    @staticmethod
    def _decode(version: bytes | None, data: bytes | None) -> tuple[str, Any]:
        if not version:
            return "", None
        return version.decode(), orjson.loads(data) if data else None

    def get(self, key: str) -> Any:
        version, data = self._run(self._redis.hmget, self.prefix + "v:" + key, ["v", "d"])
        return self._decode(version, data)[1]

    def _save_watermark(self, watermark: float) -> None:
        if watermark > self._watermark:
            shared = self._run(self._max, keys=[self._mark], args=[repr(watermark)])
            self._watermark = max(watermark, float(shared))

    def purge(self, watermark: float) -> int:
        self._cache = {k: v for k, v in self._cache.items() if v[2] >= watermark}
        cutoff = self.id_cutoff(watermark)
        self._buckets = {b for b in self._buckets if b >= cutoff}
        total = 0
        while True:
            removed = int(self._run(self._purge, keys=[self._expiry, self._index], args=[
                repr(watermark), cutoff, PURGE_BATCH, f"{self.prefix}ids:"]))
            total += removed
            if removed < PURGE_BATCH:
                return total

    def stats(self) -> dict[str, int]:
        ids = sum(self._run(self._redis.scard, f"{self.prefix}ids:{int(b)}")
                  for b in self._run(self._redis.zrange, self._index, 0, -1))
        keys = self._run(self._redis.zcard, self._expiry)
        used = self._run(self._redis.info, "memory").get("used_memory", 0)
        return {"event_ids": ids, "keys": keys, "bytes": int(used)}

    def close(self) -> None:
        self._redis.close()

    def _run(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except self._errors as exc:
            raise StateError(f"state {self.url}: {exc}") from exc


def _apply(value: Any, changes: list[Update]) -> tuple[Change, list[Any]]:
    """Run `changes` one after the other from `value`: the last Change and every result."""
    results = []
    done = Change(value, 0.0)
    for change in changes:
        done = change(done.state)
        results.append(done.result)
    return done, results
