"""Slack: an incoming webhook (slack-sdk `WebhookClient`) or a bot token (`chat.postMessage`).

The SDK's own retries are switched off (`retry_handlers=[]`): its rate-limit handler sleeps
in the calling thread, and our worker must decide how long to wait and stay interruptible.
Every answer is classified here into retry (connection errors, 5xx, 429 with its
`Retry-After`, `ratelimited`, `internal_error`), broken output (revoked token or webhook,
missing or archived channel: `OutputBroken`), or a rejected message; a message Slack rejects
for its blocks is re-sent once as plain text, so an alert is never lost to formatting.

Threads: with a bot token, the first message's `ts` is remembered per alert in the state
store; later versions of the alert (dedup updates) become replies "N more matches since …".
A webhook cannot thread, so an update is a short standalone message. A version whose count
was already posted is skipped, which makes a re-delivery after a crash harmless.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from engine.errors import ConfigError
from engine.outputs import preload
from engine.outputs.base import AlertDoc, Output, OutputContext, get_logger, string_setting
from engine.outputs.slackfmt import alert_blocks, fallback_text, update_blocks, update_text
from engine.outputs.values import count_of, text_of

log = get_logger(__name__)
sdk_log = get_logger("engine.outputs.slack.sdk")  # handed to slack-sdk: redacted like ours
# The SDK logs every failed call at ERROR ("Failed to decode Slack API response: <html>…")
# although we handle and report it ourselves; raise this logger's level to debug the SDK.
sdk_log.setLevel(logging.CRITICAL)

# Errors that no retry fixes for any alert: a person must change the config or Slack.
BROKEN = {
    "invalid_auth": "the bot token is invalid", "not_authed": "no bot token was sent",
    "token_revoked": "the bot token was revoked", "token_expired": "the bot token expired",
    "account_inactive": "the bot's user or workspace was deleted",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of the channel (invite it)",
    "is_archived": "the channel is archived", "channel_is_archived": "the channel is archived",
    "missing_scope": "the token lacks the chat:write scope", "no_permission": "no permission",
    "restricted_action": "a workspace setting forbids posting",
    "ekm_access_denied": "administrators suspended posting",
    "team_access_not_granted": "the token has no access to this workspace",
    "invalid_token": "the webhook URL is invalid or revoked",
    "no_service": "the webhook was removed or disabled", "no_team": "the workspace is gone",
    "team_disabled": "the workspace is disabled",
    "action_prohibited": "an administrator restricted this webhook",
    "posting_to_general_channel_denied": "posting to #general is restricted",
}
TRANSIENT = {"ratelimited", "rate_limited", "internal_error", "fatal_error",
             "service_unavailable", "request_timeout"}
REJECTED_BLOCKS = {"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long",
                   "msg_too_long", "invalid_payload", "too_many_blocks"}


class _Rejected(Exception):
    """Slack refused the message itself (its blocks); a plain-text retry may pass."""


class SlackOutput(Output):
    type_name = "slack"
    optional: ClassVar[frozenset[str]] = frozenset(
        {"webhook_url", "token", "channel", "base_url", "username", "icon_emoji", "icon_url",
         "timeout"})
    secrets: ClassVar[frozenset[str]] = frozenset({"webhook_url", "token"})

    def __init__(self, name: str, settings: Mapping[str, Any], context: OutputContext) -> None:
        super().__init__(name, settings, context)
        self.bot = bool(self.settings.get("token"))
        self._client: Any = None
        preload.slack()  # here, before the worker threads start: see engine.outputs.preload

    @classmethod
    def check_more(cls, name: str, settings: Mapping[str, Any], where: str) -> None:
        for key in cls.optional - {"timeout"}:
            string_setting(name, settings, key, where)
        if bool(settings.get("webhook_url")) == bool(settings.get("token")):
            raise ConfigError(f"outputs.{name}: give either webhook_url or token (+ channel)",
                              where)
        if settings.get("token") and not settings.get("channel"):
            raise ConfigError(f"outputs.{name}: a bot token needs a channel", where)
        for key in ("webhook_url", "base_url"):
            value = settings.get(key)
            if value and urlsplit(str(value)).scheme not in ("http", "https"):
                raise ConfigError(f"outputs.{name}: {key} must be an http(s) URL", where)

    def describe(self) -> str:
        if self.bot:
            host = urlsplit(str(self.settings.get("base_url") or "https://slack.com/")).netloc
            return f"slack bot -> {self.settings['channel']} ({host})"
        return f"slack webhook ({urlsplit(str(self.settings['webhook_url'])).netloc})"

    # -- sending -----------------------------------------------------------------------------
    def send(self, alert: AlertDoc) -> None:
        alert_id = str(alert["alert_id"])
        previous = self.context.store.recall(self.name, alert_id)
        count = count_of(alert.get("event_count"))
        if previous and previous.get("event_count") and count <= count_of(
                previous.get("event_count")):
            log.info("output %s: alert %s with %d matches was already posted; skipped",
                     self.name, alert_id, count)
            return
        record = {"event_count": count,  # what later updates count from; any value stores
                  "last_event_time": text_of(alert.get("last_event_time"), 100)[:100]}
        if self.bot and previous and previous.get("ts"):
            self._post_bot(update_text(alert, previous), update_blocks(alert, previous, False),
                           channel=previous["channel"], thread_ts=previous["ts"])
            record.update(ts=previous["ts"], channel=previous["channel"])
        elif self.bot:
            answer = self._post_bot(fallback_text(alert), alert_blocks(alert))
            record.update(ts=answer.get("ts"), channel=answer.get("channel"))
        elif alert.get("update"):
            self._post_webhook(update_text(alert, previous), update_blocks(alert, previous, True))
        else:
            self._post_webhook(fallback_text(alert), alert_blocks(alert))
        self.context.store.remember(self.name, alert_id, record)

    def _post_bot(self, text: str, blocks: list[dict[str, Any]], channel: str | None = None,
                  thread_ts: str | None = None) -> dict[str, Any]:
        args: dict[str, Any] = {"channel": channel or self.settings["channel"], "text": text,
                                "unfurl_links": False, "unfurl_media": False,
                                "link_names": False}
        for key in ("username", "icon_emoji", "icon_url"):
            if self.settings.get(key):
                args[key] = self.settings[key]
        if thread_ts:
            args["thread_ts"] = thread_ts
        try:
            return self._bot_call({**args, "blocks": blocks})
        except _Rejected as exc:
            log.warning("output %s: Slack rejected the blocks (%s); sending plain text",
                        self.name, exc)
        try:
            return self._bot_call(args)
        except _Rejected as exc:
            raise self.fail(f"Slack rejected the message: {exc}", retryable=False) from None

    def _bot_call(self, args: dict[str, Any]) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            response = self.client().chat_postMessage(**args)
        except SlackApiError as exc:
            raise self._api_error(exc.response) from None
        except SlackRequestError as exc:
            raise self.broken(f"bad request setup: {exc}") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self.fail(f"cannot reach Slack: {_reason(exc)}", retryable=True) from None
        data = response.data if isinstance(response.data, dict) else {}
        return {"ts": data.get("ts"), "channel": data.get("channel")}

    def _api_error(self, response: Any) -> Exception:
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or "")
        return self._classify(response.status_code, error, response.headers or {})

    def _post_webhook(self, text: str, blocks: list[dict[str, Any]]) -> None:
        body: dict[str, Any] = {"text": text, "unfurl_links": False, "unfurl_media": False,
                                "link_names": False}
        for key in ("username", "icon_emoji", "icon_url"):
            if self.settings.get(key):
                body[key] = self.settings[key]
        try:
            self._webhook_call({**body, "blocks": blocks})
            return
        except _Rejected as exc:
            log.warning("output %s: Slack rejected the blocks (%s); sending plain text",
                        self.name, exc)
        try:
            self._webhook_call(body)
        except _Rejected as exc:
            raise self.fail(f"Slack rejected the message: {exc}", retryable=False) from None

    def _webhook_call(self, body: dict[str, Any]) -> None:
        try:
            response = self.client().send_dict(body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise self.fail(f"cannot reach Slack: {_reason(exc)}", retryable=True) from None
        text = str(response.body or "").strip()
        if response.status_code == 200 and text in ("ok", ""):
            return
        error = text if len(text) < 80 and text.replace("_", "").isalnum() else ""
        raise self._classify(response.status_code, error, response.headers or {})

    def _classify(self, status: int, error: str, headers: Mapping[str, Any]) -> Exception:
        what = f"HTTP {status}" + (f" {error}" if error else "")
        if status == 429 or error in ("ratelimited", "rate_limited"):
            wait = _retry_after(headers)
            return self.fail(f"rate limited by Slack ({what}); retry after {wait:g}s", True, wait)
        if status >= 500 or error in TRANSIENT:
            return self.fail(f"Slack is unavailable ({what})", retryable=True)
        if error in BROKEN or status in (401, 403, 404, 410):
            hint = BROKEN.get(error, "the webhook URL or token is not accepted")
            return self.broken(f"{what}: {hint}")
        if error in REJECTED_BLOCKS:
            return _Rejected(what)
        return self.fail(f"Slack refused the message ({what})", retryable=False)

    def client(self) -> Any:
        """The slack-sdk client, built once, with the SDK's own retries switched off."""
        if self._client is None:
            timeout = max(1, round(self.timeout))
            if self.bot:
                from slack_sdk import WebClient

                base = str(self.settings.get("base_url") or "https://slack.com/api/")
                self._client = WebClient(token=self.settings["token"], timeout=timeout,
                                         base_url=base.rstrip("/") + "/", logger=sdk_log,
                                         retry_handlers=[])
            else:
                from slack_sdk.webhook import WebhookClient

                self._client = WebhookClient(self.settings["webhook_url"], timeout=timeout,
                                             logger=sdk_log, retry_handlers=[])
        return self._client


def _retry_after(headers: Mapping[str, Any]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(1.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))

