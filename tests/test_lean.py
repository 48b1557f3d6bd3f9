"""Lean records (engine.inputs.lean): the fields rules read, decoded alone, evaluate as whole
records do; files the lean path does not take are read the general way with the same reports."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.rulegen import write_rules
from engine.conditions import expressions
from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.inputs.lean import LeanReader, fields_read, shape_of
from engine.pack import shipped_rules
from engine.rules import load_rules
from tests.support.cli import run_cli
from tests.support.records import record
from tests.support.shared import REALDATA

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "realdata-sample"
LISTS = {"trusted_networks", "ci_publishers", "trusted_accounts"}


@pytest.mark.parametrize(("expression", "fields"), [
    ("eventName == 'X'", {"eventName"}),
    ("userIdentity.sessionContext.attributes.mfaAuthenticated", {"userIdentity"}),
    ("@.userAgent", {"userAgent"}),
    ("requestParameters.packages[?name == 'x'].version", {"requestParameters"}),
    ("sort_by(resources, &ARN)[0]", {"resources"}),
    ("a | b", {"a"}),
    ("{x: a, y: [b, c]}", {"a", "b", "c"}),
    ("`1` == `1`", set()),
])
def test_root_fields_names_what_an_expression_reads(expression: str, fields: set[str]) -> None:
    assert expressions.root_fields(expressions.parse(expression)) == fields


@pytest.mark.parametrize("expression", ["@", "length(@)", "keys(@)", "to_string(@)", "*.arn",
                                        "[0]", "@[0]", "values(@)[0]"])
def test_root_fields_gives_up_on_the_whole_record(expression: str) -> None:
    assert expressions.root_fields(expressions.parse(expression)) is None


@pytest.mark.parametrize(("expression", "paths"), [
    ("userIdentity.sessionContext.attributes.mfaAuthenticated",
     {("userIdentity", "sessionContext", "attributes", "mfaAuthenticated")}),
    ("userIdentity.arn || userIdentity", {("userIdentity", "arn"), ("userIdentity",)}),
    ("a.b[0].c", {("a", "b")}),  # read whole from where a chain of fields stops
    ("requestParameters.packageVersion || requestParameters.versions[0]",
     {("requestParameters", "packageVersion"), ("requestParameters", "versions")}),
    ("a.b[*].c", {("a", "b")}),
    ("a.b[]", {("a", "b")}),
    ("a.*.c", {("a",)}),
    ("a.b | c", {("a", "b")}),
    ("a.b.length(@)", {("a", "b")}),
    ("a.b.[c, d]", {("a", "b")}),
    ("a[0].b", {("a",)}),
    ("@.a.b[0]", {("a",)}),  # after `@`: the first field whole, as before
    ("length(a.b[0])", {("a", "b")}),
    ("requestParameters.packages[?name == 'x']", {("requestParameters", "packages")}),
    ("@.a.b", {("a",)}),
])
def test_read_paths_names_the_keys_read_inside_objects(expression: str,
                                                       paths: set[tuple[str, ...]]) -> None:
    assert expressions.read_paths(expressions.parse(expression)) == paths


def test_a_value_read_whole_anywhere_is_decoded_whole() -> None:
    assert shape_of([("a", "b", "c"), ("a", "b"), ("a", "x"), ("d",)]) == {
        "a": {"b": None, "x": None}, "d": None}


def _evaluator(tmp: Path | None = None, extra: int = 0) -> Evaluator:
    functions = TrailguardFunctions({"trusted_networks": ["10.0.0.0/8"],
                                     "ci_publishers": ["arn:aws:iam::111122223333:role/ci"],
                                     "trusted_accounts": ["111122223333"]})
    paths = [str(shipped_rules())]
    if extra and tmp is not None:
        paths.append(str(write_rules(tmp / "generated", extra)))
    rules = load_rules(paths, functions, LISTS).rules
    return Evaluator(rules, functions)


def _reader(evaluator: Evaluator) -> LeanReader:
    fields = fields_read(c.rule for c in (*evaluator.rules, *evaluator.routes))
    assert fields is not None
    return LeanReader(fields)


def _verdicts(evaluator: Evaluator, record: dict[str, Any]) -> list[tuple[str, int, Any]]:
    return [(rule.id, rule.step, group) for rule, group in evaluator.matched(record)]


def _agree(evaluator: Evaluator, reader: LeanReader, path: Path) -> int:
    """Compare lean and whole verdicts, rule by rule, for every record of `path`."""
    lean = reader.read(str(path))
    assert lean is not None, f"{path}: the lean path refused a plain log file"
    whole = orjson.loads(gzip.decompress(path.read_bytes()) if path.suffix == ".gz"
                         else path.read_bytes())["Records"]
    assert len(lean.records) == len(whole)
    for n, record_ in enumerate(whole):
        assert _verdicts(evaluator, lean.records[n]) == _verdicts(evaluator, record_), (
            f"{path} record {n}")
        assert lean.whole(n) == record_
    return len(whole)


def _log_files() -> Iterator[Path]:
    for root in (REALDATA, SAMPLE):
        for name in ("invictus-aws-dataset", "stratus-detonation-logs"):
            yield from sorted((root / name).rglob("*.json*")) if (root / name).is_dir() else ()


def test_lean_and_whole_records_match_alike_on_real_data(tmp_path: Path) -> None:
    evaluator = _evaluator(tmp_path, extra=200)
    reader = _reader(evaluator)
    files = [p for p in _log_files() if b'"Records"' in _text(p)[:200]]
    assert files
    assert sum(_agree(evaluator, reader, path) for path in files) > 0
    assert not evaluator.errors or set(evaluator.errors) <= {c.rule.id for c in evaluator.rules}


def _text(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_lean_and_whole_records_match_alike_on_panther_tests(tmp_path: Path) -> None:
    evaluator = _evaluator(tmp_path, extra=200)
    reader = _reader(evaluator)
    tests = REALDATA / "panther-cloudtrail-tests" / "tests.jsonl"  # the tests, with verdicts
    if tests.exists():
        events = [test["log"] for line in tests.read_text().splitlines() if line.strip()
                  if isinstance(test := json.loads(line), dict)
                  and isinstance(test.get("log"), dict)]
    else:  # a clean clone: the sample keeps the tests' records only, one a line
        sample = SAMPLE / "panther-cloudtrail-tests" / "logs.jsonl"
        events = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    records = [event for event in events if "eventName" in event or "eventSource" in event]
    assert records
    path = tmp_path / "panther.json"
    path.write_bytes(orjson.dumps({"Records": records}))
    assert _agree(evaluator, reader, path) == len(records)


def test_lean_and_whole_records_match_alike_on_the_bench_stream(tmp_path: Path) -> None:
    from bench.streamgen import generate

    evaluator = _evaluator(tmp_path, extra=200)
    reader = _reader(evaluator)
    files = generate(tmp_path / "stream", 3_000)
    assert sum(_agree(evaluator, reader, path) for path in files) == 3_000
    assert sum(evaluator.matches.values()) > 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False,
                                                                          allow_infinity=False)
    | st.text(max_size=12) | st.sampled_from(["npm", "ReadFromRepository", "10.1.2.3", "false",
                                              "arn:aws:iam::111122223333:role/ci"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["arn", "type", "sessionContext", "attributes", "mfaAuthenticated",
                         "packageFormat", "repositoryName", "name", "x"]), inner, max_size=4),
    max_leaves=12)
_FIELDS = ["userIdentity", "requestParameters", "sourceIPAddress", "userAgent", "errorCode",
           "eventName", "eventSource", "awsRegion", "recipientAccountId", "responseElements",
           "sessionCredentialFromConsole", "additionalEventData", "resources"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=4),
                        min_size=1, max_size=6))
def test_hostile_field_values_match_alike_lean_and_whole(tmp_path: Path,
                                                         changes: list[dict[str, Any]]) -> None:
    evaluator = _EVALUATOR
    records = [record(**change) for change in changes]
    path = tmp_path / "hostile.json"
    path.write_bytes(orjson.dumps({"Records": records}))
    lean = _READER.read(str(path))
    assert lean is not None
    for n, record_ in enumerate(records):
        assert _verdicts(evaluator, lean.records[n]) == _verdicts(evaluator, record_)


_EVALUATOR = _evaluator()
_READER = _reader(_EVALUATOR)


@pytest.mark.parametrize(("name", "text"), [
    ("json-lines", b'{"eventName":"GetAuthorizationToken","eventID":"a"}\n'
                   b'{"eventName":"GetAuthorizationToken","eventID":"b"}\n'),
    ("bom", b'\xef\xbb\xbf{"Records":[{"eventName":"X","eventID":"a"}]}'),
    ("identity-not-a-string", b'{"Records":[{"eventName":"X","eventID":{"a":1}}]}'),
    ("element-not-a-record", b'{"Records":[{"eventName":"X","eventID":"a"},{"x":1},7]}'),
    ("invalid-utf8-in-an-unread-field",
     b'{"Records":[{"eventName":"X","eventID":"a","zz":"\xff"}]}'),
    ("top-level-record", b'{"Records":[],"eventName":"X","eventSource":"s"}'),
    ("records-not-a-list", b'{"Records":{"eventName":"X"}}'),
    ("empty", b"  \n"),
])
def test_files_the_lean_path_refuses_are_read_the_general_way(tmp_path: Path, name: str,
                                                              text: bytes) -> None:
    path = tmp_path / f"{name}.json"
    path.write_bytes(text)
    assert _READER.read(str(path)) is None
    lean, whole = _scan(path), _scan(path, whole=True)
    assert lean == whole
    assert lean[0] in (0, 1) and "events" in lean[2]


def _scan(*paths: Path, whole: bool = False, workers: int = 1) -> tuple[int, str, str]:
    """(exit status, alerts, summary without its timings) of `trailguard scan paths`."""
    done = run_cli("scan", "--workers", str(workers), *map(str, paths),
                   env={"TRAILGUARD_WHOLE_RECORDS": "1" if whole else "0"}, timeout=180)
    return done.returncode, _NOW.sub('"detected_at":""', done.stdout), _TIMINGS.sub("", done.stderr)


_TIMINGS = re.compile(r" in [0-9.]+s \([0-9,]+ events/s\)")
_NOW = re.compile(r'"detected_at":"[^"]*"')  # the wall clock


def test_a_record_nested_past_orjson_is_read_the_general_way(tmp_path: Path) -> None:
    """Nesting past orjson's limit (1,024) is malformed, lean or whole: the lean path gives
    the file up (msgspec's own limit, or orjson's when the record matched), so the scan
    reports what it always did."""
    deep = b"[" * 1100 + b"]" * 1100
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"Records":[{"eventName":"GetAuthorizationToken","eventSource":'
                     b'"codeartifact.amazonaws.com","eventID":"a","eventTime":'
                     b'"2024-03-01T00:00:00Z","requestParameters":' + deep + b"}]}")
    lean = _scan(path)
    assert lean == _scan(path, whole=True)
    assert "1 malformed" in lean[2] and "depth limit" in lean[2]


def test_scan_alerts_are_the_same_lean_and_whole(tmp_path: Path) -> None:
    from bench.streamgen import generate

    files = generate(tmp_path / "stream", 6_000)
    real = [p for p in _log_files() if b'"Records"' in _text(p)[:200]]
    lean, whole = _scan(files[0].parents[6], *real), _scan(files[0].parents[6], *real, whole=True)
    assert lean == whole
    assert lean[0] == 0 and lean[1].count("\n") > 0
    assert _scan(files[0].parents[6], *real, workers=2) == lean  # workers inherit the reader


def test_suppressions_read_lean_records_as_whole_ones(tmp_path: Path) -> None:
    """A suppression's condition reads fields no rule reads (here sourceIPAddress and
    userAgent, through a function): the lean record holds them too, and the same matches
    are silenced, counted and kept as without lean decoding, on the lane and off it."""
    from bench.streamgen import generate

    files = generate(tmp_path / "stream", 4_000)
    (tmp_path / "quiet.yml").write_text(
        "- id: mirror-reads\n"
        "  rules: [codeartifact-mass-download, codeartifact-publish-*]\n"
        "  condition: \"starts_with(userAgent, 'npm') || contains(sourceIPAddress, '.107')\"\n"
        "  owner: secops@example.com\n  reason: the mirror\n  expires: 2999-01-01\n")
    config = tmp_path / "trailguard.yml"
    config.write_text(f"suppressions: [{tmp_path / 'quiet.yml'}]\n")
    archive = files[0].parents[6]
    lean = _scan(Path("-c"), config, archive)
    assert lean == _scan(Path("-c"), config, archive, whole=True)
    assert "suppressed" in lean[2] and lean[0] == 0


def test_threshold_alerts_read_their_records_back_alike(tmp_path: Path) -> None:
    """A threshold-lane match keeps only its place in a file; the alert's event is read back
    from there (engine.decide.stubs). Read back lean, the place must name the same record as read
    back whole: records out of order in each file, and files of two accounts, make the
    place differ from the position in the file's text."""
    import random

    rng = random.Random(17)
    for account in ("123456789012", "210987654321"):
        for part in range(3):
            records = [record(eventName="ReadFromRepository", recipientAccountId=account,
                              eventTime=f"2024-03-01T10:{part * 3 + k // 100:02d}:{k % 60:02d}Z",
                              requestParameters={"domainName": "acme", "packageName": f"p{k}"})
                       for k in range(300)]
            rng.shuffle(records)
            name = f"{account}_CloudTrail_us-west-2_20240301T10{part * 3 + 4:02d}Z_{part}.json.gz"
            (tmp_path / name).write_bytes(gzip.compress(orjson.dumps({"Records": records},
                                                                     option=orjson.OPT_INDENT_2)))
    lean = _scan(tmp_path)
    assert lean == _scan(tmp_path, whole=True)
    alerts = [json.loads(line) for line in lean[1].splitlines()]
    mass = [a for a in alerts if a["rule_id"] == "codeartifact-mass-download"]
    assert mass and all(a["event"]["eventName"] == "ReadFromRepository" for a in mass)
    assert all("requestID" in a["event"] for a in mass)  # whole, not a stub


