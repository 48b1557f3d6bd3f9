"""Alerts as Slack messages: Block Kit within Slack's limits, plus a plain `text` fallback.

Layout (SPEC §4): a header with the severity (emoji + word, readable at a glance in a busy
channel) and the title; the summary; fields for principal, source IP, account, region, event
and event time; links to the event in the CloudTrail console and to the runbook; a context
line with the rule id, alert id and tags.

Limits are enforced here, never discovered by an API error: header 150 chars, section text
3,000, field 2,000 (we keep fields short: they are meant to be scanned), 50 blocks, and a
total budget under Slack's undocumented ~12k characters (`msg_blocks_too_long`). Long values
are cut with a visible marker. Text from the event is attacker-influenced (package names,
user agents), so `&`, `<` and `>` are escaped: no `<!channel>` or forged link can ride in.
"""

from __future__ import annotations

import re
from typing import Any

from engine.outputs.base import AlertDoc

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 300  # Slack allows 2,000; a field longer than this is no longer glanceable
TEXT_LIMIT = 1000
TOTAL_BUDGET = 11000  # characters of text across all blocks, under Slack's ~12k
MAX_BLOCKS = 50
MARK = "… (truncated)"

SEVERITY_BADGE = {
    "critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:",
    "low": ":large_yellow_circle:", "info": ":large_blue_circle:",
}
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters with a marker; never splits an `&entity;`."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - len(MARK)]) + MARK


def mrkdwn(text: str, limit: int) -> str:
    return cut(escape(text), limit)


def link(url: str, label: str) -> str:
    """A mrkdwn link, or the escaped label when `url` is not plain http(s)."""
    if not re.fullmatch(r"https?://[^\s<>|]+", url or ""):
        return escape(label)
    return f"<{url.replace('&', '&amp;')}|{escape(label)}>"


def console_url(event: dict[str, Any]) -> str | None:
    """The event's page in the CloudTrail console (Event history keeps 90 days)."""
    region, event_id = event.get("awsRegion"), event.get("eventID")
    if not (isinstance(region, str) and isinstance(event_id, str)):
        return None
    if not re.fullmatch(r"[a-z0-9-]+", region) or not re.fullmatch(r"[A-Za-z0-9-]+", event_id):
        return None
    host = "console.amazonaws-us-gov.com" if region.startswith("us-gov-") else (
        "console.amazonaws.cn" if region.startswith("cn-") else "console.aws.amazon.com")
    return f"https://{region}.{host}/cloudtrailv2/home?region={region}#/events/{event_id}"


def principal(event: dict[str, Any]) -> str:
    identity = event.get("userIdentity")
    if not isinstance(identity, dict):
        return "-"
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    for value in (identity.get("arn"), issuer.get("arn"), identity.get("principalId"),
                  identity.get("invokedBy"), identity.get("type")):
        if isinstance(value, str) and value:
            return value
    return "-"


def _fields(alert: AlertDoc) -> list[tuple[str, str]]:
    event = alert.get("event") or {}
    accounts = alert.get("account_ids") or [(event.get("userIdentity") or {}).get("accountId")]
    count = int(alert.get("event_count") or 1)
    pairs = [
        ("Principal", principal(event)),
        ("Source IP", str(event.get("sourceIPAddress") or "-")),
        ("Account", ", ".join(str(a) for a in accounts if a) or "-"),
        ("Region", str(alert.get("region") or event.get("awsRegion") or "-")),
        ("Event", f"{event.get('eventSource', '-')} {event.get('eventName', '')}".strip()),
        ("Event time", str(alert.get("first_event_time") or event.get("eventTime") or "-")),
    ]
    if count > 1:
        pairs.append(("Matches", f"{count} ({alert.get('first_event_time')} → "
                                 f"{alert.get('last_event_time')})"))
    if alert.get("group_key"):
        pairs.append(("Group", str(alert["group_key"])))
    return pairs


def _text_of(block: dict[str, Any]) -> int:
    """Characters of text a block carries, as Slack counts toward its total."""
    size = len(block.get("text", {}).get("text", ""))
    size += sum(len(f["text"]) for f in block.get("fields", []))
    return size + sum(len(e.get("text", "")) for e in block.get("elements", []))


def fallback_text(alert: AlertDoc) -> str:
    """The plain `text`: what notifications and screen readers show."""
    severity = str(alert.get("severity", "")).upper()
    body = alert.get("summary") or alert.get("title") or ""
    return mrkdwn(f"[{severity}] {alert.get('title', '')}: {body}", TEXT_LIMIT)


def alert_blocks(alert: AlertDoc) -> list[dict[str, Any]]:
    """The Block Kit blocks of a full alert message."""
    severity = str(alert.get("severity", "info"))
    header = f"{SEVERITY_BADGE.get(severity, ':white_circle:')} {severity.upper()}: " \
             f"{alert.get('title', '')}"
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{mrkdwn(value, FIELD_LIMIT)}"}
              for name, value in _fields(alert)[:10]]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(header, HEADER_LIMIT),
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "(summary)"}},
        {"type": "section", "fields": fields},
    ]
    links = _links(alert)
    if links:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": links}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(alert)}]})
    budget = TOTAL_BUDGET - sum(_text_of(b) for b in blocks)
    summary = str(alert.get("summary") or alert.get("title") or "")
    blocks[1]["text"]["text"] = mrkdwn(summary, max(200, min(SECTION_LIMIT, budget)))
    return blocks[:MAX_BLOCKS]


def _links(alert: AlertDoc) -> str:
    parts = []
    url = console_url(alert.get("event") or {})
    if url:
        parts.append(":mag: " + link(url, "View the event in the CloudTrail console"))
    runbook = str(alert.get("runbook") or "")
    if runbook:
        parts.append(":book: " + (link(runbook, "Runbook") if runbook.startswith("http")
                                  else "Runbook: " + escape(runbook)))
    return cut("   ".join(parts), SECTION_LIMIT) if parts else ""


def _context(alert: AlertDoc) -> str:
    tags = ", ".join(str(t) for t in alert.get("tags") or [])
    text = f"rule `{escape(str(alert.get('rule_id')))}` · alert `{alert.get('alert_id')}`"
    if tags:
        text += f" · {escape(tags)}"
    if alert.get("update"):
        text += f" · update: {alert.get('event_count')} matches so far"
    return cut(text, 1000)


def update_text(alert: AlertDoc, previous: dict[str, Any] | None) -> str:
    """"12 more matches since …" for a folded repeat of an alert already posted."""
    count = int(alert.get("event_count") or 1)
    if previous and int(previous.get("event_count") or 0) < count:
        more = count - int(previous["event_count"])
        since = previous.get("last_event_time") or alert.get("first_event_time")
        noun = "match" if more == 1 else "matches"
        return (f"{more} more {noun} since {since} ({count} in total, "
                f"latest {alert.get('last_event_time')})")
    return (f"{count} matches in total since {alert.get('first_event_time')} "
            f"(latest {alert.get('last_event_time')})")


def update_blocks(alert: AlertDoc, previous: dict[str, Any] | None,
                  standalone: bool) -> list[dict[str, Any]]:
    """A compact update: a thread reply, or (webhooks) a short standalone message."""
    text = ":repeat: " + escape(update_text(alert, previous))
    if standalone:
        severity = str(alert.get("severity", "")).upper()
        text = f"{text}\n*{severity}: {mrkdwn(str(alert.get('title', '')), 500)}*"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _context(alert)}]}]
