"""Routing: a rule's own outputs, else the first matching route; config checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import ConfigError
from engine.outputs import build_dispatcher, check_delivery_config
from engine.outputs.routing import Router
from tests.support.delivery import make_alert, make_rule, no_proxy, write_config

__all__ = ["no_proxy"]

OUTPUTS = {"pager": {"type": "memory"}, "chat": {"type": "memory"},
           "archive": {"type": "memory"}, "ci": {"type": "memory"}}
ROUTES = [
    {"min_severity": "critical", "outputs": ["pager", "chat"]},
    {"rules": ["codeartifact-ci-*"], "outputs": ["ci"]},
    {"tags": ["exfiltration", "persistence"], "min_severity": "medium", "outputs": ["chat"]},
    {"outputs": ["archive"]},
]


@pytest.fixture()
def router(tmp_path: Path) -> Router:
    _, config = write_config(tmp_path, OUTPUTS, ROUTES)
    return check_delivery_config(config)


@pytest.mark.parametrize("rule_id, severity, tags, expected", [
    ("anything", "critical", (), ("pager", "chat")),
    ("codeartifact-ci-token", "low", (), ("ci",)),
    ("codeartifact-ci-token", "critical", (), ("pager", "chat")),
    ("other", "medium", ("persistence",), ("chat",)),
    ("other", "low", ("persistence",), ("archive",)),
    ("other", "high", ("discovery",), ("archive",)),
    ("Codeartifact-ci-x", "info", (), ("archive",)),  # globs are case-sensitive, like ids
])
def test_routing_first_matching_route_wins(
        router: Router, rule_id: str, severity: str, tags: tuple[str, ...],
        expected: tuple[str, ...]) -> None:
    """Severity floor, rule-id glob and tags select a route; the first match wins."""
    assert router.route(make_rule(rule_id, severity, tags=tags)) == expected


def test_routing_rule_outputs_override_routes(router: Router) -> None:
    """A rule naming outputs goes there only, even when a route would match."""
    rule = make_rule("x", "critical", outputs=("ci",))
    assert router.route(rule) == ("ci",)
    assert router.route(make_rule("x", "critical", outputs=())) == ()


def test_routing_no_route_counts_unrouted(tmp_path: Path) -> None:
    """An alert no route matches is counted (and warned about), not silently dropped."""
    _, config = write_config(tmp_path, OUTPUTS, [{"min_severity": "high", "outputs": ["chat"]}])
    dispatcher = build_dispatcher(config, "memory://")
    dispatcher.send(make_alert(make_rule(severity="low")))
    dispatcher.send(make_alert(make_rule(severity="high"), n=1))
    report = dispatcher.close()
    assert report.unrouted == 1
    assert report.outputs["chat"].delivered == 1
    assert "1 alert(s) matched no route" in "\n".join(report.lines())


@pytest.mark.parametrize("outputs, routes, message", [
    (OUTPUTS, [{"outputs": ["pagr"]}], "routes[0]: unknown output(s) pagr"),
    (OUTPUTS, [{"outputs": ["chat"], "min_severity": "urgent"}], "min_severity 'urgent'"),
    (OUTPUTS, [{"outputs": ["chat"], "severity": "high"}], "unknown key(s) severity"),
    (OUTPUTS, [{"min_severity": "high"}], "expected a list of names"),
    ({"x": {"type": "pagerduty"}}, [], "outputs.x: unknown type 'pagerduty'"),
    ({"x": {"type": "slack", "webhook_url": "https://h/x", "chanel": "#a"}}, [],
     "unknown setting 'chanel'"),
    ({"x": {"type": "slack", "token": "xoxb-1"}}, [], "a bot token needs a channel"),
    ({"x": {"type": "slack"}}, [], "give either webhook_url or token"),
    ({"x": {"type": "slack", "webhook_url": "hooks.slack.com/x"}}, [], "http(s) URL"),
    ({"x": {"type": "sns", "topic_arn": "alerts"}}, [], "not an SNS topic ARN"),
    ({"x": {"type": "sns"}}, [], "outputs.x: missing topic_arn"),
    ({"x": {"type": "file"}}, [], "outputs.x: missing path"),
    ({"x": {"type": "stdout", "format": "xml"}}, [], "format must be jsonl or text"),
    ({"x": {"type": "slack", "webhook_url": "https://h/x", "timeout": "soon"}}, [],
     "timeout must be a number"),
])
def test_config_errors_found_at_load(tmp_path: Path, outputs: dict[str, Any],
                                    routes: list[Any], message: str) -> None:
    """Every output and route problem is a ConfigError naming the config file and line."""
    _, config = write_config(tmp_path, outputs, routes)
    with pytest.raises(ConfigError) as caught:
        build_dispatcher(config, "memory://")
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "trailguard.yml") + ":")
