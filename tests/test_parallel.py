"""`scan --workers N` gives exactly the alerts of one process, stateful rules included."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import REPO, run_cli
from tests.support.records import record
from tests.support.rulesets import DRIVER_RULES as RULES


def _signature(stdout: str) -> list[tuple]:
    alerts = [json.loads(line) for line in stdout.splitlines()]
    return sorted((a["alert_id"], a["rule_id"], a["event_count"], tuple(a["event_ids"]),
                   tuple(sorted(a["account_ids"])), json.dumps(a["event"], sort_keys=True),
                   a["summary"]) for a in alerts)


def _write_stream(root: Path) -> None:
    """Twelve log files over an hour: bursts spread across files, copies and repeats too."""
    arns = [f"arn:aws:sts::123456789012:assumed-role/dev/user{n}" for n in range(4)]
    repeated = record(eventName="PublishPackageVersion", eventTime="2024-03-01T10:03:00Z")
    for n in range(12):
        minute = n * 5
        records = [record(eventTime=f"2024-03-01T10:{minute + k:02d}:30Z",
                          userIdentity__arn=arns[(n + k) % 4]) for k in range(3)]
        records += [record(eventName="ReadFromRepository",
                           eventTime=f"2024-03-01T10:{minute:02d}:10Z",
                           userIdentity__arn=arns[k]) for k in range(4)]
        records += [record(eventName="PublishPackageVersion", sharedEventID=f"call-{n // 2}",
                           recipientAccountId=f"11111111111{n % 2}",
                           eventTime=f"2024-03-01T10:{minute:02d}:40Z")]
        if n in (1, 7):
            records.append(repeated)
        path = root / f"2024/03/01/log-{n:02d}.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))


@pytest.mark.parametrize("workers", ["2", "3"])
def test_workers_give_the_alerts_of_one_process(tmp_path: Path, workers: str) -> None:
    """Thresholds across files, dedup, copies in two files, repeats: same alerts."""
    (tmp_path / "rules.yml").write_text(RULES)
    _write_stream(tmp_path / "logs")
    one = run_cli("scan", "--workers", "1", "-r", str(tmp_path / "rules.yml"),
                  str(tmp_path / "logs"))
    many = run_cli("scan", "--workers", workers, "-r", str(tmp_path / "rules.yml"),
                   str(tmp_path / "logs"))
    assert one.returncode == 0 and many.returncode == 0, many.stderr
    assert _signature(one.stdout) == _signature(many.stdout)
    rules = {a[1] for a in _signature(one.stdout)}
    assert rules == {"publish", "token-burst", "reads-deduped"}


def test_workers_with_the_pack_on_examples_and_garbage() -> None:
    """The shipped pack over the examples and the garbage fixtures: same alerts, same
    malformed reports, exit 1 (the garbage holds truncated gzip files: input not fully
    readable, issue 15 §11)."""
    paths = [str(REPO / "examples" / "events"), str(REPO / "tests/fixtures/envelopes/garbage"),
             str(REPO / "tests/fixtures/envelopes/same-three")]
    one = run_cli("scan", "--workers", "1", "-c", "examples/trailguard.yml", *paths)
    two = run_cli("scan", "--workers", "2", "-c", "examples/trailguard.yml", *paths)
    assert one.returncode == two.returncode == 1, two.stderr
    assert _signature(one.stdout) == _signature(two.stdout)
    assert _signature(one.stdout)
    malformed = [line for line in one.stderr.splitlines() if "malformed:" in line]
    assert malformed == [line for line in two.stderr.splitlines() if "malformed:" in line]


def test_workers_walk_directories_as_one_process_does(tmp_path: Path) -> None:
    """A symlink loop, a pipe and a dangling symlink met on the walk: skipped or reported,
    as one process does. The walk of --workers once followed the loop to a traceback, and
    would have handed the pipe to a worker to block on."""
    (tmp_path / "rules.yml").write_text(RULES)
    _write_stream(tmp_path / "logs")
    (tmp_path / "logs/2024/03/01/up").symlink_to("../..")
    os.mkfifo(tmp_path / "logs/2024/03/01/feed")
    (tmp_path / "logs/2024/03/01/gone.json").symlink_to(tmp_path / "nowhere")
    runs = [run_cli("scan", "--workers", workers, "-r", str(tmp_path / "rules.yml"),
                    str(tmp_path / "logs"), timeout=60) for workers in ("1", "2")]
    assert runs[0].returncode == runs[1].returncode == 1, runs[1].stderr  # unreadable input
    assert _signature(runs[0].stdout) == _signature(runs[1].stdout) and runs[0].stdout
    summaries = [[line for line in run.stderr.splitlines() if "events in" not in line]
                 for run in runs]
    assert summaries[0] == summaries[1]
    assert "1 malformed, 1 skipped" in runs[1].stderr and "gone.json" in runs[1].stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_files_are_decided_a_chunk_at_a_time_with_the_alerts_of_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    """A process hands over CHUNK_RECORDS items of a file at a time (memory stays flat
    whatever a file's size): thresholds across chunks and files, repeats (of records that
    matched and that did not), malformed lines and every count are still those of one
    process reading the files."""
    from engine.decide.decider import new_decider
    from engine.inputs.files import iter_paths
    from engine.scan import filescan, parallel
    from engine.scan.pipeline import run_scan
    from engine.state import open_store
    from tests.support.state import at, evaluator, make_rule, read, views

    rules = [make_rule("burst", threshold=(3, "10m")), make_rule("plain")]
    files = []
    for n in range(6):  # bursts across files; files 1 and 4 are long, with repeats
        path = tmp_path / f"{n}.jsonl"
        lines = [read(n * 4 + k / 2, who) for k in range(3) for who in ("alice", "bob")]
        lines += [read(n * 4 + 2, "carol")] * (8 if n in (1, 4) else 1)
        # Repeats, counted too; dated inside the stream: files are read in eventTime order,
        # and a repeat days older than the stream is past the eventID horizon (S3).
        lines += [record(eventName="ListPackages", eventTime=at(n * 4),
                         eventID="matches-nothing")] * (n % 2 + 1)
        path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in lines)
                         + (b"{broken\n" if n == 4 else b""))
        files.append(str(path))
    monkeypatch.setattr(filescan, "CHUNK_RECORDS", 3)
    decided = []
    real = parallel._decide_file
    monkeypatch.setattr(parallel, "_decide_file", lambda result, *rest: (
        decided.append(result.path), real(result, *rest)))
    results = []
    for parallel_path in (False, True):
        engine = evaluator(rules)
        decider = new_decider(engine, 900.0, open_store("memory://"))
        alerts: list = []
        if parallel_path:
            stats = parallel.parallel_scan(files, workers, engine, decider, decider.store,
                                           alerts.append)
        else:
            stats = run_scan(iter_paths(files), engine, decider, alerts.append)
        counts = (stats.events, stats.duplicates, stats.malformed, dict(stats.alerts),
                  dict(engine.matches))
        results.append((views(alerts), counts))
    assert results[0] == results[1] and results[0][0]
    assert results[0][1][1] == 14 + 8  # repeats: 7 + 7 of carol's, 8 of matches-nothing
    assert decided.count(files[1]) == 6 and len(decided) > len(files)  # 16 items, 6 chunks


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_summary_counts_late_matches(tmp_path: Path, workers: str) -> None:
    """A token request two hours behind the newest record is decided on arrival, and said.
    Files are read in eventTime order, their records merged (engine.inputs.walk,
    engine.decide.merge): the late one is in a log file that begins two hours before its name's
    delivery minute, read after files whose records were released."""
    (tmp_path / "rules.yml").write_text(RULES)
    files = {"1200": ["11:50", "12:00"], "1230": ["12:20"], "1235": ["10:00", "12:30"]}
    for stamp, times in files.items():
        records = [record(eventTime=f"2024-03-01T{t}:00Z") for t in times]
        (tmp_path / f"111111111111_CloudTrail_us-east-1_20240301T{stamp}Z_x.json").write_text(
            json.dumps({"Records": records}))
    done = run_cli("scan", "--workers", workers, "-r", str(tmp_path / "rules.yml"),
                   str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "late: 1 matches arrived more than 900s of event time behind" in done.stderr


def _failing_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: Any) -> None:
    """parallel_scan over eight files where a worker calls `fail()` on each file it takes;
    the parent scans slowly (50 ms a file), so the worker takes some."""
    from engine.decide.decider import new_decider
    from engine.scan import filescan, parallel
    from engine.state import open_store
    from tests.support.state import evaluator, make_rule, read

    files = []
    for n in range(8):
        path = tmp_path / f"{n}.jsonl"
        path.write_text(json.dumps(read(n, "alice")) + "\n")
        files.append(str(path))
    parent, real = os.getpid(), filescan._scan_records

    def scan_records(*args: Any) -> tuple[float, bool]:
        if os.getpid() != parent:
            fail()
        time.sleep(0.05)
        return real(*args)

    monkeypatch.setattr(filescan, "_scan_records", scan_records)
    engine = evaluator([make_rule("plain")])
    decider = new_decider(engine, 900.0, open_store("memory://"))
    parallel.parallel_scan(files, 2, engine, decider, decider.store, lambda alert: None)


def _no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_a_failing_worker_stops_the_scan_with_its_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise ValueError("cannot scan this")

    with pytest.raises(RuntimeError) as raised:
        _failing_scan(tmp_path, monkeypatch, fail)
    assert "a --workers process failed on" in str(raised.value)
    assert "Traceback" in str(raised.value) and "ValueError: cannot scan" in str(raised.value)
    assert _no_child_left()


def test_a_worker_that_dies_stops_the_scan_instead_of_waiting_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OOM kill, say: the parent sees the worker's pipe close and says so."""
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(RuntimeError, match="exited before it sent its result for"):
        _failing_scan(tmp_path, monkeypatch, die)
    assert _no_child_left()
