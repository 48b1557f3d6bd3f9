"""Threshold-lane matches held as stubs: the record's few counted fields, and a way back.

A threshold such as codeartifact-mass-download matches nearly every record, and its matches
wait in the decider's lane for the allowed lateness (15 minutes of event time by default)
before they are counted. Held whole, those records were most of a scan's memory: about 60 MB
for the bench stream, and more for a denser one (memory grows with events per minute, not
with input size). The lane counts with four fields, so a lane match carries a stub of them,
and the whole record is made again only if the general path reads it (engine.decide.decider:
a first_seen, distinct or sequence rule's match, or the match that opens an alert's window;
not the matches that only count or fold into it): rarely. Two ways back, by where the record
came from:

- a small file (CloudTrail's log files: up to `inputs.REREAD_BYTES` on disk): the record's
  place in it, read again when needed, the last few files kept. Costs nothing per record.
- anything else (a large JSON-lines export, stdin, a pipe): the record's JSON text, about a
  quarter of the parsed record's memory and one `orjson.dumps`. A large file is not read
  again: a stub asked for far from the last one would mean reading it again from the start.

Both of a scan's inputs use this, decided by engine.scan.deciding: files
(engine.scan.parallel, whose --workers processes send a stub's values instead of the record)
and streams (engine.scan.pipeline: stdin, where a stub holds the record's JSON text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from engine.inputs.files import iter_paths
from engine.inputs.lean import DECIDING_FIELDS, LeanReader
from engine.model import Match, Record

if TYPE_CHECKING:
    from engine.inputs.lean import LeanFile

STUB_FIELDS = ("eventID", "sharedEventID", "recipientAccountId", "eventTime")
RESOLVE_CACHE = 12  # files whose records are kept for reading stubs back, last used kept

Ref = tuple[str, int]  # (path, n): the n-th record (0-based) read from that file (iter_paths)


class RecordStub(dict):  # type: ignore[type-arg]
    """The fields the threshold lane counts with; `back`: where the whole record is, as a
    Ref or as its JSON text."""

    __slots__ = ("back",)
    back: Ref | bytes


def stub_values(record: Record) -> tuple[Any, Any, Any, Any]:
    """The values of STUB_FIELDS in `record`, in that order."""
    get = record.get
    return get("eventID"), get("sharedEventID"), get("recipientAccountId"), get("eventTime")


def stub_of(values: Sequence[Any], back: Ref | bytes) -> RecordStub:
    """A stub from the values of STUB_FIELDS, in that order (set one by one: three times
    faster than from pairs, and this runs for nearly every record)."""
    stub = RecordStub()
    stub["eventID"], stub["sharedEventID"], stub["recipientAccountId"], stub["eventTime"] = values
    stub.back = back
    return stub


def way_back(record: Record, ref: Ref | None) -> Ref | bytes | None:
    """How to make `record` whole again: its place in a file when it has one, else its JSON
    text; None when it has neither (not JSON: it did not come from a file)."""
    if ref is not None:
        return ref
    try:  # orjson's bytes keep its 8 KB buffer: copy the text out (measured here)
        return memoryview(orjson.dumps(record)).tobytes()
    except TypeError:
        return None


def stub_for(record: Record, ref: Ref | None) -> RecordStub | None:
    """The stub of `record` (see way_back); None when it cannot be made whole again."""
    back = way_back(record, ref)
    return None if back is None else stub_of(stub_values(record), back)


class Resolver:
    """Stub -> whole record: parsed from its text, or read back from its file.

    A file rewritten since it was scanned could hold another record at that place: the
    eventID is checked, the file searched for it if it moved, and the stub kept (an alert
    whose event has the four fields only) if it is gone, rather than alert on another
    record."""

    def __init__(self, lean: bool = False) -> None:
        # Reading back needs only each record's place and eventID: a reader of the fields
        # the scan itself reads takes exactly the files the scan's reader took (the same
        # checks: shape, identity fields, UTF-8), and holds a twentieth of their records.
        self._lean = LeanReader([(name,) for name in DECIDING_FIELDS]) if lean else None
        self._files: dict[str, _Records] = {}
        self.files_read = 0  # times a file was read again
        self.missing = 0  # stubs whose record could not be found again

    def __call__(self, match: Match) -> Match:
        record = self.whole(match.record)
        return match if record is match.record else match._replace(record=record)

    def whole(self, stub: Record) -> Record:
        """`stub` made whole (a record that is not a stub is returned as it is); a stub whose
        record cannot be found again stays a stub (see the class doc)."""
        if type(stub) is not RecordStub:
            return stub
        if type(stub.back) is bytes:
            record: Record = orjson.loads(stub.back)
            return record
        path: str
        position: int
        # not bytes: a Ref. mypy does not narrow on `type(x) is bytes` failing (a subclass
        # could fail it), and isinstance would cost on this path.
        path, position = stub.back  # type: ignore[assignment]
        records = self._files.pop(path, None)  # kept last used last: evict the oldest
        if records is None:
            if len(self._files) >= RESOLVE_CACHE:
                del self._files[next(iter(self._files))]
            records = self._read(path)
            self.files_read += 1
        self._files[path] = records
        found = records.find(position, stub.get("eventID"))
        if found is None:
            self.missing += 1
            return stub
        return found

    def _read(self, path: str) -> _Records:
        """The file's records in the order the scan read them: lean (only the records asked
        for are decoded whole) when the scan read it lean, else every record, whole."""
        lean = self._lean.read(path) if self._lean is not None else None
        if lean is not None:
            return _LeanRecords(lean)
        return _WholeRecords([item for item in iter_paths([path]) if type(item) is dict])


class _Records(Protocol):
    def find(self, position: int, event_id: Any) -> Record | None:
        """The record at `position` if its eventID is `event_id`, else the first record
        with that eventID (the file changed since it was scanned), else None."""


class _WholeRecords:
    __slots__ = ("records",)

    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def find(self, position: int, event_id: Any) -> Record | None:
        records = self.records
        if position < len(records) and records[position].get("eventID") == event_id:
            return records[position]
        return next((r for r in records if event_id is not None
                     and r.get("eventID") == event_id), None)


class _LeanRecords:
    __slots__ = ("decoded", "event_ids", "lean", "order")

    def __init__(self, lean: LeanFile) -> None:
        self.lean = lean
        self.order = lean.time_order()[0]
        self.event_ids = [record.get("eventID") for record in lean.records]
        lean.records = []  # kept: the text, to decode the records asked for whole
        self.decoded: dict[int, Record] = {}

    def find(self, position: int, event_id: Any) -> Record | None:
        event_ids, order = self.event_ids, self.order
        if position < len(order) and event_ids[order[position]] == event_id:
            return self._whole(order[position])
        return next((self._whole(n) for n, found in enumerate(event_ids)
                     if event_id is not None and found == event_id), None)

    def _whole(self, n: int) -> Record | None:
        record = self.decoded.get(n)
        if record is None:
            try:
                record = self.decoded[n] = self.lean.whole(n)
            except orjson.JSONDecodeError:  # the scan read this file the general way
                return None
        return record
