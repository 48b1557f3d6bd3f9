"""Run `trailguard run` as a real subprocess against moto, a Slack receiver and Redis."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import REPO
from tests.support.moto_server import DUMMY_ENV, REGION, MotoServer, Topic
from tests.support.records import record
from tests.support.slack_receiver import SlackReceiver

RULES = """\
id: publish
title: A package was published
severity: high
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'PublishPackageVersion'
summary: "{userIdentity.arn} published {requestParameters.packageName}"
---
id: token-burst
title: Many tokens for one principal
severity: medium
condition: eventSource == 'codeartifact.amazonaws.com' && eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
threshold: {count: 3, window: 10m}
"""
ALERT_ID = re.compile(r"alert `([0-9a-f]+)`")


@dataclass
class Trail:
    """A bucket that notifies a queue, an SNS topic read back by a queue, a Slack receiver."""

    aws: MotoServer
    slack: SlackReceiver
    bucket: str
    queue_url: str
    topic: Topic
    config: Path
    objects: int = 0

    def put_log_file(self, records: list[dict[str, Any]]) -> str:
        self.objects += 1
        key = (f"AWSLogs/123456789012/CloudTrail/us-west-2/2024/03/01/"
               f"123456789012_CloudTrail_us-west-2_20240301T1000Z_{self.objects:04d}.json.gz")
        body = gzip.compress(json.dumps({"Records": records}).encode())
        self.aws.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def send_raw(self, body: str) -> None:
        self.aws.client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)

    def slack_alert_ids(self) -> Counter[str]:
        """How many times each alert was posted as a new message (updates not counted)."""
        posted: Counter[str] = Counter()
        for request in self.slack.delivered():
            text = json.dumps(request.body)
            found = ALERT_ID.search(text)
            if found and "more matches since" not in text:
                posted[found.group(1)] += 1
        return posted

    def wait_for_alerts(self, count: int, timeout: float = 30.0) -> Counter[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posted = self.slack_alert_ids()
            if len(posted) >= count:
                return posted
            time.sleep(0.1)
        return self.slack_alert_ids()


def make_trail(aws: MotoServer, slack: SlackReceiver, tmp_path: Path, state: str) -> Trail:
    s3, sqs = aws.client("s3"), aws.client("sqs")
    bucket = f"trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    queue_url = sqs.create_queue(QueueName=f"{bucket}-events",
                                 Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]})
    topic = aws.topic()
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yml").write_text(RULES)
    config = {
        "rules": ["rules/"],
        "state": state,
        "sources": [{"type": "sqs", "queue_url": queue_url, "region": REGION,
                     "endpoint_url": aws.endpoint_url, "wait_seconds": 1,
                     "visibility_timeout": "5s"}],
        "outputs": {
            "slack": {"type": "slack", "webhook_url": slack.webhook_url},
            "sns": {"type": "sns", "topic_arn": topic.arn, "region": REGION,
                    "endpoint_url": aws.endpoint_url},
        },
        "routes": [{"outputs": ["slack", "sns"]}],
        "server": {"listen": "127.0.0.1:0", "grace_period": "10s"},
    }
    path = tmp_path / "trailguard.yml"
    path.write_text(yaml.safe_dump(config))
    return Trail(aws, slack, bucket, queue_url, topic, path)


class Daemon:
    """`python -m engine run -c CONFIG` with its stderr in a file; knows its HTTP port.
    With `stdin`, its standard input is a pipe the test writes (a `stdin` source)."""

    def __init__(self, config: Path, log: Path, stdin: bool = False) -> None:
        env = {**os.environ, **DUMMY_ENV}
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env.pop(proxy, None)
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine", "run", "-c", str(config)], cwd=REPO, env=env,
            stdin=subprocess.PIPE if stdin else None, stdout=subprocess.DEVNULL,
            stderr=self._stderr)
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on [\d.]+:(\d+)", self.log.read_text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"daemon did not start:\n{self.log.read_text()}")

    def text(self) -> str:
        return self.log.read_text()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def write(self, data: bytes) -> None:
        """Write `data` to the daemon's standard input, at once."""
        assert self.process.stdin is not None, "started without stdin=True"
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def end_input(self, timeout: float = 20.0) -> int:
        """Close the daemon's standard input, the end of a stdin source; its exit status."""
        assert self.process.stdin is not None, "started without stdin=True"
        self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        self._stderr.close()
        return code

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._stderr.close()
        return code

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._stderr.close()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def publishes(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [record(eventName="PublishPackageVersion", eventTime=f"2024-03-01T10:{i % 60:02d}:00Z",
                   requestParameters={"domainName": "acme", "repositoryName": "npm",
                                      "packageName": f"pkg-{i}"})
            for i in range(start, start + count)]


def tokens(count: int, arn: str) -> list[dict[str, Any]]:
    return [record(eventTime=f"2024-03-01T10:0{i}:00Z", userIdentity__arn=arn)
            for i in range(count)]
