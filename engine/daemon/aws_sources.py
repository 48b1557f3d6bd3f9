"""The SQS and S3 sources. boto3 is imported here, lazily: `validate` and `scan` never pay it.

SQS: long polling; a message is deleted only when the runner acknowledges it. A payload that
cannot be decoded is dead-lettered by *not* deleting it and pushing its visibility out with
a backoff on its receive count, so SQS's redrive policy moves it to the DLQ after
maxReceiveCount tries, and it is never retried in a hot loop. While a large S3 object named
by a notification is processed, the runner calls `keepalive`, which extends visibility.

S3: polls a bucket/prefix laid out as CloudTrail writes it
(`AWSLogs/[o-org/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/`), skips digest files, and remembers
processed keys in the state store (marks), so a restart does not process them again. The new
keys of a poll are handed out in eventTime order (the delivery stamp in their names), across
accounts and regions, so a backfill is decided as `scan` decides the same archive (SPEC §7).

An object is fetched only when the runner processes it, into a temporary file read as a
stream: an object of any size costs disk, not memory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from typing import IO, Any

from engine.daemon.sources import Delivery, Marks
from engine.durations import parse_duration
from engine.errors import ConfigError
from engine.inputs.decode import ObjectRef

DIGEST = "/CloudTrail-Digest/"
CHUNK = 1 << 20  # bytes of an S3 object's body read at a time into its temporary file


def _client(service: str, settings: Mapping[str, Any], endpoint_key: str = "endpoint_url") -> Any:
    import boto3

    kwargs: dict[str, Any] = {}
    if settings.get("region"):
        kwargs["region_name"] = settings["region"]
    if settings.get(endpoint_key):
        kwargs["endpoint_url"] = settings[endpoint_key]
    return boto3.client(service, **kwargs)


def _setting(settings: Mapping[str, Any], key: str, default: Any) -> Any:
    """A setting, or its default when absent or null (`endpoint_url: null` style); its
    type was checked when the config loaded (engine.daemon.registry)."""
    value = settings.get(key)
    return default if value is None else value


def fetch_object(s3: Any, bucket: str, key: str) -> IO[bytes]:
    """The object in a temporary file (gone when closed), at its start: the runner reads it
    as a stream (inputs.iter_object), so memory stays flat whatever the object's size."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open; the runner closes it
    try:
        for chunk in body.iter_chunks(CHUNK):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    finally:
        body.close()
    return spool


class SqsSource:
    """Long-polls one queue; deletes a message only when the runner acknowledges it."""

    def __init__(self, name: str, sqs: Any, s3: Any, queue_url: str, visibility: int,
                 max_messages: int = 10, wait_seconds: int = 20) -> None:
        self.name = name
        self.sqs = sqs
        self.s3 = s3
        self.queue_url = queue_url
        self.visibility = visibility
        self.max_messages = max_messages
        self.wait_seconds = wait_seconds

    @classmethod
    def from_config(cls, name: str, settings: Mapping[str, Any],
                    environ: Mapping[str, str]) -> SqsSource:
        if not settings.get("queue_url"):
            raise ConfigError(f"source {name}: sqs needs queue_url", "sources")
        s3_settings = {**settings, "endpoint_url": settings.get("s3_endpoint_url")
                       or settings.get("endpoint_url")}
        visibility = int(parse_duration(_setting(settings, "visibility_timeout", "5m")))
        return cls(name, _client("sqs", settings), _client("s3", s3_settings),
                   str(settings["queue_url"]), visibility,
                   int(_setting(settings, "max_messages", 10)),
                   int(_setting(settings, "wait_seconds", 20)))

    def poll(self, wait: float) -> list[Delivery]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.max_messages,
            WaitTimeSeconds=max(0, min(self.wait_seconds, int(wait))),
            VisibilityTimeout=self.visibility,
            MessageSystemAttributeNames=["ApproximateReceiveCount"])
        return [self._delivery(message) for message in answer.get("Messages", [])]

    def _delivery(self, message: Mapping[str, Any]) -> Delivery:
        handle = message["ReceiptHandle"]
        received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))

        def ack() -> None:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)

        def fail(reason: str) -> None:
            backoff = min(43_200, 30 * 2 ** min(received, 10))  # 1 min, 2 min, ... 12 h cap
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle,
                                               VisibilityTimeout=backoff)

        def keepalive() -> None:
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=handle,
                                               VisibilityTimeout=self.visibility)

        return Delivery(
            payload=message["Body"].encode(), origin=f"sqs:{message['MessageId']}", ack=ack,
            fail=fail, keepalive=keepalive, fetch=lambda b, k: fetch_object(self.s3, b, k),
            attributes={"receive_count": received})

    def reachable(self) -> bool:
        try:
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        except Exception:
            return False
        return True

    def close(self) -> None:
        return None


