"""`trailguard schema`: the JSON Schema (draft 2020-12) of one rule document.

For editors: a YAML language server given this schema
(`# yaml-language-server: $schema=...` on a rule file's first line) completes keys, shows
each key's description and flags a misspelt key or a wrong type while the author types.

The schema mirrors what engine.rules checks at load time (SPEC §1 and §8) for shape and
types; `validate` stays the authority: it also parses every JMESPath expression, checks
function names, list names and CloudTrail fields, and reports problems as PATH:LINE.
tests/test_schema.py keeps the two in step: every shipped rule passes the schema, and its
properties are exactly the keys engine.rules knows.
"""

from __future__ import annotations

from typing import Any

from engine.model import SEVERITIES

SCHEMA_ID = "urn:trailguard:schema:rule"
_RULE_ID = "^[a-z0-9][a-z0-9._-]*$"
_NOT_BLANK = r"\S"
# engine.durations: a positive number of seconds, or a number and s|m|h|d|w
_DURATION = {
    "description": "a duration of eventTime: 30s, 10m, 1h, 7d (or seconds)",
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string",
         "pattern": r"^\s*(?!0*(\.0*)?\s*[smhdw]?\s*$)\d+(\.\d+)?\s*[smhdw]?\s*$"},
    ],
}


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": _NOT_BLANK, "description": description}


def _optional_text(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": description}


def _expression(description: str) -> dict[str, Any]:
    return _text(f"JMESPath: {description}")


def _one_or_many(description: str) -> dict[str, Any]:
    item = {"type": "string", "minLength": 1}
    return {"description": description,
            "anyOf": [item, {"type": "array", "items": item}]}


def _mapping(properties: dict[str, Any], required: list[str],
             description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties,
            "required": required, "additionalProperties": False}


_COUNT = {"type": "integer", "minimum": 1}

_SUPPRESSION = _mapping({
    "id": {"type": "string", "pattern": _RULE_ID, "description": "unique id"},
    "rules": _one_or_many("rule ids or globs; in a rule's test, default: that rule"),
    "condition": _expression("the matches it suppresses"),
    "owner": _text("who answers for it"),
    "reason": _text("why it exists"),
    "expires": {"type": "string", "pattern": _NOT_BLANK,
                "description": "a date or ISO timestamp: after it, it does nothing"},
}, ["id", "owner", "reason", "expires"], "a suppression (SPEC §9)")

_TEST = {
    "type": "object",
    "description": "a test run by `trailguard test`",
    "properties": {
        "name": {"type": "string"},
        "event": {"type": "object", "description": "one CloudTrail record"},
        "event_file": {"type": "string", "minLength": 1,
                       "description": "a JSON file of a record, records or {Records: [...]}, "
                                      "relative to the rule file"},
        "events": {"type": "array", "minItems": 1, "items": {"type": "object"},
                   "description": "a stateful scenario: records in order"},
        "expect": {"type": "boolean", "description": "whether the condition matches"},
        "expect_alerts": {"type": "integer", "description": "alerts the scenario raises"},
        "lists": {"type": "object", "description": "named lists for this test",
                  "additionalProperties": {"type": "array",
                                           "items": {"type": ["string", "integer"]}}},
        "suppressions": {"type": "array", "items": _SUPPRESSION,
                         "description": "suppressions for this test, instead of the config's"},
    },
    "additionalProperties": False,
    "oneOf": [{"required": ["event"]}, {"required": ["event_file"]},
              {"required": ["events"]}],
    "allOf": [{"oneOf": [{"required": ["expect"]}, {"required": ["expect_alerts"]}]}],
}

_STEP = _mapping({
    "name": _text("the step's name, shown in the alert's steps"),
    "condition": _expression("what an event must match for this step"),
    "count": {**_COUNT, "description": "at least this many distinct calls (copies count once)"},
    "absent": {"type": "boolean",
               "description": "last step only: alert when nothing matches it within `within`"},
}, ["name", "condition"], "one step of a sequence")

PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "pattern": _RULE_ID,
           "description": "unique id: lowercase letters, digits, '.', '_', '-'"},
    "title": _text("one line naming what happened"),
    "severity": {"enum": list(SEVERITIES), "description": "how urgent an alert is"},
    "description": _optional_text("why this matters and what to check"),
    "enabled": {"type": "boolean", "description": "default true"},
    "tags": _one_or_many("free-form tags, e.g. attack.t1528"),
    "condition": _expression("the record matches when the result is truthy"),
    "group_by": _one_or_many("JMESPath (or a list of them): the key for dedup, threshold, "
                             "first_seen and correlation; default: one group per rule"),
    "dedup": {**_DURATION, "description": "at most one alert per rule and group in this "
                                          "window; later matches fold into it"},
    "threshold": _mapping({
        "count": {**_COUNT, "description": "matches (or distinct values) that fire"},
        "window": _DURATION,
        "distinct": _expression("count distinct non-null values of this instead of matches"),
    }, ["count", "window"], "alert when >= count matches of one group fall within window"),
    "first_seen": _mapping({
        "value": _expression("the value that must be new for the group"),
        "remember": _DURATION,
        "learn": _DURATION,
    }, ["value"], "alert only when value is new for the group"),
    "summary": _optional_text("the alert's summary; {expr} is a JMESPath expression"),
    "runbook": _optional_text("a URL or text: what to do"),
    "references": _one_or_many("URLs"),
    "outputs": _one_or_many("output names from the config; default: the config's routes"),
    "tests": {"type": "array", "items": _TEST, "description": "run by `trailguard test`"},
    "sequence": _mapping({
        "within": _DURATION,
        "steps": {"type": "array", "minItems": 1, "items": _STEP},
    }, ["within", "steps"], "alert when events match the steps in order within `within`"),
    "absence": _mapping({"within": _DURATION}, ["within"],
                        "alert when a group that matched stops matching for `within`"),
}


def rule_schema() -> dict[str, Any]:
    """The JSON Schema of one rule document (a file may hold several, `---` apart)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "trailguard rule",
        "description": "A detection rule (SPEC §1, §8). `trailguard validate` checks the "
                       "expressions too.",
        "type": "object",
        "properties": PROPERTIES,
        "required": ["id", "title", "severity"],
        "additionalProperties": False,
        "allOf": [
            {"not": {"required": ["sequence", "absence"]}},  # one of them at most
            {"if": {"not": {"required": ["sequence"]}}, "then": {"required": ["condition"]}},
        ],
    }
