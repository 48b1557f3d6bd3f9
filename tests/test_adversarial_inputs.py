"""Adversarial input: no record, however odd, stops the stream; no small input makes unbounded
work. One test per finding (issue 15), each through `trailguard scan` where the finding is
about scan, plus a fuzz that any bytes and any JSON value decode without an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli
from tests.support.records import record

RULES = """\
id: any-codeartifact
title: Any CodeArtifact call
severity: low
condition: eventSource == 'codeartifact.amazonaws.com'
summary: "{eventName} by {userIdentity.arn}"
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yml"
    path.write_text(RULES)
    return path


def _lines(*records: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _scan(rules: Path, path: Path, *more: str) -> tuple[list[dict[str, Any]], str]:
    result = run_cli("scan", "--workers", "1", "-r", str(rules), *more, str(path))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize("with_id", [True, False], ids=["with-eventID", "without-eventID"])
def test_scan_record_nested_300_deep_alerts_and_the_next_record_too(
        rules: Path, tmp_path: Path, with_id: bool) -> None:
    """orjson reads 1024 levels but writes 254: the deep record's alert is written trimmed,
    saying so, and the record after it is still evaluated."""
    deep = record(eventName="GetAuthorizationToken", requestParameters=_nested(300))
    if not with_id:
        del deep["eventID"]  # its alert id then comes from a hash of the whole record
    good = record(eventName="ReadFromRepository")
    path = tmp_path / "deep.jsonl"
    path.write_text(_lines(deep, good))
    alerts, stderr = _scan(rules, path)
    assert sorted(a["event"]["eventName"] for a in alerts) == [
        "GetAuthorizationToken", "ReadFromRepository"]
    assert "trimmed" in json.dumps(alerts)
    assert "trimmed" in stderr


@pytest.mark.parametrize("field,value,kind", [
    ("eventID", {"a": 1}, "an object"),
    ("eventID", [1, 2], "an array"),
    ("eventID", 7, "a number"),
    ("sharedEventID", ["x"], "an array"),
    ("eventTime", {"t": 1}, "an object"),
])
def test_scan_identity_field_not_a_string_is_malformed_naming_it(
        rules: Path, tmp_path: Path, field: str, value: Any, kind: str) -> None:
    """An eventID/sharedEventID/eventTime that is present and not a string (or null) makes
    the record malformed, counted and named; the records around it are evaluated."""
    odd = record(eventName="GetAuthorizationToken")
    odd[field] = value
    path = tmp_path / "odd.jsonl"
    path.write_text(_lines(record(eventName="ListPackages"), odd,
                           record(eventName="ReadFromRepository")))
    alerts, stderr = _scan(rules, path)
    assert [a["event"]["eventName"] for a in alerts] == ["ListPackages", "ReadFromRepository"]
    assert "1 malformed" in stderr
    assert f"odd.jsonl:2: {field} is {kind}" in stderr


def test_scan_null_identity_fields_are_absent(rules: Path, tmp_path: Path) -> None:
    """null is taken as absent (partial records write it), not as malformed."""
    path = tmp_path / "nulls.jsonl"
    path.write_text(_lines(record(eventID=None, sharedEventID=None, eventTime=None)))
    alerts, stderr = _scan(rules, path)
    assert len(alerts) == 1 and "0 malformed" in stderr


def test_outbox_encodes_an_alert_too_deep_for_orjson() -> None:
    """The outbox's encoder (the daemon's last resort) never raises on a deep record, so a
    restart does not crash on the same entry again; what it wrote reads back."""
    from engine.outputs.outbox import Entry, _decode, _encode

    entry = Entry("console", "a1", {"rule_id": "r", "event": _nested(300)})
    again = _decode(_encode(entry))
    assert again.alert_id == "a1" and "trimmed" in json.dumps(again.alert)


_PEAK = """\
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "engine", *sys.argv[1:]], capture_output=True)
print(done.stderr.decode()[:3000])
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _scan_peak_rss(*args: str) -> tuple[int, int, str]:
    """(exit code, peak RSS in KB, the end of stderr) of `trailguard ARGS` in a fresh process,
    so that no earlier child's peak is counted."""
    import subprocess
    import sys

    from tests.support.cli import REPO

    done = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True,
                          cwd=REPO, timeout=300, check=True)
    *text, last = done.stdout.decode().splitlines()
    code, peak = (int(n) for n in last.split())
    return code, peak, "\n".join(text)


