"""A daemon batch on Redis: its eventID claims, value changes and alerts commit together.

Without this, a daemon on Redis claimed a batch's eventIDs (and changed its windows) the
moment it read them, and put the alerts in the outbox afterwards: `kill -9` in between lost
the alerts for good, because the redelivered message's records were then repeats (measured:
4 of 4 kills at the first claim lost 111-118 of 120 alerts). SQLite never lost any: its
claims, windows and outbox commit in one transaction. This gives Redis the same property.

While a batch is open (`RedisStore` with `autocommit` off, as the daemon runs it):

- `seen_events` asks Redis whether each eventID was claimed (read only) and stages the new
  ones; `update_many` runs changes on the values as read (their version noted) and stages
  the results. Nothing is written.
- `commit(journal)` sends one Lua script that, atomically, checks that no staged eventID was
  claimed meanwhile and that every staged value still has the version read (another daemon
  may have committed a batch in between), then writes the claims, the values, their expiries
  and the batch's alerts (the journal: one hash per batch, one field per (output, alert),
  with the owner and time). If a check fails nothing is written: `Conflict` is raised, the
  caller drops the batch (`rollback`) and decides it again on what is now in Redis.
- The caller then moves each journal field into the outbox; `RedisOutbox.put(settle=...)`
  writes the entry and deletes the field in one transaction, and skips a field already gone,
  so an alert reaches the outbox exactly once however often a journal is replayed.
- A journal left behind by a process killed after its commit is replayed by the next
  daemon (its owner is gone, or its lease ran out): `orphans` lists them.

So whatever moment the process dies at, either nothing of the batch is in Redis (the source
message comes back and is decided again) or all of it is, its alerts in the journal or the
outbox. Several daemons still behave as one: a batch that raced another is decided again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from engine.errors import StateError

JOURNAL_LEASE = 120.0  # seconds after which another daemon replays a live owner's journal

_SEEN = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('SISMEMBER', key, ARGV[i]) end
return out
"""

# KEYS: expiry zset, journal index, journal, then nk claim sets, then nv value keys.
# ARGV: nk, nv, nj, then per claim set its count and its eventIDs, then nv (version read,
# data, new version, expiry), then nj (field, value) pairs of the journal. Claims go by set,
# a thousand a call: a message of 40,000 records commits in tens of milliseconds.
_COMMIT = """
local nk, nv, nj = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
local sets = {}
for i = 1, nk do
  local n = tonumber(ARGV[a])
  sets[i] = {a + 1, a + n}
  a = a + n + 1
end
for i = 1, nk do
  local first, last = sets[i][1], sets[i][2]
  for s = first, last, 1000 do
    local found = redis.call('SMISMEMBER', KEYS[3 + i], unpack(ARGV, s, math.min(s + 999, last)))
    for j, hit in ipairs(found) do
      if hit == 1 then return {0, 'claim', ARGV[s + j - 1]} end
    end
  end
end
for i = 1, nv do
  local key = KEYS[3 + nk + i]
  if (redis.call('HGET', key, 'v') or '') ~= ARGV[a + 4 * i - 4] then
    return {0, 'value', key}
  end
end
for i = 1, nk do
  local first, last = sets[i][1], sets[i][2]
  for s = first, last, 1000 do
    redis.call('SADD', KEYS[3 + i], unpack(ARGV, s, math.min(s + 999, last)))
  end
end
for i = 1, nv do
  local key, j = KEYS[3 + nk + i], a + 4 * i - 4
  if ARGV[j + 1] == '' then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], key)
  else
    redis.call('HSET', key, 'v', ARGV[j + 2], 'd', ARGV[j + 1])
    redis.call('ZADD', KEYS[1], ARGV[j + 3], key)
  end
end
if nj > 0 then
  local b = a + 4 * nv
  for i = 1, nj do redis.call('HSET', KEYS[3], ARGV[b + 2 * i - 2], ARGV[b + 2 * i - 1]) end
  redis.call('SADD', KEYS[2], KEYS[3])
end
return {1, '', ''}
"""


class Conflict(StateError):
    """Another process committed what this batch read or claimed: decide it again."""


@dataclass
class Batch:
    """What an open batch has read and staged; nothing of it is in Redis yet."""

    claims: dict[str, set[str]] = field(default_factory=dict)  # claim set key -> new ids
    read: dict[str, str] = field(default_factory=dict)  # value key -> version first read
    staged: dict[str, tuple[Any, float]] = field(default_factory=dict)  # key -> value, expiry

    def empty(self) -> bool:
        return not (self.claims or self.staged)


@dataclass
class Journal:
    """A committed batch's alerts on their way to the outbox: (field, output, alert doc)."""

    key: str
    owner: str
    at: float
    entries: list[tuple[str, str, dict[str, Any]]]


def journal_fields(owner: str, items: Sequence[tuple[str, dict[str, Any]]],
                   now: float) -> list[tuple[str, bytes]]:
    """The hash fields of a journal: who and when, then one field per (output, alert)."""
    fields = [("owner", owner.encode()), ("at", repr(now).encode())]
    fields += [(f"{n:06d}", orjson.dumps([output, doc])) for n, (output, doc) in enumerate(items)]
    return fields


def read_journal(key: str, raw: dict[bytes, bytes]) -> Journal:
    meta = {k.decode(): v for k, v in raw.items()}
    owner = meta.pop("owner", b"").decode()
    at = float(meta.pop("at", b"0") or 0)
    entries = []
    for name in sorted(meta):
        output, doc = orjson.loads(meta[name])
        entries.append((name, output, doc))
    return Journal(key, owner, at, entries)


def abandoned(journal: Journal, mine: str, gone: Callable[[str], bool],
              now: float | None = None) -> bool:
    """Whether a journal is left to the caller: its own, or its owner's process is gone,
    or its owner (on another host) has held it past JOURNAL_LEASE."""
    now = time.time() if now is None else now
    return journal.owner in ("", mine) or gone(journal.owner) or (
        journal.at + JOURNAL_LEASE <= now)
