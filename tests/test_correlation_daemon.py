"""SPEC §8 in the daemon: a sequence alerts at once, and a silent source alerts on the wall
clock (minus the lateness) while nothing arrives. A real `trailguard run` on a stdin pipe."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon
from tests.support.records import record
from tests.support.waiting import wait_until

RULES = """\
id: publish-then-delete
title: A version was published, then deleted
severity: high
group_by: requestParameters.packageName
sequence:
  within: 10m
  steps:
    - {name: published, condition: "eventName == 'PublishPackageVersion'"}
    - {name: deleted, condition: "eventName == 'DeletePackageVersions'"}
---
id: opened-not-closed
title: Origin controls opened and not closed again
severity: medium
group_by: requestParameters.packageName
sequence:
  within: 3s
  steps:
    - {name: opened, condition: "eventName == 'PutPackageOriginConfiguration'"}
    - {name: closed, absent: true, condition: "eventName == 'DeletePackageVersions'"}
---
id: trail-silent
title: No CodeArtifact record for an account that had them
severity: medium
condition: eventSource == 'codeartifact.amazonaws.com'
group_by: recipientAccountId
absence: {within: 3s}
"""


def _line(**changes: Any) -> bytes:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(record(eventTime=now, **changes)).encode() + b"\n"


def test_s45_the_daemon_alerts_a_chain_at_once_and_a_silent_source_on_the_wall_clock(
        tmp_path: Path) -> None:
    """The chain's alert comes as its last step arrives; the absent step's and the absence
    alerts come ~4 s (3 s + 1 s of lateness) after the last record, though no record
    arrives after it."""
    (tmp_path / "rules.yml").write_text(RULES)
    alerts = tmp_path / "alerts.jsonl"
    config = tmp_path / "trailguard.yml"
    config.write_text(
        "rules: [rules.yml]\nstate: sqlite:///state.db\nallowed_lateness: 1s\n"
        f"sources: [{{type: stdin}}]\noutputs: {{out: {{type: file, path: {alerts}}}}}\n"
        "routes: [{outputs: [out]}]\nserver: {listen: '127.0.0.1:0'}\n")
    log = tmp_path / "daemon.log"

    def written() -> list[dict[str, Any]]:
        if not alerts.exists():
            return []
        return [json.loads(line) for line in alerts.read_text().splitlines() if line]

    daemon = Daemon(config, log, stdin=True)
    try:
        package = {"packageName": "left-pad", "domainName": "acme"}
        daemon.write(_line(eventName="PublishPackageVersion", requestParameters=package)
                     + _line(eventName="DeletePackageVersions", requestParameters=package)
                     + _line(eventName="PutPackageOriginConfiguration",
                             requestParameters={"packageName": "right-pad"}))
        sent = time.monotonic()
        assert wait_until(lambda: any(a["rule_id"] == "publish-then-delete"
                                      for a in written()), 10), log.read_text()
        assert not any(a["rule_id"] == "trail-silent" for a in written())
        assert wait_until(lambda: {"trail-silent", "opened-not-closed"} <= {
            a["rule_id"] for a in written()}, 20), log.read_text()
        assert time.monotonic() - sent >= 2.0  # not before the deadline (3 s + 1 s - 2 s)
        assert daemon.end_input() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    silent = [a for a in written() if a["rule_id"] == "trail-silent"]
    assert len(silent) == 1 and silent[0]["group_key"] == "123456789012"
    chain = next(a for a in written() if a["rule_id"] == "publish-then-delete")
    assert [s["name"] for s in chain["steps"]] == ["published", "deleted"]
    opened = [a for a in written() if a["rule_id"] == "opened-not-closed"]
    assert len(opened) == 1 and opened[0]["group_key"] == "right-pad"
    assert opened[0]["event"]["eventName"] == "PutPackageOriginConfiguration"
