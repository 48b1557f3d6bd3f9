"""What every output shares: the `Output` interface, settings checks, and secret redaction.

An output turns one alert (the SPEC §4 JSON as a dict) into one delivery and reports failure
only as `DeliveryError`: `retryable` says whether trying again can help, `retry_after` carries
a server's own wait (Slack's `Retry-After`). `OutputBroken`, a DeliveryError, says the output
itself is misconfigured (revoked token, deleted channel or topic): no alert can get through
until a person fixes it, so the worker stops trying and says so once.

Secrets (webhook URLs, tokens) are registered when an output is built; every logger of this
package, and the logger handed to slack-sdk, runs `RedactSecrets`, and every error message is
passed through `redact()`, so a secret never reaches a log line or an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import ConfigError, DeliveryError
from engine.outputs.outbox import Outbox
from engine.redaction import MASK as MASK  # re-exported: outputs and their tests use it here
from engine.redaction import RedactSecrets, redact, register_secret

AlertDoc = dict[str, Any]
DEFAULT_TIMEOUT = 10.0


class OutputBroken(DeliveryError):
    """A permanent failure of the output itself, not of one alert: stop and tell a person."""

    def __init__(self, output: str, message: str) -> None:
        super().__init__(output, message, retryable=False)


# -- secrets: engine.redaction, the one helper of the whole program ---------------------
def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
    return logger


# -- the interface -----------------------------------------------------------------------
@dataclass(frozen=True)
class OutputContext:
    """What an output may use beyond its settings."""

    base_dir: Path
    store: Outbox


class Output:
    """Base of every output type; subclasses declare their settings and implement `send`."""

    type_name: ClassVar[str] = ""
    required: ClassVar[frozenset[str]] = frozenset()
    optional: ClassVar[frozenset[str]] = frozenset()
    secrets: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, settings: Mapping[str, Any], context: OutputContext) -> None:
        self.name = name
        self.settings = dict(settings)
        self.context = context
        for key in self.secrets:
            register_secret(self.settings.get(key))

    @classmethod
    def check(cls, name: str, settings: Mapping[str, Any], where: str) -> None:
        """Raise ConfigError for unknown, missing or malformed settings (no I/O)."""
        known = cls.required | cls.optional | {"type"}
        for key in settings:
            if key not in known:
                raise ConfigError(f"outputs.{name}: unknown setting {key!r} for type "
                                  f"{cls.type_name} (known: {', '.join(sorted(known))})", where)
        missing = sorted(cls.required - set(settings))
        if missing:
            raise ConfigError(f"outputs.{name}: missing {', '.join(missing)}", where)
        timeout = settings.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or
                                    not isinstance(timeout, int | float) or timeout <= 0):
            raise ConfigError(f"outputs.{name}: timeout must be a number of seconds > 0", where)
        cls.check_more(name, settings, where)

    @classmethod
    def check_more(cls, name: str, settings: Mapping[str, Any], where: str) -> None:
        """Checks across settings; a subclass overrides when it has any."""

    @property
    def timeout(self) -> float:
        return float(self.settings.get("timeout") or DEFAULT_TIMEOUT)

    def send(self, alert: AlertDoc) -> None:
        """Deliver one alert; raise DeliveryError (or OutputBroken) when it did not arrive."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where this output delivers, safe to print (no secrets)."""
        return self.type_name

    def close(self) -> None:
        """Release clients and files."""

    def fail(self, message: str, retryable: bool, retry_after: float = 0.0) -> DeliveryError:
        return DeliveryError(self.name, redact(message), retryable, retry_after)

    def broken(self, message: str) -> OutputBroken:
        return OutputBroken(self.name, redact(message))


def string_setting(name: str, settings: Mapping[str, Any], key: str, where: str) -> None:
    value = settings.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"outputs.{name}: {key} must be a non-empty string", where)
