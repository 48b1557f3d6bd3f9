"""kill -9 a daemon at chosen moments and count every alert it owed: the harness of
tests/test_crash_redis.py (a handful of trials) and bench/crash_redis.py (many).

One trial: a fresh bucket and queue (moto), a fresh Slack receiver, a fresh Redis namespace;
a daemon is started, three gzipped log files are put into S3 (their notifications reach the
daemon's SQS queue), and the daemon is killed with SIGKILL either a random time after the
puts or the moment its first eventID claim appears in Redis. A second daemon is started on
the same queue and store; the trial ends when every expected alert was posted to Slack (or
after a timeout), and counts the alerts never posted (lost) and those posted twice.

The workload touches every kind of state: 120 publishes (stateless rule: only eventID
claims), 10 principals with one token in each file (a threshold of 3 counted across the
three deliveries) and 5 principals with reads in every file (a dedup window): 135 alerts.
"""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import ALERT_ID, Daemon, publishes
from tests.support.daemon import RULES as DAEMON_RULES
from tests.support.moto_server import REGION, MotoServer
from tests.support.records import record
from tests.support.slack_receiver import SlackReceiver

RULES = DAEMON_RULES + """\
---
id: reader
title: A principal read from a repository
severity: low
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'ReadFromRepository'
group_by: userIdentity.arn
dedup: 1h
"""
FILES, PUBLISHES, TOKEN_USERS, READERS = 3, 120, 10, 5
EXPECTED = PUBLISHES + TOKEN_USERS + READERS


@dataclass
class Outcome:
    """What one trial saw: alerts never posted, alert ids posted more than once."""

    kill: str
    lost: int
    repeats: int
    seconds: float


def log_files() -> list[list[dict[str, Any]]]:
    """The three files of one trial: each principal's tokens and reads spread over them."""
    files: list[list[dict[str, Any]]] = []
    per_file = PUBLISHES // FILES
    for n in range(FILES):
        records = publishes(per_file, start=n * per_file)
        for user in range(TOKEN_USERS):
            records.append(record(eventTime=f"2024-03-01T10:0{n}:{user:02d}Z",
                                  userIdentity__arn=f"arn:aws:sts::123456789012:assumed-role/"
                                                    f"ci/token-{user}"))
        for user in range(READERS):
            records.append(record(eventName="ReadFromRepository",
                                  eventTime=f"2024-03-01T10:1{n}:{user:02d}Z",
                                  userIdentity__arn=f"arn:aws:sts::123456789012:assumed-role/"
                                                    f"dev/reader-{user}"))
        files.append(records)
    return files


class CrashTrail:
    """A bucket notifying a queue, and a config whose only output is a Slack receiver."""

    def __init__(self, aws: MotoServer, slack: SlackReceiver, tmp: Path, state: str) -> None:
        self.aws, self.slack, self.tmp = aws, slack, tmp
        s3, sqs = aws.client("s3"), aws.client("sqs")
        self.bucket = f"crash-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=self.bucket,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        queue_url = sqs.create_queue(QueueName=f"{self.bucket}-events",
                                     Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=self.bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
        (tmp / "rules").mkdir(parents=True, exist_ok=True)
        (tmp / "rules" / "rules.yml").write_text(RULES)
        config = {
            "rules": ["rules/"], "state": state,
            "sources": [{"type": "sqs", "queue_url": queue_url, "region": REGION,
                         "endpoint_url": aws.endpoint_url, "wait_seconds": 1,
                         "visibility_timeout": "2s"}],
            "outputs": {"slack": {"type": "slack", "webhook_url": slack.webhook_url}},
            "routes": [{"outputs": ["slack"]}],
            "server": {"listen": "127.0.0.1:0", "grace_period": "10s"},
        }
        self.config = tmp / "trailguard.yml"
        self.config.write_text(yaml.safe_dump(config))

    def put(self, files: list[list[dict[str, Any]]]) -> None:
        s3 = self.aws.client("s3")
        for n, records in enumerate(files):
            body = gzip.compress(json.dumps({"Records": records}).encode())
            s3.put_object(Bucket=self.bucket, Body=body, Key=(
                f"AWSLogs/123456789012/CloudTrail/us-west-2/2024/03/01/"
                f"123456789012_CloudTrail_us-west-2_20240301T1000Z_{n:04d}.json.gz"))

    def posted(self) -> Counter[str]:
        """How many times each alert was posted as a new message (thread replies not counted)."""
        found: Counter[str] = Counter()
        for request in self.slack.delivered():
            text = json.dumps(request.body)
            if " more match since " in text or " more matches since " in text:
                continue  # a thread reply: an update of an alert already posted
            match = ALERT_ID.search(text)
            if match:
                found[match.group(1)] += 1
        return found

    def wait_for(self, count: int, timeout: float) -> Counter[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.posted()) < count:
            time.sleep(0.1)
        return self.posted()


def kill_on_first_claim(daemon: Daemon, claims: Any, timeout: float = 20.0) -> bool:
    """Kill `daemon` the moment `claims()` (a Redis probe) first sees an eventID claim."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if claims():
            daemon.process.kill()
            return True
        time.sleep(0.001)
    return False


def run_trial(aws: MotoServer, tmp: Path, state: str, claims: Any, kill_after: float | None,
              timeout: float = 40.0) -> Outcome:
    """One trial; `kill_after` None kills at the first claim, else after that many seconds."""
    started = time.monotonic()
    with SlackReceiver() as slack:
        trail = CrashTrail(aws, slack, tmp, state)
        first = Daemon(trail.config, tmp / "first.log")
        killer = None
        if kill_after is None:
            killer = threading.Thread(target=kill_on_first_claim, args=(first, claims))
            killer.start()
        trail.put(log_files())
        if killer is not None:
            killer.join()
        else:
            time.sleep(kill_after)
        first.kill()
        time.sleep(0.2)  # a post the kill cut short may still be being recorded
        second = Daemon(trail.config, tmp / "second.log")
        try:
            posted = trail.wait_for(EXPECTED, timeout)
        finally:
            second.stop()
    kill = "first claim" if kill_after is None else f"{kill_after:.3f}s"
    return Outcome(kill, EXPECTED - len(posted), sum(c - 1 for c in posted.values()),
                   time.monotonic() - started)


def kill_points(trials: int, seed: int, spread: float = 1.5) -> list[float | None]:
    """Every third trial kills at the first claim; the others at a random moment."""
    rng = random.Random(seed)
    return [None if n % 3 == 0 else round(rng.uniform(0.0, spread), 3) for n in range(trials)]
