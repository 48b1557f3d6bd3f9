"""Lean records: a CloudTrail log file decoded into only the fields the loaded rules read.

A scan parsed every whole record and kept it alive until it was decided, so most of its
time went to building dicts nobody read (a CodeArtifact record is ~1.5 KB of JSON, 20 keys,
three nested objects; the shipped pack reads about ten of them) and to the allocator
churning through them. The fields a rule can read are known when the rules load
(engine.conditions.expressions.read_paths walks every condition, group_by and suppression
condition: a summary, first_seen value or distinct runs on the whole record, only where a
match is decided), so a log file is decoded
by msgspec into dicts of those keys only (inside objects too: userIdentity is read through
seven of its keys): msgspec skips the rest without building it. Measured on the bench
archive (bench/stages.py): 1.8 us per record against orjson's 2.3 us for the whole parse,
and less memory held per record while a file is scanned.

A lean record is only ever evaluated. What outlives the file (a match's record, the alert's
`event`) is the whole record, decoded from the record's own bytes (`msgspec.Raw`) when it
matched: rarely. A threshold-lane match keeps its place in the file instead (engine.decide.stubs).

The lean path is only a faster way to the same items. It takes a file only when it is the
common shape (one regular file of up to inputs.SMALL_BYTES on disk, gzip or not, holding
`{"Records": [...]}` where every element is a sound CloudTrail record); anything else -
JSON lines, envelopes, a BOM, a malformed element, an identity field that is not a string,
invalid UTF-8 - returns None and the caller reads the file the general way, whose error
reporting (file, line, field) is therefore unchanged. One difference is left on purpose:
an integer beyond 64 bits in a field a rule reads decodes here as an int, where orjson
gives a float.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import Any, TypedDict

import msgspec
import orjson

from engine.conditions import expressions
from engine.inputs.decode import GZIP_MAGIC, gunzip_at_most
from engine.inputs.eventtime import event_epoch
from engine.model import Rule

__all__ = ["DECIDING_FIELDS", "LeanFile", "LeanReader", "Shape", "evaluated_expressions",
           "fields_read", "shape_of"]

# What the scan itself reads of every record: its place in time, its identity and copies
# (engine.decide.decider, engine.decide.stubs), its bucket (engine.conditions.evaluator) and whether
# it is a record at all (engine.inputs.decode.is_record).
DECIDING_FIELDS = ("eventTime", "eventID", "sharedEventID", "recipientAccountId", "awsRegion",
                   "eventSource", "eventName", "eventVersion", "eventType", "eventCategory")
# A top-level object holding any of these is not a plain log file (a record with a "Records"
# field, say): the general decoder says what it is.
_NOT_A_LOG_FILE = ("eventSource", "eventName", "eventVersion", "eventType", "eventCategory")
LEAN_BYTES = 1 << 20  # on disk, as engine.inputs.files.SMALL_BYTES: files read whole
WHOLE_BYTES = 16 << 20  # inflated, as engine.inputs.files.WHOLE_BYTES
# Identity fields: a string or absent (engine.inputs.decode._sound); msgspec checks the type, and a
# file where one is anything else goes the general way, which names the field.
_IDENTITY = ("eventID", "sharedEventID", "eventTime")


def evaluated_expressions(rule: Rule) -> Iterable[str]:
    """The expressions of `rule` that the scan runs on a lean record: its conditions and its
    group keys (Evaluator.matched). Its summary, first_seen value and threshold distinct run
    only where a match is decided, on the whole record (lean.whole, or read back by
    engine.decide.stubs), so a field only they read need not be decoded for every record."""
    yield rule.any_condition()
    for step in rule.step_rules():
        yield step.condition
    yield from rule.group_by


def fields_read(rules: Iterable[Rule], conditions: Iterable[str] = ()
                ) -> frozenset[tuple[str, ...]] | None:
    """The field paths that the scan's evaluation of `rules` (evaluated_expressions) and the
    extra `conditions` (suppressions) can read (engine.conditions.expressions.read_paths), with
    DECIDING_FIELDS; None when one may read the whole record."""
    found: set[tuple[str, ...]] = {(name,) for name in DECIDING_FIELDS}
    for text in (*(t for rule in rules for t in evaluated_expressions(rule)), *conditions):
        paths = expressions.read_paths(expressions.parse(text))
        if paths is None:
            return None
        found |= paths
    return frozenset(found)


# A tree of the paths read: a key whose value is read whole maps to None, one read only
# through some of its keys to the tree of those.
Shape = dict[str, "Shape | None"]


def shape_of(paths: Iterable[tuple[str, ...]]) -> Shape:
    """The tree of `paths`: a value read whole anywhere is decoded whole."""
    shape: Shape = {}
    for path in sorted(paths, key=len):  # shorter first: a whole value wins over its keys
        node: Shape | None = shape
        for key in path[:-1]:
            assert node is not None
            if key in node and node[key] is None:
                node = None  # read whole already
                break
            node = node.setdefault(key, {})
        if node is not None:
            node[path[-1]] = None
    return shape


class LeanFile:
    """One log file's records, lean, in file order; `whole(n)` decodes record n in full."""

    __slots__ = ("_raw", "_raws", "_text", "records")

    def __init__(self, records: list[dict[str, Any]], text: bytes,
                 raw: msgspec.json.Decoder[Any]) -> None:
        self.records = records
        self._text = text
        self._raw = raw
        self._raws: list[msgspec.Raw] | None = None

    def time_order(self) -> tuple[list[int], list[float | None]]:
        """(the records' indexes in eventTime order, each record's eventTime epoch): the
        order engine.inputs.order gives a file read whole (sorted stably; a record without an
        eventTime sorts at the newest before it), so that the n-th record here is the n-th
        there, which is how engine.decide.stubs names a record by its place."""
        epochs: list[float | None] = []
        keys: list[float] = []
        newest = -1e18  # engine.inputs.order._keyed's
        for record in self.records:
            epoch = event_epoch(record)
            epochs.append(epoch)
            if epoch is None:
                keys.append(newest)
            else:
                keys.append(epoch)
                if epoch > newest:
                    newest = epoch
        return sorted(range(len(keys)), key=keys.__getitem__), epochs

    def raw(self, n: int) -> msgspec.Raw:
        """Record n's JSON text (a view into the file's text)."""
        if self._raws is None:
            self._raws = self._raw.decode(self._text)["Records"]
        return self._raws[n]

    def whole(self, n: int) -> dict[str, Any]:
        """Record n as the general decoder gives it; raises orjson.JSONDecodeError where
        orjson rejects what msgspec accepted (nesting past orjson's limit)."""
        value: dict[str, Any] = orjson.loads(memoryview(self.raw(n)))
        return value


