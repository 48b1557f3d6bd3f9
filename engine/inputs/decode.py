"""Payload decoding: one raw payload in, bare CloudTrail records out.

This module owns the answer to "what is this blob?" for every source (files, stdin, SQS, S3).
It is pure (bytes in, items out, no I/O), so the file reader and the daemon's queue consumer
share one implementation and one set of tests.

A payload is recognised by its shape, never by where it came from (SPEC §3): a CloudTrail log
file ``{"Records": [...]}`` (gzip found by its magic bytes), one record, an array of records,
JSON lines or concatenated documents (jq's output, Firehose objects), ``lookup-events`` output
(``Events[].CloudTrailEvent``), an EventBridge ``"... via CloudTrail"`` event (``detail``), an
SNS envelope (``Message``, decoded like any payload), a CloudWatch Logs subscription
(``awslogs.data`` or decoded; each ``logEvents[].message``), and the SQS and SNS events a
Lambda function receives (``Records[].body`` with ``eventSource`` ``aws:sqs``,
``Records[].Sns`` with ``EventSource`` ``aws:sns``; the body or the SNS notification is any
payload of this list, decoded in turn). S3 event notifications and
CloudTrail's ``{"s3Bucket", "s3ObjectKey"}`` give ObjectRefs. Digest files, ``s3:TestEvent``,
CONTROL_MESSAGE and other EventBridge events are Skipped. :data:`_ENVELOPES` maps the key that
marks each envelope to its handler.

An item is a record (a plain ``dict``), :class:`Malformed` (the caller counts and dead-letters
it), :class:`Skipped` (deliberately ignored, counted) or :class:`ObjectRef` (an S3 object the
caller fetches and decodes in turn). Nothing here raises on bad input: a broken element is one
Malformed and the good records around it are still yielded. Items found inside a payload
extend its origin: ``:LINE`` for a line of a multi-document payload, ``#place`` for a place in
a document (``s3://b/k#Records[7]``, ``msg-1#Message#Records[0]``, ``x.json#Events[2]``).

Choices: a record is a dict that *looks like* CloudTrail (``eventName``/``eventSource``, or
``eventVersion`` with ``eventType``/``eventCategory`` as Insight events have), because partial
records (rule tests, exports) are real input, and AWS notification records (``eventSource``
``aws:s3``, ``aws:sqs``...) are not; envelopes nest at most :data:`MAX_DEPTH` deep so a crafted
payload cannot recurse without bound; isal's gzip is used when importable (about twice zlib's
speed), the standard library's otherwise. A payload's gzip data inflates to at most
:data:`MAX_INFLATED` bytes: gzip reaches 1,000:1, so a 256 KB queue message could otherwise
inflate to 256 MB (and a gzip inside it, decoded in turn, far more). Large files do not come
here whole: engine.inputs.files streams them.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any, TypeAlias, TypeGuard, cast
from urllib.parse import unquote_plus

import orjson

try:
    from isal import igzip as gzip_impl
    from isal import isal_zlib as zlib_impl
    from isal.isal_zlib import error as _isal_error

    # isal's stub declares `error: Exception` (an instance); it is the exception class.
    GZIP_ERRORS: tuple[type[BaseException], ...] = (
        OSError, EOFError, zlib.error, cast("type[BaseException]", _isal_error))
except ImportError:  # CPython without isal, or another interpreter: zlib's speed
    # One name for either module: the standard library's has every function used of isal's.
    import gzip as gzip_impl  # type: ignore[no-redef]
    import zlib as zlib_impl  # type: ignore[no-redef]

    GZIP_ERRORS = (OSError, EOFError, zlib.error)

__all__ = [
    "GZIP_ERRORS",
    "GZIP_MAGIC",
    "IDENTITY_FIELDS",
    "MAX_DEPTH",
    "MAX_INFLATED",
    "Item",
    "Malformed",
    "ObjectRef",
    "Skipped",
    "decode",
    "decode_element",
    "decode_value",
    "gunzip",
    "gunzip_at_most",
    "is_record",
    "open_gzip",
]

GZIP_MAGIC = b"\x1f\x8b"
MAX_INFLATED = 64 << 20  # bytes one payload's gzip data may inflate to; past it, Malformed
MAX_DEPTH = 8
# A record whose field here is present and neither a string nor null is Malformed; null is
# taken as absent, as partial records (rule tests, exports) write it.
IDENTITY_FIELDS = ("eventID", "sharedEventID", "eventTime")
_BOM = b"\xef\xbb\xbf"
_UNWRAP = (GZIP_MAGIC, _BOM)
_DIGEST_PART = "/CloudTrail-Digest/"
_TRAILING = "unexpected content after document"
# A JSON string (skipped whole by the regex engine) or a bracket: enough to find where each
# of several concatenated documents ends without parsing them in Python.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


@dataclass(frozen=True, slots=True)
class Malformed:
    """Input that is not what it claims to be; counted and dead-lettered by the caller.

    `unreadable` marks input that could not be read at all (a missing file, no permission),
    which `scan` reports as a failure, unlike content that is merely bad. `count` is how many
    malformed items this one stands for: more than 1 for the summary that an input's reader
    gives in place of those past the first it lists (engine.inputs.files.MALFORMED_LISTED).
    """

    origin: str
    reason: str
    unreadable: bool = False
    count: int = 1


@dataclass(frozen=True, slots=True)
class Skipped:
    """Input deliberately ignored (digest files, test and control messages, other events)."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An S3 object to fetch and decode; ``key`` is the real key (URL-decoding done)."""

    bucket: str
    key: str
    origin: str