def _time_order(key: str) -> tuple[float, str, str]:
    """A key's place in a backfill: its name's delivery stamp (engine.inputs.walk), then its name.
    S3 lists keys by name, one account-region after the other; this merges them, as `scan`
    merges an archive's directories. A key without a stamp comes first, by name."""
    from engine.inputs.walk import FIRST, name_stamp

    name = key.rsplit("/", 1)[-1]
    stamp = name_stamp(name)
    return (FIRST if stamp is None else stamp), name, key


class S3Source:
    """Polls a bucket/prefix for new CloudTrail log objects; skips digests and done keys."""

    def __init__(self, name: str, s3: Any, bucket: str, prefix: str, interval: float,
                 marks: Marks | None) -> None:
        self.name = name
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.interval = interval
        self.marks = marks
        self._done: set[str] = set()
        self._handed: set[str] = set()  # handed to the runner, not yet acknowledged
        self._next_poll = 0.0
        self.batch = 10

    @classmethod
    def from_config(cls, name: str, settings: Mapping[str, Any], marks: Marks | None,
                    environ: Mapping[str, str]) -> S3Source:
        if not settings.get("bucket"):
            raise ConfigError(f"source {name}: s3 needs bucket", "sources")
        interval = parse_duration(_setting(settings, "poll_interval", "60s"))
        return cls(name, _client("s3", settings), str(settings["bucket"]),
                   str(_setting(settings, "prefix", "AWSLogs/")), interval, marks)

    def poll(self, wait: float) -> list[Delivery]:
        now = time.monotonic()
        if now < self._next_poll:
            time.sleep(min(wait, self._next_poll - now, 1.0))
            return []
        keys = self._new_keys()
        # a bounded batch keeps memory flat; a backlog is drained without waiting the interval
        self._next_poll = now if len(keys) > self.batch else now + self.interval
        return [self._delivery(key) for key in keys[: self.batch]]

    def _new_keys(self) -> list[str]:
        keys = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if DIGEST in key or key.endswith("/") or key in self._done or (
                        key in self._handed):
                    continue
                if self.marks and self.marks.is_done(self.name, key):
                    self._done.add(key)
                    continue
                keys.append(key)
        keys.sort(key=_time_order)  # SPEC §7: a backfill reads the prefix in eventTime order
        return keys

    def _delivery(self, key: str) -> Delivery:
        def ack() -> None:
            self._done.add(key)
            self._handed.discard(key)
            if self.marks:
                self.marks.mark_done(self.name, key)

        def fail(reason: str) -> None:
            self._handed.discard(key)  # listed, and so read, again at a later poll

        self._handed.add(key)
        origin = f"s3://{self.bucket}/{key}"
        return Delivery(b"", origin, ack=ack, fail=fail,
                        fetch=lambda b, k: fetch_object(self.s3, b, k),
                        object=ObjectRef(self.bucket, key, origin))

    def reachable(self) -> bool:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except Exception:
            return False
        return True

    def close(self) -> None:
        return None
