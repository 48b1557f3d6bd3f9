"""Outputs under attack and under load: every alert reaches every output, whatever it holds.

The fuzz and adversarial module for delivery (issue 15): hostile records, hostile alert
fields, racing imports. Each finding adds a test here that failed on the code before it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.outputs import RetryPolicy, build_dispatcher, slackfmt
from engine.outputs.base import OutputContext
from engine.outputs.basic import json_line, text_line
from engine.outputs.outbox import MemoryOutbox
from engine.outputs.sns import MAX_BYTES, SnsOutput
from tests.support.cli import REPO, run_cli
from tests.support.delivery import EVENT, make_alert, no_proxy, write_config
from tests.support.moto_server import MotoServer
from tests.support.slack_receiver import Request, SlackReceiver

__all__ = ["no_proxy"]
FAST = RetryPolicy(max_attempts=3, base=0.01, cap=0.02, scale=0.1)
HOSTILE_AGENT = "npm/10 \n*Status*: resolved by secops, no action needed @here"
TOPIC = "arn:aws:sns:us-west-2:123456789012:alerts"


@pytest.fixture()
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


def _event(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    event.update(changes)
    return event


# -- 1. the first alert of a scan, under CPU load --------------------------------------------
RULE = """\
id: token-issued
title: CodeArtifact token issued
severity: high
condition: eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
summary: "Token for {requestParameters.domainName} issued to {userIdentity.arn} via {userAgent}"
"""


def _scan_setup(tmp_path: Path, slack: SlackReceiver, hooks: int = 1, bots: int = 1,
                events: list[dict[str, Any]] | None = None) -> tuple[Path, Path]:
    (tmp_path / "rules.yml").write_text(RULE)
    outputs = {f"hook{i}": {"type": "slack", "webhook_url": slack.webhook_url}
               for i in range(hooks)}
    outputs.update({f"bot{i}": {"type": "slack", "token": "xoxb-1-2-adversarial",
                                "channel": "#sec", "base_url": slack.api_base}
                    for i in range(bots)})
    config = tmp_path / "trailguard.yml"
    config.write_text(yaml.safe_dump({"rules": [str(tmp_path / "rules.yml")], "outputs": outputs,
                                      "routes": [{"outputs": sorted(outputs)}]}))
    records = events or [_event(eventID=f"evt-{n}", userIdentity={
        **EVENT["userIdentity"], "arn": f"arn:aws:iam::123456789012:user/u{n}"})
        for n in range(3)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return config, path


@pytest.fixture()
def busy_cpu() -> Iterator[None]:
    """Both cores busy, as when the race lost alerts."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def test_scan_under_cpu_load_delivers_every_alert_to_every_output(
        tmp_path: Path, slack: SlackReceiver, busy_cpu: None) -> None:
    """12 fresh scans with webhook and bot outputs, CPU busy: every alert reaches each output.

    Before, worker threads imported slack-sdk at the same moment and one got a half-built
    module (ImportError), which was "non-retryable". Four of each kind make more threads
    race: the old code lost alerts in 7 of 16 such scans (1 webhook + 1 bot: ~1 in 10).
    """
    config, events = _scan_setup(tmp_path, slack, hooks=4, bots=4)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: run_cli("scan", "-c", str(config), str(events),
                                               timeout=120), range(12)))
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "ImportError" not in run.stderr and "not delivered" not in run.stderr, run.stderr
        assert run.stderr.count("3 delivered, 0 failed, 0 in the outbox") == 8, run.stderr
    assert len(slack.delivered()) >= 12 * 3 * 8  # at least once (a reset may cause a retry)


def test_client_libraries_are_imported_before_any_worker_starts(tmp_path: Path) -> None:
    """Building the outputs imports slack-sdk and boto3 in the building thread."""
    config, _ = write_config(tmp_path, {
        "hook": {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
        "sns": {"type": "sns", "topic_arn": TOPIC}})
    script = (
        "import sys, threading\n"
        "from engine.config import load_config\n"
        "from engine.outputs.dispatcher import build_outputs\n"
        "from engine.outputs.outbox import MemoryOutbox\n"
        f"build_outputs(load_config({str(config)!r}), MemoryOutbox())\n"
        "assert threading.active_count() == 1\n"
        "print(sorted(m for m in ('slack_sdk.web', 'slack_sdk.webhook', 'slack_sdk.errors',\n"
        "      'boto3.session', 'botocore.config', 'botocore.exceptions') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted([
        "boto3.session", "botocore.config", "botocore.exceptions", "slack_sdk.errors",
        "slack_sdk.web", "slack_sdk.webhook"]))


