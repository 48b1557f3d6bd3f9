"""Slack through slack-sdk against a local receiver: messages, threads, retries, failures."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.outputs import RetryPolicy, build_dispatcher
from engine.outputs.slack import sdk_log
from tests.support.delivery import make_alert, no_proxy, run_cli, write_config
from tests.support.slack_receiver import Request, SlackReceiver

__all__ = ["no_proxy"]
FAST = RetryPolicy(max_attempts=3, base=0.01, cap=0.02, scale=0.01)
TOKEN = "xoxb-1111-2222-SECRETtokenVALUE"


@pytest.fixture()
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture()
def sdk_debug() -> Iterator[None]:
    """Let slack-sdk's own debug lines (URLs, bodies) through, to prove they are redacted."""
    sdk_log.setLevel(logging.DEBUG)
    yield
    sdk_log.setLevel(logging.CRITICAL)


def _webhook(slack: SlackReceiver, **extra: object) -> dict[str, object]:
    return {"type": "slack", "webhook_url": slack.webhook_url, **extra}


def _bot(slack: SlackReceiver, **extra: object) -> dict[str, object]:
    return {"type": "slack", "token": TOKEN, "channel": "#sec-alerts",
            "base_url": slack.api_base, **extra}


def _alert_id(request: Request) -> str:
    found = re.search(r"alert `([0-9a-f]+)`", str(request.body.get("blocks")))
    assert found, request.body
    return found.group(1)


def test_slack_webhook_delivers_block_kit_with_fallback(
        tmp_path: Path, slack: SlackReceiver) -> None:
    """One alert becomes one webhook POST with Block Kit blocks, text, username and icon."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack, username="trailguard",
                                                         icon_emoji=":shield:")},
                             [{"outputs": ["hook"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    alert = make_alert()
    dispatcher.send(alert)
    report = dispatcher.close()
    [request] = slack.requests
    assert request.path == "/services/T000/B000/" + slack.secret
    body = request.body
    assert body["text"].startswith("[HIGH] CodeArtifact token requested from an unknown network")
    assert body["username"] == "trailguard" and body["icon_emoji"] == ":shield:"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "section",
                                                   "context"]
    assert _alert_id(request) == alert.alert_id
    assert report.outputs["hook"].delivered == 1 and report.left == 0


def test_slack_bot_threads_updates_as_replies(tmp_path: Path, slack: SlackReceiver) -> None:
    """With a bot token, a dedup update is a thread reply "N more matches since …"."""
    _, config = write_config(tmp_path, {"bot": _bot(slack, icon_emoji=":rotating_light:")},
                             [{"outputs": ["bot"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    alert = make_alert()
    dispatcher.send(alert)
    assert dispatcher.wait(5)
    alert.event_count, alert.update = 12, True
    alert.last_event_time = "2024-05-01T10:40:00Z"
    dispatcher.send(alert)
    dispatcher.close()
    first, reply = slack.requests
    assert first.path == reply.path == "/api/chat.postMessage"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.body["channel"] == "#sec-alerts" and "thread_ts" not in first.body
    assert first.body["icon_emoji"] == ":rotating_light:"
    assert reply.body["channel"] == "C0SECALERT"  # the id Slack answered, not the name
    assert reply.body["thread_ts"] == "1700000000.000001"
    assert reply.body["text"] == ("11 more matches since 2024-05-01T10:00:00Z "
                                  "(12 in total, latest 2024-05-01T10:40:00Z)")


def test_slack_thread_survives_a_restart(tmp_path: Path, slack: SlackReceiver) -> None:
    """The parent ts is kept in the state store: a new process still replies in thread."""
    _, config = write_config(tmp_path, {"bot": _bot(slack)}, [{"outputs": ["bot"]}],
                             state="sqlite:///state.db")
    alert = make_alert()
    first = build_dispatcher(config, None, FAST)
    first.send(alert)
    first.close()
    alert.event_count, alert.update = 3, True
    second = build_dispatcher(config, None, FAST)
    second.send(alert)
    second.send(alert)  # the same version again: already posted, skipped
    second.close()
    assert [r.body.get("thread_ts") for r in slack.requests] == [None, "1700000000.000001"]


def test_slack_webhook_update_is_a_short_message(tmp_path: Path, slack: SlackReceiver) -> None:
    """A webhook cannot thread: an update is one compact section, not a full alert."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack)}, [{"outputs": ["hook"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    alert = make_alert()
    dispatcher.send(alert)
    dispatcher.wait(5)
    alert.event_count, alert.update = 5, True
    dispatcher.send(alert)
    dispatcher.close()
    update = slack.requests[1].body
    assert update["text"].startswith("4 more matches since 2024-05-01T10:00:00Z")
    assert [b["type"] for b in update["blocks"]] == ["section", "context"]


