"""`trailguard outbox list|retry` and `trailguard notify-test`: the delivery commands.

`register(sub)` adds them to the main parser's subcommands (engine.cli calls it). Exit
status as everywhere (SPEC §5): 0 done, 1 failures (an alert still undelivered, a test
message that did not arrive), 2 usage or config error (ConfigError, caught by cli.main).
Results a person reads go to stderr; stdout carries only data (`outbox list`, and what a
`stdout` output prints during `notify-test`).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.errors import ConfigError, DeliveryError
from engine.redaction import redact

EXIT_OK, EXIT_FAILURES = 0, 1
Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `outbox` and `notify-test` to the `trailguard` subcommands."""
    outbox = _command(sub, "outbox", "list or retry alerts not yet delivered", _outbox)
    outbox.add_argument("action", choices=("list", "retry"))
    outbox.add_argument("--output", metavar="NAME", help="only this output")
    outbox.add_argument("--json", action="store_true", help="list: one JSON object a line")
    notify = _command(sub, "notify-test", "send a sample alert to each output (or one)",
                      _notify_test)
    notify.add_argument("--output", metavar="NAME", help="only this output")
    notify.add_argument("--severity", default="info",
                        choices=("info", "low", "medium", "high", "critical"),
                        help="severity of the sample alert (routes and filters see it)")


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str,
             handler: Handler) -> argparse.ArgumentParser:
    command = sub.add_parser(name, help=text, description=text)
    command.add_argument("-c", "--config", required=True, help="trailguard.yml")
    command.add_argument("--state", help="state URL; default: the config's state")
    command.set_defaults(command=handler)
    return command


def _load(args: argparse.Namespace) -> Any:
    from engine.config import load_config
    from engine.outputs import check_delivery_config

    config = load_config(args.config)
    check_delivery_config(config)
    if args.output and args.output not in config.outputs:
        raise ConfigError(f"no output named {args.output!r} (the config defines: "
                          f"{', '.join(sorted(config.outputs)) or 'none'})", "--output")
    return config


# -- outbox ------------------------------------------------------------------------------
def _outbox(args: argparse.Namespace) -> int:
    config = _load(args)
    state = args.state or config.state or "memory://"
    if state.startswith("memory://"):
        print(f"trailguard: state is {state}: the outbox lives only inside a running process; "
              "configure a sqlite:// or redis:// state to keep it", file=sys.stderr)
        return EXIT_OK
    return _list(args, config, state) if args.action == "list" else _retry(args, config, state)


def _list(args: argparse.Namespace, config: Any, state: str) -> int:
    from engine.outputs.outbox import open_outbox

    store = open_outbox(state)
    try:
        entries = store.entries(args.output)
    finally:
        store.close()
    for entry in entries:
        alert = entry.alert
        if args.json:
            row = {"output": entry.output, "alert_id": entry.alert_id,
                   "rule_id": alert.get("rule_id"), "severity": alert.get("severity"),
                   "attempts": entry.attempts, "last_error": entry.last_error,
                   "permanent": entry.permanent, "since": _iso(entry.created), "alert": alert}
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
            continue
        note = "" if entry.output in config.outputs else " (output no longer configured)"
        print(f"{entry.output}{note}  {entry.alert_id}  {alert.get('severity')}  "
              f"{alert.get('rule_id')}  attempts={entry.attempts}  since {_iso(entry.created)}"
              + (f"  last error: {entry.last_error}" if entry.last_error else ""))
    print(f"trailguard: {len(entries)} alert(s) in the outbox of {redact(state)}",
          file=sys.stderr)
    return EXIT_OK


def _retry(args: argparse.Namespace, config: Any, state: str) -> int:
    from engine.outputs.dispatcher import Dispatcher, build_outputs, check_delivery_config
    from engine.outputs.outbox import open_outbox

    router = check_delivery_config(config)
    store = open_outbox(state)
    outputs = build_outputs(config, store)
    if args.output:
        outputs = {args.output: outputs[args.output]}
    dispatcher = Dispatcher(outputs, router, store, drain=False)
    queued = dispatcher.retry_outbox(include_permanent=True)
    report = dispatcher.close()
    print(f"trailguard: retried {queued} alert(s) from the outbox of {redact(state)}",
          file=sys.stderr)
    for line in report.lines():
        print(line, file=sys.stderr)
    return EXIT_FAILURES if report.left else EXIT_OK


# -- notify-test -------------------------------------------------------------------------
def _notify_test(args: argparse.Namespace) -> int:
    from engine.outputs.dispatcher import build_outputs
    from engine.outputs.outbox import MemoryOutbox

    config = _load(args)
    # A private memory store: a test message must not leave threads or outbox entries behind.
    outputs = build_outputs(config, MemoryOutbox())
    names = [args.output] if args.output else sorted(outputs)
    alert = sample_alert(args.severity)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        results = dict(zip(names, pool.map(lambda n: _try(outputs[n], alert), names),
                           strict=True))
    for name in names:
        error = results[name]
        state = "ok  " if error is None else "FAIL"
        print(f"{state} {name} ({outputs[name].describe()})" + (f": {error}" if error else ""),
              file=sys.stderr)
        outputs[name].close()
    failed = sum(1 for e in results.values() if e is not None)
    print(f"trailguard: {len(names) - failed} output(s) ok, {failed} failed", file=sys.stderr)
    return EXIT_FAILURES if failed else EXIT_OK


def _try(output: Any, alert: dict[str, Any]) -> str | None:
    from engine.outputs.retry import RetryPolicy, deliver

    try:
        deliver(lambda: output.send(alert), output.name, RetryPolicy(max_attempts=3), _sleep)
    except DeliveryError as exc:
        return str(exc)
    return None


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False  # never interrupted: notify-test runs until each output answered


def sample_alert(severity: str = "info") -> dict[str, Any]:
    """A realistic alert that says plainly it is a test."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event_id = str(uuid.uuid4())
    event = {
        "eventVersion": "1.08", "eventTime": now, "eventSource": "codeartifact.amazonaws.com",
        "eventName": "GetAuthorizationToken", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.10", "userAgent": "trailguard notify-test",
        "userIdentity": {"type": "AssumedRole", "accountId": "123456789012",
                         "arn": "arn:aws:sts::123456789012:assumed-role/Example/notify-test"},
        "requestParameters": {"domainName": "example-domain", "domainOwner": "123456789012"},
        "eventID": event_id, "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
    }
    return {
        "alert_id": uuid.uuid4().hex[:24], "rule_id": "trailguard-notify-test",
        "title": "Test alert from trailguard notify-test", "severity": severity,
        "summary": f"A test alert sent by `trailguard notify-test` from {socket.gethostname()} "
                   "to check this output. No action needed.",
        "tags": ["test"], "runbook": "", "group_key": None, "event_count": 1,
        "event_ids": [event_id], "first_event_time": now, "last_event_time": now,
        "account_ids": ["123456789012"], "region": "us-east-1", "detected_at": now,
        "event": event,
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
