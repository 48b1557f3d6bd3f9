"""Local inputs: files, directories and stdin, read as a stream of decoded items.

This module owns turning command-line paths into :data:`engine.inputs.decode.Item` values for
``trailguard scan`` and the ``files``/``stdin`` sources; what a payload *is* stays in
:mod:`engine.inputs.decode`. Memory stays flat however large the input:

* a file whose first non-blank line parses on its own as JSON is JSON lines: it is streamed
  line by line (gzipped too) and each line is one payload, origin ``path:LINE`` (1-based);
* any other file is one document (a CloudTrail log file, a pretty-printed record...): it is
  read whole, decoded, and released before the next file is opened; origin ``path``.

Gzip is recognised by its magic bytes, not by the ``.gz`` suffix (browsers save S3 downloads
decompressed under the old name). Files and directories are walked in eventTime order
(engine.inputs.walk), and a file's records are read in eventTime order (engine.inputs.order);
hidden entries are skipped on a walk, but a path named on the command line is always read,
even a pipe such as ``<(zcat ...)``.
A file that cannot be read, or whose gzip data is cut short, becomes a Malformed with the
reason; every record before the failure is still yielded. ``on_bytes`` receives the bytes read
from disk (compressed bytes for gzip), once per buffer, for a progress bar.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from typing import IO

import orjson

from engine.inputs import largedoc, order
from engine.inputs.decode import (
    GZIP_ERRORS,
    GZIP_MAGIC,
    Item,
    Malformed,
    Skipped,
    decode,
    decode_value,
    gunzip_at_most,
    open_gzip,
)
from engine.inputs.walk import STDIN, Entry, walk  # the files, in time order (SPEC §7)

__all__ = ["STDIN", "STDIN_ORIGIN", "ByteCounter", "Entry", "Refs", "iter_object", "iter_paths",
           "iter_stream", "read_file", "walk"]
__all__ += ["capped"]

STDIN_ORIGIN = "<stdin>"
BUFFER_SIZE = 1 << 18

ByteCounter = Callable[[int], None]
Refs = list[tuple[str, int] | None]
# Files up to this size on disk are cheap to read again whole (a CloudTrail log file is tens of
# kilobytes gzipped); their records can be named by place (iter_paths refs).
REREAD_BYTES = 256 << 10
# A file that is one document is parsed whole up to this size, element by element beyond it.
WHOLE_BYTES = 16 << 20
SMALL_BYTES = 1 << 20  # a regular file up to this size on disk is read in one go
MALFORMED_LISTED = 100  # malformed items listed per input; the rest are only counted


def iter_paths(paths: Sequence[str], on_bytes: ByteCounter | None = None,
               refs: Refs | None = None) -> Iterator[Item]:
    """Every item in the given files, directories (recursively) and ``-`` (stdin), in
    eventTime order (engine.inputs.walk, engine.inputs.order).

    With `refs`, one entry is appended per item, just before it is yielded: ``(path, n)``
    for the n-th record (0-based) of a regular file of up to REREAD_BYTES, which reading
    that file again yields at the same place; else None (stdin, a pipe, a larger file,
    anything not a record). The threshold lane holds stubs of records it can read back this
    way (engine.decide.stubs)."""
    for entry in walk(paths):
        if isinstance(entry, str):  # (mypy narrows the else branch by isinstance only)
            yield from read_file(entry, on_bytes, refs)
        else:
            yield from _one(entry, refs)


def read_file(path: str, on_bytes: ByteCounter | None = None,
              refs: Refs | None = None) -> Iterator[Item]:
    """The items of one file that walk() gave (or stdin), with refs as iter_paths says."""
    if path == STDIN:
        stdin = getattr(sys.stdin, "buffer", None)
        items: Iterable[Item] = ((Malformed(STDIN_ORIGIN, "standard input is closed"),)
                                 if stdin is None else capped(iter_stream(stdin, STDIN_ORIGIN,
                                                                          on_bytes), STDIN_ORIGIN))
    else:
        items = order.in_time_order(_iter_file(path, on_bytes), path)
        if refs is not None and _rereadable(path):
            yield from _placed(items, path, refs)
            return
    yield from items if refs is None else _unplaced(items, refs)


def _rereadable(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:  # gone since the walk: reading it will say so
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size <= REREAD_BYTES


def _unplaced(items: Iterable[Item], refs: Refs) -> Iterator[Item]:
    for item in items:
        refs.append(None)
        yield item


def _placed(items: Iterable[Item], path: str, refs: Refs) -> Iterator[Item]:
    position = 0
    for item in items:
        if type(item) is dict:
            refs.append((path, position))
            position += 1
        else:
            refs.append(None)
        yield item


def iter_stream(raw: IO[bytes], origin: str, on_bytes: ByteCounter | None = None) -> Iterator[Item]:
    """Every item in one byte stream (gzipped or not); ``raw`` is left open."""
    reader = _buffered(raw, on_bytes)
    try:
        stream = open_gzip(reader) if reader.peek(2)[:2] == GZIP_MAGIC else reader
        yield from _decode_stream(stream, origin)
    except GZIP_ERRORS as exc:  # OSError: read errors and bad gzip; EOFError: truncated gzip
        yield Malformed(origin, f"read failed: {_describe(exc)}", unreadable=True)  # exit 1


def _one(item: Item, refs: Refs | None) -> Iterator[Item]:
    if refs is not None:
        refs.append(None)
    yield item


def _iter_file(path: str, on_bytes: ByteCounter | None) -> Iterator[Item]:
    try:
        with open(path, "rb", buffering=0) as raw:
            info = os.fstat(raw.fileno())
            yield from iter_object(raw, path, info.st_size if stat.S_ISREG(info.st_mode)
                                   else None, on_bytes)
    except OSError as exc:  # opening it; read errors are iter_stream's
        yield Malformed(path, _describe(exc), unreadable=True)


def iter_object(raw: IO[bytes], origin: str, size: int | None,
                on_bytes: ByteCounter | None = None) -> Iterator[Item]:
    """Every item in one file-like object of `size` bytes (None: unknown, as for a pipe),
    with flat memory whatever its size: a local file, or an S3 object spooled to disk.

    A small one (a CloudTrail log file) is read and decompressed in one call each and decoded
    whole, as decode() does any payload: reading it line by line through gzip cost a fifth of
    a scan's instructions (callgrind). Anything larger, or damaged, is streamed.
    Malformed items past the first MALFORMED_LISTED are counted, not listed (see capped)."""
    return capped(_object_items(raw, origin, size, on_bytes), origin)


def capped(items: Iterable[Item], origin: str, listed: int = MALFORMED_LISTED) -> Iterator[Item]:
    """`items` with at most `listed` Malformed items, then one that counts the rest.

    A 96 KB gzip of ``{}`` lines is 33 million malformed lines: each kept and reported took a
    scan past 6 GB. Every one is still counted (`Malformed.count`); only the first are
    listed, with their ``path:LINE``, and what stops the stream is never the input's size."""
    seen = more = unreadable = 0
    for item in items:
        if type(item) is Malformed:
            seen += 1
            if seen > listed:
                more += 1
                unreadable = unreadable or item.unreadable
                continue
        yield item
    if more:
        yield Malformed(origin, f"{more:,} more malformed items, not listed (the first "
                                f"{listed} are)", bool(unreadable), more)