class LeanReader:
    """Decodes log files into LeanFiles for one set of fields (see the module doc)."""

    def __init__(self, paths: Iterable[tuple[str, ...]]) -> None:
        self.shape = shape_of(paths)
        record = _typed_dict("LeanRecord", {
            name: (str | None) if name in _IDENTITY else _type_of(inner, name)
            for name, inner in self.shape.items()})
        document = _typed_dict("LeanLogFile", {
            "Records": list[record],  # type: ignore[valid-type] # a type made at run time
            **{name: Any for name in _NOT_A_LOG_FILE}})
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(document)
        self._raw: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            _typed_dict("RawLogFile", {"Records": list[msgspec.Raw]}))

    def read(self, path: str) -> LeanFile | None:
        """The file at `path` decoded lean, or None: not the common shape (read it the
        general way)."""
        text = _small_text(path)
        if text is None:
            return None
        try:
            document = self._decoder.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        records = document.get("Records")
        if type(records) is not list or any(name in document for name in _NOT_A_LOG_FILE):
            return None
        for record in records:
            if not _is_record(record):
                return None
        return LeanFile(records, text, self._raw)


def _type_of(shape: Shape | None, name: str) -> Any:
    """The msgspec type of a value read as `shape` says: Any when read whole; else an object
    of only the keys read, or any other JSON value as it is (a hostile record may hold a
    string where CloudTrail writes an object, and a rule must see it as the whole record
    has it)."""
    if shape is None:
        return Any
    keys = _typed_dict(f"Lean_{name}", {key: _type_of(inner, f"{name}_{key}")
                                        for key, inner in shape.items()})
    return keys | str | int | float | bool | None | list[Any]


def _typed_dict(name: str, fields: dict[str, Any]) -> Any:
    """A TypedDict (total=False) made at run time: msgspec decodes into it a dict of only
    these keys, skipping the others without building them."""
    return TypedDict(name, fields, total=False)  # type: ignore[operator] # fields at run time


def _is_record(record: dict[str, Any]) -> bool:
    """engine.inputs.decode.is_record on a lean record (whose keys include the ones it reads)."""
    if "eventName" in record or "eventSource" in record:
        source = record.get("eventSource")
        return not (type(source) is str and source.startswith("aws:"))
    return "eventVersion" in record and ("eventType" in record or "eventCategory" in record)


def _small_text(path: str) -> bytes | None:
    """The JSON text of a regular file of up to LEAN_BYTES, gunzipped; None for anything
    else, or for text that is not valid UTF-8 (orjson rejects it, msgspec would not in a
    field it skips)."""
    try:
        with open(path, "rb", buffering=0) as raw:
            info = os.fstat(raw.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > LEAN_BYTES:
                return None
            data = raw.read()
    except OSError:
        return None
    text = gunzip_at_most(data, WHOLE_BYTES) if data[:2] == GZIP_MAGIC else data
    if text is None or len(text) > WHOLE_BYTES or text.lstrip()[:1] != b"{":
        return None
    if not text.isascii():
        try:
            text.decode()
        except UnicodeDecodeError:
            return None
    return text
