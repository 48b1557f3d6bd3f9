"""A finite input is decided in eventTime order, whatever order its files are walked or named
in and its records written in (SPEC §7): an org trail's archive scanned as a directory, as
shuffled file arguments, and as one newest-first lookup-events document gives the alerts of
the same records as time-sorted JSON lines, with no late record."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.archive import RULES, all_records, lookup_events, timeline, write_archive
from tests.support.cli import run_cli


def _signature(stdout: str) -> list[tuple[Any, ...]]:
    alerts = [json.loads(line) for line in stdout.splitlines()]
    return sorted((a["alert_id"], a["rule_id"], a["event_count"], tuple(a["event_ids"]),
                   a["first_event_time"], a["last_event_time"],
                   json.dumps(a["event"], sort_keys=True)) for a in alerts)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("order")
    made = timeline()
    files = write_archive(root / "archive", made)
    records = all_records(made)
    (root / "sorted.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    (root / "lookup.json").write_bytes(lookup_events(records))
    write_archive(root / "hourly", made, minutes=60)
    (root / "rules.yml").write_text(RULES)
    reference = _scan(root, str(root / "sorted.jsonl"))
    return {"root": root, "files": [str(f) for f in files], "reference": reference}


def _scan(root: Path, *paths: str, workers: str = "1") -> list[tuple[Any, ...]]:
    done = run_cli("scan", "--workers", workers, "-r", str(root / "rules.yml"), *paths,
                   timeout=120)
    assert done.returncode == 0, done.stderr
    assert "late:" not in done.stderr, done.stderr  # late: 0
    return _signature(done.stdout)


def test_scan_order_reference_alerts_every_rule(archive: dict[str, Any]) -> None:
    """The time-sorted records alert for all three rules: 6 dedup windows for each of five
    principals, the four bursts, and both addresses of each of three publishers."""
    rules = [alert[1] for alert in archive["reference"]]
    assert rules.count("read-burst") == 4
    assert rules.count("publisher-new-address") == 6
    assert rules.count("reads-deduped") >= 5 * 6


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scan_order_directory_gives_the_time_ordered_alerts(archive: dict[str, Any],
                                                            workers: str) -> None:
    """The archive walked as a directory (one account-region at a time on disk)."""
    root = archive["root"]
    assert _scan(root, str(root / "archive"), workers=workers) == archive["reference"]


def test_scan_order_hourly_files_are_merged_record_by_record(archive: dict[str, Any]) -> None:
    """Log files of an hour each (an export): read one file after another, a file's first
    records would trail the previous file's newest by up to an hour; the deciding process
    merges the open files' records (engine.decide.merge)."""
    root = archive["root"]
    assert _scan(root, str(root / "hourly"), workers="2") == archive["reference"]


def test_scan_order_shuffled_file_arguments_give_the_time_ordered_alerts(
        archive: dict[str, Any]) -> None:
    files = list(archive["files"])
    random.Random(3).shuffle(files)
    assert _scan(archive["root"], *files, workers="2") == archive["reference"]


def test_scan_order_newest_first_lookup_events_gives_the_time_ordered_alerts(
        archive: dict[str, Any]) -> None:
    root = archive["root"]
    assert _scan(root, str(root / "lookup.json")) == archive["reference"]


@settings(max_examples=12, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False), st.booleans())
def test_scan_order_any_file_order_gives_the_same_alerts(
        archive: dict[str, Any], rng: random.Random, directories: bool) -> None:
    """Any permutation of the files (or of the account directories) named on the command
    line, scanned in process through iter_paths: the alerts of the sorted records."""
    from engine.conditions.evaluator import Evaluator
    from engine.conditions.functions import TrailguardFunctions
    from engine.decide.decider import new_decider
    from engine.inputs.files import iter_paths
    from engine.rules import load_rules
    from engine.scan.pipeline import run_scan
    from engine.state import open_store

    root = archive["root"]
    paths = ([str(p) for p in (root / "archive" / "AWSLogs").iterdir()] if directories
             else list(archive["files"]))
    rng.shuffle(paths)
    results = []
    for inputs in (paths, [str(root / "sorted.jsonl")]):
        functions = TrailguardFunctions()
        evaluator = Evaluator(load_rules([str(root / "rules.yml")], functions, []).rules,
                              functions)
        decider = new_decider(evaluator, 900.0, open_store("memory://"))
        alerts: list[Any] = []
        run_scan(iter_paths(inputs), evaluator, decider, alerts.append)
        assert decider.late == 0
        results.append(sorted((a.alert_id, a.event_count, tuple(a.event_ids)) for a in alerts))
    assert results[0] == results[1] and results[0]


