"""The top-level record fields a rule pack can read, for the bench's lean decode.

A decoder told which fields matter (msgspec with a TypedDict) can skip the rest of each
record instead of building it: the bench's (a') figure measures what that would gain. Which
fields matter is read off the rules' JMESPath syntax trees (every condition, sequence step,
group_by, summary field, first_seen.value and threshold.distinct): the first field of each
path that starts at the record root. Anything that reads the record whole (`@` at the root
passed to a function, `*`, `[*]`, `[?...]` on the root, `keys(@)`, ...) is reported, and then
every field is needed.

Self-contained on purpose (it only uses engine.expressions.parse): a proper version is meant
to move into engine/ later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.expressions import parse
from engine.model import Rule
from engine.rules import SUMMARY_FIELD

Node = Mapping[str, Any]

# What the engine itself reads of every record, whatever the rules: identity and dedup
# (eventID, sharedEventID), time order (eventTime), the alert's account and region
# (recipientAccountId, awsRegion), and the rule index (eventSource, eventName).
ENGINE_FIELDS = ("eventTime", "eventID", "sharedEventID", "recipientAccountId", "awsRegion",
                 "eventSource", "eventName")

# Nodes whose first child is evaluated against the same value as the node itself, and whose
# other children against what that first child gives (elements, a sub-object, a pipe's result).
_LEFT_ONLY = frozenset({"subexpression", "index_expression", "projection", "value_projection",
                        "filter_projection", "flatten", "pipe"})
# Nodes all of whose children are evaluated against the same value as the node.
_ALL_CHILDREN = frozenset({"and_expression", "or_expression", "not_expression", "comparator",
                           "function_expression", "multi_select_list", "multi_select_dict",
                           "key_val_pair"})
# Nodes that read nothing of the value they are evaluated against.
_NOTHING = frozenset({"literal", "index", "slice", "expref", "raw_string"})


@dataclass
class PackFields:
    """Top-level fields read, and where (rule id: expression) anything reads the record whole."""

    fields: set[str] = field(default_factory=set)
    whole: list[str] = field(default_factory=list)


def rule_expressions(rule: Rule) -> Iterator[tuple[str, str]]:
    """(what, JMESPath text) for every expression of `rule` that is evaluated on a record."""
    if rule.condition:
        yield "condition", rule.condition
    for step in rule.sequence.steps if rule.sequence else ():
        yield f"sequence step {step.name}", step.condition
    for text in rule.group_by:
        yield "group_by", text
    for found in SUMMARY_FIELD.finditer(rule.summary):
        yield "summary", found.group(1)
    if rule.first_seen is not None:
        yield "first_seen.value", rule.first_seen.value
    if rule.threshold is not None and rule.threshold.distinct:
        yield "threshold.distinct", rule.threshold.distinct


def pack_fields(rules: Iterable[Rule]) -> PackFields:
    """The top-level fields `rules` read (ENGINE_FIELDS not included)."""
    found = PackFields()
    for rule in rules:
        for what, text in rule_expressions(rule):
            whole = root_reads(parse(text), found.fields)
            if whole:
                found.whole.append(f"{rule.id} {what}: {text} ({whole})")
    return found


def root_reads(node: Node, fields: set[str]) -> str | None:
    """Add to `fields` the top-level fields `node` reads when evaluated on the record; return
    the type of a node that reads the record whole (then `fields` is not all it reads)."""
    kind = node["type"]
    if kind == "field":
        fields.add(node["value"])
        return None
    if kind in ("current", "identity"):  # `@`, or the implicit one of `*`, `[*]`, `[0]` ...
        return "@" if kind == "current" else "*"
    if kind in _NOTHING:
        return None
    if kind in _LEFT_ONLY:
        return root_reads(node["children"][0], fields)
    if kind in _ALL_CHILDREN:
        whole = None
        for child in node["children"]:
            if isinstance(child, Mapping):
                whole = root_reads(child, fields) or whole
        return whole
    return kind  # a node this walk does not know: assume the worst
