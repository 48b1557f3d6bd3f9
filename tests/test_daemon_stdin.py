"""The daemon's stdin source, through a real pipe: lines are evaluated as they arrive."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.daemon import Daemon
from tests.support.records import record
from tests.support.waiting import wait_until

RULE = """\
id: publish
title: A package was published
severity: high
condition: eventName == 'PublishPackageVersion'
"""


def _publish() -> bytes:
    return json.dumps(record(eventName="PublishPackageVersion")).encode()


def test_stdin_lines_alert_while_the_pipe_stays_open(tmp_path: Path) -> None:
    """Lines written together are all evaluated without waiting for more input (they used
    to wait in sys.stdin's buffer, unseen by select, until the next write or EOF); a bad
    line is dead-lettered with its line number; a last line without a newline counts."""
    (tmp_path / "rule.yml").write_text(RULE)
    alerts = tmp_path / "alerts.jsonl"
    config = tmp_path / "trailguard.yml"
    config.write_text(
        f"rules: [rule.yml]\nstate: sqlite:///state.db\nsources: [{{type: stdin}}]\n"
        f"outputs: {{out: {{type: file, path: {alerts}}}}}\nroutes: [{{outputs: [out]}}]\n"
        "server: {listen: '127.0.0.1:0'}\n")
    log = tmp_path / "daemon.log"

    def alerted() -> int:
        return len(alerts.read_text().splitlines()) if alerts.exists() else 0

    daemon = Daemon(config, log, stdin=True)
    try:
        daemon.write(b"\n".join([_publish(), _publish(), _publish(), b"", b"not json", b""]))
        wait_until(lambda: alerted() == 3, 10)
        assert alerted() == 3  # the pipe is still open
        daemon.write(_publish())  # no newline: the line ends with the input
        assert daemon.end_input() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert alerted() == 4
    dead = [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{") and "dead-lettered" in line]
    assert [line["origin"] for line in dead] == ["<stdin>:5"]
