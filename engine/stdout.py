"""stdout for `scan`, which a reader may stop reading at any time (`scan ... | head`).

A consumer that closes the pipe early is normal use, and `head` expects the writer to stop
quietly. Without this, the first write after `head` exits raised BrokenPipeError: in the
stdout output's delivery thread, where it became "cannot write to stdout" errors, alerts
"kept in the outbox" and exit status 1. `guard()` wraps sys.stdout so that a broken pipe
marks the reader gone, points file descriptor 1 at /dev/null (nothing more can be lost, and
Python's exit-time flush stays silent) and lets the scan finish: its state and the summary
on stderr are complete, and the command exits 0.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, BinaryIO


class GuardedBuffer:
    """A binary stdout that turns a broken pipe into `gone = True`."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.gone = False
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        if not self.gone:
            try:
                return self.raw.write(data)
            except BrokenPipeError:
                self._reader_gone()
        return len(data)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.raw.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        with self._lock:
            if self.gone:
                return
            self.gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.raw.fileno())
            finally:
                os.close(devnull)

    def fileno(self) -> int:
        return self.raw.fileno()

    def isatty(self) -> bool:
        return self.raw.isatty()


class GuardedStdout:
    """What code reads as `sys.stdout`: text and `.buffer` writes both go through the guard."""

    def __init__(self, text: Any) -> None:
        self.text = text
        self.buffer = GuardedBuffer(text.buffer)

    @property
    def gone(self) -> bool:
        return self.buffer.gone

    def write(self, text: str) -> int:
        self.buffer.write(text.encode(self.text.encoding or "utf-8"))
        return len(text)

    def flush(self) -> None:
        self.buffer.flush()

    def fileno(self) -> int:
        return self.buffer.fileno()

    def isatty(self) -> bool:
        return self.buffer.isatty()


def guard() -> GuardedStdout:
    """Install the guard on sys.stdout (once) and return it."""
    current = sys.stdout
    if isinstance(current, GuardedStdout):
        return current
    current.flush()
    guarded = GuardedStdout(current)
    sys.stdout = guarded
    return guarded
