"""A local stand-in for Slack: records webhook and Web API requests, fails on demand.

    with SlackReceiver() as slack:
        slack.webhook_url            # http://127.0.0.1:PORT/services/T000/B000/secret...
        slack.api_base               # http://127.0.0.1:PORT/api/   (WebClient base_url)
        slack.fail(2, status=500)    # the next 2 requests get HTTP 500
        slack.rate_limit(1)          # the next request gets 429 with Retry-After: 1
        slack.error("invalid_auth")  # the next request gets that Slack error (API or webhook)
        slack.delivered()            # requests answered with success, in order

Answers follow Slack: the Web API says `{"ok": false, "error": ...}` with HTTP 200 (429 for
rate limits); webhooks answer plain-text codes with 4xx statuses.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK_STATUS = {"invalid_token": 403, "no_service": 404, "channel_not_found": 404,
                  "channel_is_archived": 410, "action_prohibited": 403,
                  "invalid_payload": 400, "invalid_blocks": 400, "msg_blocks_too_long": 400}


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 resets connections when many scans post at once (each
    # output connects on its own): the clients then retry, and tests measure that noise.
    request_queue_size = 128


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int = 200
    ok: bool = True

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")


@dataclass
class Plan:
    status: int = 200
    error: str = ""
    retry_after: float | None = None


@dataclass
class SlackReceiver:
    requests: list[Request] = field(default_factory=list)
    plans: deque[Plan] = field(default_factory=deque)
    secret: str = "XXXXsecretXXXXwebhookXXXX"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/T000/B000/{self.secret}"

    @property
    def api_base(self) -> str:
        return f"{self.url}/api/"

    # -- planning failures ------------------------------------------------------------------
    def fail(self, times: int, status: int = 500) -> None:
        with self._lock:
            self.plans.extend(Plan(status=status) for _ in range(times))

    def rate_limit(self, retry_after: float, times: int = 1) -> None:
        with self._lock:
            self.plans.extend(Plan(status=429, retry_after=retry_after) for _ in range(times))

    def error(self, code: str, times: int = 1) -> None:
        with self._lock:
            self.plans.extend(Plan(error=code) for _ in range(times))

    # -- reading back ------------------------------------------------------------------------
    def delivered(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.ok]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.delivered()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.delivered()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> SlackReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answering ---------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode()
        try:
            body = json.loads(raw) if raw.startswith("{") else {"raw": raw}
        except ValueError:
            body = {"raw": raw}
        request = Request(handler.path, dict(handler.headers.items()), body, time.monotonic())
        with self._lock:
            plan = self.plans.popleft() if self.plans else Plan()
            self.requests.append(request)
        status, headers, payload = self._answer(request, plan)
        request.status = status
        request.ok = status == 200 and not plan.error
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        data = payload.encode()
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, request: Request, plan: Plan) -> tuple[int, dict[str, str], str]:
        api = request.is_api
        kind = {"Content-Type": "application/json" if api else "text/plain"}
        if plan.status == 429:
            kind["Retry-After"] = f"{plan.retry_after:g}"
            return 429, kind, json.dumps({"ok": False, "error": "ratelimited"}) if api \
                else "rate_limited"
        if plan.status != 200:
            return plan.status, {"Content-Type": "text/html"}, "<html>Server Error</html>"
        if plan.error:
            if api:
                return 200, kind, json.dumps({"ok": False, "error": plan.error})
            return WEBHOOK_STATUS.get(plan.error, 400), kind, plan.error
        if api:
            ts = f"1700000000.{next(self._ts):06d}"
            channel = "C0SECALERT"
            return 200, kind, json.dumps({"ok": True, "channel": channel, "ts": ts,
                                          "message": {"ts": ts, "text": request.body.get("text")}})
        return 200, kind, "ok"
