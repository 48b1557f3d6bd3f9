"""Alert delivery: outputs (stdout, file, Slack, SNS), routing, retries and the outbox.

    build_dispatcher(config, state_url) -> Dispatcher
    Dispatcher.send(alert)              route, store in the outbox, deliver in the background
    Dispatcher.close(timeout)           -> DeliveryReport (delivered / failed / in the outbox)
    check_delivery_config(config)       outputs and routes checked, for `trailguard validate`

Modules: `dispatcher` (front door, registry), `routing`, `worker` (a thread per output),
`retry` (backoff), `outbox` (durable store), `slack` + `slackfmt`, `sns`, `basic`
(stdout, file, memory), `base` (interface, secret redaction).
"""

from engine.outputs.dispatcher import (
    OUTPUT_TYPES,
    DeliveryReport,
    Dispatcher,
    OutputReport,
    build_dispatcher,
    check_delivery_config,
)
from engine.outputs.retry import RetryPolicy

__all__ = ["OUTPUT_TYPES", "DeliveryReport", "Dispatcher", "OutputReport", "RetryPolicy",
           "build_dispatcher", "check_delivery_config"]
