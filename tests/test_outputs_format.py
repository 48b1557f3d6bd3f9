"""Message formatting: Slack Block Kit within limits, SNS subject, attributes, trimming."""

from __future__ import annotations

import json

import orjson
import pytest

from engine.outputs import slackfmt
from engine.outputs.sns import MAX_BYTES, attributes, fit_message, subject
from tests.support.delivery import EVENT, make_alert, make_rule


def _doc(**kwargs: object) -> dict:
    return make_alert(**kwargs).to_dict()  # type: ignore[arg-type]


def _slack_text_total(blocks: list[dict]) -> int:
    return sum(slackfmt._text_of(b) for b in blocks)


def test_slack_blocks_show_severity_summary_fields_and_links() -> None:
    """The header carries the severity at a glance; fields, console link and runbook follow."""
    blocks = slackfmt.alert_blocks(_doc())
    assert blocks[0] == {"type": "header", "text": {
        "type": "plain_text", "emoji": True,
        "text": ":red_circle: HIGH: CodeArtifact token requested from an unknown network"}}
    # Values are code spans (event text is never live mrkdwn; see test_adversarial_outputs).
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields["*Principal*"] == "`arn:aws:sts::123456789012:assumed-role/Developer/dev`"
    assert fields["*Source IP*"] == "`198.51.100.7`"
    assert fields["*Account*"] == "`123456789012`"
    assert fields["*Region*"] == "`us-west-2`"
    assert fields["*Event time*"] == "`2024-05-01T10:00:00Z`"
    links = blocks[3]["text"]["text"]
    assert ("<https://us-west-2.console.aws.amazon.com/cloudtrailv2/home?region=us-west-2"
            "#/events/6b0a4f0e-aaaa-bbbb-cccc-ddddeeee0000|") in links
    assert "<https://wiki.example.com/runbooks/codeartifact-token|Runbook>" in links
    assert "rule `codeartifact-token-unknown-network`" in blocks[-1]["elements"][0]["text"]


