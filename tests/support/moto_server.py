"""moto in server mode on a free localhost port, with SNS topics read back through SQS.

    with MotoServer() as aws:            # sets dummy credentials and region in os.environ
        topic = aws.topic("alerts")       # SNS topic + SQS queue subscribed (raw delivery off)
        fifo = aws.topic("alerts", fifo=True)
        ...publish...
        topic.received()                  # the SQS bodies a subscriber gets: SNS envelopes

Environment changes are undone on close, so tests stay independent of each other.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-west-2"}
REGION = "us-west-2"


@dataclass
class Topic:
    arn: str
    queue_url: str
    sqs: Any

    def received(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """Every message now in the subscribed queue (removed as read), bodies parsed."""
        bodies = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=int(wait),
                                              MessageAttributeNames=["All"])
            messages = answer.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])


class MotoServer:
    def __init__(self) -> None:
        self._saved = {k: os.environ.get(k) for k in [*DUMMY_ENV, "AWS_ENDPOINT_URL"]}
        os.environ.update(DUMMY_ENV)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    def topic(self, name: str | None = None, fifo: bool = False) -> Topic:
        sns, sqs = self.client("sns"), self.client("sqs")
        name = name or f"alerts-{uuid.uuid4().hex[:8]}"
        suffix = ".fifo" if fifo else ""
        attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        arn = sns.create_topic(Name=name + suffix, Attributes=attrs)["TopicArn"]
        queue_attrs = {"FifoQueue": "true"} if fifo else {}
        queue_url = sqs.create_queue(QueueName=f"{name}-sub{suffix}",
                                     Attributes=queue_attrs)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
        return Topic(arn, queue_url, sqs)

    def close(self) -> None:
        self.server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
