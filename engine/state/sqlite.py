"""`sqlite:///path`: the daemon's default store; one process at a time, survives restarts.

The file is in WAL mode with `synchronous=NORMAL`: a commit is durable against a process
crash, and readers never block the writer. Changes are kept in memory and written in one
short transaction at `commit()` (the daemon commits after each batch, before it acknowledges
the source messages; a scan commits every COMMIT_EVERY changes and at the end). So a threshold
that counts every download does not rewrite its row once per download, and the write lock is
held for milliseconds, never between commits: the outbox may share the file. eventIDs are
keyed by (bucket, id), so one B-tree serves both the lookup and the purge.

Two processes must not share one SQLite store (each caches values): share Redis instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson

from engine import jsonsafe
from engine.errors import StateError
from engine.state import Claim, StateStore, Update, bucket_of

COMMIT_EVERY = 20_000  # eventID claims and changes between automatic commits
CACHE_LIMIT = 200_000  # cached values before the cache is written back and emptied

_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_ids (
    bucket INTEGER NOT NULL, id TEXT NOT NULL, PRIMARY KEY (bucket, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS late_buckets (bucket INTEGER PRIMARY KEY, mark INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""
_MISSING = object()


class SqliteStore(StateStore):
    """A StateStore in one SQLite file, with a write-back cache of values."""

    def __init__(self, url: str, event_id_horizon: float, path: str) -> None:
        super().__init__(url, event_id_horizon)
        self.path = path
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='watermark'").fetchone()
        except sqlite3.Error as exc:
            raise StateError(f"state {url}: {exc}") from exc
        self._watermark = float(row[0]) if row else float("-inf")
        self._cache: dict[str, Any] = {}
        self._expiry: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._new_ids: dict[int, set[str]] = {}
        self._late: dict[int, int] = {}  # buckets written past the horizon -> their late_mark
        self._pending = 0
        # Purging only takes effect in the file at the next commit (see purge()); until then
        # reads treat what it would delete as gone.
        self._purge_at = float("-inf")
        self._purged_in_file = float("-inf")
        # autocommit (a scan): commit every COMMIT_EVERY changes too. The daemon turns it off
        # and commits only after a batch's alerts are durable, so a kill in between can never
        # leave its records claimed without their alerts.

    def seen_events(self, claims: Sequence[Claim]) -> list[bool]:
        out = []
        for event_id, epoch in claims:
            if event_id is None:
                self.late_mark(0, epoch)
                out.append(False)
                continue
            bucket = bucket_of(epoch, self._watermark)
            mark = self.late_mark(bucket, epoch)
            fresh = self._new_ids.setdefault(bucket, set())
            if event_id in fresh or self._stored(bucket, event_id):
                out.append(True)
            else:
                fresh.add(event_id)
                out.append(False)
                if mark is not None:
                    self._late[bucket] = max(self._late.get(bucket, mark), mark)
        self._count(len(claims))
        return out

    def _stored(self, bucket: int, event_id: str) -> bool:
        if self._purged(bucket):
            return False
        return self._db.execute("SELECT 1 FROM event_ids WHERE bucket = ? AND id = ?",
                                (bucket, event_id)).fetchone() is not None

    def _purged(self, bucket: int) -> bool:
        """Whether the pending purge deletes eventID bucket `bucket` at the next commit."""
        if self._purge_at == float("-inf"):
            return False
        cutoff = self.id_cutoff(self._purge_at)
        if bucket >= cutoff or self._late.get(bucket, bucket) >= cutoff:
            return False
        return self._db.execute("SELECT 1 FROM late_buckets WHERE bucket = ? AND mark >= ?",
                                (bucket, cutoff)).fetchone() is None

    def update(self, key: str, change: Update) -> Any:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._load(key)
        done = change(value)
        self._cache[key] = done.state
        self._expiry[key] = done.expires
        self._dirty.add(key)
        self._count(1)
        return done.result

    def get(self, key: str) -> Any:
        value = self._cache.get(key, _MISSING)
        return self._load(key) if value is _MISSING else value

    def _load(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ? AND expires >= ?",
                               (key, self._purge_at)).fetchone()
        return orjson.loads(row[0]) if row else None

    def _count(self, changes: int) -> None:
        self._pending += changes
        if self._pending >= COMMIT_EVERY and self.autocommit:
            self.commit()

    def commit(self) -> None:
        try:
            with self._transaction():
                if self._purge_at > self._purged_in_file:  # first: then what was written
                    self._purge_file(self._purge_at)   # since the purge stays
                self._write_back()
        except sqlite3.Error as exc:
            raise StateError(f"state {self.url}: {exc}") from exc
        self._pending = 0
        if len(self._cache) > CACHE_LIMIT:
            self._cache.clear()
            self._expiry.clear()

    def _transaction(self) -> AbstractContextManager[None]:
        return immediate_transaction(self._db)

    def _write_back(self) -> None:
        self._db.executemany("INSERT OR IGNORE INTO event_ids (bucket, id) VALUES (?, ?)",
                             ((b, i) for b, ids in self._new_ids.items() for i in ids))
        self._new_ids.clear()
        self._db.executemany(
            "INSERT INTO late_buckets (bucket, mark) VALUES (?, ?) ON CONFLICT (bucket) "
            "DO UPDATE SET mark = max(mark, excluded.mark)", self._late.items())
        self._late.clear()
        gone = [(k,) for k in self._dirty if self._cache.get(k) is None]
        kept = [(k, jsonsafe.dumps(self._cache[k]), self._expiry[k])
                for k in self._dirty if self._cache.get(k) is not None]
        self._db.executemany("DELETE FROM kv WHERE key = ?", gone)
        self._db.executemany(
            "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET value = excluded.value, expires = excluded.expires", kept)
        if self._watermark > float("-inf"):
            self._db.execute("INSERT INTO meta (name, value) VALUES ('watermark', ?) ON CONFLICT "
                             "(name) DO UPDATE SET value = max(value, excluded.value)",
                             (self._watermark,))
        self._dirty.clear()

    def purge(self, watermark: float) -> int:
        """Forget what expired before `watermark`: at once for reads, in the file at the
        next commit. Purging used to commit by itself, which made the claims and decisions of
        a half-processed daemon batch durable before its alerts were: a kill then lost them.
        Returns how many values and eventID buckets it drops."""
        self._purge_at = max(self._purge_at, watermark)
        expired = [k for k, when in self._expiry.items() if when < watermark]
        for key in expired:
            del self._cache[key], self._expiry[key]
        for bucket in [b for b in self._new_ids if self._purged(b)]:
            del self._new_ids[bucket]
        try:
            stored: int = self._db.execute("SELECT count(*) FROM kv WHERE expires < ?",
                                      (watermark,)).fetchone()[0]
            buckets: int = self._db.execute("SELECT count(DISTINCT bucket) FROM event_ids WHERE "
                                       "bucket < ?", (self.id_cutoff(watermark),)).fetchone()[0]
        except sqlite3.Error as exc:
            raise StateError(f"state {self.url}: {exc}") from exc
        return max(len(expired), stored) + buckets

    def _purge_file(self, watermark: float) -> None:
        cutoff = self.id_cutoff(watermark)
        self._db.execute("DELETE FROM kv WHERE expires < ?", (watermark,))
        self._db.execute("DELETE FROM event_ids WHERE bucket < ? AND bucket NOT IN "
                         "(SELECT bucket FROM late_buckets WHERE mark >= ?)", (cutoff, cutoff))
        self._db.execute("DELETE FROM late_buckets WHERE mark < ?", (cutoff,))
        self._purged_in_file = watermark

    def stats(self) -> dict[str, int]:
        self.commit()
        ids = self._db.execute("SELECT count(*) FROM event_ids").fetchone()[0]
        keys = self._db.execute("SELECT count(*) FROM kv").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return {"event_ids": ids, "keys": keys, "bytes": pages * size}

    def close(self) -> None:
        self.commit()
        self._db.close()


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: the write lock is taken up front,
    so two writers on one file wait for each other instead of failing at COMMIT."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
