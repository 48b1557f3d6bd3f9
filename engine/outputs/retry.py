"""When to try a delivery again: exponential backoff with jitter, and servers' own waits.

Connection errors, 5xx and throttling are retried up to `max_attempts` with a delay drawn
from [½·d, d] where d = min(cap, base·2ⁿ): jitter spreads the retries of many alerts (and many
daemons) instead of hammering a recovering service in step. A `Retry-After` (Slack 429) is
honoured as given and does not use up an attempt, since the request itself was fine; the total
of such waits for one alert is bounded by `max_rate_limit_wait`.

All waiting goes through a `wait(seconds) -> stopped` callable: the worker passes its stop
event's `wait`, so shutdown interrupts a backoff at once, and tests scale delays down with
`scale` instead of sleeping for real.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import DeliveryError

Wait = Callable[[float], bool]  # sleeps up to `seconds`; True when interrupted by a stop


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_rate_limit_wait: float = 300.0
    scale: float = 1.0  # multiplies every delay, Retry-After included (tests use < 1)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, failures: int) -> float:
        """Delay after the `failures`-th failed attempt (1-based), jittered, scaled."""
        ceiling = min(self.cap, self.base * 2 ** (failures - 1))
        return self.rng.uniform(ceiling / 2, ceiling) * self.scale

    def retry_after(self, seconds: float) -> float:
        return max(0.0, seconds) * self.scale


class Stopped(DeliveryError):
    """Shutdown interrupted the waits between attempts; the alert stays in the outbox."""

    def __init__(self, output: str) -> None:
        super().__init__(output, "stopped before delivery", retryable=True)


Retrying = Callable[[DeliveryError, float, int], None]  # (error, delay, failures so far)


def deliver(
    send: Callable[[], None],
    output: str,
    policy: RetryPolicy,
    wait: Wait,
    max_attempts: int | None = None,
    on_retry: Retrying | None = None,
) -> int:
    """Call `send` until it succeeds; return the failures it took, or raise the last error.

    Only DeliveryError is expected from `send`; a permanent one is raised at once.
    """
    attempts = policy.max_attempts if max_attempts is None else max_attempts
    failures, rate_limited = 0, 0.0
    while True:
        try:
            send()
            return failures
        except DeliveryError as exc:
            delay = _next_delay(exc, policy, failures + 1, attempts, rate_limited)
            if exc.retry_after > 0:
                rate_limited += exc.retry_after
            else:
                failures += 1
            if on_retry is not None:
                on_retry(exc, delay, failures)
            if wait(delay):
                raise Stopped(output) from exc


def _next_delay(exc: DeliveryError, policy: RetryPolicy, failure: int, attempts: int,
                rate_limited: float) -> float:
    """The wait before the next attempt; re-raises `exc` when there must be none."""
    if not exc.retryable:
        raise exc
    if exc.retry_after > 0:
        if rate_limited + exc.retry_after > policy.max_rate_limit_wait:
            raise exc
        return policy.retry_after(exc.retry_after)
    if failure >= attempts:
        raise exc
    return policy.backoff(failure)