def test_scan_gzip_of_empty_objects_stays_small_and_counts_every_line(
        rules: Path, tmp_path: Path) -> None:
    """A small gzip of 1.5M `{}` lines (the 96 KB, 33M-line bomb in small): every line is
    counted, the first are listed with path:LINE, and the peak RSS stays flat (it grew by
    ~200 bytes a line: all the malformed lines of a file were kept until it was decided)."""
    import gzip

    lines = 1_500_000
    path = tmp_path / "empties.jsonl.gz"
    path.write_bytes(gzip.compress(b"{}\n" * lines + _lines(record()).encode(), 9))
    code, peak_kb, stderr = _scan_peak_rss("scan", "--workers", "1", "-r", str(rules),
                                           str(path))
    assert code == 0, stderr
    assert f"{lines:,} malformed" in stderr and "1 alerts" in stderr
    assert "empties.jsonl.gz:1: not a CloudTrail record" in stderr
    assert peak_kb < 150_000, f"peak RSS {peak_kb} KB"


def test_decode_gzip_payload_inflating_past_the_cap_is_one_malformed() -> None:
    """A queue message's gzip data inflates to at most MAX_INFLATED bytes: a 70 KB gzip that
    would be 70 MB of text is one Malformed saying so, without holding the 70 MB."""
    import gzip

    from engine.inputs.decode import MAX_INFLATED, Malformed, decode

    bomb = gzip.compress(b" " * (MAX_INFLATED + 1), 9)
    assert len(bomb) < 100_000
    items = list(decode(bomb, "sqs:m1"))
    assert len(items) == 1 and isinstance(items[0], Malformed)
    assert items[0].origin == "sqs:m1" and "inflates past" in items[0].reason


REDOS_RULE = """\
id: hostile-user-agent
title: A user agent made of a's
severity: low
condition: >-
  eventSource == 'codeartifact.amazonaws.com'
  && matches(userAgent, '^(a+)+$')
"""


def test_scan_matches_is_linear_on_a_hostile_user_agent(tmp_path: Path) -> None:
    """`^(a+)+$` on 36 a's and a '!' backtracked 2^36 times in Python's re (the daemon
    stalled on one record); on RE2 the scan finishes, and `aaaa` still matches."""
    rule = tmp_path / "redos.yml"
    rule.write_text(REDOS_RULE)
    path = tmp_path / "ua.jsonl"
    path.write_text(_lines(record(userAgent="a" * 36 + "!"), record(userAgent="aaaa")))
    result = run_cli("scan", "--workers", "1", "-r", str(rule), str(path), timeout=60)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["event"]["userAgent"] for line in result.stdout.splitlines()] \
        == ["aaaa"]


@pytest.mark.parametrize("pattern,problem", [
    (r"(a)\1", "invalid escape sequence"),
    ("(?=codeartifact)", "invalid perl operator"),
    ("(?<!x)y", "invalid perl operator"),
])
def test_validate_pattern_re2_cannot_run_is_an_error_at_path_line(
        tmp_path: Path, pattern: str, problem: str) -> None:
    """A literal pattern RE2 refuses (backreference, lookaround) is a load error naming the
    rule's file and the condition's line, not a rule that silently never matches."""
    rule = tmp_path / "bad.yml"
    rule.write_text(f"id: bad\ntitle: t\nseverity: low\n\ncondition: matches(userAgent, "
                    f"'{pattern}')\n")
    result = run_cli("validate", "-r", str(rule))
    assert result.returncode != 0
    assert f"{rule}:5: condition: matches() cannot run pattern" in result.stderr
    assert problem in result.stderr


