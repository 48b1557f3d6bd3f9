"""A JSON document too large to read whole, read one array element at a time.

A file that is one document is otherwise parsed whole: right for CloudTrail's log files (tens
of kilobytes), wrong for a 1 GB ``{"Records": [...]}`` written by an export tool, whose parsed
objects would take four times its size. Past `inputs.WHOLE_BYTES` the reader switches to this
module: the text is decoded a megabyte at a time and each element of ``Records`` (or of a
top-level array) is parsed on its own with the standard library's `raw_decode`, so memory
holds one chunk and one element. It is about three times slower per record than orjson on a
whole file, and only ever used for such files.

A large document of another shape (an object without ``Records``) is reported, not read. An
element that is not a whole JSON value within MAX_ELEMENT characters (a 200 MB record, or a
damaged one) is skipped, a chunk at a time, by counting brackets outside strings: it is one
Malformed and the elements after it are still read. Only when even that fails (the document
ends inside the element) does a Malformed end the file, saying where; the records before it
have been yielded.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator

from engine.inputs.decode import Item, Malformed, decode_element

CHUNK = 1 << 20  # bytes decoded at a time
MAX_ELEMENT = 16 << 20  # characters one element may take; a longer one is reported broken
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject(name))  # NaN: not JSON


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class _Broken(Exception):
    """The document cannot be read on from here."""


class _TooLarge(Exception):
    """The value here is not whole within MAX_ELEMENT characters; it can be skipped."""


_SKIP = re.compile(r'["\[\]{},]')  # what changes the depth of a value being skipped
_IN_STRING = re.compile(r'["\\]')  # what ends, or escapes within, a string


class _Text:
    """The decoded text of a byte stream, read on demand; what was consumed is dropped."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")()
        self.buffer = ""
        self.at = 0
        self.ended = False
        self.where = ""  # the origin of what is being read, for a Malformed

    def more(self) -> bool:
        """Read one more chunk; False when the stream has ended."""
        if self.ended:
            return False
        chunk = next(self._chunks, None)
        try:
            text = self._utf8.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as exc:
            raise _Broken(f"not UTF-8 text: {exc.reason}") from exc
        self.ended = chunk is None
        self.buffer, self.at = self.buffer[self.at:] + text, 0
        return not self.ended or bool(text)

    def next_char(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            self.at = _WHITESPACE.match(self.buffer, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.buffer):
                return self.buffer[self.at]
            if not self.more():
                return ""

    def expect(self, char: str, where: str) -> None:
        found = self.next_char()
        if found != char:
            raise _Broken(f"expected {char!r} {where}, found {found or 'the end'!r}")
        self.at += 1

    def value(self) -> object:
        """The JSON value here, reading on until it is whole."""
        self.next_char()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.at)
            except json.JSONDecodeError as exc:  # broken, or cut by the chunk's end
                if len(self.buffer) - self.at > MAX_ELEMENT:
                    raise _TooLarge(f"not a JSON value within {MAX_ELEMENT:,} characters "
                                    f"({exc.msg})") from exc
                if not self.more():
                    raise _Broken(f"invalid JSON: {exc.msg}") from exc
                continue
            except (ValueError, RecursionError) as exc:
                raise _Broken(f"invalid JSON: {exc}") from exc
            if end == len(self.buffer) and not self.ended and _may_continue(value):
                self.more()  # a number cut by the chunk's end would parse short
                continue
            self.at = end
            return value


    def skip_value(self) -> None:
        """Move past the value here (an array element) without holding it: to the `,` or
        the `]` after it, a chunk at a time."""
        depth, in_string, escaped = 0, False, False
        while True:
            buffer, at = self.buffer, self.at
            if escaped and at < len(buffer):
                at, escaped = at + 1, False
            while at < len(buffer):
                if in_string:
                    found = _IN_STRING.search(buffer, at)
                    if found is None:
                        at = len(buffer)
                    elif buffer[found.start()] == "\\":
                        at = found.end() + 1
                        escaped = at > len(buffer)  # the escaped character is in the next chunk
                    else:
                        at, in_string = found.end(), False
                        if depth == 0:
                            self.at = at
                            return
                    continue
                found = _SKIP.search(buffer, at)
                if found is None:
                    at = len(buffer)
                    continue
                char, at = buffer[found.start()], found.end()
                if char == '"':
                    in_string = True
                elif char in "[{":
                    depth += 1
                elif depth == 0:  # the "," or "]" after a scalar element
                    self.at = found.start()
                    return
                elif char != ",":
                    depth -= 1
                    if depth == 0:
                        self.at = at
                        return
            self.at = len(buffer)
            if not self.more():
                raise _Broken("the document ends inside a value that is too large")


def _may_continue(value: object) -> bool:
    return type(value) in (int, float)


def iter_document(chunks: Iterator[bytes], origin: str) -> Iterator[Item]:
    """The items of one large document, as `engine.inputs.decode.decode` would give them."""
    text = _Text(chunks)
    text.where = origin
    try:
        first = text.next_char()
        if first == "[":
            yield from _elements(text, origin, "")
        elif first == "{":
            yield from _records_member(text, origin)
        else:
            raise _Broken(f"expected a JSON object or array, found {first or 'nothing'!r}")
        text.where = origin
        if text.next_char():
            raise _Broken("text after the document")
    except (_Broken, _TooLarge) as exc:
        yield Malformed(text.where, f"{exc}; the rest of the file is not read")


def _records_member(text: _Text, origin: str) -> Iterator[Item]:
    """`{"Records": [...], ...}`: the elements of Records; other members are skipped."""
    text.at += 1  # past "{"
    members, records = 0, False
    while text.next_char() != "}":
        if members:
            text.expect(",", "between members")
        key = text.value()
        if type(key) is not str:
            raise _Broken("expected a member name")
        text.expect(":", f"after {key!r}")
        if key == "Records" and text.next_char() == "[":
            records = True
            yield from _elements(text, origin, "Records")
        else:
            text.value()  # a CloudTrail log file has no other member; small, if any
        members += 1
    text.at += 1
    if not records:
        yield Malformed(origin, "a document too large to read whole, without a Records array: "
                                "split it, or write it as JSON lines")


def _elements(text: _Text, origin: str, name: str) -> Iterator[Item]:
    text.expect("[", "to open the array")
    index = 0
    while text.next_char() != "]":
        text.where = f"{origin}#{name}[{index}]"
        if index:
            text.expect(",", "before this element")
        try:
            value = text.value()
        except _TooLarge as exc:
            text.skip_value()
            yield Malformed(text.where, f"{exc}: skipped")
        else:
            yield from decode_element(value, origin, name, index)
        index += 1
    text.at += 1
