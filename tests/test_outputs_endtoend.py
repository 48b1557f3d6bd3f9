"""The issue's "done when": Slack (webhook and bot) and SNS, with Slack failing for a while."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from engine.outputs import RetryPolicy, build_dispatcher
from tests.support.delivery import make_alert, make_rule, no_proxy, write_config
from tests.support.moto_server import MotoServer
from tests.support.slack_receiver import Request, SlackReceiver

__all__ = ["no_proxy"]


def _ids(requests: list[Request]) -> Counter[str]:
    found = (re.search(r"alert `([0-9a-f]+)`", str(r.body["blocks"])) for r in requests)
    return Counter(match.group(1) for match in found if match)


def test_delivery_survives_slack_outage_and_rate_limit(tmp_path: Path) -> None:
    """Every alert reaches webhook, bot and SNS exactly once; Slack's troubles delay only Slack.

    Slack answers 500s for a while, then a 429 with Retry-After: 2 (scaled down ×0.5 here:
    time enough for SNS to finish first on a loaded machine; the unscaled path is tested
    with Retry-After: 1 in test_outputs_slack).
    """
    with SlackReceiver() as slack, MotoServer() as aws:
        topic = aws.topic()
        _, config = write_config(tmp_path, {
            "hook": {"type": "slack", "webhook_url": slack.webhook_url},
            "bot": {"type": "slack", "token": "xoxb-9-9-e2e", "channel": "#sec",
                    "base_url": slack.api_base},
            "sns": {"type": "sns", "topic_arn": topic.arn, "endpoint_url": aws.endpoint_url},
        }, [{"min_severity": "medium", "outputs": ["hook", "bot", "sns"]}],
            state="sqlite:///state.db")
        slack.fail(6, status=502)
        slack.rate_limit(2)
        dispatcher = build_dispatcher(config, None, RetryPolicy(max_attempts=3, base=0.01,
                                                                cap=0.02, scale=0.5))
        alerts = [make_alert(make_rule(severity="high"), n=n) for n in range(8)]
        for alert in alerts:
            dispatcher.send(alert)
        dispatcher.send(make_alert(make_rule("low-noise", severity="low"), n=99))
        assert dispatcher.workers["sns"].wait_idle(5)
        sns_done = time.monotonic()
        report = dispatcher.close()
        expected = Counter({a.alert_id: 1 for a in alerts})
        delivered = slack.delivered()
        assert _ids([r for r in delivered if not r.is_api]) == expected
        assert _ids([r for r in delivered if r.is_api]) == expected
        messages = [json.loads(m["Message"]) for m in topic.received()]
        assert Counter(m["alert_id"] for m in messages) == expected
        limited = next(i for i, r in enumerate(slack.requests) if r.status == 429)
        after = next(r for r in slack.requests[limited + 1:]
                     if r.path == slack.requests[limited].path)
        assert after.at - slack.requests[limited].at >= 0.99  # Retry-After 2 s × 0.5
        assert sns_done < after.at  # SNS never waited for Slack's 500s or its Retry-After
        assert report.left == 0 and report.unrouted == 1
        assert {n: o.delivered for n, o in report.outputs.items()} == {
            "hook": 8, "bot": 8, "sns": 8}
