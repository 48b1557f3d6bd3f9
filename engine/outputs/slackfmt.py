"""Alerts as Slack messages: Block Kit within Slack's limits, plus a plain `text` fallback.

Layout (SPEC §4): a header with the severity (emoji + word, readable at a glance in a busy
channel) and the title; the summary; fields for principal, source IP, account, region, event
and event time; links to the event in the CloudTrail console and to the runbook; a context
line with the rule id, alert id and tags.

Text from the event is the attacker's (user agents, package names, ARNs of foreign roles),
and the summary is rendered from it. None of it ever lands in live mrkdwn:
- the summary is a `plain_text` object (no bold, links or mentions; `emoji` off);
- field values, times, tags and ids are code spans inside mrkdwn whose labels are ours
  (`*Principal*`); a backtick in a value becomes `ˋ`, so the span cannot be closed early;
- `&`, `<`, `>` are escaped everywhere (no `<!here>` or `<http://evil|ok>`), and line breaks,
  control and invisible format characters are shown as escapes (`\\n`, `\\u202e`): event text
  cannot start a line of its own, such as a forged `*Status*: resolved` under the summary;
- every mrkdwn object sets `verbatim`, so Slack does not auto-link `@here`, `#channel` or
  URLs inside them, and messages are sent with `link_names` off.

Every field may hold any JSON value (a list for `userIdentity`, a string `sessionContext`,
400 KB strings): values are shown as text or compact JSON, cut with a visible marker, never
raised on. Limits are enforced here, never discovered by an API error: header 150 chars,
section text 3,000, field 2,000 (we keep fields to ~330: they are meant to be scanned), 50
blocks, no empty text object, and a total under Slack's undocumented ~12k characters.
"""

from __future__ import annotations

import re
from typing import Any

from engine.outputs.base import AlertDoc
from engine.outputs.values import count_of, one_line, text_of

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
_SAFE_URL = re.compile(r"https?://[\x21-\x7e]{1,2000}")
_TIME = re.compile(r"[0-9][0-9TZ:.+-]{0,39}")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """`text` shortened to `limit` characters with a marker; never splits an `&entity;`."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - len(MARK)]) + MARK


def inert(value: Any, limit: int) -> str:
    """Any value as one escaped line of at most `limit` characters (for plain_text, or for
    mrkdwn where a code span or our own markup surrounds it)."""
    return cut(escape(one_line(text_of(value, limit))), limit)


def mrkdwn(text: str, limit: int) -> str:
    return inert(text, limit)


def code(value: Any, limit: int) -> str:
    """A code span: inside it Slack applies no bold, italic, strike or links."""
    inner = inert(text_of(value, limit).replace("`", "ˋ"), limit - 2)
    return f"`{inner or '-'}`"


def plain(value: Any, limit: int, emoji: bool = False) -> dict[str, Any]:
    return {"type": "plain_text", "text": inert(value, limit) or "-", "emoji": emoji}


def markup(text: str) -> dict[str, Any]:
    """Our own mrkdwn (labels, links we built, code spans), with Slack's auto-parsing off."""
    return {"type": "mrkdwn", "text": text or "-", "verbatim": True}


def link(url: Any, label: str) -> str:
    """A mrkdwn link, or the label and the value as code when `url` is not plain http(s)."""
    if not isinstance(url, str) or not _SAFE_URL.fullmatch(url) or "|" in url or ">" in url:
        return f"{escape(label)}: {code(url, 200)}"
    return f"<{url.replace('&', '&amp;').replace('<', '%3C')}|{escape(label)}>"


def console_url(event: Any) -> str | None:
    """The event's page in the CloudTrail console (Event history keeps 90 days)."""
    if not isinstance(event, dict):
        return None
    region, event_id = event.get("awsRegion"), event.get("eventID")
    if not (isinstance(region, str) and isinstance(event_id, str)):
        return None
    if not re.fullmatch(r"[a-z0-9-]{1,40}", region) or \
            not re.fullmatch(r"[A-Za-z0-9-]{1,100}", event_id):
        return None
    host = "console.amazonaws-us-gov.com" if region.startswith("us-gov-") else (
        "console.amazonaws.cn" if region.startswith("cn-") else "console.aws.amazon.com")
    return f"https://{region}.{host}/cloudtrailv2/home?region={region}#/events/{event_id}"


