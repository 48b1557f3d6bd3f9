"""Client libraries imported once, in the thread that builds the outputs.

Each output delivers from its own worker thread. When two workers imported slack-sdk lazily
at the same moment (a webhook and a bot output, the first alert of a scan), Python's
per-module import locks detected a deadlock in slack-sdk's circular imports and handed one
thread a half-initialised module: `ImportError: cannot import name '_next_cursor_is_present'
from partially initialized module 'slack_sdk.web.internal_utils'`, in 4 of 12 scans with
both cores busy. So an output that needs a library imports it in its constructor, which
runs in the building thread before any worker starts; afterwards every import in a worker is
a lookup in `sys.modules`.

The imports stay out of module scope: a command with no Slack or SNS output (`validate`,
`test`, a scan to stdout) never pays for them (boto3 alone costs ~160 ms).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()


def slack() -> None:
    """Everything `engine.outputs.slack` imports from slack-sdk, and what it uses lazily."""
    with _lock:
        import encodings.idna  # noqa: F401  (the socket layer's lazy codec lookup)

        import slack_sdk.errors
        import slack_sdk.web
        import slack_sdk.webhook  # noqa: F401


def aws() -> None:
    """boto3 and the botocore modules `engine.outputs.sns` uses."""
    with _lock:
        import encodings.idna  # noqa: F401

        import boto3.session  # noqa: F401
        import botocore.config
        import botocore.exceptions  # noqa: F401
