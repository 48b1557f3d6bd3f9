"""Amazon SNS: the alert JSON as `Message`, for topics standard and FIFO.

Subscribers filter on `MessageAttributes` `severity` and `rule_id`; the `Subject` (used by
e-mail subscriptions) is printable ASCII under 100 characters, which real SNS demands and
moto does not check. FIFO topics get `MessageGroupId` = rule id and `MessageDeduplicationId`
= alert id; an update of an alert gets `<alert id>-u<count>`, because reusing the alert id
would make SNS silently drop every update sent within its 5-minute dedup window.

A message over 256 KB (SNS counts the body and the attributes, in bytes) is trimmed by
`engine.outputs.trim`: the largest parts go first (an event field, a huge `group_key` or
summary), each replaced by a note of its size, and a top-level `trimmed` object lists what was
cut — the alert always arrives, and says it is incomplete. Every field may hold any JSON
value (an alert carries the record as received): subject, attributes and FIFO ids are built
from whatever is there, within SNS's rules, and never raise.

boto3 is imported when the output is built (engine.outputs.preload: never in two worker
threads at once), not at module import, so commands without SNS do not pay its ~160 ms.
The client is built at the first delivery, with botocore's retries off (the
worker retries with jitter), `endpoint_url` when given (else botocore's own
`AWS_ENDPOINT_URL`), and credentials from `role_arn` via STS, refreshed before they expire.
"""

from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar

from engine.errors import ConfigError
from engine.outputs import preload
from engine.outputs.base import AlertDoc, Output, OutputContext, get_logger, string_setting
from engine.outputs.trim import fit
from engine.outputs.values import count_of, one_line, text_of

log = get_logger(__name__)

MAX_BYTES = 262_144
SUBJECT_LIMIT = 99
ATTRIBUTE_LIMIT = 256
_NOT_XML = ("\ufffe", "\uffff")
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
    """`[HIGH] title` as printable ASCII under 100 characters, whatever the fields hold."""
    prefix = f"[{text_of(alert.get('severity'), 20)[:20].upper()}] "
    if alert.get("update"):
        prefix += "update: "
    text = unicodedata.normalize("NFKD", prefix + text_of(alert.get("title"), 300))
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_ASCII_LOOKALIKE)
    text = re.sub(r"[^\x20-\x7e]+", " ", text)
    text = re.sub(r" {2,}", " ", text).strip()
    if len(text) > SUBJECT_LIMIT:
        text = text[: SUBJECT_LIMIT - 3].rstrip() + "..."
    return text or "trailguard alert"


def attributes(alert: AlertDoc) -> dict[str, dict[str, str]]:
    """`severity` and `rule_id` for filter policies: printable, short, never empty (SNS
    refuses an empty attribute value, and attributes count toward the 256 KB)."""
    return {key: {"DataType": "String", "StringValue": _attribute(alert.get(key))}
            for key in ("severity", "rule_id")}


def _attribute(value: Any) -> str:
    text = re.sub(r"[^\x20-\x7e]", "?", text_of(value, ATTRIBUTE_LIMIT)[:ATTRIBUTE_LIMIT])
    return text.strip() or "unknown"


def _attributes_size(attrs: Mapping[str, Mapping[str, str]]) -> int:
    return sum(len(k.encode()) + len(v["DataType"]) + len(v["StringValue"].encode())
               for k, v in attrs.items())


def fit_message(alert: AlertDoc, budget: int) -> str:
    """The alert JSON, trimmed (largest parts first, and marked) to `budget` bytes.

    U+FFFE and U+FFFF, which XML (SNS's Query API, SQS subscribers) refuses, are written as
    JSON escapes: the same JSON value, 3 bytes longer each, so the budget makes room first.
    """
    reason = "message over the SNS limit of 256 KB"
    message = fit(alert, budget, reason).decode()
    found = sum(message.count(c) for c in _NOT_XML)
    if found:
        message = fit(alert, budget - 3 * found, reason).decode()
        for char in _NOT_XML:
            message = message.replace(char, f"\\u{ord(char):04x}")
    return message


def fifo_id(value: Any, suffix: str = "") -> str:
    """A MessageGroupId / MessageDeduplicationId: 1-128 printable ASCII characters; a value
    that is not one already becomes a digest of itself, so distinct ids stay distinct."""
    text = text_of(value, 10_000)
    room = 128 - len(suffix)
    if len(text) > room or not re.fullmatch(r"[\x21-\x7e]+", text):
        text = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
    return text + suffix


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
        preload.aws()  # here, before the worker threads start: see engine.outputs.preload

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
            log.warning("output %s: alert %s was over 256 KB: its largest parts were trimmed",
                        self.name, one_line(text_of(alert.get("alert_id"), 100)[:100]))
        args: dict[str, Any] = {"TopicArn": self.topic_arn, "Subject": title,
                                "Message": message, "MessageAttributes": attrs}
        if self.fifo:
            args["MessageGroupId"] = fifo_id(alert.get("rule_id"))
            suffix = f"-u{count_of(alert.get('event_count'))}" if alert.get("update") else ""
            args["MessageDeduplicationId"] = fifo_id(alert.get("alert_id"), suffix)
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
