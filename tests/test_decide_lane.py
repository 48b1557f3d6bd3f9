"""The threshold lane decides exactly as the general path: the same alerts.

Hypothesis draws timelines (principals, calls delivered as one to three copies) and arrival
delays up to twice the lateness, so some records arrive late and force lane groups over to
the general path mid-stream. Each stream is scanned with the lane and without it (every
match through the reorder heap and the store), over a memory store and over an SQLite store
in two runs, and every alert must be the same (its order may differ: a lane group that
completes a run may write its alert one release later).
"""

from __future__ import annotations

import copy
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.decide.decider import new_decider
from engine.decide.stubs import Resolver
from engine.inputs import files as inputs
from engine.inputs.files import Refs, iter_paths
from engine.model import Alert, Rule
from engine.scan.pipeline import ScanStats, run_scan, scan_items
from engine.state import open_store
from tests.support.state import copies, evaluator, make_rule, read, view

LATENESS = 600.0
RULES = [
    make_rule("burst", threshold=(3, "10m")),
    make_rule("pair", threshold=(2, "2m")),
    make_rule("burst-quiet", threshold=(2, "5m"), dedup="30m"),
    make_rule("wide", threshold=(4, "1h"), group_by=()),
    make_rule("plain"),
    make_rule("new-ip", first_seen=("sourceIPAddress", "90d", "")),
]
LANE_ONLY = RULES[:4]  # thresholds only: each of their matches waits on the lane

calls = st.tuples(
    st.integers(0, 3 * 3600),
    st.sampled_from(["alice", "bob", "carol"]),
    st.sampled_from(["192.0.2.1", "198.51.100.7"]),
    st.integers(1, 3),
)


def _delays(data: st.DataObject, count: int, most: float) -> list[int]:
    """How late each drawn call arrives, in seconds (up to `most`)."""
    return data.draw(st.lists(st.integers(0, int(most)), min_size=count, max_size=count))


def _arrivals(drawn: list[tuple[int, str, str, int]], delays: list[int]) -> list[dict[str, Any]]:
    records: list[tuple[float, int, dict[str, Any]]] = []
    for n, ((seconds, who, ip, count), delay) in enumerate(zip(drawn, delays, strict=True)):
        made = [read(seconds / 60, who, ip)] if count == 1 else copies(
            seconds / 60, who, accounts=["111111111111", "222222222222",
                                         "333333333333"][:count], ip=ip)
        records.extend((seconds + delay, n, record) for record in made)
    return [record for _, _, record in sorted(records, key=lambda item: item[:2])]


def _scan(records: list[dict[str, Any]], lane: bool, url: str = "memory://",
          rules: list[Rule] = RULES) -> list[Alert]:
    engine = evaluator(rules)
    alerts: list[Alert] = []
    with open_store(url) as store:
        run_scan(copy.deepcopy(records), engine, new_decider(engine, LATENESS, store,
                                                             lane=lane), alerts.append)
    return alerts


def _scan_files(records: list[dict[str, Any]], root: Path, rules: list[Rule],
                reread: int = inputs.REREAD_BYTES) -> tuple[list[Alert], Resolver]:
    """The records written to files (a gzipped log file, then JSON lines, in turns) and
    scanned as `trailguard scan` does: lane matches held as stubs, made whole again when
    needed; from files up to `reread` bytes by reading them again, else from their text."""
    for n, start in enumerate(range(0, len(records), 7)):
        part = records[start:start + 7]
        if n % 2:
            (root / f"{n:03d}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in part))
        else:
            (root / f"{n:03d}.json.gz").write_bytes(gzip.compress(orjson.dumps({"Records": part})))
    engine = evaluator(rules)
    decider = new_decider(engine, LATENESS, open_store("memory://"))
    resolver = decider.resolve = Resolver()
    alerts: list[Alert] = []
    refs: Refs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inputs, "REREAD_BYTES", reread)
        run_scan(iter_paths([str(root)], refs=refs), engine, decider, alerts.append, refs=refs)
    return alerts, resolver


def _views(alerts: list[Alert]) -> list[tuple[Any, ...]]:
    return sorted(view(alert) for alert in alerts)  # a lane group may fire a release later


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls, min_size=1, max_size=50), st.data())
def test_lane_and_general_path_give_the_same_alerts(
        drawn: list[tuple[int, str, str, int]], data: st.DataObject) -> None:
    records = _arrivals(drawn, _delays(data, len(drawn), 2 * LATENESS))
    assert _views(_scan(records, lane=True)) == _views(_scan(records, lane=False))


