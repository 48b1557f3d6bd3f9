"""One worker thread per output: a slow or rate-limited output never holds up the others.

A worker takes alert ids from its queue, leases the alert's outbox entry, and delivers the
entry's current version with retries (engine.outputs.retry). Its states, each logged once
when entered, are what a person on call needs to know:

- up: every alert gets the full retry policy;
- down (retries exhausted on connection errors, 5xx, throttling): each further alert gets one
  attempt, and failures go to the outbox quietly; the first success brings the output back
  up and re-queues its outbox;
- broken (`OutputBroken`: revoked token, deleted channel or topic): no more attempts in this
  process; alerts stay in the outbox until `trailguard outbox retry` or a restart.

Any other exception from an output (`Unexpected`) is retried like a connection error: an
alert is never written off because of our bug or a library's.

Waits between attempts use the shared stop event, so `Dispatcher.close` interrupts them;
whatever is not delivered by then simply stays in the outbox, released for the next run.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from engine.errors import DeliveryError
from engine.outputs.base import Output, OutputBroken, get_logger
from engine.outputs.outbox import LEASE, Entry, Outbox
from engine.outputs.retry import Retrying, RetryPolicy, Stopped, deliver
from engine.redaction import redact

log = get_logger(__name__)
_STOP = "\x00stop"


class Unexpected(DeliveryError):
    """Not an answer of the service but an exception of ours or of a client library (an
    ImportError from a racing import, a formatter's bug): the alert is kept and retried,
    never written off as non-retryable, and the output is not counted as down."""

    def __init__(self, output: str, message: str) -> None:
        super().__init__(output, f"unexpected error: {message}", retryable=True)


@dataclass
class OutputStats:
    delivered: int = 0
    failed: int = 0


class Worker:
    def __init__(self, output: Output, store: Outbox, policy: RetryPolicy, owner: str,
                 stop: threading.Event) -> None:
        self.output, self.store, self.policy, self.owner = output, store, policy, owner
        self.name = output.name
        self.stats = OutputStats()
        self.down = False
        self.broken: str | None = None
        self._stop = stop
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"trailguard-output-{self.name}",
                                       daemon=True)
        self.thread.start()

    # -- called from other threads ---------------------------------------------------------
    def submit(self, alert_id: str) -> None:
        with self._lock:
            if alert_id in self._pending:
                return
            self._pending.add(alert_id)
        self._queue.put(alert_id)

    def drain(self, include_permanent: bool) -> int:
        """Queue this output's outbox entries that nobody else holds; return how many."""
        now = self.store.clock()
        entries = [e for e in self.store.entries(self.name)
                   if (include_permanent or not e.permanent) and e.claimable(self.owner, now)]
        for entry in entries:
            self.submit(entry.alert_id)
        return len(entries)

    def wait_idle(self, timeout: float | None) -> bool:
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def stop(self, timeout: float) -> None:
        self._queue.put(_STOP)
        self.thread.join(timeout)

    # -- the worker thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            alert_id = self._queue.get()
            try:
                if alert_id == _STOP:
                    return
                with self._lock:
                    self._pending.discard(alert_id)
                if self._stop.is_set():
                    self.store.release(self.name, alert_id, self.owner, attempted=False)
                else:
                    self._process(alert_id)
            except Exception:  # a bug or a state store failure: the entry stays in the outbox
                log.exception("output %s: delivering alert %s failed unexpectedly", self.name,
                              alert_id)
            finally:
                self._queue.task_done()

    def _process(self, alert_id: str) -> None:
        entry = self.store.claim(self.name, alert_id, self.owner)
        if entry is None:
            return  # delivered meanwhile, or another process holds it
        if self.broken:
            self.store.release(self.name, alert_id, self.owner, self.broken, permanent=True,
                               attempted=False)
            self.stats.failed += 1
            return
        try:
            deliver(lambda: self._send(entry), self.name, self.policy,
                    self._stop.wait, 1 if self.down else None, self._retrying(entry))
        except Stopped:
            self.store.release(self.name, alert_id, self.owner, "stopped before delivery")
            return
        except DeliveryError as exc:
            self._give_up(entry, exc)
            return
        except Exception as exc:  # a failure around the attempts (the state store): kept
            log.exception("output %s: unexpected error", self.name)
            self._give_up(entry, Unexpected(self.name, redact(repr(exc))))
            return
        self._delivered(entry)

    def _send(self, entry: Entry) -> None:
        """One attempt; an exception that is not a DeliveryError becomes a retryable one."""
        try:
            self.output.send(entry.message())
        except DeliveryError:
            raise
        except Exception as exc:
            log.exception("output %s: unexpected error sending alert %s", self.name,
                          entry.alert_id)
            raise Unexpected(self.name, redact(repr(exc))) from exc

    def _retrying(self, entry: Entry) -> Retrying:
        def on_retry(exc: DeliveryError, delay: float, failures: int) -> None:
            log.warning("%s; alert %s: next attempt in %.1fs (%d failed so far)", exc,
                        entry.alert_id, delay, failures)
            self.store.claim(self.name, entry.alert_id, self.owner, LEASE + delay)

        return on_retry

    def _give_up(self, entry: Entry, exc: DeliveryError) -> None:
        error = redact(str(exc))
        if isinstance(exc, OutputBroken):
            if not self.broken:
                self.broken = error
                log.error("%s. Nothing can be delivered to output %s until this is fixed; "
                          "its alerts are kept in the outbox: fix the config, then run "
                          "`trailguard outbox retry -c CONFIG`", error, self.name)
        elif not exc.retryable:
            log.error("%s; alert %s (%s) is kept in the outbox", error, entry.alert_id,
                      entry.alert.get("rule_id"))
        elif isinstance(exc, Unexpected):  # says nothing about the output being down
            log.error("%s; alert %s (%s) is kept in the outbox and retried", error,
                      entry.alert_id, entry.alert.get("rule_id"))
        elif not self.down:
            self.down = True
            log.error("%s; gave up on alert %s after %d attempts. Output %s counts as down: "
                      "its alerts go to the outbox until it answers again", error,
                      entry.alert_id, self.policy.max_attempts, self.name)
        self.store.release(self.name, entry.alert_id, self.owner, error,
                           permanent=not exc.retryable)
        self.stats.failed += 1

    def _delivered(self, entry: Entry) -> None:
        self.stats.delivered += 1
        if not self.store.finish(self.name, entry.alert_id, entry.version):
            self.submit(entry.alert_id)  # a newer version arrived while this one was sent
        if self.down:
            self.down = False
            count = self.drain(include_permanent=False)
            log.warning("output %s answers again; retrying %d alert(s) from its outbox",
                        self.name, count)
