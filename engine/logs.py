"""JSON log lines for the daemon: one object a line, with the context that applies.

Fields passed as `extra={"rule_id": ..., "event_id": ..., "output": ..., "origin": ...}`
become keys of the line, so a log pipeline can filter on them without parsing messages.
Every line, its traceback and its context values pass through engine.redaction: a log line
quotes URLs and errors, and must show no password or token whichever module wrote it.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from engine.redaction import redact

CONTEXT_FIELDS = ("rule_id", "event_id", "alert_id", "output", "origin", "source", "reason",
                  "count")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`--log-format text`, redacted like the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