def _object_items(raw: IO[bytes], origin: str, size: int | None,
                  on_bytes: ByteCounter | None) -> Iterator[Item]:
    if size is not None and size <= SMALL_BYTES and (data := _read_small(raw)) is not None:
        text = gunzip_at_most(data, WHOLE_BYTES) if data[:2] == GZIP_MAGIC else data
        if text is not None and len(text) <= WHOLE_BYTES:
            if on_bytes is not None:
                on_bytes(len(data))
            del data
            yield from decode(text, origin) if text.strip() else (
                Skipped(origin, "empty input"),)
            return
        raw.seek(0)
    yield from iter_stream(raw, origin, on_bytes)


def _read_small(raw: IO[bytes]) -> bytes | None:
    """All of a small file; None (and at its start again) if reading failed, for the
    stream reader to report where."""
    try:
        return raw.read()
    except OSError:
        with contextlib.suppress(OSError):
            raw.seek(0)
        return None


def _decode_stream(stream: IO[bytes], origin: str) -> Iterator[Item]:
    """JSON lines streamed, or one whole document: decided by the first non-blank line.

    A document is parsed whole up to WHOLE_BYTES; a larger one is read an element at a time
    (engine.inputs.largedoc), so no file needs memory in proportion to its size."""
    first = _first_line(stream)
    if first is None:
        yield Skipped(origin, "empty input")
        return
    number, line = first
    if len(line) >= WHOLE_BYTES and not line.endswith(b"\n"):  # one line, too large to hold
        yield from largedoc.iter_document(_chunks(line, stream), origin)
        return
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        # One document over several lines. decode() still recovers JSON lines from it when
        # the first line is broken and the second is not (then this file is read whole).
        rest = stream.read(WHOLE_BYTES)
        if len(rest) < WHOLE_BYTES:
            yield from decode(b"".join((b"\n" * (number - 1), line, rest)), origin)
        else:
            yield from _large(number, line, rest, stream, origin)
        return
    del first, line  # on one line, a whole CloudTrail log file: free its text before its records
    second = next(_numbered_lines(stream, number), None)
    if second is None:
        yield from decode_value(value, origin)
        return
    yield from decode_value(value, f"{origin}:{number}")
    del value
    yield from _json_lines(chain((second,), _numbered_lines(stream, second[0])), origin)


