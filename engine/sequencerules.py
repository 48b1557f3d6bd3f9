"""The rule keys of SPEC §8, checked at load: `sequence`, `absence` and `threshold.distinct`.

engine.rules owns the rule schema; this module owns the three correlation keys so that
the busy rules module only dispatches to them. Like every check there, these collect every
problem with the line it is on (a step's own line, not the rule's), and never stop at the
first: an author fixes a sequence in one round trip.

The parsers are given two callbacks by engine.rules: `check(text, step, prefix)` for a
step's JMESPath condition (syntax, functions, lists: it reports each problem at its line in
the step, after `prefix`, and returns False on an error) and `report(message, line)` for
anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engine.durations import parse_duration
from engine.model import Absence, Step, StepSequence

STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SEQUENCE_KEYS = frozenset({"within", "steps"})
STEP_KEYS = frozenset({"name", "condition", "count", "absent"})
ABSENCE_KEYS = frozenset({"within"})
# Keys a correlation rule cannot have beside it: their meaning would be ambiguous.
EXCLUSIVE = ("threshold", "first_seen")

Check = Callable[[str, Any, str], bool]
Report = Callable[[str, int], None]


def line_of(value: Any, key: str, default: int) -> int:
    finder = getattr(value, "line_of", None)
    return finder(key) if finder is not None and key in value else default


def parse_sequence(value: Any, line: int, check: Check, report: Report) -> StepSequence | None:
    """A `sequence` mapping -> StepSequence, or None after reporting every problem."""
    if not isinstance(value, dict):
        report("expected a mapping with within and steps", line)
        return None
    problems = _unknown(value, SEQUENCE_KEYS, line, report)
    within = _within(value, line, report)
    raw = value.get("steps")
    if not isinstance(raw, list) or len(raw) < 2:
        report("steps: expected a list of at least two steps", line_of(value, "steps", line))
        return None
    steps, names = [], set()
    for number, item in enumerate(raw, 1):
        step = _step(item, number, number == len(raw), line_of(value, "steps", line), check,
                     report)
        if step is not None and step.name in names:
            report(f"steps: step {number}: duplicate name {step.name!r}",
                   getattr(item, "line", line))
            step = None
        if step is None:
            problems = True
            continue
        names.add(step.name)
        steps.append(step)
    if problems or within is None:
        return None
    return StepSequence(within=within, steps=tuple(steps))


def _step(item: Any, number: int, last: bool, line: int, check: Check,
          report: Report) -> Step | None:
    where = getattr(item, "line", line)
    prefix = f"steps: step {number}"
    if not isinstance(item, dict):
        report(f"{prefix}: expected a mapping with name and condition", where)
        return None
    bad = _unknown(item, STEP_KEYS, where, report, prefix)
    name, condition = item.get("name"), item.get("condition")
    if not isinstance(name, str) or not STEP_NAME.match(name):
        report(f"{prefix}: name: expected a name of letters, digits, '.', '_', '-'",
               line_of(item, "name", where))
        bad = True
    if not isinstance(condition, str) or not condition.strip():
        report(f"{prefix}: condition: every step needs a condition",
               line_of(item, "condition", where))
        bad = True
    elif not check(condition.strip(), item, prefix):
        bad = True
    count, absent = item.get("count", 1), item.get("absent", False)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        report(f"{prefix}: count: must be a whole number >= 1, got {count!r}",
               line_of(item, "count", where))
        bad = True
    if not isinstance(absent, bool):
        report(f"{prefix}: absent: expected true or false", line_of(item, "absent", where))
        bad = True
    elif absent and not last:
        report(f"{prefix}: absent: only the last step may be absent",
               line_of(item, "absent", where))
        bad = True
    elif absent and count != 1:
        report(f"{prefix}: count: an absent step has no count", line_of(item, "count", where))
        bad = True
    if bad:
        return None
    return Step(name=str(name), condition=str(condition).strip(), count=count, absent=absent)


def parse_absence(value: Any, line: int, report: Report) -> Absence | None:
    if not isinstance(value, dict):
        report("expected a mapping with within", line)
        return None
    problems = _unknown(value, ABSENCE_KEYS, line, report)
    within = _within(value, line, report)
    return None if problems or within is None else Absence(within=within)


def check_combination(doc: dict[str, Any], report: Callable[[str, str], None]) -> None:
    """The keys that cannot go together, reported on the correlation key's line."""
    if "sequence" in doc and "absence" in doc:
        report("absence", "a rule has either sequence or absence, not both")
    if "absence" in doc and "condition" not in doc:
        report("absence", "absence needs a condition: what the group must keep matching")
    for key in ("sequence", "absence"):
        if key in doc:
            for other in EXCLUSIVE:
                if other in doc:
                    report(other, f"cannot be combined with {key}")


def _within(value: dict[str, Any], line: int, report: Report) -> float | None:
    if "within" not in value:
        report("within: required (e.g. within: 1h)", line)
        return None
    try:
        within = parse_duration(value["within"])
    except ValueError as exc:
        report(f"within: {exc}", line_of(value, "within", line))
        return None
    if within <= 0:
        report("within: must be longer than 0s", line_of(value, "within", line))
        return None
    return within


def _unknown(value: dict[str, Any], known: frozenset[str], line: int, report: Report,
             prefix: str = "") -> bool:
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        lead = f"{prefix}: " if prefix else ""
        report(f"{lead}unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
               line_of(value, unknown[0], line))
    return bool(unknown)