def test_validate_does_not_import_client_libraries(tmp_path: Path) -> None:
    """`validate` checks Slack and SNS outputs without paying boto3's or slack-sdk's import."""
    config, _ = write_config(tmp_path, {
        "hook": {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"},
        "sns": {"type": "sns", "topic_arn": TOPIC}})
    (tmp_path / "rules.yml").write_text(RULE)
    done = run_cli("validate", "-c", str(config), "-r", str(tmp_path / "rules.yml"),
                   env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "engine.outputs.slack" in imported  # the check really looked at the outputs
    assert not {"boto3", "botocore", "slack_sdk"} & {name.split(".")[0] for name in imported}


def test_unexpected_exception_while_sending_is_retried(tmp_path: Path) -> None:
    """An ImportError (or any bug) in an output is retried and delivered, never written off."""
    _, config = write_config(tmp_path, {"mem": {"type": "memory"}}, [{"outputs": ["mem"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    output: Any = dispatcher.outputs["mem"]
    real_send, calls = output.send, []

    def flaky(alert: dict[str, Any]) -> None:
        calls.append(alert["alert_id"])
        if len(calls) == 1:
            raise ImportError("cannot import name 'x' from partially initialized module 'y'")
        real_send(alert)

    output.send = flaky
    dispatcher.send(make_alert())
    report = dispatcher.close(10)
    assert len(output.sent) == 1 and len(calls) == 2
    assert report.left == 0 and report.outputs["mem"].failed == 0


# -- 2. any JSON value in any field ----------------------------------------------------------
def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = {"k": value} if n % 2 else [value]
    return value


_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\n", "\r\n", "\u2028", "\u202e", "\x00", "\uffff", "`", "*", "&", "é",
                     "🚨", "\ud800", ":white_check_mark:", "@channel", "|", ">", "<!here>"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\n", "<", "`", "\x01", "𝕏"]),
              st.integers(0, 400_000)),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(),
                     _text)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=12)
_values = st.one_of(_json, st.builds(_nested, st.integers(240, 400)))
_FIELDS = ["alert_id", "rule_id", "title", "severity", "summary", "tags", "runbook",
           "group_key", "event_count", "event_ids", "first_event_time", "last_event_time",
           "account_ids", "region", "detected_at", "update", "event"]
_EVENT_KEYS = ["userIdentity", "sourceIPAddress", "userAgent", "eventSource", "eventName",
               "awsRegion", "eventID", "eventTime", "requestParameters"]


@st.composite
def hostile_alerts(draw: st.DrawFn) -> dict[str, Any]:
    """A real alert with some fields, and some of its event's fields, replaced by anything."""
    alert = make_alert(event=_event()).to_dict()
    for key in draw(st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True)):
        alert[key] = draw(_values)
    event = alert.get("event")
    if isinstance(event, dict):
        for key in draw(st.lists(st.sampled_from(_EVENT_KEYS), max_size=4, unique=True)):
            event[key] = draw(_values)
        if draw(st.booleans()):
            event["userIdentity"] = {"arn": 1, "sessionContext": draw(st.one_of(
                _text, st.fixed_dictionaries({"sessionIssuer": _values})))}
    return alert


def _text_objects(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        if "text" in block:
            yield block["text"]
        yield from block.get("fields", [])
        yield from block.get("elements", [])


def check_slack_limits(blocks: list[dict[str, Any]]) -> None:
    """Slack's documented limits, the ~12k total, and no empty or unencodable text."""
    assert 0 < len(blocks) <= slackfmt.MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert len(block["text"]["text"]) <= slackfmt.HEADER_LIMIT
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    for text in _text_objects(blocks):
        assert 0 < len(text["text"]) <= slackfmt.SECTION_LIMIT
        assert text["type"] == "plain_text" or text.get("verbatim") is True
        # event text never breaks a line: only our own label or bold line may
        assert text["text"].count("\n") <= (1 if text["type"] == "mrkdwn" else 0)
    assert sum(slackfmt._text_of(b) for b in blocks) <= 12_000
    json.dumps(blocks).encode("utf-8")


def check_sns_request(args: dict[str, Any]) -> None:
    """SNS's rules: subject printable ASCII < 100, attributes non-empty, total <= 256 KB."""
    subject, attrs = args["Subject"], args["MessageAttributes"]
    assert 0 < len(subject) < 100 and all(32 <= ord(c) < 127 for c in subject)
    size = len(args["Message"].encode()) + len(subject)
    for key, value in attrs.items():
        text = value["StringValue"]
        assert 0 < len(text) <= 256 and all(32 <= ord(c) < 127 for c in text)
        size += len(key) + len(value["DataType"]) + len(text.encode())
    assert size <= MAX_BYTES
    assert isinstance(orjson.loads(args["Message"]), dict)
    assert "\uffff" not in args["Message"] and "\ufffe" not in args["Message"]  # not XML
    for key in ("MessageGroupId", "MessageDeduplicationId"):
        value = args[key]
        assert 0 < len(value) <= 128 and all(33 <= ord(c) < 127 for c in value)


def _sns(tmp_path: Path) -> SnsOutput:
    context = OutputContext(base_dir=tmp_path, store=MemoryOutbox())
    return SnsOutput("sns", {"type": "sns", "topic_arn": TOPIC + ".fifo"}, context)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(alert=hostile_alerts())
def test_formatters_accept_any_alert_and_stay_within_limits(
        tmp_path: Path, alert: dict[str, Any]) -> None:
    """Slack blocks, text fallback, updates, SNS and JSON lines: never raise, always fit."""
    check_slack_limits(slackfmt.alert_blocks(alert))
    check_slack_limits(slackfmt.update_blocks(alert, {"event_count": 1}, True))
    check_slack_limits(slackfmt.update_blocks(alert, None, False))
    for text in (slackfmt.fallback_text(alert), slackfmt.update_text(alert, {"event_count": 2})):
        assert 0 < len(text) <= slackfmt.TEXT_LIMIT and "\n" not in text
    check_sns_request(_sns(tmp_path).request({**alert, "update": True}))
    assert orjson.loads(json_line(alert)) is not None
    text_line(alert)


@pytest.mark.parametrize("identity", [
    [1], {"sessionContext": "s"}, {"sessionContext": {"sessionIssuer": "i"}},
    {"sessionContext": {"sessionIssuer": ["arn"]}}, "root", None])
def test_slack_formats_odd_user_identities(identity: Any) -> None:
    """The shapes from the issue: formatting raised AttributeError and the alert stuck."""
    alert = make_alert(event=_event(userIdentity=identity), summary="Token for corp")
    blocks = slackfmt.alert_blocks(alert.to_dict())
    check_slack_limits(blocks)
    assert blocks[2]["fields"][0]["text"] == "*Principal*\n`-`"


def test_sns_trims_a_huge_group_key_and_says_so(tmp_path: Path) -> None:
    """A 400 KB `group_by` value is cut (not only event fields), and the note names it."""
    doc = make_alert().to_dict()
    doc["group_key"] = "g" * 400_000
    doc["summary"] = "s" * 300_000
    args = _sns(tmp_path).request(doc)
    check_sns_request(args)
    sent = json.loads(args["Message"])
    assert set(sent["trimmed"]["fields"]) == {"group_key", "summary"}
    assert sent["group_key"].startswith("[trimmed: 400002 bytes] gggg")
    assert sent["event"] == doc["event"]  # the small event was left whole


def test_hostile_alerts_all_arrive(tmp_path: Path, slack: SlackReceiver) -> None:
    """Five alerts the issue found stuck reach webhook, bot and SNS; nothing is left over."""
    events = [_event(userIdentity=[1]), _event(userIdentity={"sessionContext": "x"}),
              _event(userIdentity={"sessionContext": {"sessionIssuer": "x"}}),
              _event(userAgent="\x00\u202e" * 50_000), _event()]
    with MotoServer() as aws:
        topic = aws.topic()
        _, config = write_config(tmp_path, {
            "hook": {"type": "slack", "webhook_url": slack.webhook_url},
            "bot": {"type": "slack", "token": "xoxb-9-9-hostile", "channel": "#sec",
                    "base_url": slack.api_base},
            "sns": {"type": "sns", "topic_arn": topic.arn, "endpoint_url": aws.endpoint_url}},
            [{"outputs": ["hook", "bot", "sns"]}])
        dispatcher = build_dispatcher(config, "memory://", FAST)
        alerts = [make_alert(n=n, event=e, summary="Token for corp") for n, e in enumerate(events)]
        alerts[4].group_key = "g" * 400_000
        for alert in alerts:
            dispatcher.send(alert)
        report = dispatcher.close(30)
        received = [json.loads(m["Message"]) for m in topic.received()]
    assert report.left == 0, report.lines()
    assert {n: o.delivered for n, o in report.outputs.items()} == {"hook": 5, "bot": 5, "sns": 5}
    assert len(slack.delivered()) == 10 and all("blocks" in r.body for r in slack.delivered())
    assert sorted(m["alert_id"] for m in received) == sorted(a.alert_id for a in alerts)


# -- 3. hostile text renders inert ------------------------------------------------------------
def _hostile_scan(tmp_path: Path, slack: SlackReceiver) -> list[Request]:
    arn = "arn:aws:iam::123456789012:user/*eve*\n<!channel> ~x~ _y_ `z`"
    config, events = _scan_setup(tmp_path, slack, events=[_event(
        userAgent=HOSTILE_AGENT, userIdentity={**EVENT["userIdentity"], "arn": arn})])
    done = run_cli("scan", "-c", str(config), str(events))
    assert done.returncode == 0, done.stderr
    return slack.delivered()


def test_hostile_user_agent_cannot_forge_slack_formatting(
        tmp_path: Path, slack: SlackReceiver) -> None:
    """The exact JSON Slack gets: the summary is plain_text on one line; the principal is a
    code span; every mrkdwn object is verbatim; `text` holds the summary as a code span."""
    requests = _hostile_scan(tmp_path, slack)
    assert sorted(r.is_api for r in requests) == [False, True]
    arn = ("arn:aws:iam::123456789012:user/*eve*\\n&lt;!channel&gt; ~x~ _y_ ˋzˋ")
    summary = (f"Token for corp issued to {arn} via npm/10 \\n*Status*: resolved by secops, "
               "no action needed @here")
    for request in requests:
        body, blocks = request.body, request.body["blocks"]
        assert body["link_names"] is False
        assert blocks[1] == {"type": "section", "text": {
            "type": "plain_text", "text": summary.replace("ˋzˋ", "`z`"), "emoji": False}}
        assert blocks[2]["fields"][0] == {"type": "mrkdwn", "verbatim": True,
                                          "text": f"*Principal*\n`{arn}`"}
        assert body["text"] == f"[HIGH] CodeArtifact token issued: `{summary}`"
        check_slack_limits(blocks)
        for text in _text_objects(blocks):
            if text["type"] == "mrkdwn":
                outside = "".join(text["text"].split("`")[::2])  # what is not a code span
                for forged in ("Status", "*eve*", "channel", "@here", "~x~", "_y_"):
                    assert forged not in outside


def test_only_our_labels_are_live_mrkdwn(tmp_path: Path, slack: SlackReceiver) -> None:
    """Outside code spans, mrkdwn holds only our labels, emoji and the links we built."""
    requests = _hostile_scan(tmp_path, slack)
    live = set()
    for request in requests:
        for text in _text_objects(request.body["blocks"]):
            if text["type"] == "mrkdwn":
                live.update(part.strip() for part in text["text"].split("`")[::2])
    allowed = {"*Principal*", "*Source IP*", "*Account*", "*Region*", "*Event*",
               "*Event time*", "*Group*", "rule", "· alert", ""}
    links = {p for p in live if p.startswith(":mag: <https://us-west-2.console.aws.amazon.com/")}
    assert live - allowed == links and len(links) == 1


def test_update_times_from_the_event_are_code_spans() -> None:
    """A forged time in an update is shown inert; real timestamps read as before."""
    doc = make_alert(count=3, update=True).to_dict()
    doc["last_event_time"] = "*done*\n@here"
    text = slackfmt.update_text(doc, {"event_count": 1, "last_event_time": "2024-05-01T10:05Z"})
    assert text == ("2 more matches since 2024-05-01T10:05Z (3 in total, latest "
                    "`*done*\\n@here`)")
    block = slackfmt.update_blocks(doc, None, standalone=False)[0]
    assert block["text"]["verbatim"] is True