def test_lane_late_match_is_decided_after_its_groups_older_waiting_matches() -> None:
    """A match later than the lateness, for a lane group whose older matches are still
    waiting: they are counted first, as on the general path (the threshold is reached by
    the 4th record in time, not by the late one)."""
    drawn = [(0, "alice", "192.0.2.1", 1)] * 3 + [
        (1, "alice", "192.0.2.1", 1), (601, "alice", "192.0.2.1", 1),
        (701, "alice", "192.0.2.1", 1), (100, "alice", "192.0.2.1", 1)]
    records = _arrivals(drawn, [0, 0, 0, 0, 0, 0, 601])
    assert _views(_scan(records, lane=True)) == _views(_scan(records, lane=False))


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(calls, min_size=1, max_size=50), st.data())
def test_lane_stubs_read_back_give_the_same_alerts(
        tmp_path_factory: Any, drawn: list[tuple[int, str, str, int]],
        data: st.DataObject) -> None:
    """From files, the lane holds stubs and reads whole records back for the general path:
    every alert, its event included, is what deciding the whole records gives."""
    records = _arrivals(drawn, _delays(data, len(drawn), 2 * LATENESS))
    for rules, reread in ((RULES, 1 << 20), (LANE_ONLY, 1 << 20), (LANE_ONLY, 0)):
        # LANE_ONLY: every match is held as a stub; reread=0: each stub holds its text
        root = Path(tmp_path_factory.mktemp("stubs"))
        alerts, resolver = _scan_files(records, root, rules, reread)
        # the files are read in eventTime order (engine.inputs.walk, engine.inputs.order): compare
        # with whole records in that order
        read = [item for item in iter_paths([str(root)]) if type(item) is dict]
        assert sorted(r["eventID"] for r in read) == sorted(r["eventID"] for r in records)
        assert _views(alerts) == _views(_scan(read, lane=False, rules=rules))
        assert resolver.missing == 0


def test_lane_stubs_are_read_back_when_a_run_completes(tmp_path: Path) -> None:
    """The burst's alert carries the whole record, read back from its file."""
    records = [read(minute, "alice") for minute in (0, 1, 2, 30)]
    alerts, resolver = _scan_files(records, tmp_path, LANE_ONLY)
    burst = [a for a in alerts if a.rule.id == "burst"]
    assert len(burst) == 1 and resolver.files_read >= 1
    assert burst[0].event == records[2]  # the match completing the run, whole: not a stub
    assert type(burst[0].event) is dict
    (tmp_path / "text").mkdir()
    alerts, resolver = _scan_files(records, tmp_path / "text", LANE_ONLY, reread=0)
    assert [a.event for a in alerts if a.rule.id == "burst"] == [records[2]]
    assert resolver.files_read == 0


def test_lane_stubs_that_only_fold_are_not_read_back(tmp_path: Path) -> None:
    """After a run completes, its group's later matches fold into the alert (count, ids,
    times) and need no record: only the match that opens the window is read back, so files
    holding nothing but folds are not read again. The alert is what whole records give."""
    records = [read(minute / 4, "alice") for minute in range(42)]  # 6 files of 7, 10 minutes
    rules = [make_rule("burst", threshold=(3, "10m"), dedup="1h")]
    alerts, resolver = _scan_files(records, tmp_path, rules)
    assert [(a.event, a.event_count, len(a.event_ids)) for a in alerts] == [
        (records[2], 42, 42)]
    assert _views(alerts) == _views(_scan(records, lane=False, rules=rules))
    assert resolver.files_read == 1  # the opening match's file: not the five of folds only


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(calls, min_size=2, max_size=40), st.data())
def test_lane_leaves_a_persistent_store_as_the_general_path_does(
        tmp_path_factory: Any, drawn: list[tuple[int, str, str, int]],
        data: st.DataObject) -> None:
    """Two runs on one SQLite file: the second continues what the first left, either way."""
    records = _arrivals(drawn, _delays(data, len(drawn), LATENESS))
    half = len(records) // 2
    results = []
    for lane in (True, False):
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('lane')) / 'state.db'}"
        first = _scan(records[:half], lane, url)
        second = _scan(records[half:], lane, url)
        results.append((_views(first), _views(second)))
    assert results[0] == results[1]


def test_lane_counts_a_burst_like_the_general_path() -> None:
    """A plain case written out: three reads in ten minutes by one principal, twice."""
    records = [read(minute, "alice") for minute in (0, 1, 2, 30, 31, 32, 33)]
    lane, general = _scan(records, lane=True), _scan(records, lane=False)
    assert [a.rule.id for a in lane if a.rule.id == "burst"] == ["burst", "burst"]
    assert _views(lane) == _views(general)


def test_a_lane_group_with_copies_keeps_only_the_copies_of_what_it_counts() -> None:
    """Twelve hours of one principal's calls, each delivered as three copies, never enough
    for a run: the copies kept for counted calls stay as few as the counted calls."""
    rules = [make_rule("burst", threshold=(50, "10m"))]
    engine = evaluator(rules)
    decider = new_decider(engine, LATENESS, open_store("memory://"))
    records = [record for minute in range(0, 12 * 60, 2) for record in copies(minute, "alice")]
    scan_items(records, engine, decider, decider.store, lambda alert: None, ScanStats(), None)
    # the scan is not over: the group is still on the lane
    group = next(iter(decider.lane.groups.values()))
    assert len(group.copies or {}) <= len(group.pending)
    assert len(group.pending) <= 6  # a ten-minute window of calls two minutes apart