_TIMES = st.one_of(
    st.builds(lambda m, s: f"2024-03-01T10:{m:02d}:{s:02d}Z", st.integers(0, 59),
              st.integers(0, 59)),
    st.sampled_from(["2024-03-01T10:00:00.5Z", "2024-03-01T10:00:00+02:00", "yesterday", ""]),
    st.none())
_CALLS = st.sampled_from(["ReadFromRepository", "GetAuthorizationToken",
                          "PublishPackageVersion", "DeletePackageVersions", "ListPackages"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(_TIMES, _CALLS, st.sampled_from(["a", "b", "c", None]),
                                 st.sampled_from([None, "s1", "s2"]), st.booleans()),
                       min_size=1, max_size=40),
       chunk=st.sampled_from([2, 7, 2_000]))
def test_a_file_read_lean_gives_the_results_it_gives_read_whole(
        tmp_path: Path, events: list[tuple[Any, str, Any, Any, bool]], chunk: int) -> None:
    """engine.scan.filescan's results for one file, item by item, chunk by chunk: lean and
    whole alike, for records out of order, without or with odd eventTimes, repeated
    eventIDs, copies (sharedEventID) and missing fields, across chunk boundaries."""
    from engine.decide.decider import new_decider
    from engine.scan import filescan

    records = []
    for n, (time, name, event_id, call, errored) in enumerate(events):
        changes: dict[str, Any] = {"eventName": name,
                                   "eventID": f"id-{event_id}" if event_id else f"u{n}"}
        if time is not None:
            changes["eventTime"] = time
        if call is not None:
            changes["sharedEventID"] = call
        if errored:
            changes["errorCode"] = "AccessDenied"
        made = record(**changes)
        if time is None:
            del made["eventTime"]
        if event_id is None and n % 3 == 0:
            del made["eventID"]
        records.append(made)
    path = tmp_path / "file.json"
    path.write_bytes(orjson.dumps({"Records": records}))
    evaluator = _EVALUATOR
    decider = new_decider(evaluator, 900.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(filescan, "CHUNK_RECORDS", chunk)
        patch.setattr(filescan, "_EVALUATOR", evaluator)
        patch.setattr(filescan, "_LANE", decider.lane_rules)
        patch.setattr(filescan, "_LEAN", _READER)
        lean = list(filescan.scan_file(str(path)))
        patch.setattr(filescan, "_LEAN", None)
        whole = list(filescan.scan_file(str(path)))
    assert _READER.read(str(path)) is not None
    assert lean == whole