def test_slack_5xx_is_retried_then_delivered(tmp_path: Path, slack: SlackReceiver) -> None:
    """Two 500s, then success: one alert delivered, nothing left, no failure counted."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack)}, [{"outputs": ["hook"]}])
    slack.fail(2, status=503)
    dispatcher = build_dispatcher(config, "memory://", FAST)
    dispatcher.send(make_alert())
    report = dispatcher.close()
    assert [r.status for r in slack.requests] == [503, 503, 200]
    assert (report.outputs["hook"].delivered, report.outputs["hook"].failed, report.left) == (
        1, 0, 0)


def test_slack_429_retry_after_delays_slack_only(tmp_path: Path) -> None:
    """A real 429 with Retry-After: 1 holds that output ~1 s; the other outputs go at once."""
    with SlackReceiver() as limited, SlackReceiver() as other:
        _, config = write_config(tmp_path, {
            "limited": _webhook(limited), "other": _webhook(other), "mem": {"type": "memory"}},
            [{"outputs": ["limited", "other", "mem"]}])
        limited.rate_limit(1)
        dispatcher = build_dispatcher(config, "memory://", RetryPolicy(base=0.01, scale=1.0))
        start = time.monotonic()
        dispatcher.send(make_alert())
        assert other.wait_for(1, timeout=0.8), "the other Slack output waited for the 429"
        other_done = time.monotonic() - start
        assert dispatcher.workers["mem"].wait_idle(0.5)
        report = dispatcher.close()
        first, retry = limited.requests
        assert first.status == 429 and retry.status == 200
        assert retry.at - first.at >= 0.99
        assert other_done < 0.8
        assert report.outputs["limited"].delivered == 1 and report.left == 0


@pytest.mark.parametrize("kind, code", [
    ("bot", "invalid_auth"), ("bot", "channel_not_found"), ("bot", "not_in_channel"),
    ("hook", "no_service"), ("hook", "invalid_token"), ("hook", "channel_is_archived")])
def test_slack_permanent_errors_reported_once_and_kept(
        tmp_path: Path, slack: SlackReceiver, caplog: pytest.LogCaptureFixture, kind: str,
        code: str) -> None:
    """A broken output is tried once, reported once, and its alerts wait in the outbox."""
    settings = _bot(slack) if kind == "bot" else _webhook(slack)
    _, config = write_config(tmp_path, {"out": settings}, [{"outputs": ["out"]}],
                             state="sqlite:///state.db")
    slack.error(code, times=10)
    dispatcher = build_dispatcher(config, None, FAST)
    for n in range(3):
        dispatcher.send(make_alert(n=n))
    with caplog.at_level(logging.WARNING):
        report = dispatcher.close()
    assert len(slack.requests) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and code in errors[0].getMessage()
    assert "outbox retry" in errors[0].getMessage()
    assert (report.outputs["out"].failed, report.left) == (3, 3)
    assert code in str(report.outputs["out"].broken)


def test_slack_rejected_blocks_fall_back_to_plain_text(
        tmp_path: Path, slack: SlackReceiver) -> None:
    """If Slack ever refuses the blocks, the alert still arrives as plain text."""
    _, config = write_config(tmp_path, {"bot": _bot(slack)}, [{"outputs": ["bot"]}])
    slack.error("invalid_blocks")
    dispatcher = build_dispatcher(config, "memory://", FAST)
    dispatcher.send(make_alert())
    report = dispatcher.close()
    rejected, plain = slack.requests
    assert "blocks" in rejected.body and "blocks" not in plain.body
    assert plain.body["text"].startswith("[HIGH]")
    assert report.outputs["bot"].delivered == 1


def test_slack_outage_every_alert_arrives_once(tmp_path: Path, slack: SlackReceiver) -> None:
    """Slack fails for a while: on recovery the outbox is re-sent; each alert exactly once."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack)}, [{"outputs": ["hook"]}])
    slack.fail(5, status=500)  # alert 0 exhausts 3 attempts, alerts 1-2 fail once each
    dispatcher = build_dispatcher(config, "memory://", FAST)
    alerts = [make_alert(n=n) for n in range(6)]
    for alert in alerts:
        dispatcher.send(alert)
    report = dispatcher.close()
    delivered = Counter(_alert_id(r) for r in slack.delivered())
    assert delivered == Counter({a.alert_id: 1 for a in alerts})
    assert report.left == 0 and report.outputs["hook"].delivered == 6


def test_slack_outbox_survives_restart(tmp_path: Path, slack: SlackReceiver) -> None:
    """Slack down for a whole run: the next run (same sqlite) delivers all, none twice."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack)}, [{"outputs": ["hook"]}],
                             state="sqlite:///state.db")
    slack.fail(100)
    first = build_dispatcher(config, None, FAST)
    alerts = [make_alert(n=n) for n in range(4)]
    for alert in alerts:
        first.send(alert)
    report = first.close()
    assert report.left == 4 and not slack.delivered()
    assert "trailguard outbox retry" in "\n".join(report.lines())
    slack.plans.clear()
    second = build_dispatcher(config, None, FAST)  # a new process: drains the outbox at start
    report = second.close()
    assert Counter(_alert_id(r) for r in slack.delivered()) == Counter(
        {a.alert_id: 1 for a in alerts})
    assert report.left == 0
    third = build_dispatcher(config, None, FAST)
    assert third.close().outputs["hook"].delivered == 0


def test_slack_secrets_never_logged(
        tmp_path: Path, slack: SlackReceiver, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str], sdk_debug: None) -> None:
    """Webhook URL and token appear in no log record, report, error or CLI output."""
    _, config = write_config(tmp_path, {"hook": _webhook(slack), "bot": _bot(slack)},
                             [{"outputs": ["hook", "bot"]}], state="sqlite:///state.db")
    caplog.set_level(logging.DEBUG)
    slack.fail(3, status=500)
    slack.error("invalid_token", times=1)
    dispatcher = build_dispatcher(config, None, FAST)
    for n in range(3):
        dispatcher.send(make_alert(n=n))
    report = dispatcher.close()
    slack.error("invalid_auth", times=2)
    listing = run_cli(["outbox", "list", "-c", str(tmp_path / "trailguard.yml")])
    notify = run_cli(["notify-test", "-c", str(tmp_path / "trailguard.yml")])
    captured = capfd.readouterr()
    seen = "\n".join([caplog.text, *report.lines(), *map(str, listing), *map(str, notify),
                      captured.out, captured.err])
    assert "Sending a request" in caplog.text  # slack-sdk's debug log did run, redacted
    assert slack.secret not in seen and TOKEN not in seen
    assert "/services/T000/B000/" not in seen.replace("/services/T000/B000/[redacted]", "")
