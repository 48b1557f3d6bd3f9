"""`trailguard run -c CONFIG`: the daemon's command line (SPEC §6)."""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from engine.errors import ConfigError

DEFAULT_STATE = "sqlite:///trailguard-state.db"  # survives restarts; the config should say where
log = logging.getLogger("engine.daemon")


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="the daemon: consume sources until SIGTERM",
                         description="Consume the config's sources, evaluate, deliver alerts.")
    run.add_argument("-c", "--config", required=True, help="trailguard.yml")
    run.add_argument("-r", "--rules", action="append", metavar="RULES",
                     help="rule file or directory (repeatable); default: the config's")
    run.add_argument("--state", help="state URL; default: the config's, else " + DEFAULT_STATE)
    run.add_argument("--listen", help="HOST:PORT for /healthz /readyz /metrics "
                                      "(default: the config's server.listen, else 127.0.0.1:9090)")
    run.add_argument("--engine", choices=("compiled", "interpreted"), default="compiled")
    run.add_argument("--log-format", choices=("json", "text"), default="json")
    run.set_defaults(command=_logged)


def _logged(args: argparse.Namespace) -> int:
    """`_run`, with every line on stderr a log line (JSON unless --log-format text), errors
    at start included: a log pipeline must not meet a plain-text line."""
    from engine import logs
    from engine.errors import RuleError

    logs.configure(json_lines=args.log_format == "json")
    threading.excepthook = _thread_died
    try:
        return _run(args)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return 2
    except RuleError as exc:
        for problem in exc.problems:
            log.error("rule error: %s", problem)
        return 1
    except Exception:  # a bug: its traceback as a log line too, not plain text
        log.exception("trailguard stopped on an unexpected error")
        return 1


def _thread_died(hook: Any) -> None:
    if hook.exc_type is not SystemExit:
        log.error("thread %s stopped on an unexpected error",
                  getattr(hook.thread, "name", "?"),
                  exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))


def _run(args: argparse.Namespace) -> int:
    from engine import logs
    from engine.daemon.marks import StoreMarks
    from engine.daemon.metrics import Metrics
    from engine.daemon.runner import Runner
    from engine.daemon.server import serve
    from engine.daemon.sources import build_sources
    from engine.durations import parse_duration
    from engine.errors import StateError
    from engine.outputs import build_dispatcher
    from engine.scan import tune_gc
    from engine.setup import prepare
    from engine.state import open_store

    logs.configure(json_lines=args.log_format == "json")
    tune_gc()
    setup = prepare(args.config, args.rules)
    config = setup.config
    state_url = args.state or config.state or DEFAULT_STATE
    try:
        store = open_store(state_url)
    except StateError as exc:
        raise ConfigError(str(exc), "state") from exc
    store.autocommit = False  # the runner commits each batch once its alerts are durable
    dispatcher = build_dispatcher(config, state_url)
    sources = build_sources(config.sources, StoreMarks(store))
    if not sources:
        raise ConfigError("the daemon needs at least one source", config.where("sources"))
    metrics = Metrics()
    grace = parse_duration(config.server.get("grace_period", "30s"))
    runner = Runner(config, setup.rule_paths, store, dispatcher, sources, metrics,
                    args.engine, grace)
    listen = args.listen or config.server.get("listen", "127.0.0.1:9090")
    server = serve(str(listen), metrics.registry, runner.readiness,
                   lambda: not runner.stopping.is_set())
    host, port = server.server_address[:2]
    # a log line like every other: tests and scripts find the port by `listening on HOST:PORT`
    log.info("listening on %s:%s (/healthz /readyz /metrics)", host, port)
    runner.install_signals()
    try:
        return runner.run()
    finally:
        server.shutdown()
