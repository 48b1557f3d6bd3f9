"""engine.inputs.files: real files, directories and stdin, decoded with flat memory."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

import engine.inputs.decode as decode_module
from engine.inputs.decode import Malformed, ObjectRef, Skipped, decode
from engine.inputs.files import STDIN_ORIGIN, iter_paths, iter_stream
from tests.support.shared import REALDATA

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "envelopes"
SAME_THREE = FIXTURES / "same-three"
RECORDS: list[dict[str, Any]] = json.loads((SAME_THREE / "array.json").read_text())
SHARED = REALDATA
BUCKET = "example-org-trail-bucket"
LOG_KEY = (
    "AWSLogs/o-exampleorgid/123456789012/CloudTrail/us-west-2/2024/05/02/"
    "123456789012_CloudTrail_us-west-2_20240502T0915Z_Mu0KsOhtH1ar15ZZ.json.gz"
)


def read(*paths: Path | str, **kwargs: Any) -> list[Any]:
    return list(iter_paths([str(p) for p in paths], **kwargs))


def origins(items: list[Any]) -> list[str]:
    return [i.origin for i in items if isinstance(i, Malformed | Skipped | ObjectRef)]


@pytest.mark.parametrize(
    "name", sorted(p.name for p in SAME_THREE.iterdir()), ids=lambda name: name
)
def test_iter_paths_every_envelope_yields_the_same_three_records(name: str) -> None:
    """Each envelope file, read from disk, yields exactly the three records and nothing else."""
    assert read(SAME_THREE / name) == RECORDS


def test_iter_paths_envelopes_cover_every_shape() -> None:
    """The parametrized list above is not silently short of a shape of SPEC §3."""
    names = {p.name for p in SAME_THREE.iterdir()}
    assert len(names) >= 16 and "single" in names and "firehose-cloudwatch.gz" in names


def test_iter_paths_references_and_skips() -> None:
    """Notifications yield ObjectRefs with real keys; digest, test and control are Skipped."""
    refs = FIXTURES / "refs"
    got = read(refs / "s3-notification.json")
    assert [type(i) for i in got] == [ObjectRef, Skipped, Skipped, ObjectRef]
    assert got[0] == ObjectRef(BUCKET, LOG_KEY, f"{refs}/s3-notification.json#Records[0]")
    assert got[3].key == "AWSLogs/odd key:1.json.gz"
    via_sns = read(refs / "s3-notification-via-sns.json")
    assert via_sns == [
        ObjectRef(BUCKET, LOG_KEY, f"{refs}/s3-notification-via-sns.json#Message#Records[0]")
    ]
    trail = read(refs / "cloudtrail-sns-notification.json")
    assert [(r.bucket, r.key) for r in trail] == [
        (BUCKET, LOG_KEY),
        (BUCKET, LOG_KEY.replace("0915Z", "0920Z")),
    ]
    for name in ("digest.json", "s3-test-event.json", "cloudwatch-control-message.json"):
        (item,) = read(refs / name)
        assert isinstance(item, Skipped) and item.origin == str(refs / name)


def test_iter_paths_lambda_sqs_and_sns_events_carry_references() -> None:
    """A Lambda function's SQS event (S3 notification and s3:TestEvent bodies) and SNS event
    (CloudTrail's notification in Sns.Message) give what the same payloads give alone."""
    refs = FIXTURES / "refs"
    sqs = str(refs / "lambda-sqs-s3-notification.json")
    assert read(sqs) == [
        ObjectRef(BUCKET, LOG_KEY, f"{sqs}#Records[0]#body#Records[0]"),
        Skipped(f"{sqs}#Records[1]#body", "S3 s3:TestEvent"),
    ]
    sns = str(refs / "lambda-sns-cloudtrail-notification.json")
    assert read(sns) == [
        ObjectRef(BUCKET, key, f"{sns}#Records[0]#Sns#Message")
        for key in (LOG_KEY, LOG_KEY.replace("0915Z", "0920Z"))
    ]


def test_decode_lambda_records_of_another_source_are_malformed() -> None:
    """A body or Sns member without the Lambda event's own eventSource is not guessed at."""
    odd = orjson.dumps({"Records": [{"eventSource": "aws:kinesis", "body": "{}"},
                                    {"EventSource": "aws:sqs", "Sns": {"Message": "{}"}}]})
    got = list(decode(odd, "o"))
    assert [type(i) for i in got] == [Malformed, Malformed]
    assert [i.origin for i in got] == ["o#Records[0]", "o#Records[1]"]


def test_iter_paths_json_lines_with_garbage() -> None:
    """Good lines around broken ones all come; each bad one is a Malformed at path:LINE."""
    path = FIXTURES / "garbage" / "mixed.jsonl"
    got = read(path)
    assert [i for i in got if isinstance(i, dict)] == RECORDS
    bad = [i for i in got if isinstance(i, Malformed)]
    assert [b.origin for b in bad] == [
        f"{path}:2",
        f"{path}:4",
        f"{path}:6#[1]",
        f"{path}:6#[2]",
        f"{path}:7",
    ]
    assert bad[0].reason == "invalid JSON: unexpected end of data: line 1 column 54 (char 53)"
    assert bad[1].reason == "not a CloudTrail record or known envelope: keys 'hello'"
    assert bad[2].reason == "not a CloudTrail record: a number"
    assert bad[4].reason.startswith("invalid JSON: invalid literal")


def test_iter_paths_truncated_gzip_is_malformed_after_the_good_records() -> None:
    """Cut-short gzip: every whole line before the cut is yielded (in eventTime order),
    then one Malformed."""
    log = FIXTURES / "garbage" / "truncated-log-file.json.gz"
    assert read(log) == [
        Malformed(
            str(log),
            "read failed: EOFError: Compressed file ended before the end-of-stream marker"
            " was reached",
            unreadable=True,  # not fully readable: scan exits 1 (issue 15 §11)
        )
    ]
    lines = FIXTURES / "garbage" / "truncated-lines.jsonl.gz"
    *records, last = read(lines)
    assert 0 < len(records) < 600
    assert records == sorted((RECORDS * 200)[: len(records)], key=lambda r: r["eventTime"])
    assert isinstance(last, Malformed) and last.origin == str(lines) and "EOFError" in last.reason
    assert last.unreadable


def test_iter_paths_junk_and_empty_files() -> None:
    """Binary junk is one Malformed; an empty file is Skipped, not an error."""
    junk, empty = FIXTURES / "garbage" / "junk.bin", FIXTURES / "garbage" / "empty.json"
    (item,) = read(junk)
    assert isinstance(item, Malformed) and item.reason.startswith("invalid JSON: ")
    assert read(empty) == [Skipped(str(empty), "empty input")]


def test_iter_paths_missing_path_and_dangling_symlink(tmp_path: Path) -> None:
    """A path that cannot be opened is a Malformed naming the OS error; the walk goes on."""
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere")
    shutil.copy(SAME_THREE / "lines.jsonl", tmp_path / "z.jsonl")
    got = read(tmp_path / "missing.json", tmp_path)
    assert got[:2] == [
        Malformed(str(tmp_path / "missing.json"), "FileNotFoundError: No such file or directory",
                      unreadable=True),
        Malformed(str(tmp_path / "dangling.json"), "FileNotFoundError: No such file or directory",
                      unreadable=True),
    ]
    assert got[2:] == RECORDS


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_iter_paths_read_error_is_malformed() -> None:
    """An error while reading (EIO here) is a Malformed, not an exception."""
    assert read("/proc/self/mem") == [
        Malformed("/proc/self/mem", "read failed: OSError: Input/output error",
                  unreadable=True)
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_iter_paths_permission_denied(tmp_path: Path) -> None:
    """A file without read permission is a Malformed saying so."""
    path = tmp_path / "secret.json"
    shutil.copy(SAME_THREE / "log-file.json", path)
    path.chmod(0)
    assert read(path) == [Malformed(str(path), "PermissionError: Permission denied")]


def test_iter_paths_directory_mix(tmp_path: Path) -> None:
    """Directories: recursive, in eventTime order (what has none first, by name), hidden
    entries skipped, .gz decompressed."""
    (tmp_path / "2024" / "05" / "02").mkdir(parents=True)
    (tmp_path / "2024" / "05" / "01").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    shutil.copy(SAME_THREE / "log-file.json.gz", tmp_path / "2024" / "05" / "02" / "a.json.gz")
    shutil.copy(SAME_THREE / "lines.jsonl", tmp_path / "2024" / "05" / "01" / "b.jsonl")
    shutil.copy(FIXTURES / "refs" / "digest.json", tmp_path / "2024" / "05" / "01" / "digest.json")
    shutil.copy(SAME_THREE / "array.json", tmp_path / ".git" / "x.json")
    shutil.copy(SAME_THREE / "array.json", tmp_path / "2024" / ".hidden.json")
    (tmp_path / "2024" / "05" / "notes.txt").write_text("not JSON\n")
    (tmp_path / "loop").symlink_to(tmp_path)
    got = read(tmp_path)
    assert [i for i in got if isinstance(i, dict)] == RECORDS * 2
    assert origins(got) == [
        str(tmp_path / "2024" / "05" / "01" / "digest.json"),
        str(tmp_path / "2024" / "05" / "notes.txt"),
    ]
    assert got[0] == Skipped(
        str(tmp_path / "2024" / "05" / "01" / "digest.json"), "CloudTrail digest file"
    )


def test_iter_paths_explicit_pipe(tmp_path: Path) -> None:
    """A pipe named on the command line (process substitution) is read; met on a walk, skipped."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = (SAME_THREE / "lines.jsonl.gz").read_bytes()
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    assert read(fifo) == RECORDS
    writer.join(timeout=5)
    assert read(tmp_path) == [Skipped(str(fifo), "not a regular file")]


def test_iter_paths_stdin_subprocess() -> None:
    """`-` reads stdin as bytes, gzip included, with origins <stdin>:LINE."""
    script = (
        "import sys; from engine.inputs.files import iter_paths\n"
        "from engine.inputs.decode import Malformed\n"
        "for i in iter_paths(['-']):\n"
        "    print(i['eventID'] if isinstance(i, dict) else f'{i.origin} {i.reason}')\n"
    )
    payload = gzip.compress((SAME_THREE / "lines.jsonl").read_bytes() + b"{oops\n")
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=payload,
        capture_output=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    lines = done.stdout.decode().splitlines()
    assert lines[:3] == [r["eventID"] for r in RECORDS]
    assert lines[3].startswith(f"{STDIN_ORIGIN}:4 invalid JSON")


def test_iter_paths_stdin_whole_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pretty-printed document on stdin is decoded as one payload with origin <stdin>."""
    fake = io.TextIOWrapper(
        io.BufferedReader(io.BytesIO((SAME_THREE / "sns-log-file.json").read_bytes()))
    )
    monkeypatch.setattr(sys, "stdin", fake)
    assert read("-") == RECORDS
    assert not fake.closed


def test_iter_paths_closed_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no standard input at all, `-` is one Malformed, not a crash."""
    monkeypatch.setattr(sys, "stdin", None)
    assert read("-") == [Malformed(STDIN_ORIGIN, "standard input is closed")]


@pytest.mark.parametrize("metered", [False, True])
def test_iter_stream_leaves_the_stream_open(metered: bool) -> None:
    """iter_stream reads a caller's stream without closing it, metered or not."""
    with open(SAME_THREE / "log-file.json.gz", "rb", buffering=0) as raw:
        calls: list[int] = []
        got = list(iter_stream(raw, "s3://b/k", calls.append if metered else None))
        assert got == RECORDS and not raw.closed
        assert sum(calls) == (raw.tell() if metered else 0)


@pytest.mark.parametrize("implementation", ["isal", "gzip"])
def test_iter_paths_streams_gzip_with_both_implementations(
    implementation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standard-library fallback streams gzipped files like isal does."""
    if implementation == "gzip":
        monkeypatch.setattr(decode_module, "gzip_impl", gzip)
    for name in ("lines.jsonl.gz", "log-file.json.gz", "firehose-cloudwatch.gz"):
        assert read(SAME_THREE / name) == RECORDS
    *_, last = read(FIXTURES / "garbage" / "truncated-lines.jsonl.gz")
    assert isinstance(last, Malformed) and "EOFError" in last.reason


def test_iter_paths_reports_bytes_read(tmp_path: Path) -> None:
    """on_bytes adds up to the bytes on disk (compressed for gzip), in a few calls."""
    paths = [
        SAME_THREE / "lines.jsonl.gz",
        SAME_THREE / "log-file-pretty.json",
        FIXTURES / "garbage" / "mixed.jsonl",
    ]
    calls: list[int] = []
    read(*paths, on_bytes=calls.append)
    assert sum(calls) == sum(p.stat().st_size for p in paths)
    assert len(calls) <= 3 * len(paths)


# ---- real CloudTrail written by others ----------------------------------------------------


def test_iter_paths_real_data_samples() -> None:
    """The committed samples of Invictus, Stratus and Panther data decode without a Malformed."""
    samples = sorted((FIXTURES / "realdata").glob("*.json"))
    got = read(*samples)
    assert len(got) == 15 and all(isinstance(i, dict) for i in got)
    lines = read(FIXTURES / "realdata" / "panther-tests-sample.jsonl")
    assert len(lines) == 26  # each line is a test case, not a record: the envelope is unknown
    assert all(isinstance(i, Malformed) and "not a CloudTrail record" in i.reason for i in lines)


@pytest.mark.skipif(not SHARED.exists(), reason="shared real data not on this machine")
@pytest.mark.parametrize(
    ("folder", "expected"), [("invictus-aws-dataset", 2900), ("stratus-detonation-logs", 310)]
)
def test_iter_paths_all_shared_real_data(folder: str, expected: int) -> None:
    """All of the shared real data sets decode, record for record, without a Malformed."""
    got = read(*sorted((SHARED / folder).glob("*.json")))
    assert len(got) == expected and all(isinstance(i, dict) for i in got)


# ---- the fixtures are what regenerate.py says they are -------------------------------------


def test_fixtures_match_their_generator() -> None:
    """Every generated fixture decodes exactly like what regenerate.py builds today."""
    spec = importlib.util.spec_from_file_location("regenerate", FIXTURES / "regenerate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, data in module.build().items():
        on_disk = (FIXTURES / name).read_bytes()
        assert list(decode(on_disk, name)) == list(decode(data, name)), name


# ---- memory stays flat --------------------------------------------------------------------

CHILD = """
import gzip, json, sys
import orjson
from engine.inputs.files import iter_paths

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

path, mode = sys.argv[1], sys.argv[2]
base = peak_kib()
if mode == "stream":
    count = sum(1 for item in iter_paths([path]) if isinstance(item, dict))
else:  # the naive reader this test must be able to catch
    records = [orjson.loads(line) for line in gzip.decompress(open(path, "rb").read()).splitlines()]
    count = len(records)
print(json.dumps({"records": count, "growth_mib": (peak_kib() - base) / 1024}))
"""


def write_big_json_lines(path: Path, target_bytes: int) -> int:
    """~target_bytes of gzipped JSON lines of distinct ~1.5 KB records, about as compressible
    as real CloudTrail (ids and addresses random); returns the record count."""
    count = written = 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        while written < target_bytes:
            line = orjson.dumps(
                dict(
                    RECORDS[1],
                    eventID=str(uuid.uuid4()),
                    requestID=str(uuid.uuid4()),
                    sourceIPAddress=f"10.{count >> 16 & 255}.{count >> 8 & 255}.{count & 255}",
                )
            )
            written += out.write(line + b"\n")
            count += 1
    return count


def run_child(path: Path, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_iter_paths_memory_stays_flat_on_50_mb_of_json_lines(tmp_path: Path) -> None:
    """Streaming 50 MB of gzipped JSON lines grows the peak RSS by far less than the data."""
    path = tmp_path / "big.jsonl.gz"
    count = write_big_json_lines(path, 50 * 1024 * 1024)
    streamed = run_child(path, "stream")
    assert streamed["records"] == count
    assert streamed["growth_mib"] < 60, streamed
    naive = run_child(path, "naive")  # proves the measure bites: reading whole costs > 60 MiB
    assert naive["records"] == count and naive["growth_mib"] > 60, naive


def test_small_files_read_in_one_go_give_what_streaming_them_gives(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fixture (envelopes, garbage, truncated gzip...) and example: the same items
    read whole as streamed line by line."""
    from engine.inputs import files as inputs

    paths = [str(ROOT / "tests" / "fixtures"), str(ROOT / "examples" / "events")]

    def items() -> list[object]:
        return [item if type(item) is dict else repr(item) for item in iter_paths(paths)]

    whole = items()
    monkeypatch.setattr(inputs, "SMALL_BYTES", -1)
    assert items() == whole
    assert sum(type(item) is dict for item in whole) > 100
