"""`trailguard outbox list|retry` and `trailguard notify-test`, run as the CLI runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.outputs import RetryPolicy, build_dispatcher
from tests.support.delivery import make_alert, no_proxy, run_cli, write_config
from tests.support.slack_receiver import SlackReceiver

__all__ = ["no_proxy"]
FAST = RetryPolicy(max_attempts=2, base=0.01, cap=0.02, scale=0.01)


@pytest.fixture()
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


def _stuck(tmp_path: Path, slack: SlackReceiver, count: int = 2) -> Path:
    """A config whose Slack output failed for a whole run: `count` alerts in the outbox."""
    path, config = write_config(tmp_path, {"hook": {"type": "slack",
                                                    "webhook_url": slack.webhook_url},
                                           "mem": {"type": "memory"}},
                                [{"outputs": ["hook", "mem"]}], state="sqlite:///state.db")
    slack.fail(100)
    dispatcher = build_dispatcher(config, None, FAST)
    for n in range(count):
        dispatcher.send(make_alert(n=n))
    assert dispatcher.close().left == count
    slack.plans.clear()
    return path


def test_cli_outbox_list_shows_undelivered_alerts(tmp_path: Path, slack: SlackReceiver) -> None:
    """`outbox list` prints one line per alert with its output, rule, attempts and error."""
    config = _stuck(tmp_path, slack)
    code, out, err = run_cli(["outbox", "list", "-c", str(config)])
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("hook  ") for line in lines)
    assert "codeartifact-token-unknown-network" in lines[0]
    assert "attempts=" in lines[0] and "Slack is unavailable (HTTP 500)" in lines[0]
    assert "2 alert(s) in the outbox" in err
    code, out, _ = run_cli(["outbox", "list", "-c", str(config), "--json"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["output"] for r in rows} == {"hook"} and rows[0]["alert"]["severity"] == "high"


def test_cli_outbox_retry_drains_when_output_is_back(tmp_path: Path, slack: SlackReceiver) -> None:
    """`outbox retry` sends everything waiting (exit 0), and nothing twice afterwards."""
    config = _stuck(tmp_path, slack)
    code, _, err = run_cli(["outbox", "retry", "-c", str(config)])
    assert code == 0, err
    assert len(slack.delivered()) == 2
    assert "retried 2 alert(s)" in err and "0 in the outbox" in err
    assert run_cli(["outbox", "list", "-c", str(config)])[1] == ""
    assert run_cli(["outbox", "retry", "-c", str(config)])[0] == 0
    assert len(slack.delivered()) == 2


def test_cli_outbox_retry_exits_1_while_output_still_fails(
        tmp_path: Path, slack: SlackReceiver) -> None:
    """A retry that cannot deliver leaves the alerts and says so with exit status 1."""
    config = _stuck(tmp_path, slack)
    slack.error("invalid_token", times=5)
    code, _, err = run_cli(["outbox", "retry", "-c", str(config), "--output", "hook"])
    assert code == 1
    assert "2 in the outbox; BROKEN" in err and "invalid_token" in err


def test_cli_outbox_usage_errors_exit_2(tmp_path: Path, slack: SlackReceiver) -> None:
    """An unknown output name or a bad config is a usage error (exit 2)."""
    config = _stuck(tmp_path, slack, count=1)
    code, _, err = run_cli(["outbox", "list", "-c", str(config), "--output", "nope"])
    assert code == 2 and "no output named 'nope'" in err
    assert run_cli(["outbox", "frobnicate", "-c", str(config)])[0] == 2


def test_cli_outbox_with_memory_state_explains(tmp_path: Path) -> None:
    """With memory:// there is no outbox between runs; the command says so."""
    config, _ = write_config(tmp_path, {"m": {"type": "memory"}}, [{"outputs": ["m"]}])
    code, out, err = run_cli(["outbox", "list", "-c", str(config)])
    assert code == 0 and out == "" and "memory://" in err


def test_cli_notify_test_sends_a_sample_to_every_output(
        tmp_path: Path, slack: SlackReceiver) -> None:
    """Each output gets a sample alert marked as a test; the report lists each result."""
    config, _ = write_config(tmp_path, {
        "hook": {"type": "slack", "webhook_url": slack.webhook_url},
        "bot": {"type": "slack", "token": "xoxb-1-2-abcdef", "channel": "#sec",
                "base_url": slack.api_base},
        "file": {"type": "file", "path": "alerts.jsonl"}})
    code, _, err = run_cli(["notify-test", "-c", str(config)])
    assert code == 0, err
    assert "ok   hook" in err and "ok   bot" in err and "ok   file" in err
    assert "3 output(s) ok, 0 failed" in err
    texts = [r.body["text"] for r in slack.delivered()]
    assert texts and all("Test alert from trailguard notify-test" in t for t in texts)
    sample = json.loads((tmp_path / "alerts.jsonl").read_text())
    assert sample["rule_id"] == "trailguard-notify-test" and sample["severity"] == "info"


def test_cli_notify_test_one_output_and_failure(tmp_path: Path, slack: SlackReceiver) -> None:
    """`--output NAME` tests one output; a failure is shown with its reason, exit 1."""
    config, _ = write_config(tmp_path, {
        "hook": {"type": "slack", "webhook_url": slack.webhook_url},
        "file": {"type": "file", "path": "alerts.jsonl"}})
    slack.error("no_service")
    code, _, err = run_cli(["notify-test", "-c", str(config), "--output", "hook",
                            "--severity", "high"])
    assert code == 1
    assert "FAIL hook (slack webhook (127.0.0.1" in err and "no_service" in err
    assert not (tmp_path / "alerts.jsonl").exists()