def _get(value: Any, *keys: str) -> Any:
    """`value[k1][k2]…` where every level may be of any type; None when it is not there."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def principal(event: Any) -> str:
    for value in (_get(event, "userIdentity", "arn"),
                  _get(event, "userIdentity", "sessionContext", "sessionIssuer", "arn"),
                  _get(event, "userIdentity", "principalId"),
                  _get(event, "userIdentity", "invokedBy"), _get(event, "userIdentity", "type")):
        if isinstance(value, str) and value:
            return value
    return "-"


def severity_word(alert: AlertDoc) -> str:
    return one_line(text_of(alert.get("severity"), 20)[:20]).upper()


def _time(value: Any) -> str:
    """A timestamp as is, anything else as a code span (times come from the event)."""
    return value if isinstance(value, str) and _TIME.fullmatch(value) else code(value, 60)


def _fields(alert: AlertDoc) -> list[tuple[str, Any]]:
    event = alert.get("event")
    accounts = alert.get("account_ids") or [_get(event, "userIdentity", "accountId")]
    accounts = accounts if isinstance(accounts, list) else [accounts]
    count = count_of(alert.get("event_count"))
    what = f"{text_of(_get(event, 'eventSource') or '-', 100)} " \
           f"{text_of(_get(event, 'eventName'), 100)}"
    pairs: list[tuple[str, Any]] = [
        ("Principal", principal(event)),
        ("Source IP", _get(event, "sourceIPAddress") or "-"),
        ("Account", ", ".join(text_of(a, 100) for a in accounts[:20] if a) or "-"),
        ("Region", alert.get("region") or _get(event, "awsRegion") or "-"),
        ("Event", what.strip()),
        ("Event time", alert.get("first_event_time") or _get(event, "eventTime") or "-"),
    ]
    if count > 1:
        pairs.append(("Matches", f"{count} ({text_of(alert.get('first_event_time'), 40)} → "
                                 f"{text_of(alert.get('last_event_time'), 40)})"))
    if alert.get("group_key"):
        pairs.append(("Group", alert["group_key"]))
    return pairs


def _text_of(block: dict[str, Any]) -> int:
    """Characters of text a block carries, as Slack counts toward its total."""
    size = len(block.get("text", {}).get("text", ""))
    size += sum(len(f["text"]) for f in block.get("fields", []))
    return size + sum(len(e.get("text", "")) for e in block.get("elements", []))


def fallback_text(alert: AlertDoc) -> str:
    """The message's `text` (notifications, screen readers, the plain-text retry): the
    title, then the summary as a code span, since the summary carries event text."""
    title = inert(alert.get("title"), 300)
    body = alert.get("summary") or alert.get("title") or ""
    head = f"[{inert(severity_word(alert), 20)}] {title}: "
    return cut(head, TEXT_LIMIT // 2) + code(body, TEXT_LIMIT - min(len(head), TEXT_LIMIT // 2))


def _header(alert: AlertDoc) -> dict[str, Any]:
    severity = alert.get("severity")
    badge = SEVERITY_BADGE.get(severity if isinstance(severity, str) else "", ":white_circle:")
    text = f"{badge} {inert(severity_word(alert), 20)}: " \
           f"{inert(alert.get('title'), HEADER_LIMIT)}"
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, HEADER_LIMIT),
                                       "emoji": True}}


def alert_blocks(alert: AlertDoc) -> list[dict[str, Any]]:
    """The Block Kit blocks of a full alert message."""
    fields = [markup(f"*{name}*\n{code(value, FIELD_LIMIT)}")
              for name, value in _fields(alert)[:10]]
    blocks: list[dict[str, Any]] = [
        _header(alert),
        {"type": "section", "text": plain("-", 1)},
        {"type": "section", "fields": fields},
    ]
    links = _links(alert)
    if links:
        blocks.append({"type": "section", "text": markup(links)})
    blocks.append({"type": "context", "elements": [markup(_context(alert))]})
    budget = TOTAL_BUDGET - sum(_text_of(b) for b in blocks)
    summary = alert.get("summary") or alert.get("title") or "-"
    blocks[1]["text"] = plain(summary, max(200, min(SECTION_LIMIT, budget)))
    return blocks[:MAX_BLOCKS]


def _links(alert: AlertDoc) -> str:
    parts = []
    url = console_url(alert.get("event"))
    if url:
        parts.append(":mag: " + link(url, "View the event in the CloudTrail console"))
    runbook = alert.get("runbook")
    if runbook:
        parts.append(":book: " + link(runbook, "Runbook"))
    return "   ".join(parts)


def _context(alert: AlertDoc) -> str:
    tags = alert.get("tags") or []
    tags = tags if isinstance(tags, list) else [tags]
    text = f"rule {code(alert.get('rule_id'), 200)} · alert {code(alert.get('alert_id'), 100)}"
    if tags:
        text += " · " + ", ".join(code(t, 60) for t in tags[:10])
    if alert.get("update"):
        text += f" · update: {count_of(alert.get('event_count'))} matches so far"
    return text[:1000]


def update_text(alert: AlertDoc, previous: dict[str, Any] | None) -> str:
    """"12 more matches since …" for a folded repeat of an alert already posted."""
    count = count_of(alert.get("event_count"))
    latest = _time(alert.get("last_event_time"))
    before = count_of(previous.get("event_count")) if isinstance(previous, dict) else count
    if isinstance(previous, dict) and previous.get("event_count") and before < count:
        more = count - before
        since = _time(previous.get("last_event_time") or alert.get("first_event_time"))
        noun = "match" if more == 1 else "matches"
        return f"{more} more {noun} since {since} ({count} in total, latest {latest})"
    return (f"{count} matches in total since {_time(alert.get('first_event_time'))} "
            f"(latest {latest})")


def update_blocks(alert: AlertDoc, previous: dict[str, Any] | None,
                  standalone: bool) -> list[dict[str, Any]]:
    """A compact update: a thread reply, or (webhooks) a short standalone message that
    names the alert, since it has no thread to sit in. The title is the rule's, not the
    event's: escaped, on one line, in our bold."""
    text = ":repeat: " + update_text(alert, previous)
    if standalone:
        text += f"\n*{inert(severity_word(alert), 20)}: {inert(alert.get('title'), 500)}*"
    return [{"type": "section", "text": markup(cut(text, SECTION_LIMIT))},
            {"type": "context", "elements": [markup(_context(alert))]}]
