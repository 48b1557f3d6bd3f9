"""engine.inputs.decode: every payload shape of SPEC §3, its failures, and properties over all
of them."""

from __future__ import annotations

import base64
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.inputs.decode as decode_module
from engine.inputs.decode import (
    MAX_DEPTH,
    Malformed,
    ObjectRef,
    Skipped,
    decode,
    decode_value,
    gunzip,
    is_record,
    open_gzip,
)
from tests.support.shared import REALDATA

FIXTURES = Path(__file__).parent / "fixtures" / "envelopes"
RECORDS: list[dict[str, Any]] = json.loads((FIXTURES / "same-three" / "array.json").read_text())
PANTHER = REALDATA / "panther-cloudtrail-tests" / "tests.jsonl"


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


def items(payload: bytes | str, origin: str = "o") -> list[object]:
    return list(decode(payload, origin))


def log_file(records: list[dict[str, Any]]) -> bytes:
    return dumps({"Records": records})


def sns(message: str) -> bytes:
    return dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": message})


def cloudwatch_decoded(messages: list[str]) -> dict[str, Any]:
    events = [{"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(messages)]
    return {"messageType": "DATA_MESSAGE", "logEvents": events}


def awslogs(decoded: dict[str, Any]) -> bytes:
    data = base64.b64encode(gzip.compress(dumps(decoded))).decode()
    return dumps({"awslogs": {"data": data}})


# Each wrapper puts a list of records into one envelope of SPEC §3; all must give them back.
ENVELOPES = {
    "log file": log_file,
    "log file gzip": lambda rs: gzip.compress(log_file(rs)),
    "array": dumps,
    "json lines": lambda rs: b"".join(dumps(r) + b"\n" for r in rs),
    "concatenated": lambda rs: b"".join(dumps(r) for r in rs),
    "pretty concatenated": lambda rs: "\n".join(json.dumps(r, indent=2) for r in rs).encode(),
    "lookup-events": lambda rs: dumps(
        {"Events": [{"CloudTrailEvent": dumps(r).decode()} for r in rs]}
    ),
    "eventbridge lines": lambda rs: b"\n".join(
        dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.x", "detail": r})
        for r in rs
    ),
    "sns log file": lambda rs: sns(log_file(rs).decode()),
    "sns in sns": lambda rs: sns(sns(log_file(rs).decode()).decode()),
    "cloudwatch decoded": lambda rs: dumps(cloudwatch_decoded([dumps(r).decode() for r in rs])),
    "cloudwatch gzip": lambda rs: gzip.compress(
        dumps(cloudwatch_decoded([dumps(r).decode() for r in rs]))
    ),
    "cloudwatch lambda": lambda rs: awslogs(cloudwatch_decoded([dumps(r).decode() for r in rs])),
    "str payload": lambda rs: log_file(rs).decode(),
    "byte-order mark": lambda rs: b"\xef\xbb\xbf" + log_file(rs),
}


@pytest.mark.parametrize("envelope", ENVELOPES)
def test_decode_envelope_gives_back_its_records(envelope: str) -> None:
    """Every envelope yields exactly the records it carries, in order, and nothing else."""
    assert items(ENVELOPES[envelope](RECORDS)) == RECORDS


def test_decode_single_record() -> None:
    """A bare record is yielded as is, the same dict the parser built."""
    assert items(dumps(RECORDS[2])) == [RECORDS[2]]


def test_is_record_accepts_partial_and_insight_records() -> None:
    """Partial records (rule tests) and Insight events count; AWS notification records do not."""
    insight = {"eventVersion": "1.07", "eventType": "AwsCloudTrailInsight", "eventID": "i"}
    assert is_record({"eventName": "X"}) and is_record({"eventSource": "s3.amazonaws.com"})
    assert is_record(insight) and is_record({"eventVersion": "1.08", "eventCategory": "Insight"})
    assert not is_record({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"})
    assert not is_record({"eventSource": "aws:sqs", "body": "{}"})
    assert not is_record({"eventVersion": "1.0"}) and not is_record([RECORDS[0]])
    assert items(dumps({"Records": [insight]})) == [insight]


@pytest.mark.parametrize("implementation", ["isal", "gzip"])
def test_decode_gzip_both_implementations(
    implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stdlib fallback decodes, streams and reports bad data exactly like isal."""
    if implementation == "gzip":
        monkeypatch.setattr(decode_module, "gzip_impl", gzip)
    packed = gzip.compress(log_file(RECORDS)) + gzip.compress(b"")  # two gzip members
    assert decode_module.gzip_impl.__name__.split(".")[0] == implementation
    assert gunzip(packed) == log_file(RECORDS)
    assert items(packed) == RECORDS
    assert list(open_gzip(io.BytesIO(gzip.compress(b"a\nb\n")))) == [b"a\n", b"b\n"]
    (bad,) = items(packed[: len(packed) // 2], "s3://b/k.json.gz")
    assert bad == Malformed("s3://b/k.json.gz", bad.reason)  # type: ignore[union-attr]
    assert bad.reason.startswith("bad gzip data: ")  # type: ignore[union-attr]


def test_decode_imports_and_works_without_isal() -> None:
    """Without isal installed, the module falls back to the standard library's gzip."""
    script = (
        "import sys; sys.modules['isal'] = None\n"
        "import gzip, engine.inputs.decode as d\n"
        "assert d.gzip_impl is gzip, d.gzip_impl\n"
        "print(list(d.decode(gzip.compress(b'{\"eventName\": \"X\"}'), 'o')))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=root, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"[{'eventName': 'X'}]"


def test_decode_records_array_keeps_good_records_around_bad_ones() -> None:
    """A bad element of Records is one Malformed at #Records[i]; its neighbours still come."""
    payload = dumps({"Records": [RECORDS[0], 7, {"foo": 1}, None, RECORDS[1]]})
    assert items(payload, "f") == [
        RECORDS[0],
        Malformed("f#Records[1]", "not a CloudTrail record: a number"),
        Malformed("f#Records[2]", "not a CloudTrail record or known envelope: keys 'foo'"),
        Malformed("f#Records[3]", "not a CloudTrail record: null"),
        RECORDS[1],
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"Records": [', "invalid JSON: unexpected end of data: line 1 column 14 (char 13)"),
        (b"", "invalid JSON: Input is a zero-length, empty document: line 1 column 1 (char 0)"),
        (b"\xff\xfe\x00", "invalid JSON: str is not valid UTF-8: surrogates not allowed"),
        (b'"just a string"', "expected a JSON object or array, got a string"),
        (b"42", "expected a JSON object or array, got a number"),
        (b'{"hello": "world"}', "not a CloudTrail record or known envelope: keys 'hello'"),
        (b"{}", "not a CloudTrail record or known envelope: empty object"),
        (b'{"Records": "nope"}', "Records is a string, not an array"),
        (b'{"Events": {}}', "Events is an object (empty object), not an array"),
        (b"\x1f\x8bnot gzip", "bad gzip data: "),
    ],
)
def test_decode_malformed_reason(payload: bytes, reason: str) -> None:
    """Input that is nothing SPEC §3 knows is one Malformed with a precise reason."""
    (item,) = items(payload, "msg-1")
    assert isinstance(item, Malformed) and item.origin == "msg-1"
    assert item.reason.startswith(reason)


def test_decode_lookup_events_bad_entries() -> None:
    """A lookup-events entry without a CloudTrailEvent string, or with a broken one, is named."""
    payload = dumps(
        {
            "Events": [
                {"CloudTrailEvent": dumps(RECORDS[0]).decode()},
                {"EventId": "x"},
                {"CloudTrailEvent": "{"},
            ]
        }
    )
    got = items(payload, "le")
    assert got[0] == RECORDS[0]
    assert got[1] == Malformed(
        "le#Events[1]", "lookup-events entry without a CloudTrailEvent string"
    )
    assert isinstance(got[2], Malformed) and got[2].origin == "le#Events[2]"


def test_decode_eventbridge_other_events() -> None:
    """Other detail-types are Skipped; a CloudTrail detail-type without a record is Malformed."""
    state = {"detail-type": "CodeArtifact Package Version State Change", "detail": {"a": 1}}
    sign_in = {"detail-type": "AWS Console Sign In via CloudTrail", "detail": RECORDS[0]}
    empty = {"detail-type": "AWS API Call via CloudTrail", "detail": {}}
    assert items(dumps(state), "eb") == [
        Skipped(
            "eb",
            "EventBridge event 'CodeArtifact Package Version State Change' is not from CloudTrail",
        )
    ]
    assert items(dumps(sign_in)) == [RECORDS[0]]
    assert items(dumps(empty), "eb") == [
        Malformed("eb#detail", "'AWS API Call via CloudTrail' event without a CloudTrail record")
    ]


def s3_record(key: str, event: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": event,
        "s3": {"bucket": {"name": "b"}, "object": {"key": key}},
    }


def test_decode_s3_notification() -> None:
    """Keys are URL-decoded; digest objects, deletions and S3's test event are skipped."""
    digest = "AWSLogs/1/CloudTrail-Digest/us-east-1/d.json.gz"
    payload = dumps(
        {
            "Records": [
                s3_record("AWSLogs%2F1%2FCloudTrail%2Fa+b%3Ac.json.gz"),
                s3_record(digest),
                s3_record("AWSLogs/1/x.json.gz", "ObjectRemoved:Delete"),
                {"eventSource": "aws:s3", "s3": {"bucket": {}}},
            ]
        }
    )
    assert items(payload, "q") == [
        ObjectRef("b", "AWSLogs/1/CloudTrail/a b:c.json.gz", "q#Records[0]"),
        Skipped("q#Records[1]", f"CloudTrail digest file s3://b/{digest}"),
        Skipped(
            "q#Records[2]", "S3 ObjectRemoved:Delete notification for s3://b/AWSLogs/1/x.json.gz"
        ),
        Malformed("q#Records[3]", "S3 notification without s3.bucket.name and s3.object.key"),
    ]
    assert items(dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "q") == [
        Skipped("q", "S3 s3:TestEvent")
    ]


def test_decode_sns_envelopes() -> None:
    """SNS: Message decoded (CloudTrail's own notification too); confirmations skipped."""
    note = {
        "s3Bucket": "trail",
        "s3ObjectKey": ["AWSLogs/1/a.json.gz", "AWSLogs/1/CloudTrail-Digest/d.json.gz", 5],
    }
    assert items(sns(dumps(note).decode()), "m") == [
        ObjectRef("trail", "AWSLogs/1/a.json.gz", "m#Message"),
        Skipped(
            "m#Message", "CloudTrail digest file s3://trail/AWSLogs/1/CloudTrail-Digest/d.json.gz"
        ),
        Malformed("m#Message#s3ObjectKey[2]", "object key is a number"),
    ]
    confirm = {"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe"}
    assert items(dumps(confirm), "m") == [Skipped("m", "SNS SubscriptionConfirmation")]
    (hello,) = items(sns("Hello world!"), "m")
    assert isinstance(hello, Malformed) and hello.origin == "m#Message"
    assert hello.reason.startswith("invalid JSON: unexpected character")


def test_decode_cloudwatch_failures() -> None:
    """CONTROL_MESSAGE is skipped; bad base64 and non-JSON log events are Malformed, in place."""
    control = {"messageType": "CONTROL_MESSAGE", "logEvents": [{"message": "CWL CONTROL MESSAGE"}]}
    assert items(dumps(control), "c") == [Skipped("c", "CloudWatch Logs CONTROL_MESSAGE")]
    (bad,) = items(dumps({"awslogs": {"data": "%%%"}}), "c")
    assert isinstance(bad, Malformed) and bad.origin == "c#awslogs.data"
    assert bad.reason.startswith("not base64")
    got = items(
        awslogs(cloudwatch_decoded(["plain text log line", dumps(RECORDS[1]).decode()])), "c"
    )
    assert isinstance(got[0], Malformed) and got[0].origin == "c#awslogs.data#logEvents[0]"
    assert got[1] == RECORDS[1]


def test_decode_digest_file_is_skipped() -> None:
    """A digest file body yields one Skipped and no record."""
    body = (FIXTURES / "refs" / "digest.json").read_bytes()
    assert items(body, "d") == [Skipped("d", "CloudTrail digest file")]


def test_decode_nesting_is_bounded() -> None:
    """Envelopes nested past MAX_DEPTH stop with a Malformed instead of recursing on."""
    payload = log_file(RECORDS[:1]).decode()
    for _ in range(MAX_DEPTH + 2):
        payload = sns(payload).decode()
    (item,) = items(payload, "n")
    assert isinstance(item, Malformed) and "nested more than" in item.reason


def test_decode_json_lines_payload_recovers_around_bad_lines() -> None:
    """JSON lines in one payload (an S3 object): a bad line is Malformed at :LINE, others come."""
    payload = (
        b"\n".join([dumps(RECORDS[0]), b'{"eventName": ', b"", dumps(RECORDS[1]), b"[1"]) + b"\n"
    )
    got = items(payload, "s3://b/k")
    assert got[0] == RECORDS[0] and got[2] == RECORDS[1]
    assert got[1] == Malformed(
        "s3://b/k:2", "invalid JSON: unexpected end of data: line 1 column 14 (char 13)"
    )
    assert got[3] == Malformed(
        "s3://b/k:5", "invalid JSON: unexpected end of data: line 1 column 3 (char 2)"
    )


def test_decode_concatenated_documents_with_stray_content() -> None:
    """Concatenated documents are split; stray text between them is Malformed, not lost."""
    payload = dumps(RECORDS[0]) + b' "x" ' + dumps(RECORDS[1]) + b"\n}"
    got = items(payload, "f")
    assert [g for g in got if isinstance(g, dict)] == RECORDS[:2]
    assert [g.origin for g in got if isinstance(g, Malformed)] == ["f:1", "f:2"]


def test_decode_value_of_parsed_document() -> None:
    """decode_value works on what a caller already parsed."""
    assert list(decode_value({"Records": RECORDS}, "p")) == RECORDS


@pytest.fixture(scope="module")
def panther_logs() -> list[dict[str, Any]]:
    path = PANTHER if PANTHER.exists() else FIXTURES / "realdata" / "panther-tests-sample.jsonl"
    return [orjson.loads(line)["log"] for line in path.read_bytes().splitlines() if line.strip()]


def test_decode_panther_test_records(panther_logs: list[dict[str, Any]]) -> None:
    """Every `log` of Panther's CloudTrail rule tests, partial ones included, is a record."""
    for log in panther_logs:
        assert items(dumps(log)) == [log]
    assert any("eventID" not in log for log in panther_logs)
    if PANTHER.exists():
        assert len(panther_logs) == 464


# ---- properties -------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["Records", "Events", "detail-type", "detail", "Message", "Type", "awslogs", "data",
     "messageType", "logEvents", "message", "s3", "s3ObjectKey", "s3Bucket", "CloudTrailEvent",
     "eventName", "eventSource", "eventVersion", "eventType", "digestS3Object", "Event"]
)  # fmt: skip
ENVELOPE_LIKE = st.recursive(
    JSON,
    lambda children: (
        st.dictionaries(KEYS, children | st.text(), max_size=4) | st.lists(children, max_size=4)
    ),
    max_leaves=20,
)
RECORD = st.fixed_dictionaries(
    {"eventName": st.text(max_size=20), "eventID": st.uuids().map(str)},
    optional={"requestParameters": JSON, "eventTime": st.text(max_size=25)},
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | JSON.map(dumps) | ENVELOPE_LIKE.map(dumps))
def test_decode_never_raises_and_yields_only_items(payload: bytes) -> None:
    """Whatever the bytes, decode yields only records, Malformed, Skipped or ObjectRef."""
    for item in decode(payload, "h"):
        assert is_record(item) or isinstance(item, Malformed | Skipped | ObjectRef)


@settings(max_examples=100, deadline=None)
@given(st.lists(RECORD, max_size=5), st.sampled_from(sorted(ENVELOPES)))
def test_decode_any_records_survive_any_envelope(
    records: list[dict[str, Any]], envelope: str
) -> None:
    """Any records, unicode and all, come back unchanged from any envelope."""
    if not records and envelope in {
        "json lines",
        "concatenated",
        "pretty concatenated",
        "eventbridge lines",
    }:
        return  # no documents at all: an empty payload, which is Malformed by design
    assert items(ENVELOPES[envelope](records)) == records
