"""Amazon SNS: the alert JSON as `Message`, for topics standard and FIFO.

Subscribers filter on `MessageAttributes` `severity` and `rule_id`; the `Subject` (used by
e-mail subscriptions) is printable ASCII under 100 characters, which real SNS demands and
moto does not check. FIFO topics get `MessageGroupId` = rule id and `MessageDeduplicationId`
= alert id; an update of an alert gets `<alert id>-u<count>`, because reusing the alert id
would make SNS silently drop every update sent within its 5-minute dedup window.

A message over 256 KB (SNS counts the body and the attributes, in bytes) is trimmed: the
largest parts of the `event` go first, each replaced by a note of its size, and a top-level
`trimmed` object lists what was cut — the alert always arrives, and says it is incomplete.

The client is built lazily (boto3 costs ~160 ms to import), with botocore's retries off (the
worker retries with jitter), `endpoint_url` when given (else botocore's own
`AWS_ENDPOINT_URL`), and credentials from `role_arn` via STS, refreshed before they expire.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from engine import jsonsafe
from engine.errors import ConfigError
from engine.outputs.base import AlertDoc, Output, OutputContext, get_logger, string_setting

log = get_logger(__name__)

MAX_BYTES = 262_144
SUBJECT_LIMIT = 99
_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_ASCII_LOOKALIKE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                  "\u2013": "-", "\u2014": "-", "\u2026": "..."})
BROKEN = {"NotFound", "NotFoundException", "AuthorizationError", "InvalidClientTokenId",
          "UnrecognizedClientException", "AccessDenied", "AccessDeniedException",
          "InvalidSecurity", "SignatureDoesNotMatch", "KMSAccessDenied", "KMSDisabled",
          "KMSNotFound", "KMSInvalidState", "KMSOptInRequired", "OptInRequired",
          "EndpointDisabled", "InvalidAccessKeyId"}
TRANSIENT = {"Throttling", "ThrottlingException", "Throttled", "ThrottledException",
             "KMSThrottling", "InternalError", "InternalFailure", "ServiceUnavailable",
             "RequestTimeout", "RequestTimeoutException", "ExpiredToken",
             "ExpiredTokenException", "RequestExpired"}


def subject(alert: AlertDoc) -> str:
    """`[HIGH] title` as printable ASCII under 100 characters."""
    prefix = f"[{str(alert.get('severity', '')).upper()}] "
    if alert.get("update"):
        prefix += "update: "
    text = unicodedata.normalize("NFKD", prefix + str(alert.get("title") or ""))
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_ASCII_LOOKALIKE)
    text = re.sub(r"[^\x20-\x7e]+", " ", text)
    text = re.sub(r" {2,}", " ", text).strip()
    if len(text) > SUBJECT_LIMIT:
        text = text[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return text or "trailguard alert"


def attributes(alert: AlertDoc) -> dict[str, dict[str, str]]:
    return {"severity": {"DataType": "String", "StringValue": str(alert.get("severity"))},
            "rule_id": {"DataType": "String", "StringValue": str(alert.get("rule_id"))}}


def _attributes_size(attrs: Mapping[str, Mapping[str, str]]) -> int:
    return sum(len(k.encode()) + len(v["DataType"]) + len(v["StringValue"].encode())
               for k, v in attrs.items())


def _dumps(value: Any) -> bytes:
    return jsonsafe.dumps(value)


def fit_message(alert: AlertDoc, budget: int) -> str:
    """The alert JSON, trimmed (largest event parts first, and marked) to `budget` bytes."""
    raw = _dumps(alert)
    if len(raw) <= budget:
        return raw.decode()
    doc = orjson.loads(raw)
    note: dict[str, Any] = {"reason": "message over the SNS limit of 256 KB",
                            "original_bytes": len(raw), "fields": []}
    doc["trimmed"] = note
    while len(_dumps(doc)) > budget:
        if not _trim_largest(doc, note["fields"]):
            _trim_rest(doc, note["fields"], budget)
            break
    return _dumps(doc).decode()


def _trim_largest(doc: dict[str, Any], trimmed: list[str]) -> bool:
    """Replace the largest dominating part of `doc['event']`; False when nothing is left."""
    parent: Any = doc
    key: Any = "event"
    path = ["event"]
    while True:
        value = parent[key]
        children = list(value.items()) if isinstance(value, dict) else (
            list(enumerate(value)) if isinstance(value, list) else [])
        sizes = [(len(_dumps(v)), k) for k, v in children]
        if not sizes:
            break
        size, child = max(sizes, key=lambda item: item[0])
        if size * 2 < len(_dumps(value)) or size < 64:
            break  # no single child dominates: cut the container as a whole
        parent, key = value, child
        path.append(str(child))
    size = len(_dumps(parent[key]))
    if size < 64 or (isinstance(parent[key], str) and parent[key].startswith("[trimmed")):
        return False
    parent[key] = f"[trimmed: {size} bytes]"
    trimmed.append(".".join(path))
    return True


def _trim_rest(doc: dict[str, Any], trimmed: list[str], budget: int) -> None:
    """The event is already small: shorten the alert's own long lists and texts."""
    if len(doc.get("event_ids") or []) > 100:
        doc["event_ids"] = doc["event_ids"][:100]
        trimmed.append("event_ids")
    for key in ("summary", "title"):
        if len(_dumps(doc)) > budget and len(str(doc.get(key) or "")) > 1000:
            doc[key] = str(doc[key])[:1000] + "… (truncated)"
            trimmed.append(key)
    if len(_dumps(doc)) > budget:
        doc["event"] = "[trimmed]"
        trimmed.append("event")


