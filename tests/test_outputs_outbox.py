"""The outbox (memory, sqlite, Redis), delivery across restarts, and the local outputs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import DeliveryError
from engine.outputs import Dispatcher, RetryPolicy, build_dispatcher
from engine.outputs.basic import MemoryOutput
from engine.outputs.outbox import Outbox, open_outbox
from tests.support.delivery import make_alert, make_rule, no_proxy, write_config
from tests.support.redis import OUTBOX_DB, redis_namespace

__all__ = ["no_proxy"]
FAST = RetryPolicy(max_attempts=2, base=0.01, cap=0.02, scale=0.01)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis":
        yield from redis_namespace(OUTBOX_DB)
    else:
        yield "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/state.db"


def _doc(n: int = 0, count: int = 1, update: bool = False) -> dict:
    return make_alert(n=n, count=count, update=update).to_dict()


def test_outbox_entry_lifecycle(store_url: str) -> None:
    """put -> claim -> finish removes it; a release keeps it with the error and attempts."""
    clock = Clock()
    store = open_outbox(store_url, clock)
    doc = _doc()
    store.put("slack", doc, "me")
    [entry] = store.entries()
    assert (entry.output, entry.alert_id, entry.fresh) == ("slack", doc["alert_id"], True)
    claimed = store.claim("slack", doc["alert_id"], "me")
    assert claimed is not None and claimed.alert == json.loads(json.dumps(doc))
    store.release("slack", doc["alert_id"], "me", "HTTP 500")
    [entry] = store.entries("slack")
    assert (entry.attempts, entry.last_error, entry.owner) == (1, "HTTP 500", "")
    claimed = store.claim("slack", doc["alert_id"], "me")
    assert claimed and store.finish("slack", doc["alert_id"], claimed.version)
    assert store.entries() == [] and store.count("slack") == 0
    store.close()


def test_outbox_leases_keep_other_owners_out_until_expiry(store_url: str) -> None:
    """Two daemons on one store: only the lease holder works on an entry, until it expires."""
    clock = Clock()
    store = open_outbox(store_url, clock)
    store.put("sns", _doc(), "daemon-a", lease=60)
    alert_id = store.entries()[0].alert_id
    assert store.claim("sns", alert_id, "daemon-b") is None
    clock.now += 61
    assert store.claim("sns", alert_id, "daemon-b") is not None
    assert store.claim("sns", alert_id, "daemon-a") is None
    store.close()


def test_outbox_merges_updates_keeping_newest_and_first_message(store_url: str) -> None:
    """An update merging into an undelivered alert keeps the larger count and stays full."""
    store = open_outbox(store_url, Clock())
    store.put("slack", _doc(count=1), "me")
    store.put("slack", _doc(count=5, update=True), "me")
    store.put("slack", _doc(count=3, update=True), "me")  # late and older: ignored
    [entry] = store.entries()
    assert entry.alert["event_count"] == 5 and entry.version == 3
    assert "update" not in entry.message()  # the first message has not gone out yet
    assert not store.finish("slack", entry.alert_id, 2)  # an older version was delivered
    [entry] = store.entries()
    assert entry.message()["update"] is True
    store.close()


def test_outbox_remembers_what_was_sent(store_url: str) -> None:
    """The Slack thread record outlives the store object (for sqlite and Redis)."""
    store = open_outbox(store_url, Clock())
    store.remember("bot", "a1", {"ts": "1.2", "channel": "C1", "event_count": 2})
    assert store.recall("bot", "a1") == {"ts": "1.2", "channel": "C1", "event_count": 2}
    assert store.recall("bot", "a2") is None
    store.close()
    if not store_url.startswith("memory"):
        again = open_outbox(store_url)
        assert again.recall("bot", "a1") is not None
        again.close()


def _failing(dispatcher: Dispatcher, name: str, errors: int, retryable: bool = True) -> None:
    output = dispatcher.outputs[name]
    assert isinstance(output, MemoryOutput)
    output.failures.extend(DeliveryError(name, "down", retryable) for _ in range(errors))


def test_outbox_delivers_after_restart_on_same_sqlite(tmp_path: Path) -> None:
    """Undelivered alerts survive the process; the next dispatcher sends them, once."""
    _, config = write_config(tmp_path, {"a": {"type": "memory"}, "b": {"type": "memory"}},
                             [{"outputs": ["a", "b"]}], state="sqlite:///state.db")
    first = build_dispatcher(config, None, FAST)
    _failing(first, "a", 100)
    alerts = [make_alert(n=n) for n in range(3)]
    for alert in alerts:
        first.send(alert)
    report = first.close()
    assert report.outputs["a"].outbox == 3 and report.outputs["b"].outbox == 0
    assert len(first.outputs["b"].sent) == 3  # type: ignore[attr-defined]
    second = build_dispatcher(config, None, FAST)
    report = second.close()
    sent = second.outputs["a"].sent  # type: ignore[attr-defined]
    assert sorted(d["alert_id"] for d in sent) == sorted(a.alert_id for a in alerts)
    assert second.outputs["b"].sent == []  # type: ignore[attr-defined]
    assert report.left == 0


def test_outbox_close_timeout_leaves_work_for_next_run(tmp_path: Path) -> None:
    """close(timeout) interrupts backoff; what is undelivered is released for the next run."""
    _, config = write_config(tmp_path, {"slow": {"type": "memory"}}, [{"outputs": ["slow"]}],
                             state="sqlite:///state.db")
    dispatcher = build_dispatcher(config, None, RetryPolicy(max_attempts=5, base=30, cap=30))
    _failing(dispatcher, "slow", 1)
    dispatcher.send(make_alert())
    start = time.monotonic()
    report = dispatcher.close(timeout=0.2)
    assert time.monotonic() - start < 2
    assert report.left == 1
    store = open_outbox(f"sqlite:///{tmp_path}/state.db")
    [entry] = store.entries()
    assert entry.owner == "" and entry.last_error == "stopped before delivery"
    store.close()
    again = build_dispatcher(config, None, FAST)
    assert again.close().outputs["slow"].delivered == 1


def test_outbox_periodic_retry_skips_permanent_failures(tmp_path: Path) -> None:
    """retry_outbox() re-queues retryable failures only; a restart retries everything."""
    _, config = write_config(tmp_path, {"m": {"type": "memory"}}, [{"outputs": ["m"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    _failing(dispatcher, "m", 1, retryable=False)
    dispatcher.send(make_alert(n=0))
    dispatcher.wait(5)
    assert dispatcher.retry_outbox() == 0
    assert dispatcher.retry_outbox(include_permanent=True) == 1
    report = dispatcher.close()
    assert report.outputs["m"].delivered == 1 and report.left == 0


def test_file_output_appends_json_lines_relative_to_config(tmp_path: Path) -> None:
    """`file` appends one JSON line per alert, its path relative to the config file."""
    (tmp_path / "alerts.jsonl").write_text('{"earlier": true}\n')
    _, config = write_config(tmp_path, {"f": {"type": "file", "path": "alerts.jsonl"}},
                             [{"outputs": ["f"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    dispatcher.send(make_alert(n=0))
    dispatcher.send(make_alert(n=1))
    dispatcher.close()
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert [x["event_ids"][0][-4:] for x in lines[1:]] == ["0000", "0001"]


@pytest.mark.parametrize("fmt", ["jsonl", "text"])
def test_stdout_output_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               fmt: str) -> None:
    """`stdout` writes JSON lines, or one readable line per alert."""
    _, config = write_config(tmp_path, {"o": {"type": "stdout", "format": fmt}},
                             [{"outputs": ["o"]}])
    dispatcher = build_dispatcher(config, "memory://", FAST)
    alert = make_alert(make_rule(severity="critical"), count=3)
    dispatcher.send(alert)
    dispatcher.close()
    out = capsys.readouterr().out
    if fmt == "jsonl":
        assert json.loads(out)["alert_id"] == alert.alert_id
    else:
        assert out.startswith("[CRITICAL] codeartifact-token-unknown-network: Token for corp")
        assert "(3 events)" in out and alert.alert_id in out


def test_outbox_store_rejects_unknown_url() -> None:
    """A state URL the outbox cannot use is a config error."""
    from engine.errors import ConfigError

    with pytest.raises(ConfigError):
        open_outbox("postgres://db/1")
    assert isinstance(open_outbox(None), Outbox)
