"""The local outputs: `stdout` and `file` (JSON lines), and `memory`, the test double.

`file` appends one JSON line per alert and fsyncs before reporting success, so an alert the
dispatcher counts as delivered survives a power cut; it reopens the file for every alert,
which keeps log rotation (rename + new file) working without a signal.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import ConfigError, DeliveryError
from engine.outputs.base import AlertDoc, Output, OutputContext
from engine.outputs.values import count_of, dumps, one_line, text_of


def json_line(alert: AlertDoc) -> bytes:
    """One JSON line; a record orjson refuses (nested past 254 levels) is sanitised."""
    return dumps(alert) + b"\n"


def text_line(alert: AlertDoc) -> str:
    """One line for people: values from the event cannot break it into several."""
    count = count_of(alert.get("event_count"))
    events = f" ({count} events)" if count > 1 else ""
    update = " (update)" if alert.get("update") else ""
    return one_line(
        f"[{text_of(alert.get('severity'), 20).upper()}] {text_of(alert.get('rule_id'), 200)}: "
        f"{text_of(alert.get('summary') or alert.get('title'), 10_000)}{events}{update} "
        f"at {text_of(alert.get('first_event_time'), 100)} "
        f"[{text_of(alert.get('alert_id'), 100)}]")


class StdoutOutput(Output):
    type_name = "stdout"
    optional: ClassVar[frozenset[str]] = frozenset({"format"})
    _lock = threading.Lock()  # one stdout per process, however many outputs write to it

    @classmethod
    def check_more(cls, name: str, settings: Mapping[str, Any], where: str) -> None:
        if settings.get("format", "jsonl") not in ("jsonl", "text"):
            raise ConfigError(f"outputs.{name}: format must be jsonl or text", where)

    def send(self, alert: AlertDoc) -> None:
        if self.settings.get("format") == "text":
            data = (text_line(alert) + "\n").encode()
        else:
            data = json_line(alert)
        with self._lock:
            try:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            except (OSError, ValueError) as exc:
                raise self.fail(f"cannot write to stdout: {exc}", retryable=False) from None

    def describe(self) -> str:
        return f"stdout ({self.settings.get('format', 'jsonl')})"


class FileOutput(Output):
    type_name = "file"
    required: ClassVar[frozenset[str]] = frozenset({"path"})

    def __init__(self, name: str, settings: Mapping[str, Any], context: OutputContext) -> None:
        super().__init__(name, settings, context)
        path = Path(str(settings["path"]))
        self.path = path if path.is_absolute() else context.base_dir / path

    def send(self, alert: AlertDoc) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, json_line(alert))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # A full disk or a missing mount may come back; a permission error will not.
            retryable = not isinstance(exc, PermissionError)
            raise self.fail(f"cannot append to {self.path}: {exc.strerror}", retryable) from None

    def describe(self) -> str:
        return f"file {self.path}"


class MemoryOutput(Output):
    """Keeps what it is sent in `.sent`; `.failures` queues errors to raise first (tests)."""

    type_name = "memory"

    def __init__(self, name: str, settings: Mapping[str, Any], context: OutputContext) -> None:
        super().__init__(name, settings, context)
        self.sent: list[AlertDoc] = []
        self.failures: list[DeliveryError] = []
        self.attempts = 0

    def send(self, alert: AlertDoc) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(alert)

    def describe(self) -> str:
        return "memory"
