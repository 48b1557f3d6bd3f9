"""Secret redaction: the one place that decides what a log line, an HTTP body or an error may
not show.

Two kinds of secret are masked. Registered ones: values a part of trailguard knows to be
secret (an output's webhook URL or token, a config value read from an environment variable
whose name says it is a secret, the password of the state URL). And secrets recognisable by
their shape, wherever they come from, because a value put in the wrong field is not known to
be secret by that field: the password in a URL's user part (`redis://:PASSWORD@host`), Slack
tokens (`xoxb-...`) and Slack webhook paths (`/services/T.../B.../...`).

`redact(text)` is applied wherever such text is shown: error messages (ConfigError and
StateError redact their own), the daemon's log lines (engine.logs), /readyz, and the outputs'
loggers (`RedactSecrets`). Moved here from engine.outputs.base, which re-exports it.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote, urlsplit

MASK = "[redacted]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_SHORTEST = 6  # shorter values are too likely to occur by chance in ordinary text
# scheme://user:PASSWORD@host, and scheme://:PASSWORD@host (Redis' own form)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)")
_SHAPES = (
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"),  # Slack tokens
    re.compile(r"(?<=/services/)T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),  # Slack webhooks
)
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|WEBHOOK|CREDENTIAL|PRIVATE|API_?KEY",
                         re.IGNORECASE)


def register_secret(value: str | None) -> None:
    """Mask `value` (and, for a URL, its path and its password) everywhere it is shown."""
    if not value or not isinstance(value, str) or len(value) < _SHORTEST:
        return
    with _secrets_lock:
        _secrets.add(value)
        if "://" in value:
            path = value.split("://", 1)[1].partition("/")[2]
            if len(path) >= _SHORTEST:
                _secrets.add("/" + path)
    if "://" in value:
        register_url_password(value)


def register_url_password(url: str | None) -> None:
    """Mask the password of `url` (a state URL, say), alone and URL-decoded too."""
    try:
        password = urlsplit(url or "").password
    except ValueError:
        return
    for form in {password, unquote(password or "")}:
        if form and len(form) >= _SHORTEST:
            with _secrets_lock:
                _secrets.add(form)


def redact(text: str) -> str:
    """`text` with every registered secret and every secret-shaped value masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    for shape in _SHAPES:
        text = shape.sub(MASK, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (and traceback) with every known secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
