"""The daemon end to end: moto (S3 + SQS + SNS), a Slack receiver, Redis, real processes.

Gzipped CloudTrail log files are put into S3, whose notifications go to SQS; `trailguard run`
consumes the queue and delivers to Slack and to an SNS topic read back by a subscribed queue.
"""

from __future__ import annotations

import gzip
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.daemon import Daemon, Trail, make_trail, publishes, tokens
from tests.support.moto_server import REGION, MotoServer
from tests.support.records import record
from tests.support.redis import DAEMON_DB, redis_namespace
from tests.support.slack_receiver import SlackReceiver


@pytest.fixture
def aws() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture
def redis_url() -> Iterator[str]:
    from tests.support.redis import ensure_redis

    if not ensure_redis():
        pytest.fail("Redis is required for the daemon tests (start redis-server)")
    yield from redis_namespace(DAEMON_DB)


def _sns_alerts(trail: Trail, expected: set[str], timeout: float = 20.0) -> list[dict]:
    """What the SNS subscriber has received once `expected` alert ids are all there."""
    received: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received += [json.loads(body["Message"]) for body in trail.topic.received()]
        if {a["alert_id"] for a in received} >= expected:
            break
        time.sleep(0.1)
    return received


def test_daemon_delivers_from_s3_notifications_to_slack_and_sns(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """S3 objects become alerts at Slack and SNS; health endpoints answer; SIGTERM exits 0."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    daemon = Daemon(trail.config, tmp_path / "daemon.log")
    try:
        assert daemon.get("/healthz")[0] == 200
        assert daemon.get("/readyz") == (200, "ready\n")
        trail.put_log_file(publishes(3))
        trail.put_log_file(tokens(3, "arn:aws:sts::123456789012:assumed-role/dev/x"))
        posted = trail.wait_for_alerts(4)
        assert len(posted) == 4 and set(posted.values()) == {1}, posted
        sns = _sns_alerts(trail, set(posted))
        assert {a["alert_id"] for a in sns} >= set(posted)
        assert {a["rule_id"] for a in sns} == {"publish", "token-burst"}
        status, metrics = daemon.get("/metrics")
        assert status == 200
        assert 'trailguard_alerts_total{rule="publish"} 3.0' in metrics
        assert "trailguard_events_total 6.0" in metrics
    finally:
        started = time.monotonic()
        assert daemon.stop() == 0
    assert time.monotonic() - started < 15
    lines = daemon.log_lines()
    assert any(line.get("rule_id") == "publish" for line in lines)
    assert any("stopped" in line["message"] for line in lines)


def test_daemon_poison_message_is_dead_lettered_and_stream_goes_on(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """An undecodable message is logged with its origin and left to SQS; others still alert."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    daemon = Daemon(trail.config, tmp_path / "daemon.log")
    try:
        trail.send_raw("this is not json")
        trail.put_log_file(publishes(2))
        assert len(trail.wait_for_alerts(2)) == 2
    finally:
        assert daemon.stop() == 0
    dead = [line for line in daemon.log_lines() if "dead-lettered" in line["message"]]
    assert dead and dead[0]["origin"].startswith("sqs:")
    left = aws.client("sqs").get_queue_attributes(
        QueueUrl=trail.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert int(left["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) == 1


def test_daemon_kill_9_and_restart_delivers_every_alert_once(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """kill -9 mid-stream, restart: every expected alert arrives; none twice but the one the
    receiver may have taken in the instant before the kill (at-least-once to a receiver with
    no idempotency key: the 200 can arrive and the process die before it is recorded)."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    first = Daemon(trail.config, tmp_path / "first.log")
    for number in range(6):
        trail.put_log_file(publishes(4, start=number * 4))
    trail.wait_for_alerts(1)
    first.kill()
    time.sleep(0.3)  # a post the kill cut short may still be being recorded by the receiver
    before_kill = trail.slack_alert_ids()
    second = Daemon(trail.config, tmp_path / "second.log")
    try:
        posted = trail.wait_for_alerts(24, timeout=60)
    finally:
        assert second.stop() == 0
    assert len(posted) == 24
    twice = {alert_id for alert_id, count in posted.items() if count > 1}
    assert max(posted.values()) <= 2 and len(twice) <= 1, posted
    assert twice <= set(before_kill), "only a delivery in flight at the kill may repeat"


def test_two_daemons_on_one_queue_and_redis_behave_as_one(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path, redis_url: str
) -> None:
    """Two processes share the queue and Redis: same alerts as one, threshold counted across."""
    trail = make_trail(aws, slack, tmp_path, redis_url)
    daemons = [Daemon(trail.config, tmp_path / f"d{n}.log") for n in range(2)]
    try:
        for number in range(4):
            trail.put_log_file(publishes(3, start=number * 3))
        arn = "arn:aws:sts::123456789012:assumed-role/dev/spread"
        for token in tokens(3, arn):  # one token a file: each daemon sees only some
            trail.put_log_file([token])
        posted = trail.wait_for_alerts(13, timeout=60)
    finally:
        for daemon in daemons:
            assert daemon.stop() == 0
    assert len(posted) == 13 and max(posted.values()) == 1, posted


def test_daemon_reload_rejects_invalid_rules_and_keeps_running(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """SIGHUP with broken rules keeps the old set; a valid change is picked up."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    daemon = Daemon(trail.config, tmp_path / "daemon.log")
    rules = tmp_path / "rules" / "rules.yml"
    try:
        good = rules.read_text()
        rules.write_text(good + "---\nid: broken\ntitle: x\nseverity: nope\ncondition: x\n")
        daemon.signal(signal.SIGHUP)
        trail.put_log_file(publishes(1))
        assert len(trail.wait_for_alerts(1)) == 1
        rules.write_text(good + "---\nid: any-read\ntitle: a read\nseverity: low\ncondition: "
                         "eventName == 'ReadFromRepository'\n")
        daemon.signal(signal.SIGHUP)
        time.sleep(0.5)
        from tests.support.records import record

        trail.put_log_file([record(eventName="ReadFromRepository")])
        assert len(trail.wait_for_alerts(2)) == 2
    finally:
        assert daemon.stop() == 0
    messages = [line["message"] for line in daemon.log_lines()]
    assert any("rule reload rejected" in m and "severity" in m for m in messages)
    assert any("rules reloaded" in m for m in messages)


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def test_daemon_streams_a_large_object_with_flat_memory(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """A 46 MB JSON-lines object named by a notification is read as a stream, a batch of
    records at a time: every alert in it arrives, and the daemon's peak RSS grows by 16 MB
    here (holding the object and its records, as before, took 284 MB more)."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    daemon = Daemon(trail.config, tmp_path / "daemon.log")
    try:
        trail.put_log_file(publishes(1))  # the daemon is warm: its own footprint is known
        trail.wait_for_alerts(1)
        warm = _peak_rss_mb(daemon.process.pid)
        line = json.dumps(record(eventName="ReadFromRepository"))
        event_id = json.loads(line)["eventID"]
        reads = "\n".join(line.replace(event_id, f"big-{n:08d}") for n in range(42_000))
        last = "\n".join(json.dumps(r) for r in publishes(3, start=40))
        body = gzip.compress(f"{reads}\n{last}\n".encode(), compresslevel=1)
        aws.client("s3").put_object(Bucket=trail.bucket, Key="exports/reads.jsonl.gz",
                                    Body=body)
        posted = trail.wait_for_alerts(4, timeout=60)
        assert len(posted) == 4, posted
        peak = _peak_rss_mb(daemon.process.pid)
    finally:
        assert daemon.stop() == 0
    assert len(reads) > 45_000_000
    assert peak - warm < 40, (warm, peak)


def test_daemon_files_and_s3_prefix_sources_read_their_payloads_as_streams(
    aws: MotoServer, slack: SlackReceiver, tmp_path: Path
) -> None:
    """The `files` source (a gzipped log file, JSON lines with a bad line) and the `s3`
    prefix-polling source hand over a path or an object, read only when processed: each
    record alerts once, the bad line is dead-lettered with its file and line."""
    trail = make_trail(aws, slack, tmp_path, f"sqlite:///{tmp_path}/state.db")
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "a.json.gz").write_bytes(gzip.compress(json.dumps(
        {"Records": publishes(2)}).encode()))
    lines = [json.dumps(r) for r in publishes(2, start=2)]
    (watched / "b.jsonl").write_text(f"{lines[0]}\nnot json\n{lines[1]}\n")
    config = yaml.safe_load(trail.config.read_text())
    config["sources"] = [
        {"type": "files", "paths": [str(watched)]},
        {"type": "s3", "bucket": trail.bucket, "prefix": "AWSLogs/", "region": REGION,
         "endpoint_url": aws.endpoint_url, "poll_interval": "1s"}]
    trail.config.write_text(yaml.safe_dump(config))
    trail.put_log_file(publishes(2, start=4))
    daemon = Daemon(trail.config, tmp_path / "daemon.log")
    try:
        posted = trail.wait_for_alerts(6)
    finally:
        assert daemon.stop() == 0
    assert len(posted) == 6 and set(posted.values()) == {1}, posted
    dead = [line for line in daemon.log_lines() if "dead-lettered" in line["message"]]
    assert [line["origin"] for line in dead] == [f"{watched / 'b.jsonl'}:2"]
