"""What deciding takes of each scanned record: one tuple, of one of five kinds.

Why tuples: one is made for nearly every record, and for --workers each crosses a pipe; a
NamedTuple or a dataclass costs 7x a tuple to make and sorts 1.6x slower, and a tuple of
strings and floats pickles small. Why a kind field: the kinds used to be told apart by their
length, which said nothing to a reader and let mypy check nothing. Every item begins with the
three values the merge orders by (engine.decide.merge: the eventID or record, the eventTime
epoch, the newest eventTime before it in its file), then its KIND, so that
`item[KIND] == LANE` narrows its type for mypy (a union of tuples narrowed by a Literal).

The kinds, made by engine.scan.filescan and decided by engine.scan.deciding:
- UNMATCHED: a record that matched nothing, kept so that its eventID is claimed (a repeat is
  dropped and counted as one process would); also a file's last watermark (no eventID);
- GENERAL: a record with its matches, for the decider's general path;
- LANE: a record whose one match is a threshold-lane rule's, as the lane takes it
  (Decider.hold): a few values and the record's way back (engine.decide.stubs), not the record;
- HELD_GENERAL, HELD_LANE: a stream's (filescan.scan_stream, its records having a way back),
  which keep the record at hand beside the way back, so that a match the lane cannot take
  is offered with the record instead of a stub read back.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from engine.decide.stubs import Ref
from engine.model import Record

KIND: Final = 3  # the index of an item's kind
UNMATCHED: Final = 0
GENERAL: Final = 1
LANE: Final = 2
HELD_GENERAL: Final = 3
HELD_LANE: Final = 4

# (rule index in Evaluator.routes, group key) of each match
Found = list[tuple[int, str | None]]
# Where the lane finds the whole record again: (path, place) in a file, its JSON text, or the
# record itself where it stays in this process (a stream without places).
WayBack = Ref | bytes | Record

# (eventID or None, epoch, watermark before, UNMATCHED)
Unmatched = tuple[str | None, float | None, float, Literal[0]]
# (record, epoch, watermark before, GENERAL, found)
General = tuple[Record, float | None, float, Literal[1], Found]
# (eventID, epoch, watermark before, LANE, rule index, group, sharedEventID,
#  recipientAccountId, eventTime, way back)
Lane = tuple[str | None, float, float, Literal[2], int, str | None, Any, Any, Any, WayBack]
# GENERAL's, then the record's way back
HeldGeneral = tuple[Record, float, float, Literal[3], Found, WayBack]
# LANE's, then the record
HeldLane = tuple[str | None, float, float, Literal[4], int, str | None, Any, Any, Any, WayBack,
                 Record]

ScanItem = Unmatched | General | Lane | HeldGeneral | HeldLane