def test_scan_order_symlink_loop_is_reported_and_the_rest_scanned(
        archive: dict[str, Any], tmp_path: Path) -> None:
    """`x -> y -> x` inside a scanned directory: is_dir() raises ELOOP. The loop is counted
    as unreadable, with its path, and every file around it is still scanned."""
    root = archive["root"]
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "x").symlink_to("y")
    (logs / "y").symlink_to("x")
    (logs / "sorted.jsonl").symlink_to(root / "sorted.jsonl")
    done = run_cli("scan", "--workers", "1", "-r", str(root / "rules.yml"), str(logs))
    assert done.returncode == 1, done.stderr  # an input unreadable
    assert f"malformed: {logs / 'x'}: OSError: Too many levels of symbolic links" in done.stderr
    assert "2 malformed" in done.stderr and "582 events" in done.stderr
    assert _signature(done.stdout) == archive["reference"]


def test_order_external_sort_in_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large file out of order (here: over a lowered IN_MEMORY_BYTES) is sorted through
    runs in temporary files: every record, in eventTime order, ties in file order."""
    from engine.inputs import order
    from engine.inputs.decode import Malformed
    from engine.inputs.files import iter_paths
    from tests.support.state import read

    records = [read(minute) for minute in (5, 1, 9, 1, 0, 7, 3, 3, 8, 2, 6, 4, 0)]
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"{broken\n")
    monkeypatch.setattr(order, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(order, "RUN_RECORDS", 4)
    spilled = []
    real = order._spill
    monkeypatch.setattr(order, "_spill", lambda run: spilled.append(len(run)) or real(run))
    got = list(iter_paths([str(path)]))
    assert spilled == [4, 4, 4, 1]
    assert isinstance(got[-1], Malformed) or isinstance(got[0], Malformed)
    expected = sorted(records, key=lambda r: r["eventTime"])  # stable: file order in ties
    assert [r["eventID"] for r in got if type(r) is dict] == [r["eventID"] for r in expected]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in expected))  # in order: streamed
    spilled.clear()
    assert [r["eventID"] for r in iter_paths([str(path)])] == [r["eventID"] for r in expected]
    assert spilled == []


def _peak_rss_kb(*args: str) -> int:
    import subprocess
    import sys

    measure = ("import resource, subprocess, sys; "
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "engine", *args],
                          capture_output=True, text=True, check=True, timeout=300)
    return int(done.stdout)


def test_scan_order_memory_stays_flat_with_the_number_of_files(tmp_path: Path) -> None:
    """1,000 and 12,000 small log files over four account-regions: peak RSS grows by less
    than 4 MB (the whole list of paths, and Path.rglob for the progress bar, took +7 MB)."""
    from tests.support.archive import write_many

    peaks = []
    for count in (1_000, 12_000):
        write_many(tmp_path / str(count), count)
        peaks.append(_peak_rss_kb("scan", "--workers", "1", str(tmp_path / str(count))))
    assert peaks[1] - peaks[0] < 4 * 1024, peaks


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(st.lists(st.lists(st.integers(0, 500), max_size=12), min_size=1, max_size=12),
       st.sampled_from([100_000, 5]))
def test_merge_releases_every_item_once_in_order(files: list[list[int]], held: int) -> None:
    """Files in order of their first eventTime, each sorted: the merge hands every item on
    once, as one sorted stream with the merged watermark before each; over MAX_HELD items it
    releases early (every item still once)."""
    from engine.decide import merge

    out: list[tuple[Any, ...]] = []
    watermarks: list[float] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(merge, "MAX_HELD", held)
        merger = merge.Merge(lambda items, befores, hits: (out.extend(items),
                                                           watermarks.extend(befores)))
        base = 0
        for n, times in enumerate(files):
            epochs = sorted(base + t for t in times)
            base = epochs[0] if epochs else base
            merger.add([(f"{n}-{k}", float(e), float("-inf")) for k, e in enumerate(epochs)],
                       float("-inf"), f"file-{n}.json")
        merger.close()
    ids = [item[0] for item in out]
    assert sorted(ids) == sorted(f"{n}-{k}" for n, t in enumerate(files) for k in range(len(t)))
    if held > 1_000:
        assert [item[1] for item in out] == sorted(item[1] for item in out)
        assert all(before <= item[1] for item, before in zip(out, watermarks, strict=True))
        assert watermarks == [float("-inf"), *(item[1] for item in out)][:len(out)]


def test_walk_reads_a_file_named_alone_without_reading_it_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One file named alone has nothing to be ordered against: its time key (a pass over
    its whole text) is not computed; two named files still are, to order them."""
    from engine.inputs import walk

    first, second = tmp_path / "b.jsonl", tmp_path / "a.jsonl"
    first.write_text('{"eventTime": "2024-03-01T10:00:00Z"}\n')
    second.write_text('{"eventTime": "2024-03-01T11:00:00Z"}\n')
    reads: list[str] = []
    original = walk.earliest_event_time

    def counted(path: str) -> float:
        reads.append(path)
        return original(path)

    monkeypatch.setattr(walk, "earliest_event_time", counted)
    assert list(walk.walk([str(first)])) == [str(first)] and reads == []
    assert list(walk.walk([str(second), str(first)])) == [str(first), str(second)]
    assert sorted(reads) == sorted([str(first), str(second)])
