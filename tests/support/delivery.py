"""Helpers for the delivery tests: alerts without a scan, configs, a CLI runner, fixtures."""

from __future__ import annotations

import argparse
import copy
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import Config, load_config
from engine.errors import ConfigError
from engine.model import Alert, Rule, alert_id_for

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY",
                   "all_proxy")

EVENT: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:dev",
                     "arn": "arn:aws:sts::123456789012:assumed-role/Developer/dev",
                     "accountId": "123456789012", "accessKeyId": "ASIAEXAMPLE"},
    "eventTime": "2024-05-01T10:00:00Z", "eventSource": "codeartifact.amazonaws.com",
    "eventName": "GetAuthorizationToken", "awsRegion": "us-west-2",
    "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.15.0",
    "requestParameters": {"domainName": "corp", "domainOwner": "123456789012",
                          "durationSeconds": 43200},
    "responseElements": {"sessionToken": "HIDDEN_DUE_TO_SECURITY_REASONS"},
    "requestID": "0d6f3a0e-1111-2222-3333-444455556666",
    "eventID": "6b0a4f0e-aaaa-bbbb-cccc-ddddeeeeffff", "readOnly": True,
    "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
}


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack-sdk sends even 127.0.0.1 through HTTP(S)_PROXY and ignores NO_PROXY."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def make_rule(rule_id: str = "codeartifact-token-unknown-network", severity: str = "high",
              **fields: Any) -> Rule:
    values: dict[str, Any] = {
        "title": "CodeArtifact token requested from an unknown network",
        "condition": "eventName == 'GetAuthorizationToken'", "path": "rules/x.yml", "line": 1,
        "tags": ("codeartifact", "credential-access"),
        "runbook": "https://wiki.example.com/runbooks/codeartifact-token",
    }
    values.update(fields)
    return Rule(id=rule_id, severity=severity, **values)


def make_alert(rule: Rule | None = None, n: int = 0, count: int = 1, update: bool = False,
               event: dict[str, Any] | None = None, summary: str | None = None) -> Alert:
    rule = rule or make_rule()
    record = copy.deepcopy(event or EVENT)
    record["eventID"] = f"{record['eventID'][:-4]}{n:04d}"
    alert_id = alert_id_for(rule.id, "arn:aws:sts::123456789012:assumed-role/Developer/dev",
                            f"anchor-{n}")
    return Alert(
        alert_id=alert_id, rule=rule, group_key="arn:aws:sts::123456789012:assumed-role/"
        "Developer/dev", event=record,
        summary=summary if summary is not None else
        f"Token for corp issued to {record['userIdentity']['arn']} from 198.51.100.7",
        first_event_time="2024-05-01T10:00:00Z",
        last_event_time="2024-05-01T10:00:00Z" if count == 1 else "2024-05-01T10:40:00Z",
        detected_at="2024-05-01T10:00:05Z", event_ids=[record["eventID"]],
        account_ids=["123456789012"], event_count=count, update=update)


def write_config(tmp_path: Path, outputs: dict[str, Any], routes: list[Any] | None = None,
                 state: str | None = None, **env: str) -> tuple[Path, Config]:
    doc: dict[str, Any] = {"outputs": outputs}
    if routes is not None:
        doc["routes"] = routes
    if state:
        doc["state"] = state
    path = tmp_path / "trailguard.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, load_config(path, environ=env or None)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run a delivery subcommand as `trailguard` would: exit code, stdout, stderr."""
    from engine.cli_delivery import register

    parser = argparse.ArgumentParser(prog="trailguard")
    register(parser.add_subparsers(metavar="COMMAND"))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            args = parser.parse_args(argv)
            code = args.command(args)
        except ConfigError as exc:
            print(f"trailguard: config error: {exc}", file=sys.stderr)
            code = 2
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
