"""What `trailguard run` tells an operator: metrics that count what they say, and logs that
are JSON lines only. A real daemon with a files source, through the real CLI (no Redis)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.daemon import Daemon
from tests.support.records import record

RULE = """\
id: token
title: Tokens for one principal
severity: low
condition: eventName == 'GetAuthorizationToken'
group_by: userIdentity.arn
dedup: 1h
"""


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def _wait_for(daemon: Daemon, name: str, value: float, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = daemon.get("/metrics")[1]
        if _metric(text, name) == value:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{name} never reached {value}:\n{text}")


def test_daemon_counts_updates_apart_and_logs_only_json(tmp_path: Path) -> None:
    """Three matches of one group within the dedup window: one alert, then updates.
    trailguard_alerts_total says 1 (it said 2 when updates counted as alerts), the update's
    log line says "update" and the alert id, a bad file's malformed count is labelled by
    source type (not one series per file), and every line on stderr is JSON."""
    watch = tmp_path / "watch"
    watch.mkdir()
    (tmp_path / "rule.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text(
        f"rules: [{tmp_path / 'rule.yml'}]\nstate: sqlite:///{tmp_path / 'state.db'}\n"
        f"sources: [{{type: files, paths: [{watch}]}}]\n"
        f"outputs: {{out: {{type: file, path: {tmp_path / 'alerts.jsonl'}}}}}\n"
        "routes: [{outputs: [out]}]\nserver: {listen: '127.0.0.1:0'}\n")
    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        first = record(eventTime="2024-03-01T10:00:00Z")
        (watch / "a.jsonl").write_text(json.dumps(first) + "\n")
        _wait_for(daemon, 'trailguard_alerts_total{rule="token"}', 1.0)
        later = [record(eventTime=f"2024-03-01T10:0{n}:00Z") for n in (1, 2)]
        (watch / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in later))
        (watch / "lp.jsonl").write_text("this is not json\n")
        text = _wait_for(daemon, 'trailguard_alert_updates_total{rule="token"}', 1.0)
        assert _metric(text, 'trailguard_alerts_total{rule="token"}') == 1.0
        text = _wait_for(daemon, 'trailguard_malformed_total{source="files"}', 1.0)
        assert "lp.jsonl" not in text and "watch/" not in text
    finally:
        assert daemon.stop() == 0
    raw = daemon.log.read_text().splitlines()
    lines = [json.loads(line) for line in raw]  # every line is JSON: none is plain text
    assert any(line["message"].startswith("listening on 127.0.0.1:") for line in lines)
    alert_id = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[0])["alert_id"]
    news = [line for line in lines if line["message"].startswith("alert token:")]
    updates = [line for line in lines if line["message"].startswith("update of alert")]
    assert len(news) == 1 and news[0]["alert_id"] == alert_id
    assert len(updates) == 1 and updates[0]["alert_id"] == alert_id
    assert updates[0]["message"].startswith(f"update of alert {alert_id} (token): 3 events")


def test_daemon_start_errors_are_json_log_lines(tmp_path: Path) -> None:
    """Invalid rules at start: exit 1, each problem a JSON log line naming PATH:LINE."""
    (tmp_path / "rule.yml").write_text(RULE.replace("eventName ==", "lenght(eventName) =="))
    config = tmp_path / "trailguard.yml"
    config.write_text(f"rules: [{tmp_path / 'rule.yml'}]\n"
                      f"sources: [{{type: files, paths: [{tmp_path}]}}]\n")
    result = run_cli("run", "-c", str(config))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and all(line["level"] == "error" for line in lines)
    assert f"{tmp_path / 'rule.yml'}:4: condition: unknown function 'lenght'" \
        in lines[0]["message"]


def test_daemon_unexpected_errors_are_json_log_lines(tmp_path: Path) -> None:
    """An error nobody planned for (here a --listen port that is not a number, unless the
    options check catches it first) still ends as JSON lines, never a plain traceback."""
    (tmp_path / "rule.yml").write_text(RULE)
    config = tmp_path / "trailguard.yml"
    config.write_text(f"rules: [{tmp_path / 'rule.yml'}]\n"
                      f"sources: [{{type: files, paths: [{tmp_path}]}}]\n")
    result = run_cli("run", "-c", str(config), "--state", "memory://",
                     "--listen", "127.0.0.1:notaport")
    assert result.returncode != 0
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and lines[-1]["level"] == "error"