Item: TypeAlias = dict[str, Any] | Malformed | Skipped | ObjectRef
_Handler: TypeAlias = Callable[[dict[str, Any], str, int], Iterator[Item]]


def gunzip(data: bytes | bytearray) -> bytes:
    """Decompress a whole gzip payload (all members) with isal when available."""
    # isal.igzip is unannotated; its decompress returns bytes, as the standard library's does.
    return gzip_impl.decompress(data)  # type: ignore[no-untyped-call, no-any-return]


def gunzip_at_most(data: bytes, limit: int) -> bytes | None:
    """The gzip payload `data` decompressed (all members), or None when that would be over
    `limit` bytes or the data is damaged (the caller then streams it, to say where)."""
    try:
        return _inflate(data, limit)
    except _INFLATE_ERRORS:
        return None


class _TooLarge(Exception):
    """Gzip data that inflates past the limit it was given."""


_INFLATE_ERRORS: tuple[type[BaseException], ...] = (*GZIP_ERRORS, _TooLarge)  # _inflate's


def _inflate(data: bytes | bytearray, limit: int) -> bytes:
    """All gzip members of `data`, never holding more than `limit` bytes of output; raises
    _TooLarge past it, a GZIP_ERRORS error on damaged data."""
    parts, size = [], 0
    while data and data.startswith(GZIP_MAGIC):
        inflate = zlib_impl.decompressobj(31)
        part = inflate.decompress(data, limit - size + 1)
        size += len(part)
        if size > limit:
            raise _TooLarge(f"gzip data inflates past {limit:,} bytes")
        if not inflate.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        parts.append(part)
        data = inflate.unused_data
    if data.strip(b"\0"):  # gzip allows zeros after members
        raise OSError("not gzip data after the last member")
    return b"".join(parts)


def open_gzip(fileobj: IO[bytes]) -> IO[bytes]:
    """A streaming, line-iterable reader of the gzip data in ``fileobj`` (left open)."""
    # isal's IGzipFile is unannotated, and a GzipFile, a BufferedIOBase, has every method of
    # IO[bytes] but typeshed does not declare it one.
    return gzip_impl.GzipFile(  # type: ignore[no-untyped-call, return-value]
        fileobj=fileobj, mode="rb")


def is_record(obj: object) -> TypeGuard[dict[str, Any]]:
    """True for a dict shaped like a CloudTrail record, Insight events included."""
    if type(obj) is not dict:
        return False
    if "eventName" in obj or "eventSource" in obj:
        source = obj.get("eventSource")
        return not (type(source) is str and source.startswith("aws:"))
    return "eventVersion" in obj and ("eventType" in obj or "eventCategory" in obj)


def _sound(record: dict[str, Any]) -> bool:
    """True when the fields that identify and place a record are strings or absent."""
    get = record.get  # unrolled: this runs on every record
    event_id, call, time = get("eventID"), get("sharedEventID"), get("eventTime")
    return ((type(event_id) is str or event_id is None) and (type(call) is str or call is None)
            and (type(time) is str or time is None))


