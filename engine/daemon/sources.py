"""Where the daemon's payloads come from, and how each is acknowledged.

Every source yields `Delivery` objects: the raw payload, where it came from, and the calls
that acknowledge it. The runner acknowledges a delivery only after its records were
evaluated and their alerts delivered or safely in the outbox, so a crash at any point means
the payload comes back (SQS visibility timeout, an S3 key not yet marked done), never that
it is lost. Sources are registered by `type` name, as in the config.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from engine.errors import ConfigError
from engine.inputs.decode import ObjectRef


@dataclass
class Delivery:
    """One payload and its acknowledgement; `ack` after success, `fail` to let it come back.

    The payload is a message body in memory, or, so that memory stays flat whatever its
    size, something the runner reads as a stream when it processes the delivery: a local
    file (`path`) or an S3 object (`object`, fetched with `fetch`)."""

    payload: bytes
    origin: str
    ack: Callable[[], None] = lambda: None
    fail: Callable[[str], None] = lambda reason: None
    keepalive: Callable[[], None] = lambda: None  # extend a lease while a big object is processed
    # bucket, key -> the object spooled to a temporary file (S3 references, `object`)
    fetch: Callable[[str, str], IO[bytes]] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # the payload is this file, read when processed
    object: ObjectRef | None = None  # the payload is this S3 object, fetched when processed
    lines: list[tuple[str, bytes]] | None = None  # the payload is these (origin, line) pairs
    # poison: reading the same payload again would fail the same way. Default: `fail`.
    dead_letter: Callable[[str], None] | None = None

    def reject(self, reason: str) -> None:
        """Give up on this payload as it is: dead-letter it (or, without that, `fail`)."""
        (self.dead_letter or self.fail)(reason)


class Source(Protocol):
    name: str

    def poll(self, wait: float) -> list[Delivery]:
        """The next payloads, waiting up to `wait` seconds; empty when there are none."""
        ...

    def reachable(self) -> bool:
        """True when the source answers (for /readyz)."""
        ...

    def close(self) -> None: ...


class FilesSource:
    """Watches directories (and files) for new or grown files; each file is read once.

    What has been read is remembered by (path, size, mtime) in memory and, when a marks store
    is given, durably, so a restart does not read the same files again. A file that cannot
    be decoded (not CloudTrail, a truncated gzip) is dead-lettered the same way: reported
    once, and read again only when it changes. Reading it at every poll instead wrote 18 MB
    of dead-letter log in 11 s for 26 such files.
    """

    def __init__(self, name: str, paths: list[str], marks: Marks | None = None) -> None:
        self.name = name
        self.paths = [Path(p) for p in paths]
        self.marks = marks
        self._done: set[str] = set()
        # Handed to the runner and not yet acknowledged (the poller runs ahead of the runner):
        # polled again, such a file was read and decoded once more, its bad lines logged twice.
        self._handed: set[str] = set()

    def poll(self, wait: float) -> list[Delivery]:
        found = [d for d in self._new_files()]
        if not found and wait > 0:
            time.sleep(min(wait, 1.0))
        return found

    def _new_files(self) -> Iterator[Delivery]:
        for path in self._candidates():
            try:
                info = path.stat()
            except OSError:
                continue
            key = f"{path}:{info.st_size}:{int(info.st_mtime)}"
            if key in self._handed:
                continue  # handed over, not yet acknowledged: not again
            if key in self._done or (self.marks and self.marks.is_done(self.name, key)):
                self._done.add(key)
                continue
            self._handed.add(key)
            yield Delivery(b"", str(path), ack=self._acker(key), fail=self._failer(key),
                           path=str(path), dead_letter=self._dead_letter(key))

    def _dead_letter(self, key: str) -> Callable[[str], None]:
        ack = self._acker(key)

        def dead_letter(reason: str) -> None:
            ack()  # reported once; a changed file has another key and is read again

        return dead_letter

    def _acker(self, key: str) -> Callable[[], None]:
        def ack() -> None:
            self._done.add(key)
            self._handed.discard(key)
            if self.marks:
                self.marks.mark_done(self.name, key)

        return ack

    def _failer(self, key: str) -> Callable[[str], None]:
        def fail(reason: str) -> None:
            self._handed.discard(key)  # read again at a later poll

        return fail

    def _candidates(self) -> list[Path]:
        files: list[Path] = []
        for root in self.paths:
            if root.is_dir():
                files.extend(sorted(p for p in root.rglob("*") if p.is_file()
                                    and not any(part.startswith(".") for part in
                                                p.relative_to(root).parts)))
            elif root.is_file():
                files.append(root)
        return files

    def reachable(self) -> bool:
        return all(path.exists() for path in self.paths)

    def close(self) -> None:
        return None


class StdinSource:
    """Lines from standard input, delivered as they arrive; ends the daemon's interest when
    stdin closes.

    The descriptor is read with os.read, not through sys.stdin's buffer: select() sees only
    the descriptor, so lines already in that buffer waited there for the next write, and a
    stream that paused (`... --follow | trailguard run`) held its last lines back. Every
    complete line read by one poll goes in one delivery (up to MAX_LINES), so a fast stream
    costs one store commit per batch, not per line.
    """

    CHUNK = 1 << 16
    MAX_LINES = 1000

    def __init__(self, name: str, fd: int | None = None) -> None:
        self.name = name
        self._fd = fd
        self._line = 0  # lines read so far, blank ones included: origins say `<stdin>:LINE`
        self._partial = b""  # the start of a line whose newline has not arrived
        self._ready: deque[tuple[str, bytes]] = deque()
        self._eof = False

    @property
    def closed(self) -> bool:
        return self._eof and not self._ready

    def poll(self, wait: float) -> list[Delivery]:
        if not self._ready and not self._eof:
            self._read(min(wait, 1.0))
        if not self._ready:
            if self._eof:
                time.sleep(min(wait, 1.0))
            return []
        lines = [self._ready.popleft() for _ in range(min(len(self._ready), self.MAX_LINES))]
        return [Delivery(b"", _span(lines), lines=lines)]

    def _read(self, timeout: float) -> None:
        fd = sys.stdin.fileno() if self._fd is None else self._fd
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return
        chunk = os.read(fd, self.CHUNK)
        if not chunk:
            self._eof = True
            self._add(self._partial)  # a last line without its newline
            self._partial = b""
            return
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        for line in complete:
            self._add(line + b"\n")

    def _add(self, line: bytes) -> None:
        if not line:
            return
        self._line += 1
        if line.strip():
            self._ready.append((f"<stdin>:{self._line}", line))

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        return None


def _span(lines: list[tuple[str, bytes]]) -> str:
    """`<stdin>:3`, or `<stdin>:3-9` for a delivery of several lines."""
    first, last = lines[0][0], lines[-1][0]
    return first if first == last else f"{first}-{last.rsplit(':', 1)[1]}"


class Marks(Protocol):
    """Durable 'this object was processed' marks (kept in the state store)."""

    def is_done(self, source: str, key: str) -> bool: ...

    def mark_done(self, source: str, key: str) -> None: ...


def build_sources(configs: tuple[Mapping[str, Any], ...], marks: Marks | None,
                  environ: Mapping[str, str] | None = None, where: str = "sources"
                  ) -> list[Source]:
    """Sources from the config's `sources:` list, by type (engine.daemon.registry).

    The settings were checked when the config loaded; what is left to fail here is the
    construction itself (an AWS client refusing its region, say): a ConfigError naming the
    source, never a traceback."""
    from engine.daemon.registry import SOURCE_TYPES, source_name

    env = os.environ if environ is None else environ
    sources: list[Source] = []
    for number, settings in enumerate(configs):
        kind = settings.get("type")
        source_type = SOURCE_TYPES.get(kind) if isinstance(kind, str) else None
        if source_type is None:
            raise ConfigError(f"sources[{number}].type: unknown type {kind!r} "
                              f"(known: {', '.join(sorted(SOURCE_TYPES))})", where)
        try:
            sources.append(source_type.build(source_name(settings, number), settings, marks, env))
        except ConfigError:
            raise
        except Exception as exc:  # a third-party client's own complaint about its settings
            raise ConfigError(f"sources[{number}]: cannot set up the {kind} source: {exc}",
                              where) from None
    return sources
