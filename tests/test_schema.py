"""`trailguard schema` through the real CLI: a valid draft 2020-12 schema that accepts every
shipped rule, rejects broken ones, and names exactly the keys the loader knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from engine.rules import KNOWN_KEYS, TEST_KEYS, discover
from engine.yamlio import load_documents, plain
from tests.support.cli import REPO, run_cli

VALID = {"id": "ok", "title": "OK", "severity": "low", "condition": "eventName == 'X'"}
BROKEN: dict[str, dict[str, Any]] = {
    "unknown key": {**VALID, "severty": "low"},
    "bad severity": {**VALID, "severity": "urgent"},
    "bad id": {**VALID, "id": "Not An Id"},
    "empty title": {**VALID, "title": " "},
    "enabled as text": {**VALID, "enabled": "yes"},
    "count as text": {**VALID, "threshold": {"count": "5", "window": "10m"}},
    "count zero": {**VALID, "threshold": {"count": 0, "window": "10m"}},
    "bad window": {**VALID, "threshold": {"count": 5, "window": "10 minutes"}},
    "zero dedup": {**VALID, "dedup": "0s"},
    "unknown threshold key": {**VALID, "threshold": {"count": 5, "window": "1m", "by": "x"}},
    "tags as number": {**VALID, "tags": 5},
    "no condition": {k: v for k, v in VALID.items() if k != "condition"},
    "sequence and absence": {**VALID, "sequence": {"within": "1h", "steps": [
        {"name": "a", "condition": "x"}]}, "absence": {"within": "1h"}},
    "absence without condition": {**{k: v for k, v in VALID.items() if k != "condition"},
                                  "absence": {"within": "2h"}},
    "test with two sources": {**VALID, "tests": [{"event": {}, "events": [{}],
                                                  "expect": True}]},
    "test without expectation": {**VALID, "tests": [{"event": {"eventName": "X"}}]},
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(parsed)
    return parsed


def _errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(document)]


def test_schema_accepts_every_shipped_rule(schema: dict[str, Any]) -> None:
    """Each document of each rule file under rules/ is valid against the schema."""
    files = discover([REPO / "rules"])
    assert len(files) >= 20
    for path in files:
        for document in load_documents(path):
            assert _errors(schema, plain(document)) == [], path


def test_schema_accepts_correlation_rules(schema: dict[str, Any]) -> None:
    """SPEC §8's examples: a sequence without condition, an absent last step, an absence,
    and threshold.distinct."""
    sequence = {"id": "s", "title": "S", "severity": "high", "group_by": ["a"],
                "sequence": {"within": "1h", "steps": [
                    {"name": "opened", "condition": "x"},
                    {"name": "read", "condition": "y", "count": 3},
                    {"name": "closed", "condition": "z", "absent": True}]}}
    absence = {**VALID, "group_by": "recipientAccountId", "absence": {"within": "2h"}}
    distinct = {**VALID, "threshold": {"count": 5, "window": "10m",
                                       "distinct": "requestParameters.repository"}}
    for document in (sequence, absence, distinct):
        assert _errors(schema, document) == [], document


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_schema_rejects_broken_rules(schema: dict[str, Any], name: str) -> None:
    """Unknown keys, bad severities, wrong types and bad combinations are schema errors."""
    assert _errors(schema, BROKEN[name]) != [], name


def test_schema_names_exactly_the_keys_the_loader_knows(schema: dict[str, Any]) -> None:
    """The schema and engine.rules agree on the top-level keys (sequence and absence are
    SPEC §8's, added to the loader by the correlation work)."""
    assert set(schema["properties"]) == set(KNOWN_KEYS) | {"sequence", "absence"}


def test_schema_names_exactly_the_test_keys_the_loader_knows(schema: dict[str, Any]) -> None:
    """A rule test's keys in the schema are engine.rules.TEST_KEYS: a key added to the
    loader must be described in engine/schema.py too."""
    assert set(schema["properties"]["tests"]["items"]["properties"]) == set(TEST_KEYS)


def test_schema_file_in_docs_is_current(schema: dict[str, Any]) -> None:
    """docs/rule.schema.json, which editors can point at, is what `trailguard schema` prints:
    regenerate it with `trailguard schema > docs/rule.schema.json`."""
    shipped = Path(REPO / "docs" / "rule.schema.json")
    assert json.loads(shipped.read_text()) == schema
