"""Where a record can be read again (iter_paths refs), and reading it back (Resolver)."""

from __future__ import annotations

import gzip
import io
import os
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.decide.stubs import RESOLVE_CACHE, STUB_FIELDS, RecordStub, Resolver, stub_for, stub_of
from engine.inputs import files as inputs
from engine.inputs.files import Refs, iter_paths
from engine.model import Match
from tests.support.records import record
from tests.support.state import make_rule


def _lines(records: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _items_and_refs(paths: list[str]) -> list[tuple[Any, Any]]:
    refs: Refs = []
    items = []
    for item in iter_paths(paths, refs=refs):
        assert len(refs) == len(items) + 1  # appended just before the item is yielded
        items.append(item)
    return list(zip(items, refs, strict=True))


def test_each_record_is_named_where_reading_its_file_again_finds_it(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    first, second = [record() for _ in range(3)], [record() for _ in range(2)]
    (logs / "a" / "1.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": first})))
    (logs / "b.jsonl").write_bytes(_lines(second[:1]) + b"{broken\n" + _lines(second[1:]))
    pairs = _items_and_refs([str(logs)])
    placed = [(item, ref) for item, ref in pairs if type(item) is dict]
    assert [item for item, _ in placed] == first + second
    for item, (path, position) in placed:
        again = [r for r in iter_paths([path]) if type(r) is dict]
        assert again[position] == item
    assert [ref for item, ref in pairs if type(item) is not dict] == [None]  # the broken line


def test_stdin_and_pipes_cannot_be_read_again(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(), record()]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(_lines(records))))
    assert _items_and_refs(["-"]) == [(r, None) for r in records]

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(_lines(records),))
    writer.start()
    try:
        assert _items_and_refs([str(fifo)]) == [(r, None) for r in records]
    finally:
        writer.join(timeout=5)


RULE = make_rule("r")


def _stub_match(item: dict[str, Any], path: Path, position: int) -> Match:
    stub = stub_of(map(item.get, STUB_FIELDS), (str(path), position))
    return Match(RULE, stub, None)


def test_a_stub_is_read_back_whole_and_files_are_kept_for_the_next(tmp_path: Path) -> None:
    records = [record() for _ in range(3)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(_lines(records))
    resolver = Resolver()
    for position, item in enumerate(records):
        found = resolver(_stub_match(item, path, position))
        assert found.record == item and type(found.record) is dict
    assert resolver.files_read == 1
    whole = Match(RULE, records[0], None)
    assert resolver(whole) is whole


def test_stubs_of_interleaved_files_read_each_file_once(tmp_path: Path) -> None:
    """A scan merges the records of several open files (SPEC §7), so stubs come back in
    turns from each: while they fit the cache, every file is read again once, and the
    files used most recently stay (a file used all along is never evicted by newer ones)."""
    paths = []
    for n in range(RESOLVE_CACHE):
        paths.append(tmp_path / f"{n:02d}.jsonl")
        paths[-1].write_bytes(_lines([record() for _ in range(3)]))
    files = [[orjson.loads(line) for line in p.read_bytes().splitlines()] for p in paths]
    resolver = Resolver()
    for position in range(3):
        for path, records in zip(paths, files, strict=True):
            assert resolver(_stub_match(records[position], path, position)).record == (
                records[position])
    assert resolver.files_read == RESOLVE_CACHE
    extra = tmp_path / "extra.jsonl"
    extra.write_bytes(_lines([record()]))
    resolver(_stub_match(files[0][0], paths[0], 0))  # the oldest read, used again: kept
    resolver(_stub_match(orjson.loads(extra.read_bytes()), extra, 0))
    resolver(_stub_match(files[0][1], paths[0], 1))
    assert resolver.files_read == RESOLVE_CACHE + 1


def test_a_rewritten_file_is_searched_and_a_vanished_record_keeps_its_stub(
        tmp_path: Path) -> None:
    records = [record() for _ in range(3)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(_lines(records))
    matches = [_stub_match(item, path, n) for n, item in enumerate(records)]
    path.write_bytes(_lines([records[2], records[0]]))  # reordered, and one gone
    resolver = Resolver()
    assert resolver(matches[0]).record == records[0]
    assert resolver(matches[2]).record == records[2]
    kept = resolver(matches[1])
    assert type(kept.record) is RecordStub and kept.record["eventID"] == records[1]["eventID"]
    assert resolver.missing == 1


def test_a_file_larger_than_reread_bytes_is_not_placed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    small, large = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    small.write_bytes(_lines([record()]))
    large.write_bytes(_lines([record(), record()]))
    monkeypatch.setattr(inputs, "REREAD_BYTES", small.stat().st_size)
    for paths in ([str(tmp_path)], [str(small), str(large)]):  # walked, and named
        assert [ref for _, ref in _items_and_refs(paths)] == [(str(small), 0), None, None]


def test_a_stub_without_a_place_holds_its_text() -> None:
    item = record(requestParameters={"n": 1.5, "big": 2**63 - 1, "text": "é\u2028"})
    stub = stub_for(item, None)
    assert stub is not None and type(stub.back) is bytes
    resolver = Resolver()
    assert resolver(Match(RULE, stub, None)).record == item and resolver.files_read == 0
    assert stub_for({"eventID": "x", "bad": {1, 2}}, None) is None  # not JSON: held whole


def test_a_stub_holds_the_stub_fields_of_its_record() -> None:
    item = record(sharedEventID="call-1")
    stub = stub_for(item, ("log.json", 3))
    assert stub is not None and stub.back == ("log.json", 3)
    assert list(stub.items()) == [(name, item.get(name)) for name in STUB_FIELDS]