class SnsOutput(Output):
    type_name = "sns"
    required: ClassVar[frozenset[str]] = frozenset({"topic_arn"})
    optional: ClassVar[frozenset[str]] = frozenset(
        {"region", "endpoint_url", "role_arn", "external_id", "sts_endpoint_url", "timeout"})

    def __init__(self, name: str, settings: Mapping[str, Any], context: OutputContext) -> None:
        super().__init__(name, settings, context)
        self.topic_arn = str(self.settings["topic_arn"])
        found = _TOPIC.fullmatch(self.topic_arn)
        self.region = str(self.settings.get("region") or (found.group(1) if found else ""))
        self.fifo = self.topic_arn.endswith(".fifo")
        self._client: Any = None
        self._expires = float("inf")

    @classmethod
    def check_more(cls, name: str, settings: Mapping[str, Any], where: str) -> None:
        for key in cls.optional - {"timeout"}:
            string_setting(name, settings, key, where)
        if not _TOPIC.fullmatch(str(settings.get("topic_arn"))):
            raise ConfigError(f"outputs.{name}: topic_arn {settings.get('topic_arn')!r} is "
                              "not an SNS topic ARN", where)

    def describe(self) -> str:
        via = f" via {self.settings['role_arn']}" if self.settings.get("role_arn") else ""
        return f"sns {self.topic_arn}{via}"

    def request(self, alert: AlertDoc) -> dict[str, Any]:
        """The Publish arguments for one alert (public for tests and docs)."""
        attrs, title = attributes(alert), subject(alert)
        budget = MAX_BYTES - _attributes_size(attrs) - len(title)
        message = fit_message(alert, budget)
        if '"trimmed":{"reason"' in message and "trimmed" not in alert:
            log.warning("output %s: alert %s was over 256 KB: its largest event fields were "
                        "trimmed", self.name, alert.get("alert_id"))
        args: dict[str, Any] = {"TopicArn": self.topic_arn, "Subject": title,
                                "Message": message, "MessageAttributes": attrs}
        if self.fifo:
            args["MessageGroupId"] = re.sub(r"[^\x21-\x7e]", "_", str(alert["rule_id"]))[:128]
            dedup = str(alert["alert_id"])
            if alert.get("update"):
                dedup += f"-u{alert.get('event_count')}"
            args["MessageDeduplicationId"] = dedup[:128]
        return args

    def send(self, alert: AlertDoc) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args = self.request(alert)
        try:
            self.client().publish(**args)
        except ClientError as exc:
            raise self._client_error(exc) from None
        except BotoCoreError as exc:
            raise self._botocore_error(exc) from None

    def _client_error(self, exc: Any) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        what = f"{code}: {error.get('Message', '')}".strip()
        if code in TRANSIENT or status >= 500 or status == 429:
            if code.startswith(("Expired", "RequestExpired")):
                self._client = None  # fresh credentials on the next attempt
            return self.fail(f"SNS is unavailable or throttling ({what})", retryable=True)
        if code in BROKEN:
            return self.broken(f"{what} (topic {self.topic_arn})")
        return self.fail(f"SNS refused the message ({what})", retryable=False)

    def _botocore_error(self, exc: Exception) -> Exception:
        from botocore.exceptions import NoCredentialsError, NoRegionError, PartialCredentialsError

        if isinstance(exc, NoCredentialsError | PartialCredentialsError | NoRegionError):
            return self.broken(f"AWS setup: {exc}")
        return self.fail(f"cannot reach SNS: {exc}", retryable=True)

    def client(self) -> Any:
        if self._client is None or time.time() > self._expires - 300:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 1},
                            connect_timeout=self.timeout, read_timeout=self.timeout)
            session = boto3.session.Session()
            credentials = self._assume_role(session, config) if self.settings.get("role_arn") \
                else {}
            self._client = session.client("sns", region_name=self.region or None,
                                          endpoint_url=self.settings.get("endpoint_url"),
                                          config=config, **credentials)
        return self._client

    def _assume_role(self, session: Any, config: Any) -> dict[str, str]:
        sts = session.client("sts", region_name=self.region or None, config=config,
                             endpoint_url=self.settings.get("sts_endpoint_url"))
        args = {"RoleArn": self.settings["role_arn"], "RoleSessionName": "trailguard-sns"}
        if self.settings.get("external_id"):
            args["ExternalId"] = self.settings["external_id"]
        found = sts.assume_role(**args)["Credentials"]
        self._expires = found["Expiration"].timestamp()
        return {"aws_access_key_id": found["AccessKeyId"],
                "aws_secret_access_key": found["SecretAccessKey"],
                "aws_session_token": found["SessionToken"]}
