"""Suppressions in the running daemon: applied, counted in /metrics, reloaded on SIGHUP."""

from __future__ import annotations

import json
import re
import signal
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
QUIET = """\
- id: quiet-package
  rules: [publish]
  condition: "requestParameters.packageName == '{name}'"
  owner: secops@example.com
  reason: a noisy test package
  expires: 2099-01-01
- id: expired-everything
  rules: ["*"]
  owner: secops@example.com
  reason: it ended
  expires: 2020-01-01T00:00:00Z
"""


def _publishes(path: Path, names: list[str]) -> None:
    events = [record(eventName="PublishPackageVersion", requestParameters={"packageName": n})
              for n in names]
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")


def _suppressed(daemon: Daemon, name: str) -> float | None:
    _, body = daemon.get("/metrics")
    found = re.search(rf'^trailguard_suppressed_total{{suppression="{name}"}} (\S+)$', body,
                      re.M)
    return float(found.group(1)) if found else None


def test_daemon_applies_counts_and_reloads_suppressions(tmp_path: Path) -> None:
    """The daemon drops what an active suppression names (an expired one does nothing),
    exposes trailguard_suppressed_total per suppression, and a SIGHUP after the file
    changed applies the new suppressions to what comes next."""
    (tmp_path / "rule.yml").write_text(RULE)
    (tmp_path / "quiet.yml").write_text(QUIET.format(name="noisy"))
    inbox, alerts = tmp_path / "inbox", tmp_path / "alerts.jsonl"
    inbox.mkdir()
    config = tmp_path / "trailguard.yml"
    config.write_text(
        "rules: [rule.yml]\nsuppressions: [quiet.yml]\nstate: sqlite:///state.db\n"
        f"sources: [{{type: files, paths: [{inbox}]}}]\n"
        f"outputs: {{out: {{type: file, path: {alerts}}}}}\nroutes: [{{outputs: [out]}}]\n"
        "server: {listen: '127.0.0.1:0'}\n")

    def packages() -> list[str]:
        if not alerts.exists():
            return []
        return sorted(json.loads(line)["event"]["requestParameters"]["packageName"]
                      for line in alerts.read_text().splitlines())

    daemon = Daemon(config, tmp_path / "daemon.log")
    try:
        _publishes(inbox / "1.jsonl", ["noisy", "left-pad", "noisy"])
        assert wait_until(lambda: packages() == ["left-pad"]), daemon.log.read_text()
        assert wait_until(lambda: _suppressed(daemon, "quiet-package") == 2.0)
        assert _suppressed(daemon, "expired-everything") == 0.0
        (tmp_path / "quiet.yml").write_text(QUIET.format(name="left-pad"))
        daemon.signal(signal.SIGHUP)
        assert wait_until(lambda: '"rules reloaded"' in daemon.log.read_text()
                         or "rules reloaded" in daemon.log.read_text())
        _publishes(inbox / "2.jsonl", ["noisy", "left-pad"])
        assert wait_until(lambda: packages() == ["left-pad", "noisy"]), daemon.log.read_text()
        assert wait_until(lambda: _suppressed(daemon, "quiet-package") == 3.0)
    finally:
        assert daemon.stop() == 0
