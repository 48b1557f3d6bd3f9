"""A document over inputs.WHOLE_BYTES is read an element at a time, with the same items.

The thresholds are lowered so that small files take the large-document path, and the chunk
size is varied down to one byte, so that chunks cut numbers, strings, multi-byte characters
and the byte-order mark everywhere.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest

from engine.inputs import files as inputs
from engine.inputs import largedoc
from engine.inputs.decode import Malformed
from engine.inputs.files import iter_paths
from tests.support.records import record

RECORDS = [record(eventName="PublishPackageVersion",
                  requestParameters={"n": 12345678901, "x": -1.25e-3, "ok": True, "none": None,
                                     "text": "é ✓ \U0001f600 \"quoted\" \\\\ ]}"}),
           record(), record(errorCode="AccessDenied")]
ELEMENTS = [RECORDS[0], 123456789, {"not": "a record"}, RECORDS[1],
            {"version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.x",
             "detail": RECORDS[2]}]


def _items(path: Path, whole: int, chunk: int) -> list[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs, "WHOLE_BYTES", whole)
        patch.setattr(largedoc, "CHUNK", chunk)
        return [item if type(item) is dict else (type(item).__name__, item.origin, item.reason)
                for item in iter_paths([str(path)])]


DOCUMENTS = {
    "log file, one line": json.dumps({"Records": ELEMENTS}).encode(),
    "log file, pretty": b"\xef\xbb\xbf\n\n" + json.dumps({"Records": ELEMENTS}, indent=2).encode(),
    "log file, other member first": json.dumps({"x": [1, {"a": "}"}], "Records": RECORDS}).encode(),
    "array": json.dumps(ELEMENTS, indent=1).encode(),
    "gzipped": gzip.compress(json.dumps({"Records": RECORDS}).encode()),
}


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_large_documents_give_what_reading_them_whole_gives(
        tmp_path: Path, name: str, chunk: int) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(DOCUMENTS[name])
    whole = _items(path, 1 << 30, chunk)
    assert _items(path, 16, chunk) == whole
    assert [item for item in whole if type(item) is dict][:2] == RECORDS[:2]


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_a_broken_element_ends_the_file_after_the_records_before_it(
        tmp_path: Path, chunk: int) -> None:
    text = json.dumps({"Records": RECORDS})
    at = text.index('"eventVersion"', text.index('"eventVersion"') + 1)  # the second record
    broken = text[:at] + '"eventVersion" "' + text[at + len('"eventVersion"'):]
    path = tmp_path / "doc.json"
    path.write_text(broken)
    items = _items(path, 16, chunk)
    assert items[0] == RECORDS[0]
    assert len(items) == 2 and items[1][0] == "Malformed"
    assert items[1][1] == f"{path}#Records[1]" and "invalid JSON" in items[1][2]
    assert _items(path, 1 << 30, chunk)[0][0] == "Malformed"  # read whole: the file is lost


def test_a_large_document_of_another_shape_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"Events": [{"CloudTrailEvent": json.dumps(r)} for r in RECORDS]}))
    [(kind, origin, reason)] = _items(path, 16, 7)
    assert (kind, origin) == ("Malformed", str(path)) and "without a Records array" in reason


def test_json_lines_after_a_broken_first_line_stay_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"{broken\n\n" + b"".join(json.dumps(r).encode() + b"\n" for r in RECORDS))
    whole = _items(path, 1 << 30, 7)
    assert _items(path, 16, 7) == whole
    assert whole[0][:2] == ("Malformed", f"{path}:1") and whole[1:] == RECORDS


def test_one_line_over_the_limit_without_an_array_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('"' + "x" * 100 + '"')
    [(kind, _, reason)] = _items(path, 16, 7)
    assert kind == "Malformed" and "expected a JSON object or array" in reason


def test_reading_a_document_element_by_element_holds_one_chunk(tmp_path: Path) -> None:
    """The text in memory never grows far beyond a chunk and an element."""
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"Records": [record() for _ in range(300)]}))
    seen = []
    real = largedoc._Text.more

    def more(self: Any) -> bool:
        seen.append(len(self.buffer) - self.at)
        return real(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(largedoc._Text, "more", more)
        items = _items(path, 16, 4096)
    assert len(items) == 300 and not any(isinstance(i, Malformed) for i in items)
    assert max(seen) < 4096 + 2 * len(json.dumps(record()))


class _Trickle(io.RawIOBase):
    """A stream that never returns more than three bytes a read, as a slow pipe may."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data[self._at:self._at + min(3, len(buffer))]
        buffer[:len(chunk)] = chunk
        self._at += len(chunk)
        return len(chunk)


@pytest.mark.parametrize("whole", [64, 1 << 20])
def test_a_stream_of_short_reads_gives_the_same_items(whole: int) -> None:
    """Pretty-printed, the first line is not JSON on its own: the rest is read up to the
    limit however little each read returns, then decoded whole or element by element."""
    data = DOCUMENTS["log file, pretty"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs, "WHOLE_BYTES", whole)
        items = list(inputs.iter_stream(_Trickle(data), "pipe"))
    assert [item for item in items if type(item) is dict] == RECORDS  # the last, in its envelope