def _checked(record: dict[str, Any], origin: str) -> dict[str, Any] | Malformed:
    """`record`, or a Malformed naming the identity field that is not a string: an eventID
    that is an object cannot be remembered, a list cannot be compared (SPEC §3: malformed
    input is counted and dead-lettered, never stops the stream)."""
    for name in IDENTITY_FIELDS:
        value = record.get(name)
        if value is not None and type(value) is not str:
            return Malformed(origin, f"{name} is {_kind(value)}, not a string")
    return record


def decode(payload: bytes | bytearray | str, origin: str) -> Iterator[Item]:
    """Every item in one raw payload; never raises on bad input."""
    return _decode_payload(payload, origin, 0)


def decode_value(value: object, origin: str) -> Iterator[Item]:
    """Every item in an already parsed JSON value (for callers that parsed to decide)."""
    return _decode_value(value, origin, 0)


def _decode_payload(payload: bytes | bytearray | str, origin: str, depth: int) -> Iterator[Item]:
    if isinstance(payload, str) or payload.startswith(_UNWRAP):
        text = _unwrap(payload, origin)
        if isinstance(text, Malformed):
            yield text
            return
        payload = text  # and the compressed bytes need not live on
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        yield from _decode_documents(payload, origin, depth, exc)
        return
    del payload  # a whole log file's text need not live while its records are used
    if is_record(value) and _sound(value):  # the hot path: one record per payload
        yield value
    else:
        yield from _decode_value(value, origin, depth)


def _unwrap(payload: bytes | bytearray | str, origin: str) -> bytes | bytearray | str | Malformed:
    """The JSON text of a payload: gunzipped when gzip, without a byte-order mark."""
    if isinstance(payload, str):
        return payload.removeprefix("\ufeff")
    if payload.startswith(GZIP_MAGIC):
        try:
            payload = _inflate(payload, MAX_INFLATED)
        except _TooLarge as exc:
            return Malformed(origin, f"{exc}: too large for one payload")
        except GZIP_ERRORS as exc:
            return Malformed(origin, f"bad gzip data: {exc}")
    return payload[3:] if payload.startswith(_BOM) else payload


def _decode_value(value: object, origin: str, depth: int) -> Iterator[Item]:
    if is_record(value):
        yield _checked(value, origin)
    elif type(value) is dict:
        yield from _decode_object(value, origin, depth)
    elif type(value) is list:
        yield from _decode_elements(value, origin, "", depth)
    else:
        yield Malformed(origin, f"expected a JSON object or array, got {_kind(value)}")


