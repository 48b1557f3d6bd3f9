"""Which files a scan reads, and in what order: eventTime order, whatever order they are named
or stored in (SPEC §7), with memory that does not grow with the number of files.

Every file gets a time key. A CloudTrail log file's name carries it
(``<acct>_CloudTrail_<region>_YYYYMMDDTHHMMZ_<random>.json.gz``: the minute it was delivered,
just after its records); any other file is read ahead for its records' earliest eventTime (a
regular expression over its text, gzipped or not: no JSON parsing). Files are read in key
order; ties by file name, then path, so the same files named in any order read alike.

Memory: an organisation trail (``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``) holds
millions of files, but within one account-region the date folders and the stamps are already
in time order. A directory whose subdirectories all have date-part names (``YYYY``, ``MM``,
``DD``; an account id has 12 digits) is therefore read as the concatenation of their walks,
one at a time; any other directory's children (accounts, regions, paths named on the
command line) are merged by key, lazily (heapq.merge). The walk holds one directory listing
per account-region and one pending entry per stream, not the archive's paths.

A file's records are sorted when it is read (engine.inputs.order), and the deciding process merges
the records of the files open at once (engine.decide.merge): files of different account-regions
overlap by their span (CloudTrail: about 5 minutes; an hourly export: an hour).

Stdin (``-``) and pipes cannot be read ahead: stdin stays where it is named (the paths on
either side are ordered among themselves), and a pipe named on the command line is read
first. What cannot be read on the way (a dangling symlink, a symlink loop, a directory
without permission) is reported with its path, first, and the rest is still walked.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import itertools
import os
import re
import stat
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import IO

from engine.inputs.decode import GZIP_ERRORS, GZIP_MAGIC, Malformed, Skipped, open_gzip

__all__ = ["STDIN", "Entry", "earliest_event_time", "event_times", "file_key", "name_stamp",
           "walk"]

STDIN = "-"
Entry = str | Malformed | Skipped  # what walk() gives: a file to read, or why not
Keyed = tuple[float, str, str, int, Entry]  # (time key, file name, path, tie, entry)
FIRST = float("-inf")  # the key of what is read first: problems met, pipes, files without time
_DATE_PART = re.compile(r"\d{4}|\d{1,2}")  # YYYY, MM, DD; not a 12-digit account id
_STAMP = re.compile(r"_(\d{8}T\d{4})Z(?:_|\.|$)")
# "eventTime": "..." in a record, or \"eventTime\":\"...\" inside lookup-events' JSON strings
EVENT_TIME = re.compile(rb'"eventTime\\?"\s*:\s*\\?"([0-9][0-9T:.+\-Z ]{9,34})')
READ_CHUNK = 1 << 20
_TIES = itertools.count()  # never compare two entries themselves
_OVERLAP = 64  # bytes kept between chunks, so a match cut by a chunk's end is still found


def walk(paths: Sequence[str]) -> Iterator[Entry]:
    """The files of `paths` (files, directories walked recursively, ``-`` for stdin) in time
    order, and the items that say why something met on the way is not read."""
    seen: set[tuple[int, int]] = set()
    segment: list[str] = []
    for path in paths:
        if path == STDIN:
            yield from _merged(segment, seen)
            segment = []
            yield STDIN
        else:
            segment.append(path)
    yield from _merged(segment, seen)


def _merged(paths: list[str], seen: set[tuple[int, int]]) -> Iterator[Entry]:
    alone = len(paths) == 1  # one file named alone has nothing to be ordered against
    for keyed in heapq.merge(*(_stream(path, seen, named=True, alone=alone) for path in paths)):
        yield keyed[-1]


def name_stamp(name: str) -> float | None:
    """The delivery minute in a CloudTrail log file's name, as epoch seconds, else None."""
    found = _STAMP.search(name)
    if found is None:
        return None
    try:
        return datetime.strptime(found.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def file_key(path: str, name: str | None = None) -> float:
    """A file's time key: its name's stamp, else its records' earliest eventTime (FIRST when
    it has none that can be read, or cannot be read ahead)."""
    stamp = name_stamp(name if name is not None else os.path.basename(path))
    return stamp if stamp is not None else earliest_event_time(path)


def earliest_event_time(path: str) -> float:
    """The earliest eventTime written in a regular file, found without parsing its JSON."""
    earliest = float("inf")
    for epoch in event_times(path):
        earliest = min(earliest, epoch)
    return earliest if earliest != float("inf") else FIRST


def event_times(path: str) -> Iterator[float]:
    """Every eventTime written in a regular file (gzipped or not), in file order; nothing for
    a pipe (reading it ahead would consume it) or a file that cannot be read."""
    try:
        # open(path, "rb", buffering=READ_CHUNK) builds the same, but its type (BinaryIO)
        # has no peek
        with io.BufferedReader(io.FileIO(path), READ_CHUNK) as reader:
            if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
                return
            stream = open_gzip(reader) if reader.peek(2)[:2] == GZIP_MAGIC else reader
            yield from _times(stream)
    except GZIP_ERRORS:  # reading it for real reports the problem, with what precedes it
        return


def _times(stream: IO[bytes]) -> Iterator[float]:
    tail = b""
    while chunk := stream.read(READ_CHUNK):
        text = tail + chunk
        end = 0
        for found in EVENT_TIME.finditer(text):
            epoch = _epoch(found.group(1))
            end = found.end()
            if epoch is not None:
                yield epoch
        tail = text[max(end, len(text) - _OVERLAP):]


_EPOCHS: dict[bytes, float | None] = {}


def _epoch(text: bytes) -> float | None:
    cached = _EPOCHS.get(text, FIRST)
    if cached != FIRST:
        return cached
    if len(_EPOCHS) >= 8_192:
        _EPOCHS.clear()
    try:
        moment = datetime.fromisoformat(text.decode())
    except ValueError:
        _EPOCHS[text] = None
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    epoch = _EPOCHS[text] = moment.timestamp()
    return epoch


def _stream(path: str, seen: set[tuple[int, int]], named: bool = False,
            alone: bool = False) -> Iterator[Keyed]:
    """The entries under `path` in key order (problems first); a file named `alone` is not
    read ahead for its key (a whole pass over its text)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        yield FIRST, "", path, next(_TIES), Malformed(path, describe(exc), unreadable=True)
        return
    name = os.path.basename(path)
    if stat.S_ISDIR(info.st_mode):
        yield from _directory(path, info, seen)
    elif named and (alone or not stat.S_ISREG(info.st_mode)):  # a pipe (<(zcat ...)): as
        yield FIRST, name, path, next(_TIES), path  # it comes; a file alone: nothing to order
    else:
        yield file_key(path, name), name, path, next(_TIES), path


def _directory(path: str, info: os.stat_result, seen: set[tuple[int, int]]) -> Iterator[Keyed]:
    if (info.st_dev, info.st_ino) in seen:  # a symlink loop, or a directory reached twice
        return
    seen.add((info.st_dev, info.st_ino))
    try:
        with os.scandir(path) as scan:
            entries = sorted((e for e in scan if not e.name.startswith(".")), key=_name)
    except OSError as exc:
        yield FIRST, "", path, next(_TIES), Malformed(path, describe(exc), unreadable=True)
        return
    files: list[Keyed] = []
    folders: list[str] = []
    for entry in entries:
        kind = _kind(entry)
        if kind == "dir":
            folders.append(entry.path)
        elif kind == "file":
            files.append((file_key(entry.path, entry.name), entry.name, entry.path, next(_TIES),
                          entry.path))
        else:
            files.append((FIRST, entry.name, entry.path, next(_TIES), kind))
    files.sort()
    del entries
    if folders and all(_DATE_PART.fullmatch(os.path.basename(f)) for f in folders):
        # YYYY/MM/DD: one folder after another, each walked only when the last is done
        yield from heapq.merge(files, _chained(folders, seen))
    else:
        yield from heapq.merge(files, *(_stream(folder, seen) for folder in folders))


def _chained(folders: list[str], seen: set[tuple[int, int]]) -> Iterator[Keyed]:
    for folder in sorted(folders, key=lambda f: (int(os.path.basename(f)), f)):
        yield from _stream(folder, seen)


def _kind(entry: os.DirEntry[str]) -> str | Malformed | Skipped:
    """"dir", "file", or why the entry is not read. A symlink loop (``x -> y -> x``) makes
    is_dir() raise: it is reported with its path, and the walk goes on."""
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
    except OSError as exc:
        return Malformed(entry.path, describe(exc), unreadable=True)
    return _not_a_file(entry.path)


def _not_a_file(path: str) -> Malformed | Skipped:
    """A dangling symlink is unreadable input; a socket or pipe met on a walk (it could
    block) is left alone."""
    try:
        os.stat(path)
    except OSError as exc:
        return Malformed(path, describe(exc), unreadable=True)
    return Skipped(path, "not a regular file")


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def total_bytes(paths: Sequence[str]) -> int:
    """The bytes on disk of the files under `paths`, for the progress bar: a directory at a
    time (Path.rglob held every path of the tree: +10 MB RSS for 16,000 files)."""
    total = 0
    for path in paths:
        if os.path.isfile(path):
            total += os.path.getsize(path)
        for folder, _, names in os.walk(path):
            for name in names:
                with contextlib.suppress(OSError):  # gone, or a dangling symlink
                    total += os.stat(os.path.join(folder, name)).st_size
    return total


def describe(exc: BaseException) -> str:
    """An OS or gzip error as a reason, without repeating the path the origin already has."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"
