"""`trailguard run`: poll -> decode -> evaluate -> decide -> deliver -> ack, until told to stop.

One thread per source polls and hands deliveries over a small bounded queue (backpressure: a
slow pipeline slows polling instead of piling payloads up in memory). The main thread owns
everything stateful (evaluator, decider, store), so no lock is needed on the hot path.

A delivery is acknowledged only after its records were evaluated and every alert they raised
is in the outbox (Dispatcher.send returns once the alert is durable), so `kill -9` at any
moment makes the source hand the payload out again rather than lose it; stable alert ids and
the outbox's sent-log keep the replay from alerting twice. On Redis the claims, window
changes and alerts of a delivery commit together (engine.daemon.handoff): a delivery that
raced another daemon's is decided again. A payload with nothing decodable
in it is dead-lettered: logged with its origin and reason and left to the source
(SQS: visibility pushed out with backoff until the redrive policy moves it to the DLQ).

SIGTERM/SIGINT stop polling, finish what was handed over, flush and exit 0 within the grace
period. SIGHUP, or a change under a rules directory, reloads the rules; an invalid set is
logged and the old one keeps running.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from engine.conditions.evaluator import Evaluator
from engine.conditions.functions import TrailguardFunctions
from engine.config import Config
from engine.daemon.handoff import JournalHandoff, handoff_for
from engine.daemon.metrics import Metrics, source_type
from engine.daemon.sources import Delivery, Source
from engine.decide.decider import Decider, new_decider
from engine.errors import RuleError, StateError
from engine.inputs.decode import Malformed, ObjectRef, Skipped, decode
from engine.inputs.files import iter_object, iter_paths
from engine.model import Alert
from engine.rules import RuleSet, discover, load_rules
from engine.scan.pipeline import BATCH, ScanStats, scan_batch
from engine.state import StateStore
from engine.state.redisbatch import Conflict
from engine.suppressor import Suppressor, suppressor_for

log = logging.getLogger(__name__)
HOUSEKEEPING_EVERY = 5.0  # seconds between outbox retries, metric refreshes, rule checks
TICK_EVERY = 1.0  # seconds between wall-clock ticks: deadlines fire while nothing arrives
KEEPALIVE_ITEMS = 50_000  # items read from one delivery between two lease extensions
# Malformed items of one delivery logged one by one; the rest are counted in one line. A 4 KB
# gzip of 2M `1` lines wrote 517 MB of dead-letter log; the metric still counts every one.
DEAD_LETTERS_LOGGED = 20
ATTEMPTS = 5  # times a delivery is decided before it is left to come back (Redis conflicts)


@dataclass
class Pipeline:
    """Everything that depends on the rule set; replaced as a whole on reload."""

    ruleset: RuleSet
    evaluator: Evaluator
    decider: Decider
    suppressor: Suppressor | None = None


class Runner:
    def __init__(self, config: Config, rule_paths: tuple[str, ...], store: StateStore,
                 dispatcher: Any, sources: list[Source], metrics: Metrics,
                 engine: str = "compiled", grace: float = 30.0) -> None:
        self.config = config
        self.rule_paths = rule_paths
        self.store = store
        self.dispatcher = dispatcher
        self.sources = sources
        self.metrics = metrics
        self.engine = engine
        self.grace = grace
        self.functions = TrailguardFunctions(config.lists)
        self._suppressor: Suppressor | None = None  # loaded with the rules, by _load
        self.pipeline = self._build(self._load())
        self.stopping = threading.Event()
        self.reload_requested = threading.Event()
        self.handed: queue.Queue[tuple[Source, Delivery]] = queue.Queue(maxsize=4)
        self._rules_stamp = self._stamp()
        self._pollers: list[threading.Thread] = []
        self._delivery_seen: dict[str, tuple[int, int]] = {}
        self.handoff = handoff_for(store, dispatcher)
        self._raised: list[Alert] = []  # alerts of the batch not yet committed

    # --- lifecycle ---------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_requested.set())

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> int:
        """The main loop; returns the exit status."""
        source: Source | None  # in the main loop, None: nothing handed on within the timeout
        for source in self.sources:
            thread = threading.Thread(target=self._poll, args=(source,), daemon=True,
                                      name=f"source-{source.name}")
            thread.start()
            self._pollers.append(thread)
        log.info("trailguard running", extra={"count": len(self.pipeline.evaluator.rules)})
        self._recover()  # first: alerts a killed predecessor committed but did not hand on
        next_housekeeping = next_tick = 0.0
        while not self.stopping.is_set() or not self.handed.empty():
            try:
                source, delivery = self.handed.get(timeout=0.5)
            except queue.Empty:
                source = None
            if source is not None:
                self.process(delivery)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_EVERY
                self._tick()
            if time.monotonic() >= next_housekeeping:
                self._housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_EVERY
            if self.reload_requested.is_set():
                self.reload()
            if self._sources_exhausted():
                self.stop()
        return self._shutdown()

    def _poll(self, source: Source) -> None:
        while not self.stopping.is_set():
            try:
                deliveries = source.poll(wait=2.0)
            except Exception as exc:  # a flaky source must not kill the daemon
                log.warning("source %s: poll failed: %s", source.name, exc,
                            extra={"source": source.name})
                self.stopping.wait(2.0)
                continue
            for delivery in deliveries:
                while not self.stopping.is_set():
                    try:
                        self.handed.put((source, delivery), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                # after a stop, what was polled and not handed over is not acknowledged:
                # the source gives it out again (SQS visibility, S3 marks)

    def _sources_exhausted(self) -> bool:
        return bool(self.sources) and all(getattr(s, "closed", False) for s in self.sources) \
            and self.handed.empty()

    def _shutdown(self) -> int:
        for thread in self._pollers:
            thread.join(timeout=3.0)
        self._flush_and_commit()
        report = self.dispatcher.close(timeout=self.grace)
        for line in report.lines():
            log.info(line)
        for source in self.sources:
            source.close()
        self.store.close()
        log.info("trailguard stopped")
        return 0

    # --- one payload -------------------------------------------------------------------

    def process(self, delivery: Delivery) -> None:
        """Evaluate one delivery and acknowledge it once its alerts are durable.

        Its items are evaluated BATCH at a time as they are read, and the store committed
        once at the end: memory stays flat for a payload of any size, and a crash before the
        commit leaves the whole delivery to come back. A commit that lost a race with
        another daemon (Redis) wrote nothing: the delivery is decided again on what that
        daemon committed."""
        started = time.perf_counter()
        for attempt in range(1, ATTEMPTS + 1):
            try:
                stats, seen = self._evaluate(delivery)
                self.handoff.commit()
                break
            except Conflict as exc:
                self._abort()
                if attempt == ATTEMPTS:
                    log.warning("%s: %s; it will come back", delivery.origin, exc)
                    _tell(delivery.fail, str(exc))
                    return
                log.info("%s: %s (attempt %d)", delivery.origin, exc, attempt,
                         extra={"origin": delivery.origin})
                time.sleep(random.uniform(0.0, 0.02 * attempt))  # out of step with the other
            except StateError as exc:
                self._abort()
                log.error("state store failed; %s will come back: %s", delivery.origin, exc,
                          extra={"origin": delivery.origin})
                _tell(delivery.fail, str(exc))
                return
        self._committed()
        self._account(delivery, stats, seen, time.perf_counter() - started)

    def _evaluate(self, delivery: Delivery) -> tuple[ScanStats, _Seen]:
        stats, seen = ScanStats(), _Seen()
        decider = self.pipeline.decider
        items = iter(self._expand(delivery))
        while batch := list(islice(items, BATCH)):
            scan_batch(batch, self.pipeline.evaluator, decider, self.store, self._send, stats,
                       suppressor=self.pipeline.suppressor)
            seen.note(batch, delivery, self.metrics)
            if seen.items % KEEPALIVE_ITEMS < BATCH <= seen.items:
                _tell(delivery.keepalive)  # a large object: keep its lease while we read on
        self._deliver(decider.flush())  # live mode: updates of alerts folded into
        return stats, seen

    def _abort(self) -> None:
        """Drop what the failed attempt raised and staged; on Redis the decider too, whose
        memory of the attempt (updates to send) was never committed."""
        self._raised = []
        self.handoff.abort()
        if isinstance(self.handoff, JournalHandoff):
            self.pipeline.decider = new_decider(self.pipeline.evaluator,
                                                self.config.allowed_lateness, self.store,
                                                mode="live")

    def _flush_and_commit(self) -> None:
        """Send what the decider still holds and commit (reload, shutdown)."""
        try:
            self._deliver(self.pipeline.decider.flush())
            self.handoff.commit()
        except StateError as exc:
            log.error("state store failed at flush: %s", exc)
            self._abort()
            return
        self._committed()

    def _recover(self) -> None:
        try:
            self.handoff.recover()
        except StateError as exc:
            log.warning("replaying committed alerts failed: %s", exc)

    def _expand(self, delivery: Delivery) -> Iterator[Any]:
        """Decoded items, read as a stream from a file or S3 object; S3 objects named by
        notifications are fetched and decoded in turn."""
        if delivery.path is not None:
            yield from iter_paths([delivery.path])
            return
        if delivery.object is not None:
            yield from self._fetch(delivery, delivery.object)
            return
        if delivery.lines is not None:  # stdin: each line a payload of its own
            for origin, line in delivery.lines:
                yield from self._decoded(delivery, decode(line, origin))
            return
        yield from self._decoded(delivery, decode(delivery.payload, delivery.origin))

    def _decoded(self, delivery: Delivery, items: Iterator[Any]) -> Iterator[Any]:
        for item in items:
            if isinstance(item, ObjectRef):
                yield from self._fetch(delivery, item)
            else:
                yield item

    def _fetch(self, delivery: Delivery, ref: ObjectRef) -> Iterator[Any]:
        origin = f"s3://{ref.bucket}/{ref.key}"
        if delivery.fetch is None:
            yield Skipped(ref.origin, "an S3 reference, but this source has no S3 client")
            return
        _tell(delivery.keepalive)
        try:
            spooled = delivery.fetch(ref.bucket, ref.key)
        except Exception as exc:
            yield Malformed(origin, f"cannot fetch: {exc}", unreadable=True)
            return
        _tell(delivery.keepalive)
        with spooled:
            size = spooled.seek(0, os.SEEK_END)
            spooled.seek(0)
            yield from iter_object(spooled, origin, size)

    def _account(self, delivery: Delivery, stats: ScanStats, seen: _Seen,
                 elapsed: float) -> None:
        m = self.metrics
        m.events.inc(stats.events)
        m.duplicates.inc(stats.duplicates)
        if seen.malformed > DEAD_LETTERS_LOGGED:
            more = seen.malformed - DEAD_LETTERS_LOGGED
            log.warning("dead-lettered %d more malformed item(s) of %s, not logged one by one",
                        more, delivery.origin, extra={"origin": delivery.origin, "count": more})
        m.late.inc(stats.late)
        m.evaluation.observe(elapsed)
        records = stats.events + stats.duplicates
        if seen.malformed and not records and not seen.skipped:
            _tell(delivery.reject, seen.first_reason)  # poison: dead letter (SQS: redrive)
            return
        if seen.unreadable:
            _tell(delivery.reject, "not fully readable")  # a local file: dead-lettered; S3: retried
            return
        _tell(delivery.ack)

    def _deliver(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self._send(alert)

    def _send(self, alert: Alert) -> None:
        self.handoff.emit(alert)  # durable when the batch commits (SQLite: at once)
        self._raised.append(alert)

    def _committed(self) -> None:
        for alert in self._raised:
            context = {"rule_id": alert.rule.id, "alert_id": alert.alert_id,
                       "event_id": alert.event_ids[0] if alert.event_ids else None,
                       "count": alert.event_count}
            if alert.update:  # matches folded into an alert already sent: not a new alert
                self.metrics.alert_updates.labels(rule=alert.rule.id).inc()
                log.info("update of alert %s (%s): %d events now: %s", alert.alert_id,
                         alert.rule.id, alert.event_count, alert.summary, extra=context)
                continue
            self.metrics.alerts.labels(rule=alert.rule.id).inc()
            log.info("alert %s: %s", alert.rule.id, alert.summary, extra=context)
        self._raised = []

    def _tick(self) -> None:
        """Time passes on the wall clock too: an absent step or an absence gap whose deadline
        is behind the wall clock minus the lateness fires now, not at the next record. Its
        changes and alerts commit together, as a delivery's do; a commit that lost a race
        (another daemon settled the same group) is dropped, and the next tick starts again
        from what that daemon committed."""
        try:
            self._deliver(self.pipeline.decider.tick(time.time()))
            self.handoff.commit()
        except Conflict as exc:
            log.info("clock tick: %s", exc)
            self._abort()
            return
        except StateError as exc:
            log.error("state store failed on the clock tick: %s", exc)
            self._abort()
            return
        self._committed()

    # --- rules -------------------------------------------------------------------------

    def _load(self) -> RuleSet:
        """The rules, and the suppressions checked against them (for _build): a RuleError
        from either rejects the set."""
        ruleset = load_rules([Path(p) for p in self.rule_paths], self.functions,
                             self.config.known_lists, set(self.config.outputs))
        self._suppressor = suppressor_for(self.config, self.functions, ruleset.rules,
                                          self.engine)
        return ruleset

    def _build(self, ruleset: RuleSet) -> Pipeline:
        evaluator = Evaluator(ruleset.rules, self.functions, self.engine)
        decider = new_decider(evaluator, self.config.allowed_lateness, self.store, mode="live")
        return Pipeline(ruleset, evaluator, decider, self._suppressor)

    def reload(self) -> None:
        """Swap in a freshly loaded rule set, or keep the running one if it is invalid."""
        self.reload_requested.clear()
        self._rules_stamp = self._stamp()
        try:
            ruleset = self._load()
        except RuleError as exc:
            for problem in exc.problems:
                log.error("rule reload rejected: %s", problem)
            self.metrics.reloads.labels(result="rejected").inc()
            return
        self._flush_and_commit()
        self._refresh_rule_metrics()  # the old set's counts, before they are replaced
        self.pipeline = self._build(ruleset)
        self.metrics.reloads.labels(result="loaded").inc()
        log.info("rules reloaded", extra={"count": len(ruleset.rules)})

    def _stamp(self) -> tuple[tuple[str, float, int], ...]:
        stamps = []
        for path in discover(self.rule_paths + self.config.suppressions):
            try:
                info = path.stat()
            except OSError:
                continue
            stamps.append((str(path), info.st_mtime, info.st_size))
        return tuple(stamps)

    # --- housekeeping ------------------------------------------------------------------

    def _housekeeping(self) -> None:
        if self._stamp() != self._rules_stamp:
            self.reload_requested.set()
        try:
            self.handoff.recover()
            self.dispatcher.retry_outbox()
            self.metrics.outbox.set(sum(self.dispatcher.store.count(name)
                                        for name in self.dispatcher.outputs))
        except Exception as exc:
            log.warning("housekeeping failed: %s", exc)
        self._refresh_rule_metrics()
        self._refresh_delivery_metrics()

    def _refresh_delivery_metrics(self) -> None:
        for name, worker in getattr(self.dispatcher, "workers", {}).items():
            done, failed = worker.stats.delivered, worker.stats.failed
            last_done, last_failed = self._delivery_seen.get(name, (0, 0))
            self.metrics.deliveries.labels(output=name).inc(max(0, done - last_done))
            self.metrics.delivery_failures.labels(output=name).inc(max(0, failed - last_failed))
            self._delivery_seen[name] = (done, failed)

    def _refresh_rule_metrics(self) -> None:
        evaluator = self.pipeline.evaluator
        for rule_id, count in evaluator.matches.items():
            self.metrics.matches.labels(rule=rule_id).inc(count)
        evaluator.matches.clear()
        for rule_id, count in evaluator.errors.items():
            self.metrics.rule_errors.labels(rule=rule_id).inc(count)
        evaluator.errors.clear()
        suppressor = self.pipeline.suppressor
        if suppressor:
            counts = suppressor.drain()
            for suppression in suppressor.suppressions:  # inc(0) shows the unused ones too
                self.metrics.suppressed.labels(suppression=suppression.id).inc(
                    counts[suppression.id])
        watermark = self.pipeline.decider.watermark
        if watermark > float("-inf"):
            self.metrics.lag.set(max(0.0, time.time() - watermark))

    def readiness(self) -> list[str]:
        problems = []
        try:
            self.store.get("readyz-probe")
        except Exception as exc:
            problems.append(f"state store {self.store.url}: {exc}")
        problems.extend(f"source {s.name} unreachable" for s in self.sources
                        if not s.reachable())
        return problems



def _tell(call: Any, *args: Any) -> None:
    """Acknowledge, fail or keep alive a delivery; the source refusing (an SQS receipt handle
    gone stale once its visibility ran out, the message handed out again) must not stop the
    daemon: the message comes back, and its records are then repeats."""
    try:
        call(*args)
    except Exception as exc:
        log.warning("the source did not take %s: %s", getattr(call, "__name__", "it"), exc)


@dataclass
class _Seen:
    """What one delivery's items were, counted as they pass: a large payload's items are
    never all held at once. A malformed one is logged (dead-lettered) as it is met, up to
    DEAD_LETTERS_LOGGED of them; the rest are counted."""

    items: int = 0
    malformed: int = 0
    skipped: int = 0
    unreadable: bool = False
    first_reason: str = ""

    def note(self, batch: list[Any], delivery: Delivery, metrics: Metrics) -> None:
        self.items += len(batch)
        for item in batch:
            if isinstance(item, Skipped):
                self.skipped += 1
            elif isinstance(item, Malformed):
                if not self.malformed:
                    self.first_reason = item.reason
                self.malformed += item.count
                self.unreadable = self.unreadable or item.unreadable
                metrics.malformed.labels(source=source_type(delivery)).inc(item.count)
                if self.malformed <= DEAD_LETTERS_LOGGED:
                    log.warning("dead-lettered: %s", item.reason,
                                extra={"origin": item.origin, "reason": item.reason})