def _alias_bomb(indent: str) -> str:
    """Nine levels of nine aliases of the level before: 9**9 values from 9 lines."""
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for before, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{indent}{name}: &{name} [{','.join(['*' + before] * 9)}]")
    return "\n".join(lines) + "\n"


def test_validate_rule_with_alias_bomb_in_tests_is_refused_at_its_line(tmp_path: Path) -> None:
    """A 9x9 alias bomb in a rule's tests (past 60 s and 5 GB before) is a YAML error
    naming the file and the anchor's line, in well under the timeout."""
    rule = tmp_path / "bomb.yml"
    rule.write_text("id: bomb\ntitle: t\nseverity: low\ncondition: eventName == 'x'\ntests:\n"
                    "  - name: bomb\n    expect: false\n    event:\n      eventName: y\n"
                    + _alias_bomb("      "))
    for command in ("validate", "test"):
        result = run_cli(command, "-r", str(rule), timeout=60)
        assert result.returncode != 0
        assert f"{rule}:17: yaml: aliases expand this document" in result.stderr


def test_validate_config_with_alias_bomb_in_lists_is_refused_at_its_line(
        rules: Path, tmp_path: Path) -> None:
    """The same bomb in the config's lists: is refused with the config's PATH:LINE."""
    config = tmp_path / "trailguard.yml"
    config.write_text("lists:\n" + _alias_bomb("  ") + "  trusted_networks: *i\n")
    result = run_cli("validate", "-c", str(config), "-r", str(rules), timeout=60)
    assert result.returncode != 0
    assert f"{config}:10: " in result.stderr and "aliases expand" in result.stderr


def test_yaml_aliases_a_few_times_still_load(rules: Path, tmp_path: Path) -> None:
    """Reusing an event by alias, the way rule tests do, is still fine."""
    rule = tmp_path / "reuse.yml"
    rule.write_text(RULES + "tests:\n  - name: one\n    event: &e {eventSource: "
                    "codeartifact.amazonaws.com, eventName: ListPackages}\n    expect: true\n"
                    "  - name: two\n    events: [*e, *e]\n    expect_alerts: 2\n")
    result = run_cli("test", "-r", str(rule), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("layout", ["one-line", "pretty"])
def test_scan_record_too_large_to_parse_is_skipped_and_the_next_is_read(
        rules: Path, tmp_path: Path, layout: str) -> None:
    """In a `{"Records": [...]}` too large to read whole, an element over MAX_ELEMENT (here
    20 MB, with brackets, quotes and escapes in its strings) is one Malformed naming its
    place, and the record after it is still evaluated (it was lost before)."""
    from engine.inputs.largedoc import MAX_ELEMENT

    huge = record(eventName="GetAuthorizationToken",
                  requestParameters={"blob": '[{"\\' * (MAX_ELEMENT // 5) + "x",
                                     "more": [{"a": "]}"}] * 1000})
    records = [record(eventName="ListPackages"), huge, record(eventName="ReadFromRepository")]
    path = tmp_path / "big.json"
    indent = 1 if layout == "pretty" else None
    path.write_text(json.dumps({"Records": records}, indent=indent))
    assert path.stat().st_size > MAX_ELEMENT
    alerts, stderr = _scan(rules, path)
    assert [a["event"]["eventName"] for a in alerts] == ["ListPackages", "ReadFromRepository"]
    assert "1 malformed" in stderr and "big.json#Records[1]: not a JSON value within" in stderr


# ---- fuzz: whatever comes in, items come out -------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402 (the fuzz section's own)
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["aws:sqs", "aws:sns", "Notification", "codeartifact.amazonaws.com",
                       "AWS API Call via CloudTrail", "DATA_MESSAGE", "s3:TestEvent"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["Records", "eventID", "eventSource", "eventName", "eventTime",
                         "sharedEventID", "eventVersion", "eventType", "body", "Sns",
                         "Message", "Type", "EventSource", "detail", "detail-type", "s3",
                         "awslogs", "data", "messageType", "logEvents", "Events",
                         "CloudTrailEvent", "s3ObjectKey", "s3Bucket", "Event", "x"]),
        inner, max_size=5),
    max_leaves=30,
)


