"""The exception tree of trailguard.

    TrailguardError
    ├── RuleError        a rule file is invalid (path, line, field); collected, never raised alone
    ├── ConfigError      the config file or a command-line option is invalid (exit status 2);
    │                    carries every problem found (`problems`), not just the first
    ├── DecodeError      a payload is not CloudTrail; counted and dead-lettered, never fatal
    ├── StateError       the state store is unreachable or inconsistent (exit status 1 once
    │                    a command is under way: it is not a config error)
    └── DeliveryError    an output could not deliver an alert (retryable or permanent)

Context lives in attributes and `__str__` renders it the way a compiler would, so a user
reading `rules/x.yml:7: condition: unknown function 'lenght'` can jump to the place. The
messages of ConfigError and StateError pass through `engine.redaction.redact`: they quote
URLs and config values, and a password or token must not reach a terminal or a log that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.redaction import redact


class TrailguardError(Exception):
    """Base of every error trailguard raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One finding about a rule file; `severity` is 'error' or 'warning'."""

    path: str
    line: int
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.path}:{self.line}: {self.field}: {prefix}{self.message}"


class RuleError(TrailguardError):
    """Rules failed to load; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(TrailguardError):
    """The configuration is invalid; `where` names the file and line or the option.

    `problems` holds one line per problem (`PATH:LINE: field: message`): a config is checked
    whole and every problem reported at once (`ConfigError.collected`)."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        text = redact(f"{where}: {message}" if where else message)
        self.problems: list[str] = [text]
        super().__init__(text)

    @classmethod
    def collected(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error carrying every problem of `errors`, in order."""
        problems = [line for error in errors for line in error.problems]
        combined = cls("\n".join(problems))
        combined.problems = problems
        combined.where = errors[0].where if errors else ""
        return combined


class DecodeError(TrailguardError):
    """A payload could not be decoded into CloudTrail records."""

    def __init__(self, origin: str, reason: str) -> None:
        self.origin = origin
        self.reason = reason
        super().__init__(f"{origin}: {reason}")


class StateError(TrailguardError):
    """The state store failed; the caller retries or stops, it never guesses."""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(str(message)))


class DeliveryError(TrailguardError):
    """An output failed to deliver; `retryable` says whether trying again can help."""

    def __init__(self, output: str, message: str, retryable: bool, retry_after: float = 0.0):
        self.output = output
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"output {output}: {message}")
