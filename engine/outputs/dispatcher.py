"""The delivery front door: route an alert, put it in the outbox, hand it to the workers.

`build_dispatcher(config, state_url)` checks every output and route first (a ConfigError
names the config line), opens the outbox in the state store, starts one worker per output,
and queues what earlier runs left in the outbox. `send(alert)` returns once the alert is
safely in the outbox (so a daemon may acknowledge its source message then); delivery happens
in the background. `close()` waits for the workers and reports, per output, what was
delivered, what failed, and what is left in the outbox.

The registry of output types is the plain dict `OUTPUT_TYPES`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.errors import ConfigError
from engine.model import Alert
from engine.outputs.base import Output, OutputContext, get_logger
from engine.outputs.basic import FileOutput, MemoryOutput, StdoutOutput
from engine.outputs.outbox import Outbox, new_owner, open_outbox
from engine.outputs.retry import RetryPolicy
from engine.outputs.routing import Router, parse_routes
from engine.outputs.slack import SlackOutput
from engine.outputs.sns import SnsOutput
from engine.outputs.worker import Worker

log = get_logger(__name__)

OUTPUT_TYPES: dict[str, type[Output]] = {
    "stdout": StdoutOutput,
    "file": FileOutput,
    "slack": SlackOutput,
    "sns": SnsOutput,
    "memory": MemoryOutput,  # the test double: keeps alerts in a list
}


@dataclass
class OutputReport:
    name: str
    where: str
    delivered: int = 0
    failed: int = 0
    outbox: int = 0
    broken: str | None = None


@dataclass
class DeliveryReport:
    outputs: dict[str, OutputReport] = field(default_factory=dict)
    unrouted: int = 0
    state: str = "memory://"

    @property
    def delivered(self) -> int:
        return sum(o.delivered for o in self.outputs.values())

    @property
    def left(self) -> int:
        """Alerts still in the outbox of the configured outputs."""
        return sum(o.outbox for o in self.outputs.values())

    def lines(self) -> list[str]:
        """What a person reads on stderr after a scan."""
        lines = [f"  output {o.name} ({o.where}): {o.delivered} delivered, {o.failed} failed, "
                 f"{o.outbox} in the outbox" + (f"; BROKEN: {o.broken}" if o.broken else "")
                 for o in self.outputs.values()]
        if self.unrouted:
            lines.append(f"  {self.unrouted} alert(s) matched no route and went nowhere")
        if self.left:
            where = ("lost when this process exits: use a sqlite:// or redis:// state"
                     if self.state.startswith("memory://") else
                     f"kept in {self.state}; `trailguard outbox retry -c CONFIG` sends them")
            lines.append(f"  {self.left} alert(s) not delivered, {where}")
        return lines


class Dispatcher:
    """Routes alerts to outputs, each with its own worker; the outbox makes it lossless."""

    def __init__(self, outputs: Mapping[str, Output], router: Router, store: Outbox,
                 policy: RetryPolicy | None = None, drain: bool = True) -> None:
        self.outputs = dict(outputs)
        self.router = router
        self.store = store
        self.owner = new_owner()
        self._stop = threading.Event()
        self.workers = {name: Worker(o, store, policy or RetryPolicy(), self.owner, self._stop)
                        for name, o in self.outputs.items()}
        self.unrouted: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._report: DeliveryReport | None = None
        if drain:
            for worker in self.workers.values():
                worker.drain(include_permanent=True)

    def send(self, alert: Alert) -> None:
        """Route `alert` and store it in each output's outbox; workers deliver it.

        Returns when the alert is durable in the state store; raises StateError when the
        store cannot take it (the caller must then not acknowledge the alert's source).
        """
        names = [n for n in self.router.route(alert.rule) if self._known(n, alert)]
        if not names:
            self.unrouted[alert.rule.id] += 1
            self._warn_once(alert.rule.id, "no route matches rule %s: its alerts go nowhere",
                            alert.rule.id)
            return
        doc = alert.to_dict()
        for name in names:
            self.store.put(name, doc, self.owner)
            self.workers[name].submit(alert.alert_id)

    def send_to(self, name: str, doc: dict[str, Any]) -> None:
        """Queue an alert document (already routed) for one output."""
        self.store.put(name, doc, self.owner)
        self.workers[name].submit(str(doc["alert_id"]))

    def retry_outbox(self, include_permanent: bool = False) -> int:
        """Queue the outbox again (the daemon calls this now and then); return how many."""
        return sum(w.drain(include_permanent) for w in self.workers.values() if not w.broken)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every worker is idle; False when `timeout` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.wait_idle(left):
                return False
        return True

    def close(self, timeout: float | None = None) -> DeliveryReport:
        """Finish in-flight deliveries (at most `timeout` seconds), stop, and report."""
        if self._report is not None:
            return self._report
        self.wait(timeout)
        self._stop.set()
        for worker in self.workers.values():
            worker.stop(worker.output.timeout + 2.0)
        report = DeliveryReport(unrouted=sum(self.unrouted.values()), state=self.store.url)
        for name, worker in self.workers.items():
            report.outputs[name] = OutputReport(
                name, worker.output.describe(), worker.stats.delivered, worker.stats.failed,
                self.store.count(name), worker.broken)
            worker.output.close()
        self.store.close()
        self._report = report
        return report

    def _known(self, name: str, alert: Alert) -> bool:
        if name in self.workers:
            return True
        self._warn_once(f"{alert.rule.id}->{name}", "rule %s names output %s, which the config "
                        "does not define", alert.rule.id, name)
        return False

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


def check_delivery_config(config: Config) -> Router:
    """Check every output's settings and every route (no I/O); raise ConfigError."""
    where = config.where("outputs")
    for name, settings in config.outputs.items():
        kind = settings.get("type")
        cls = OUTPUT_TYPES.get(str(kind))
        if cls is None:
            raise ConfigError(f"outputs.{name}: unknown type {kind!r} (known: "
                              f"{', '.join(sorted(OUTPUT_TYPES))})", where)
        cls.check(name, settings, where)
    routes = parse_routes(config.routes, config.outputs, config.where("routes"))
    return Router(routes, config.outputs)


def build_outputs(config: Config, store: Outbox) -> dict[str, Output]:
    base = Path(config.path).parent if config.path else Path.cwd()
    context = OutputContext(base_dir=base, store=store)
    return {name: OUTPUT_TYPES[str(settings["type"])](name, settings, context)
            for name, settings in config.outputs.items()}


def build_dispatcher(config: Config, state_url: str | None = None,
                     policy: RetryPolicy | None = None, drain: bool = True) -> Dispatcher:
    """The dispatcher for a config; `state_url` overrides the config's `state`."""
    router = check_delivery_config(config)
    store = open_outbox(state_url or config.state)
    return Dispatcher(build_outputs(config, store), router, store, policy, drain)