def _embedded(value: Any) -> Any:
    """`value` with some of its objects also given as JSON strings (envelopes carry those)."""
    if isinstance(value, dict):
        return {k: (json.dumps(v) if k in ("body", "Message", "CloudTrailEvent") else
                    _embedded(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_embedded(v) for v in value]
    return value


def _assert_items(items: list[Any]) -> None:
    from engine.inputs.decode import Malformed, ObjectRef, Skipped

    for item in items:
        assert type(item) in (dict, Malformed, Skipped, ObjectRef), item
        if type(item) is dict:
            for name in ("eventID", "sharedEventID", "eventTime"):
                assert type(item.get(name)) in (str, type(None))


_FUZZ = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_decode_any_bytes_gives_items_never_an_exception(data: bytes) -> None:
    """Any bytes, gzipped or not, decode to items; no exception escapes."""
    import gzip

    from engine.inputs.decode import decode

    _assert_items(list(decode(data, "fuzz")))
    _assert_items(list(decode(gzip.compress(data), "fuzz")))


@_FUZZ
@given(_JSON)
def test_fuzz_decode_any_json_value_gives_items_never_an_exception(value: Any) -> None:
    """Any JSON value, with envelope keys and embedded documents, decodes to records or
    counted items, read whole, as JSON lines, or an element at a time (largedoc)."""
    import io

    from engine.inputs import largedoc
    from engine.inputs.decode import decode
    from engine.inputs.files import iter_object

    text = json.dumps(_embedded(value)).encode()
    _assert_items(list(decode(text, "fuzz")))
    _assert_items(list(iter_object(io.BytesIO(text + b"\n" + text), "fuzz", None)))
    _assert_items(list(largedoc.iter_document(iter([text[:7], text[7:]]), "fuzz")))


STATEFUL_RULES = """\
id: dedup-by-parameters
title: t
severity: low
condition: eventSource == 'codeartifact.amazonaws.com'
group_by: requestParameters
dedup: 1h
---
id: first-parameters
title: t
severity: low
condition: eventSource == 'codeartifact.amazonaws.com'
first_seen: {value: requestParameters, remember: 1d, learn: 1s}
"""


def test_scan_deep_record_in_stateful_rules_and_sqlite_state(tmp_path: Path) -> None:
    """A 300-deep value as a group key, a first_seen value and in SQLite state is encoded
    trimmed: the scan ends and the next record alerts too."""
    rules = tmp_path / "stateful.yml"
    rules.write_text(STATEFUL_RULES)
    path = tmp_path / "deep.jsonl"
    path.write_text(_lines(record(requestParameters=_nested(300)),
                           record(eventName="ReadFromRepository")))
    state = f"sqlite:///{tmp_path / 'state.db'}"
    alerts, _ = _scan(rules, path, "--state", state)
    assert sorted(a["rule_id"] for a in alerts) == ["dedup-by-parameters"] * 2


@pytest.mark.parametrize("text,pattern,expected", [
    ("aws-cli/2.15.0", r"aws-cli/2\.", True), ("abc", "^b", False), ("café", "é$", True),
    ("X", "(?i)x", True), ("a\nb", "^b", False), ("\ud800a", "a", True), ("ab", "[", False),
    ("a" * 36 + "!", "^(a+)+$", False),
])
def test_matches_on_re2_keeps_re_search_semantics(text: str, pattern: str,
                                                  expected: bool) -> None:
    """re.search's answers, a lone surrogate (the large-document reader lets them in) is
    no exception, and an invalid computed pattern is false."""
    from engine.conditions.functions import TrailguardFunctions

    assert TrailguardFunctions()._func_matches(text, pattern) is expected