def _json_lines(lines: Iterable[tuple[int, bytes]], origin: str) -> Iterator[Item]:
    for number, line in lines:
        yield from decode(line, f"{origin}:{number}")


def _large(number: int, line: bytes, rest: bytes, stream: IO[bytes],
           origin: str) -> Iterator[Item]:
    """Over WHOLE_BYTES, the first line not JSON on its own: JSON lines after a broken first
    line (when the next line parses), else one large document over several lines."""
    rest += stream.readline(largedoc.MAX_ELEMENT)  # to the end of a line, unless it is huge
    second = next(_numbered_lines(io.BytesIO(rest), number), None)
    if second is None or _invalid(second[1]) is not None:
        yield from largedoc.iter_document(_chunks(b"".join((line, rest)), stream), origin)
        return
    yield Malformed(f"{origin}:{number}", f"invalid JSON: {_invalid(line.rstrip())}")
    yield from _json_lines(chain(_numbered_lines(io.BytesIO(rest), number),
                                 _numbered_lines(stream, number + rest.count(b"\n"))), origin)


def _invalid(line: bytes) -> str | None:
    """Why `line` is not one JSON document, or None if it is."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    return None


def _chunks(head: bytes, stream: IO[bytes]) -> Iterator[bytes]:
    """`head`, then the rest of `stream`, a largedoc.CHUNK at a time (the decoded text of a
    32 MB head would be one 32 MB string)."""
    for start in range(0, len(head), largedoc.CHUNK):
        yield head[start:start + largedoc.CHUNK]
    while chunk := stream.read(largedoc.CHUNK):
        yield chunk


def _first_line(stream: IO[bytes]) -> tuple[int, bytes] | None:
    """(1-based number, line) of the first line that is not blank, at most WHOLE_BYTES."""
    number = 0
    while line := stream.readline(WHOLE_BYTES):
        number += 1
        if not line.isspace():
            return number, line
    return None


def _numbered_lines(stream: IO[bytes], before: int = 0) -> Iterator[tuple[int, bytes]]:
    """(1-based number, line) of each line that is not blank; `before` lines were read."""
    for number, line in enumerate(stream, before + 1):
        if not line.isspace():
            yield number, line


def _buffered(raw: IO[bytes], on_bytes: ByteCounter | None) -> io.BufferedReader:
    """A buffered reader over ``raw`` that never closes it, metered when asked."""
    if on_bytes is None and isinstance(raw, io.BufferedReader):
        return raw
    return io.BufferedReader(_Borrowed(raw, on_bytes), BUFFER_SIZE)


class _Borrowed(io.RawIOBase):
    """A stream read through without owning it (closing this leaves ``raw`` open); reports
    each chunk read to ``on_bytes``: one call per buffer fill, not one per line."""

    def __init__(self, raw: IO[bytes], on_bytes: ByteCounter | None) -> None:
        self._raw, self._on_bytes = raw, on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count: int = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if count and self._on_bytes is not None:
            self._on_bytes(count)
        return count

    def readall(self) -> bytes:
        data = self._raw.read()
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        return data


def _describe(exc: BaseException) -> str:
    """An OS or gzip error as a reason, without repeating the path the origin already has."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"