def _decode_documents(
    text: bytes | bytearray | str, origin: str, depth: int, exc: orjson.JSONDecodeError
) -> Iterator[Item]:
    """A payload that is not one JSON document: JSON lines, or documents concatenated."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    lines = data.split(b"\n")
    candidates = list(islice((line for line in lines if line and not line.isspace()), 2))
    if len(candidates) == 2 and any(_parses(line) for line in candidates):
        for n, line in enumerate(lines, 1):
            if line and not line.isspace():
                yield from _decode_payload(line, f"{origin}:{n}", depth)
    elif exc.msg == _TRAILING:
        yield from _decode_concatenated(data, origin, depth)
    else:
        if len(candidates) == 1:  # report the position within the line, not past its newline
            exc = _error(candidates[0].rstrip()) or exc
        yield Malformed(origin, f"invalid JSON: {exc}")


def _error(text: bytes) -> orjson.JSONDecodeError | None:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return exc
    return None


def _parses(line: bytes) -> bool:
    """True when a line holds whole documents: one, or several back to back (Firehose)."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return exc.msg == _TRAILING and line.lstrip()[:1] in (b"{", b"[")
    return True


def _decode_concatenated(data: bytes, origin: str, depth: int) -> Iterator[Item]:
    """Documents one after another with no separator, or pretty-printed ones (jq's output)."""
    line, counted, numbered = 1, 0, b"\n" in data  # a single line already has its number
    for start, document in _split_documents(data):
        line += data.count(b"\n", counted, start)
        counted = start
        where = f"{origin}:{line}" if numbered else origin
        try:  # no further recovery inside a piece: it is one document or it is broken
            value = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            yield Malformed(where, f"invalid JSON: {exc}")
            continue
        yield from _decode_value(value, where, depth)


def _split_documents(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, text) of each top-level value; text between values is yielded too, so that
    stray content becomes a Malformed instead of vanishing."""
    depth = start = end = 0
    for match in _TOKEN.finditer(data):
        char = data[match.start()]
        if char == 0x22:  # a string
            continue
        if char in b"[{":
            if depth == 0:
                if data[end : match.start()].strip():
                    yield end, data[end : match.start()]
                start = match.start()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                end = match.end()
                yield start, data[start:end]
    rest_at = start if depth else end
    if data[rest_at:].strip():
        yield rest_at, data[rest_at:]


def _decode_embedded(payload: object, origin: str, depth: int) -> Iterator[Item]:
    """A payload carried as a string inside another one (SNS Message, CloudTrailEvent...)."""
    if isinstance(payload, str | bytes):
        yield from _decode_payload(payload, origin, depth)
    else:
        yield Malformed(origin, f"expected a JSON document in a string, got {_kind(payload)}")


def _decode_object(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    if depth > MAX_DEPTH:
        return iter((Malformed(origin, f"envelopes nested more than {MAX_DEPTH} deep"),))
    for marker, handler in _ENVELOPES:
        if marker in obj:
            return handler(obj, origin, depth)
    return iter((Malformed(origin, f"not a CloudTrail record or known envelope: {_keys(obj)}"),))


def _decode_elements(items: object, origin: str, name: str, depth: int) -> Iterator[Item]:
    """The elements of a top-level array (``name`` empty) or of ``Records``."""
    if type(items) is not list:
        yield Malformed(origin, f"{name or 'array'} is {_kind(items)}, not an array")
        return
    for i, item in enumerate(items):
        if is_record(item) and _sound(item):
            yield item
        else:
            yield from decode_element(item, origin, name, i, depth)


def decode_element(item: object, origin: str, name: str, index: int,
                   depth: int = 0) -> Iterator[Item]:
    """Element `index` of a top-level array (``name`` empty) or of ``Records``, when it is
    not itself a record; engine.inputs.largedoc reads such arrays an element at a time."""
    if is_record(item):
        yield _checked(item, f"{origin}#{name}[{index}]")
    elif type(item) is dict:
        yield from _decode_object(item, f"{origin}#{name}[{index}]", depth + 1)
    else:
        yield Malformed(f"{origin}#{name}[{index}]", f"not a CloudTrail record: {_kind(item)}")


def _log_file(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    return _decode_elements(obj["Records"], origin, "Records", depth)


def _lookup_events(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    events = obj["Events"]
    if type(events) is not list:
        yield Malformed(origin, f"Events is {_kind(events)}, not an array")
        return
    for i, event in enumerate(events):
        where = f"{origin}#Events[{i}]"
        text = event.get("CloudTrailEvent") if type(event) is dict else None
        if isinstance(text, str):
            yield from _decode_payload(text, where, depth + 1)
        else:
            yield Malformed(where, "lookup-events entry without a CloudTrailEvent string")


def _eventbridge(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    detail_type = obj["detail-type"]
    # "AWS API Call", "AWS Console Sign In", "AWS Service Event", "AWS Insight" ... all carry
    # a CloudTrail record in detail; CodeArtifact's own state-change events do not.
    if not (isinstance(detail_type, str) and detail_type.endswith(" via CloudTrail")):
        yield Skipped(origin, f"EventBridge event {detail_type!r} is not from CloudTrail")
    elif is_record(obj.get("detail")):
        yield _checked(obj["detail"], f"{origin}#detail")
    else:
        yield Malformed(f"{origin}#detail", f"{detail_type!r} event without a CloudTrail record")


def _sns(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    kind = obj.get("Type")
    if kind == "Notification":
        yield from _decode_embedded(obj["Message"], f"{origin}#Message", depth + 1)
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        yield Skipped(origin, f"SNS {kind}")
    else:
        yield Malformed(origin, f"a Message without SNS Type 'Notification' (Type is {kind!r})")


def _cloudwatch_subscription(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    data = obj["awslogs"].get("data") if type(obj["awslogs"]) is dict else None
    where = f"{origin}#awslogs.data"
    if not isinstance(data, str):
        yield Malformed(where, f"expected a base64 string, got {_kind(data)}")
        return
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        yield Malformed(where, f"not base64: {exc}")
        return
    yield from _decode_payload(raw, where, depth + 1)


def _cloudwatch_message(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    kind = obj["messageType"]
    if kind == "CONTROL_MESSAGE":
        yield Skipped(origin, "CloudWatch Logs CONTROL_MESSAGE")
        return
    events = obj.get("logEvents")
    if kind != "DATA_MESSAGE" or type(events) is not list:
        yield Malformed(origin, f"CloudWatch Logs {kind!r} message without a logEvents array")
        return
    for i, event in enumerate(events):
        message = event.get("message") if type(event) is dict else None
        yield from _decode_embedded(message, f"{origin}#logEvents[{i}]", depth + 1)


def _lambda_sqs(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    """One ``Records[]`` element of the SQS event a Lambda function receives."""
    if obj.get("eventSource") != "aws:sqs":
        yield Malformed(origin, f"a body without eventSource 'aws:sqs': {_keys(obj)}")
    else:
        yield from _decode_embedded(obj["body"], f"{origin}#body", depth + 1)


def _lambda_sns(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    """One ``Records[]`` element of the SNS event a Lambda function receives: ``Sns`` is
    the notification, as SNS delivers it to a queue."""
    notification = obj["Sns"]
    if obj.get("EventSource") != "aws:sns" or type(notification) is not dict \
            or "Message" not in notification:
        yield Malformed(origin, "an Sns member without EventSource 'aws:sns' and a Message")
    else:
        yield from _sns(notification, f"{origin}#Sns", depth + 1)


def _s3_notification(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    """One ``Records[]`` element of an S3 event notification: its key is URL-encoded."""
    try:
        bucket, key = obj["s3"]["bucket"]["name"], obj["s3"]["object"]["key"]
    except (KeyError, TypeError):
        bucket = key = None
    if not (isinstance(bucket, str) and isinstance(key, str)):
        yield Malformed(origin, "S3 notification without s3.bucket.name and s3.object.key")
        return
    key, event = unquote_plus(key), obj.get("eventName")
    if isinstance(event, str) and not event.startswith("ObjectCreated:"):
        yield Skipped(origin, f"S3 {event} notification for s3://{bucket}/{key}")
    else:
        yield _object_ref(bucket, key, origin)


def _cloudtrail_notification(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    """CloudTrail's own "new log file" SNS message: its keys are plain, not URL-encoded."""
    bucket, keys = obj.get("s3Bucket"), obj["s3ObjectKey"]
    if not (isinstance(bucket, str) and type(keys) is list):
        yield Malformed(origin, "CloudTrail notification without s3Bucket and s3ObjectKey list")
        return
    for i, key in enumerate(keys):
        if isinstance(key, str):
            yield _object_ref(bucket, key, origin)
        else:
            yield Malformed(f"{origin}#s3ObjectKey[{i}]", f"object key is {_kind(key)}")


def _object_ref(bucket: str, key: str, origin: str) -> ObjectRef | Skipped:
    if _DIGEST_PART in key:
        return Skipped(origin, f"CloudTrail digest file s3://{bucket}/{key}")
    return ObjectRef(bucket, key, origin)


def _digest(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    yield Skipped(origin, "CloudTrail digest file")


def _s3_test_event(obj: dict[str, Any], origin: str, depth: int) -> Iterator[Item]:
    if obj["Event"] == "s3:TestEvent":
        yield Skipped(origin, "S3 s3:TestEvent")
    else:
        yield Malformed(origin, f"unknown S3 Event {obj['Event']!r}")


# Marker key -> handler: the first marker present in an object says what the object is.
_ENVELOPES: tuple[tuple[str, _Handler], ...] = (
    ("Records", _log_file),
    ("s3", _s3_notification),
    ("detail-type", _eventbridge),
    ("Message", _sns),
    ("awslogs", _cloudwatch_subscription),
    ("messageType", _cloudwatch_message),
    ("Events", _lookup_events),
    ("s3ObjectKey", _cloudtrail_notification),
    ("digestS3Object", _digest),
    ("digestPublicKeyFingerprint", _digest),
    ("Event", _s3_test_event),
    ("body", _lambda_sqs),
    ("Sns", _lambda_sns),
)


_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
_KINDS |= {bool: "a boolean", type(None): "null"}


def _kind(value: object) -> str:
    """A short description of a JSON value, for a reason."""
    if type(value) is dict:
        return f"an object ({_keys(value)})"
    return _KINDS.get(type(value), f"a {type(value).__name__}")


def _keys(obj: dict[str, Any], limit: int = 6) -> str:
    if not obj:
        return "empty object"
    shown = ", ".join(repr(key[:40]) for key in list(obj)[:limit])
    return f"keys {shown}" + (", ..." if len(obj) > limit else "")
