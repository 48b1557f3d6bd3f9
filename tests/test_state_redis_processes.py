"""Two real processes on one Redis evaluate the same threshold scenario at once: one alert.

This is SPEC §6's "several daemons share one Redis store: together they behave like one":
every record reaches both processes (as when two daemons read overlapping inputs); each
eventID is claimed by exactly one of them; the threshold is counted across both; and exactly
one of them raises the alert, whose final count is every matching call once.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import REPO
from tests.support.redis import empty_redis
from tests.support.state import make_rule, read

RULE_FILE = REPO / "rules" / "codeartifact" / "codeartifact-access-denied-burst.yml"
DENIED = {"errorCode": "AccessDenied",
          "errorMessage": "User is not authorized to perform: codeartifact:ReadFromRepository"}


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from empty_redis()


def _scenario(crowd: int = 10) -> list[dict[str, Any]]:
    """300 denied reads by one principal in five minutes, among `crowd` times as many reads."""
    records = []
    for n in range(300):
        records.append(read(n / 60, who="mallory", **DENIED))
        records.extend(read(n / 60, who=f"dev{n % 7}-{k}") for k in range(crowd))
    return records


def _live_worker(url: str, records: list[dict[str, Any]], barrier: Any, out: Any) -> None:
    import engine.scan.pipeline
    from engine.decide.decider import new_decider
    from engine.scan.pipeline import run_scan
    from engine.state import open_store
    from tests.support.state import evaluator

    engine.scan.pipeline.BATCH = 4  # small batches: the two processes interleave record by record
    rule = make_rule("denied", threshold=(20, "10m"), condition=(
        "eventSource == 'codeartifact.amazonaws.com' && errorCode == 'AccessDenied'"))
    rules = evaluator([rule])
    alerts: list[dict[str, Any]] = []
    with open_store(url) as store:
        decider = new_decider(rules, 900.0, store, mode="live")
        barrier.wait()
        stats = run_scan(records, rules, decider, lambda a: alerts.append(a.to_dict()))
    out.put((stats.events, alerts))


def test_two_live_processes_on_one_redis_raise_one_threshold_alert(redis_url: str) -> None:
    """Two daemons, one Redis, the same 3,300 records: one alert, counted to 300 in updates."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    records = _scenario()
    workers = [context.Process(target=_live_worker, args=(redis_url, records, barrier, out))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    (events_one, alerts_one), (events_two, alerts_two) = out.get(timeout=60), out.get(timeout=60)
    for worker in workers:
        worker.join(10)
    assert events_one > 0 and events_two > 0  # both evaluated, at the same time
    assert events_one + events_two == len(records)
    alerts = alerts_one + alerts_two
    opened = [a for a in alerts if not a.get("update")]
    assert len(opened) == 1, opened
    assert opened[0]["event_count"] == 20
    assert {a["alert_id"] for a in alerts} == {opened[0]["alert_id"]}
    assert max(a["event_count"] for a in alerts) == 300


def test_two_scan_commands_on_one_redis_raise_one_threshold_alert(
        redis_url: str, tmp_path: Path) -> None:
    """`trailguard scan --state redis://` twice at once over one file: one alert, count 300."""
    source = tmp_path / "denied.json"
    records = _scenario(crowd=60)  # long enough (18,300 records) for the runs to overlap
    source.write_bytes(orjson.dumps({"Records": records}))
    command = [sys.executable, "-m", "engine", "scan", "-r", str(RULE_FILE),
               "--state", redis_url, str(source)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=REPO) for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in running]
    assert [process.returncode for process in running] == [0, 0], outputs
    lines = [json.loads(line) for stdout, _ in outputs for line in stdout.splitlines()]
    opened = [a for a in lines if not a.get("update")]
    assert len(opened) == 1, lines
    assert {a["alert_id"] for a in lines} == {opened[0]["alert_id"]}
    assert max(a["event_count"] for a in lines) == 300
    events = [int(err.split(b" events")[0].split()[-1].replace(b",", b"")) for _, err in outputs]
    assert sum(events) == len(records)  # every record evaluated by exactly one of the two


def _chains() -> list[dict[str, Any]]:
    """40 packages published one a minute: 30 deleted a minute later (a chain each for
    publish-then-delete), 10 never deleted (an absent step each)."""
    from tests.support.correlation import call

    records = []
    for n in range(40):
        records.append(call(n, "PublishPackageVersion", package=f"p{n}"))
        if n < 30:
            records.append(call(n + 1, "DeletePackageVersions", package=f"p{n}"))
        records.extend(read(n + k / 10, who=f"dev{k}") for k in range(5))
    return records


def _live_chain_worker(url: str, records: list[dict[str, Any]], barrier: Any, out: Any) -> None:
    import engine.scan.pipeline
    from engine.decide.decider import new_decider
    from engine.scan.pipeline import run_scan
    from engine.state import open_store
    from tests.support.correlation import publish_then_delete, published_not_deleted
    from tests.support.state import evaluator

    engine.scan.pipeline.BATCH = 4  # small batches: the two processes interleave record by record
    rules = evaluator([publish_then_delete(rule_id="pd"), published_not_deleted(rule_id="pn")])
    alerts: list[dict[str, Any]] = []
    with open_store(url) as store:
        decider = new_decider(rules, 900.0, store, mode="live")
        barrier.wait()
        stats = run_scan(records, rules, decider, lambda a: alerts.append(a.to_dict()))
        # both daemons' wall clocks pass every deadline: each group is settled by both
        alerts.extend(a.to_dict() for a in decider.tick(2_000_000_000.0))
    out.put((stats.events, alerts))


def test_two_live_processes_on_one_redis_raise_one_alert_per_chain(redis_url: str) -> None:
    """Two daemons, one Redis, the same records: one alert for each of the 30 chains and for
    each of the 10 absent steps, though each chain's calls were split between them and both
    settled every deadline."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    records = _chains()
    workers = [context.Process(target=_live_chain_worker,
                               args=(redis_url, records, barrier, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    (events_one, alerts_one), (events_two, alerts_two) = out.get(timeout=60), out.get(timeout=60)
    for worker in workers:
        worker.join(10)
    assert events_one > 0 and events_two > 0
    assert events_one + events_two == len(records)
    opened = [a for a in alerts_one + alerts_two if not a.get("update")]
    by_rule = {rule: sorted(a["group_key"] for a in opened if a["rule_id"] == rule)
               for rule in ("pd", "pn")}
    assert by_rule["pd"] == sorted(f"p{n}" for n in range(30))
    assert by_rule["pn"] == sorted(f"p{n}" for n in range(30, 40))
    assert all(len(a["steps"]) == (2 if a["rule_id"] == "pd" else 1) for a in opened)
