"""The --workers processes: which process scans which file, and the pipes results come by.

Each process takes the next file nobody has taken (Claims, in shared memory made before
forking), so one that is ahead takes more; a Worker scans what it takes and writes each
result, pickled, to its own pipe in the order it took them, so the parent reads file n's
result from the worker that took n. A full pipe stops the worker: memory stays bounded
however far behind the deciding parent is.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import multiprocessing
import os
import pickle
import select
import signal
import struct
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from engine.inputs.files import Entry
from engine.scan.filescan import FileResult, scan_file

if TYPE_CHECKING:  # for an annotation only: importing it costs ~8 ms at startup
    from multiprocessing.sharedctypes import Synchronized

PARENT = 1  # the process that decides; workers are 2, 3, ... (see Claims)
PIPE_BYTES = 1 << 20  # a worker's pipe: several files' results (Linux's default limit)
_FRAME = struct.Struct("<QBQ")  # a result's file index, failed flag, and length


class _SharedInts(Protocol):
    """RawArray("i", n) as used here; typeshed types an array made from a typecode as Any."""

    def __getitem__(self, n: int, /) -> int: ...

    def __setitem__(self, n: int, value: int, /) -> None: ...


class Claims:
    """Which process scans which file, in shared memory made before forking.

    Each process takes the next file nobody has taken, so one that is ahead takes more: the
    parent, which also decides, scans only when the result it needs next is not ready."""

    def __init__(self, sizes: list[int], parents: list[bool]) -> None:
        context = multiprocessing.get_context("fork")
        self._sizes = sizes
        self._parents = parents  # entries only the parent handles
        # the first file nobody has taken; with a lock
        self._next: Synchronized[int] = context.Value("q", 0)
        self._owner: _SharedInts = context.RawArray("i", len(sizes))  # 0: nobody yet

    def take(self, who: int, at_most: float = math.inf) -> int | None:
        """The next file for `who` to scan; None when every file is taken, or the next is
        larger than `at_most` bytes."""
        with self._next.get_lock():
            while (n := self._next.value) < len(self._sizes) and self._sizes[n] <= at_most:
                self._next.value = n + 1
                self._owner[n] = PARENT if self._parents[n] else who
                if not self._parents[n]:
                    return n
            return None

    def claim(self, n: int) -> int:
        """Who scans file `n`, which is the parent's next to decide: the parent, if nobody
        has taken it yet (every file before it is taken)."""
        with self._next.get_lock():
            if self._next.value == n:
                self._next.value = n + 1
                self._owner[n] = PARENT
            return self._owner[n]


class Worker:
    """A forked process that scans the files it takes and writes each FileResult, pickled,
    to its own pipe in the order it took them: the parent reads file n's result from the
    worker that took n, which has nothing older left in the pipe. A full pipe stops the
    worker, so memory stays bounded however far behind the parent is."""

    def __init__(self, pid: int, reader: int) -> None:
        self.pid = pid
        self.reader = reader

    @classmethod
    def start(cls, who: int, files: Sequence[Entry], claims: Claims,
              others: Iterable[Worker]) -> Worker:
        reader, writer = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux: room for a few files
            fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                os.close(reader)
                for other in others:
                    os.close(other.reader)
                _work(who, files, claims, writer)
                code = 0
            finally:
                os._exit(code)
        os.close(writer)
        return cls(pid, reader)

    def ready(self) -> bool:
        return bool(select.select([self.reader], [], [], 0)[0])

    def results(self, n: int, path: str) -> Iterator[FileResult]:
        """File `n`'s results, a chunk at a time."""
        while True:
            result = self._receive(n, path)
            yield result
            if result.last:
                return

    def _receive(self, n: int, path: str) -> FileResult:
        index, failed, size = _FRAME.unpack(self._read(_FRAME.size, path))
        data = self._read(size, path)
        if failed:
            raise RuntimeError(f"a --workers process failed on {path}:\n{data.decode()}")
        if index != n:
            raise RuntimeError(f"a --workers process sent file {index}, not {n} ({path})")
        result: FileResult = pickle.loads(data)  # what _work pickled
        return result

    def _read(self, size: int, path: str) -> bytes:
        parts = []
        while size:
            part = os.read(self.reader, min(size, PIPE_BYTES))
            if not part:
                raise RuntimeError(f"a --workers process (pid {self.pid}) exited before "
                                   f"it sent its result for {path}")
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def stop(self, finished: bool) -> None:
        """Reap the worker. Once every file is decided it has nothing left to take and is
        exiting; if the scan failed, it is terminated first."""
        os.close(self.reader)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _work(who: int, files: Sequence[Entry], claims: Claims,
          writer: int) -> None:
    """In a worker: scan the files it takes until none is left."""
    while (n := claims.take(who)) is not None:
        try:
            for result in scan_file(path_of(files[n])):
                _send(writer, n, 0, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
        except Exception:  # a bug: the parent stops the scan and shows it
            _send(writer, n, 1, traceback.format_exc().encode())


def _send(writer: int, n: int, failed: int, data: bytes) -> None:
    frame = memoryview(_FRAME.pack(n, failed, len(data)) + data)
    while frame:
        frame = frame[os.write(writer, frame):]


def path_of(entry: Entry) -> str:
    assert type(entry) is str  # Claims leaves the rest to the parent
    return entry


def size_of(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # a worker reports it
        return 0


