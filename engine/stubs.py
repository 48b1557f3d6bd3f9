"""Threshold-lane matches held as stubs: a record's few counted fields and where it is.

A threshold such as codeartifact-mass-download matches nearly every record, and its matches
wait in the decider's lane for the allowed lateness (15 minutes of event time by default)
before they are counted. Held whole, those records were most of a scan's memory: about 60 MB
for the bench stream, and more for a denser one (memory grows with events per minute, not
with input size). The lane counts with four fields, so a match whose record can be read again
- it came from a file - carries a stub of those fields and the record's place in its file.
The whole record is read back only if the general path needs it (a run completes, a match is
late): rarely, and a few files at a time.

Both `scan` paths use this: one process (engine.scan) and `--workers` (engine.parallel),
whose workers send a stub's values instead of the record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.inputs import iter_paths
from engine.model import Match

STUB_FIELDS = ("eventID", "sharedEventID", "recipientAccountId", "eventTime")
RESOLVE_CACHE = 4  # files whose records are kept for reading stubs back

Ref = tuple[str, int]  # (path, n): the n-th record (0-based) read from that file (iter_paths)


class RecordStub(dict):  # type: ignore[type-arg]
    """The fields the threshold lane counts with; `ref` says where the whole record is."""

    __slots__ = ("ref",)
    ref: Ref


def stub_of(values: Iterable[Any], ref: Ref) -> RecordStub:
    """A stub from the values of STUB_FIELDS, in that order."""
    stub = RecordStub(zip(STUB_FIELDS, values, strict=True))
    stub.ref = ref
    return stub


class Resolver:
    """Stub -> whole record, read back from its file (the last few files are kept).

    A file rewritten since it was scanned could hold another record at that place: the
    eventID is checked, the file searched for it if it moved, and the stub kept (an alert
    whose event has the four fields only) if it is gone, rather than alert on another
    record."""

    def __init__(self) -> None:
        self._files: dict[str, list[dict[str, Any]]] = {}
        self.files_read = 0  # times a file was read again
        self.missing = 0  # stubs whose record could not be found again

    def __call__(self, match: Match) -> Match:
        stub = match.record
        if type(stub) is not RecordStub:
            return match
        path, position = stub.ref
        records = self._files.get(path)
        if records is None:
            if len(self._files) >= RESOLVE_CACHE:
                del self._files[next(iter(self._files))]
            records = self._files[path] = [
                item for item in iter_paths([path]) if type(item) is dict]
            self.files_read += 1
        event_id = stub.get("eventID")
        if position < len(records) and records[position].get("eventID") == event_id:
            return match._replace(record=records[position])
        found = next((r for r in records if event_id is not None
                      and r.get("eventID") == event_id), None)
        if found is None:
            self.missing += 1
            return match
        return match._replace(record=found)
