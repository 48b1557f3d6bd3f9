"""Two daemons on one Redis race for one threshold group (engine.daemon.runner, Redis batch
protocol): the one whose commit comes second wrote nothing, decides its message again on the
other's count, and between them they raise the alert once, at the third token overall."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import load_config
from engine.daemon.metrics import Metrics
from engine.daemon.runner import Runner
from engine.daemon.sources import Delivery
from engine.outputs import build_dispatcher
from engine.state import open_store
from tests.support.daemon import RULES, tokens
from tests.support.redis import DAEMON_DB, redis_namespace


@pytest.fixture
def redis_url() -> Iterator[str]:
    yield from redis_namespace(DAEMON_DB)


def _runner(tmp_path: Path, url: str) -> Runner:
    (tmp_path / "rules").mkdir(parents=True, exist_ok=True)
    (tmp_path / "rules" / "burst.yml").write_text(RULES)  # publish and token-burst
    path = tmp_path / "trailguard.yml"
    path.write_text(yaml.safe_dump({"rules": [str(tmp_path / "rules")], "state": url,
                                    "outputs": {"mem": {"type": "memory"}},
                                    "routes": [{"outputs": ["mem"]}]}))
    config = load_config(path)
    store = open_store(url)
    store.autocommit = False  # as `trailguard run` opens it
    return Runner(config, config.rules, store, build_dispatcher(config, url), [], Metrics())


def _delivery(record: dict[str, Any], done: list[str]) -> Delivery:
    origin = f"test:{record['eventID']}"
    return Delivery(json.dumps({"Records": [record]}).encode(), origin,
                    ack=lambda: done.append(f"ack {origin}"),
                    fail=lambda reason: done.append(f"fail {origin}"))


def _sent(runner: Runner) -> list[dict[str, Any]]:
    assert runner.dispatcher.wait(10)
    return list(runner.dispatcher.outputs["mem"].sent)


def test_daemon_decides_a_message_again_after_losing_a_race(redis_url: str,
                                                           tmp_path: Path) -> None:
    """A commits token 1; B commits token 3 while A decides token 2; A's commit conflicts,
    A decides token 2 again on B's count and alerts: one alert, count 3, all acknowledged."""
    first, second = _runner(tmp_path / "a", redis_url), _runner(tmp_path / "b", redis_url)
    one, two, three = tokens(3, "arn:aws:sts::123456789012:assumed-role/dev/race")
    done: list[str] = []
    first.process(_delivery(one, done))
    commit, commits = first.handoff.commit, []

    def racing_commit() -> None:
        if not commits:
            second.process(_delivery(three, done))  # the other daemon gets there first
        commits.append(1)
        commit()

    first.handoff.commit = racing_commit  # type: ignore[method-assign]
    first.process(_delivery(two, done))
    assert len(commits) == 2  # the first commit conflicted and wrote nothing
    alerts = _sent(first) + _sent(second)
    assert len(alerts) == 1, alerts
    assert alerts[0]["event_count"] == 3
    assert sorted(alerts[0]["event_ids"]) == sorted(r["eventID"] for r in (one, two, three))
    assert sorted(done) == sorted(f"ack test:{r['eventID']}" for r in (one, two, three))
    for runner in (first, second):
        runner.dispatcher.close(5)
        runner.store.close()
