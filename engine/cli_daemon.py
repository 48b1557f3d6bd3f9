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
    from engine.errors import RuleError, StateError

    logs.configure(json_lines=args.log_format == "json")
    threading.excepthook = _thread_died
    try:
        return _run(args)
    except ConfigError as exc:
        for problem in exc.problems:  # a line each, with its PATH:LINE
            log.error("config error: %s", problem)
        if len(exc.problems) > 1:
            log.error("%d config errors", len(exc.problems))
        return 2
    except StateError as exc:  # once started: not a config error, and no traceback (redacted)
        log.error("state store unavailable: %s", exc)
        return 1
    except RuleError as exc:
        for rule_problem in exc.problems:  # a Problem; a ConfigError's are lines (str)
            log.error("rule error: %s", rule_problem)
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
    from engine.daemon.sources import build_sources
    from engine.durations import parse_duration
    from engine.errors import StateError
    from engine.outputs import build_dispatcher
    from engine.redaction import register_url_password
    from engine.scan.pipeline import tune_gc
    from engine.startup import prepare
    from engine.state import open_store

    logs.configure(json_lines=args.log_format == "json")
    tune_gc()
    setup = prepare(args.config, args.rules, delivery=True)  # every config problem, at once
    config = setup.config
    listen = _listen(args.listen, config)
    state_url = args.state or config.state or DEFAULT_STATE
    register_url_password(state_url)
    try:
        store = open_store(state_url)
    except (StateError, OSError) as exc:  # OSError: a SQLite directory that cannot be made
        message = str(exc) if isinstance(exc, StateError) else f"state {state_url}: {exc}"
        raise ConfigError(message, "--state" if args.state else config.where("state")) from None
    store.autocommit = False  # the runner commits each batch once its alerts are durable
    dispatcher = build_dispatcher(config, state_url)
    sources = build_sources(config.sources, StoreMarks(store), where=config.where("sources"))
    if not sources:
        raise ConfigError("the daemon needs at least one source", config.where("sources"))
    metrics = Metrics()
    grace = parse_duration(config.server.get("grace_period") or "30s")  # checked at load
    runner = Runner(config, setup.rule_paths, store, dispatcher, sources, metrics,
                    args.engine, grace)
    server = _serve(listen, config, metrics, runner)
    host, port = server.server_address[:2]
    # a log line like every other: tests and scripts find the port by `listening on HOST:PORT`
    log.info("listening on %s:%s (/healthz /readyz /metrics)", host, port)
    runner.install_signals()
    try:
        return runner.run()
    except StateError as exc:
        # The store went away and the last flush could not reach it: what was not committed
        # was not acknowledged either, so its sources hand it out again. Not a crash.
        log.error("state store unavailable while stopping: %s; work not committed will be "
                  "read again from its source", exc)
        return 0 if runner.stopping.is_set() else 1
    finally:
        server.shutdown()


def _listen(option: str | None, config: Any) -> str:
    from engine.settings import listen as check_listen

    if option is None:
        return str(config.server.get("listen") or "127.0.0.1:9090")
    problem = check_listen(option)
    if problem:
        raise ConfigError(problem, "--listen")
    return option


def _serve(listen: str, config: Any, metrics: Any, runner: Any) -> Any:
    """The health server, or a ConfigError when its address cannot be had (in use, or a
    host that does not resolve)."""
    from engine.daemon.server import serve

    try:
        return serve(listen, metrics.registry, runner.readiness,
                     lambda: not runner.stopping.is_set())
    except OSError as exc:
        raise ConfigError(f"server.listen: cannot listen on {listen}: "
                          f"{exc.strerror or exc}", config.where("server")) from None