@pytest.mark.parametrize("size", [10, 3_500, 20_000, 200_000])
def test_slack_blocks_stay_within_every_limit(size: int) -> None:
    """Huge titles, summaries and event values are cut with a marker, never over a limit."""
    event = json.loads(json.dumps(EVENT))
    event["sourceIPAddress"] = "x" * size
    event["userIdentity"]["arn"] = "<!channel>" * (size // 10 + 1)
    rule = make_rule(title="T" * size, runbook="https://example.com/" + "r" * size)
    blocks = slackfmt.alert_blocks(_doc(rule=rule, event=event, summary="s&<>" * size))
    assert len(blocks) <= slackfmt.MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= slackfmt.HEADER_LIMIT
    for block in blocks:
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= slackfmt.SECTION_LIMIT
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    assert _slack_text_total(blocks) <= 12_000
    assert len(json.dumps(blocks)) < 40_000
    if size > 3000:
        assert blocks[1]["text"]["text"].endswith(slackfmt.MARK)
    assert len(slackfmt.fallback_text(_doc(summary="y" * size))) <= slackfmt.TEXT_LIMIT


def test_slack_text_from_events_cannot_mention_or_forge_links() -> None:
    """`<!channel>` and `<http://evil|ok>` in event data are escaped, not interpreted."""
    event = json.loads(json.dumps(EVENT))
    event["userIdentity"]["arn"] = "<!channel> <http://evil.example|click>"
    blocks = slackfmt.alert_blocks(_doc(event=event, summary="<!here> & co"))
    text = json.dumps(blocks)
    assert "<!channel>" not in text and "<!here>" not in text and "<http://evil" not in text
    assert "&lt;!here&gt; &amp; co" in blocks[1]["text"]["text"]


def test_slack_cut_never_splits_an_entity() -> None:
    """Truncation after escaping leaves no half `&amp;` before the marker."""
    for limit in range(20, 40):
        cut = slackfmt.mrkdwn("&" * 100, limit)
        assert len(cut) <= limit
        assert not cut[: -len(slackfmt.MARK)].endswith(("&", "&a", "&am", "&amp"))


def test_slack_update_text_counts_matches_since_last_message() -> None:
    """An update says how many more matches arrived since the last message."""
    doc = _doc(count=12, update=True)
    previous = {"event_count": 2, "last_event_time": "2024-05-01T10:05:00Z"}
    assert slackfmt.update_text(doc, previous) == (
        "10 more matches since 2024-05-01T10:05:00Z (12 in total, latest 2024-05-01T10:40:00Z)")
    assert slackfmt.update_text(doc, None).startswith("12 matches in total since")


def test_console_url_only_for_safe_values() -> None:
    """No link when the region or event id could smuggle text into the URL."""
    assert slackfmt.console_url({"awsRegion": "us-west-2", "eventID": "a|b"}) is None
    assert slackfmt.console_url({"awsRegion": "us-gov-west-1", "eventID": "abc"}) == (
        "https://us-gov-west-1.console.amazonaws-us-gov.com/cloudtrailv2/home"
        "?region=us-gov-west-1#/events/abc")


@pytest.mark.parametrize("title, expected", [
    ("Token from an unknown network", "[HIGH] Token from an unknown network"),
    ("Jeton demandé\nd’un réseau — inconnu 🚨", "[HIGH] Jeton demande d'un reseau - inconnu"),
    ("x" * 300, "[HIGH] " + "x" * 89 + "..."),
])
def test_sns_subject_is_printable_ascii_under_100(title: str, expected: str) -> None:
    """Subject: printable ASCII, no line breaks, under 100 characters (real SNS rules)."""
    value = subject(_doc(rule=make_rule(title=title)))
    assert value == expected
    assert len(value) < 100 and all(32 <= ord(c) < 127 for c in value)


def test_sns_attributes_carry_severity_and_rule() -> None:
    """Subscription filter policies can select on severity and rule_id."""
    assert attributes(_doc()) == {
        "severity": {"DataType": "String", "StringValue": "high"},
        "rule_id": {"DataType": "String", "StringValue": "codeartifact-token-unknown-network"}}


def test_sns_message_over_256kb_is_trimmed_largest_event_field_first() -> None:
    """The largest event field goes first; the message says what was trimmed."""
    event = json.loads(json.dumps(EVENT))
    event["requestParameters"]["policyDocument"] = "p" * 300_000
    event["responseElements"] = {"big": ["q" * 100] * 100}
    message = fit_message(_doc(event=event), MAX_BYTES - 200)
    assert len(message.encode()) <= MAX_BYTES - 200
    doc = json.loads(message)
    assert doc["trimmed"]["fields"] == ["event.requestParameters.policyDocument"]
    assert doc["trimmed"]["original_bytes"] > 300_000
    assert doc["event"]["requestParameters"]["policyDocument"].startswith("[trimmed: ")
    assert doc["event"]["requestParameters"]["domainName"] == "corp"
    assert doc["event"]["responseElements"]["big"][0] == "q" * 100


def test_sns_message_under_the_limit_is_the_alert_json() -> None:
    """A normal alert is sent exactly as SPEC §4's JSON."""
    doc = _doc()
    assert orjson.loads(fit_message(doc, MAX_BYTES)) == json.loads(json.dumps(doc))


def test_sns_trim_handles_many_small_fields() -> None:
    """No single field dominates: whole containers go, and the result still fits."""
    event = json.loads(json.dumps(EVENT))
    event["requestParameters"] = {f"k{i}": "v" * 50 for i in range(10_000)}
    message = fit_message(_doc(event=event), 100_000)
    assert len(message.encode()) <= 100_000
    assert json.loads(message)["trimmed"]["fields"] == ["event.requestParameters"]
