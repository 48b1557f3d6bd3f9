"""`trailguard scan ... | head`: a reader that stops early ends the scan quietly, exit 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import REPO
from tests.support.records import record

RULE = """\
id: token
title: A token was requested
severity: low
condition: eventName == 'GetAuthorizationToken'
"""
CONFIG = """\
rules: [rule.yml]
outputs: {console: {type: stdout}}
routes: [{outputs: [console]}]
"""


def _scan_into_a_closing_reader(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run scan with stdout on a pipe, read one alert, close the pipe (as `head -1` does)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(REPO)  # run from the test's directory, with its relative paths
    process = subprocess.Popen([sys.executable, "-m", "engine", "scan", *args], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # the reader is gone; far more than a pipe buffer is still to come
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=120)
    assert json.loads(first)["rule_id"] == "token"
    return code, stderr


@pytest.mark.parametrize("with_config", [False, True], ids=["rules", "config-stdout-output"])
def test_scan_into_a_reader_that_stops_exits_quietly(tmp_path: Path, with_config: bool) -> None:
    """2,000 alerts (~2 MB, far over a pipe's 64 KB) into a reader that takes one line:
    exit 0, no broken-pipe error, no alert "kept in the outbox". Alerts going only to
    stdout, the scan stops there; through the config's outputs it finishes (other outputs
    may still want its alerts) and its summary says stdout was closed."""
    (tmp_path / "rule.yml").write_text(RULE)
    (tmp_path / "trailguard.yml").write_text(CONFIG)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(record(eventName="GetAuthorizationToken")) + "\n"
                              for _ in range(2000)))
    source = ["-c", "trailguard.yml"] if with_config else ["-r", "rule.yml"]
    code, stderr = _scan_into_a_closing_reader([*source, "--workers", "1", str(events)],
                                               tmp_path)
    assert code == 0, stderr
    assert "Broken pipe" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert "Traceback" not in stderr and "outbox" not in stderr.replace("0 in the outbox", "")
    if with_config:
        assert "2,000 events" in stderr
        assert "stdout was closed by its reader" in stderr
    else:
        assert stderr == ""

