"""Suppressions (SPEC §9): exceptions with an owner, a reason and an end, kept as code.

A suppression file is a YAML list of entries, found under the config's `suppressions:`
paths exactly as rules are found under `rules:`. Every entry is checked when it loads, like a
rule: a missing id/owner/reason/expires, an unknown rule id, a glob matching no rule, or a bad
condition is an error at `PATH:LINE`; one expired, or expiring within 7 days, is a warning.
Conditions are compiled by the engine's own compiler with the same function table and the
same load-time checks as rule conditions.

The choices a security engineer should know (engine.suppressor applies them):
- A suppression drops a *match* before any state: it neither alerts nor counts towards a
  threshold, a sequence or first-seen. The rule's `matches` still count it; `suppressed`
  says how many.
- Expiry is by the wall clock at the moment of each match, so a daemon stops suppressing
  at `expires` without a reload. A bare date expires at the
  *start* of that day, UTC: `expires: 2027-01-31` suppresses nothing on the 31st.
- A condition that raises on a record suppresses nothing: an alert too many beats a silenced
  one. Without a condition, every match of the listed rules is suppressed.
- When several suppressions match one match, the first in file order takes the count.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jmespath.functions

from engine.conditions import expressions
from engine.conditions.catalogue import unknown_field
from engine.conditions.evaluator import compile_expression
from engine.errors import Problem, RuleError
from engine.model import Rule
from engine.rules import RULE_ID, discover
from engine.yamlio import Located, read_documents

REQUIRED = ("id", "owner", "reason", "expires")
KNOWN_KEYS = frozenset({"id", "rules", "condition", "owner", "reason", "expires"})
EXPIRY_WARNING = 7 * 86400.0  # seconds before `expires` that `validate` starts warning


@dataclass(frozen=True)
class Suppression:
    id: str
    rules: tuple[str, ...]  # rule ids or shell-style globs
    condition: str | None
    owner: str
    reason: str
    expires: str  # as written
    expires_at: float  # epoch seconds
    path: str = ""
    line: int = 1

    def covers(self, rule_id: str) -> bool:
        return any(fnmatch.fnmatchcase(rule_id, pattern) for pattern in self.rules)


@dataclass(frozen=True)
class SuppressionSet:
    suppressions: tuple[Suppression, ...] = ()
    warnings: tuple[Problem, ...] = ()
    files: tuple[str, ...] = ()


def parse_expiry(value: Any) -> float:
    """`2027-01-31` (the start of that day, UTC) or an ISO timestamp (UTC unless it says).

    engine.yamlio keeps YAML timestamps as the strings they were written as."""
    if isinstance(value, date):
        value = value.isoformat()
    text = value.strip() if isinstance(value, str) else None
    if not text:
        raise ValueError(f"expected a date (2027-01-31) or an ISO timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (2027-01-31) or an ISO timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def load_suppressions(
    paths: Sequence[str | Path],
    functions: jmespath.functions.Functions,
    known_lists: Iterable[str] = (),
    rule_ids: Iterable[str] | None = None,
    defined_lists: Iterable[str] | None = None,
    now: float | None = None,
) -> SuppressionSet:
    """Load and check every suppression under `paths`; raise RuleError listing every error.

    `rule_ids`: the ids of the loaded rules (None: not known, so not checked)."""
    checker = _Checker(functions, frozenset(known_lists),
                       None if rule_ids is None else frozenset(rule_ids),
                       None if defined_lists is None else frozenset(defined_lists),
                       time.time() if now is None else now)
    files = discover(paths)
    found: list[Suppression] = []
    for path in files:
        found.extend(checker.file(path))
    checker.duplicates(found)
    problems = sorted(checker.problems, key=lambda p: (p.path, p.line))
    errors = [p for p in problems if p.severity == "error"]
    warnings = tuple(p for p in problems if p.severity == "warning")
    if errors:
        raise RuleError(errors + list(warnings))
    return SuppressionSet(tuple(found), warnings, tuple(str(f) for f in files))


def parse_entries(items: Any, path: str, functions: jmespath.functions.Functions,
                  known_lists: Iterable[str], rule_ids: Iterable[str] | None,
                  default_rules: tuple[str, ...] = (), now: float | None = None,
                  ) -> tuple[list[Suppression], list[Problem]]:
    """Entries given inline (a rule test's `suppressions:`): the suppressions and the
    problems found. `default_rules` stands for a missing `rules:`."""
    checker = _Checker(functions, frozenset(known_lists),
                       None if rule_ids is None else frozenset(rule_ids), None,
                       time.time() if now is None else now, default_rules)
    return checker.entries(items, path, 1), checker.problems


@dataclass
class _Checker:
    functions: jmespath.functions.Functions
    known_lists: frozenset[str]
    rule_ids: frozenset[str] | None
    defined_lists: frozenset[str] | None
    now: float
    default_rules: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)

    def file(self, path: Path) -> list[Suppression]:
        documents = read_documents(path, self.problems)
        found: list[Suppression] = []
        for document in documents:
            found.extend(self.entries(document, str(path), 1))
        return found

    def entries(self, items: Any, path: str, line: int) -> list[Suppression]:
        if not isinstance(items, list):
            self.problems.append(Problem(path, getattr(items, "line", line), "suppressions",
                                         "expected a YAML list of suppressions"))
            return []
        found = []
        for item in items:
            if not isinstance(item, Located):
                self.problems.append(Problem(path, line, "suppressions",
                                             "each suppression must be a mapping"))
                continue
            suppression = self.entry(item, path)
            if suppression is not None:
                found.append(suppression)
        return found

    def entry(self, doc: Located, path: str) -> Suppression | None:
        before = len(self.problems)

        def report(key: str, message: str, severity: str = "error") -> None:
            self.problems.append(Problem(path, doc.line_of(key), key, message, severity))

        for key in doc:
            if key not in KNOWN_KEYS:
                report(str(key), f"unknown key (known keys: {', '.join(sorted(KNOWN_KEYS))})")
        for key in REQUIRED:
            value = doc.get(key)
            if key not in doc or value is None or (isinstance(value, str) and not value.strip()):
                report(key, "required field is missing")
        ident = doc.get("id")
        if isinstance(ident, str) and ident and not RULE_ID.match(ident):
            report("id", f"{ident!r} is not a valid id: use lowercase letters, digits, '.', "
                         "'_', '-'")
        for key in ("owner", "reason"):
            if key in doc and doc[key] is not None and not isinstance(doc[key], str):
                report(key, "expected a string")
        rules = self._rules(doc, report)
        condition = self._condition(doc, path, report)
        expires_at = self._expiry(doc, report)
        if any(p.severity == "error" for p in self.problems[before:]) or expires_at is None:
            return None
        return Suppression(id=str(ident), rules=rules, condition=condition,
                           owner=str(doc["owner"]).strip(), reason=str(doc["reason"]).strip(),
                           expires=str(doc["expires"]), expires_at=expires_at, path=path,
                           line=doc.line)

    def _rules(self, doc: Located, report: Callable[..., None]) -> tuple[str, ...]:
        raw = doc.get("rules", list(self.default_rules) or None)
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(r, str) and r for r in raw):
            report("rules", "expected a list of rule ids or globs" if "rules" in doc
                   else "required field is missing")
            return ()
        if self.rule_ids is not None:
            for pattern in raw:
                if not any(fnmatch.fnmatchcase(r, pattern) for r in self.rule_ids):
                    kind = "glob" if any(c in pattern for c in "*?[") else "rule"
                    report("rules", f"{kind} {pattern!r} matches no rule" if kind == "glob"
                           else f"unknown rule {pattern!r}")
        return tuple(raw)

    def _condition(self, doc: Located, path: str, report: Callable[..., None]) -> str | None:
        if doc.get("condition") is None:
            return None
        text = doc["condition"]
        if not isinstance(text, str) or not text.strip():
            report("condition", "expected a JMESPath expression")
            return None
        try:
            tree = expressions.parse(text)
        except ValueError as exc:
            report("condition", f"{exc}: {text}")
            return None
        findings = expressions.check_functions(tree, self.functions, self.known_lists)
        if findings:
            report("condition", "; ".join(f.message for f in findings))
        else:
            try:  # what scan and the daemon will run, compiled now, not at the first match
                compile_expression(text, self.functions)
            except Exception as exc:
                report("condition", f"cannot compile: {exc}")
        if self.defined_lists is not None:
            for name in sorted(expressions.list_names(tree) - self.defined_lists):
                report("condition", f"list {name!r} is not defined in the config: it is empty",
                       "warning")
        for field_path in expressions.root_field_paths(tree):
            message = unknown_field(field_path)
            if message:
                report("condition", message, "warning")
        return text.strip()

    def _expiry(self, doc: Located, report: Callable[..., None]) -> float | None:
        if doc.get("expires") is None:
            return None
        try:
            expires_at = parse_expiry(doc["expires"])
        except ValueError as exc:
            report("expires", str(exc))
            return None
        if expires_at <= self.now:
            report("expires", f"expired on {doc['expires']}: it suppresses nothing; "
                              "remove it or renew it", "warning")
        elif expires_at - self.now <= EXPIRY_WARNING:
            days = (expires_at - self.now) / 86400
            report("expires", f"expires in {days:.1f} days ({doc['expires']})", "warning")
        return expires_at

    def duplicates(self, found: list[Suppression]) -> None:
        first: dict[str, Suppression] = {}
        for suppression in found:
            seen = first.setdefault(suppression.id, suppression)
            if seen is not suppression:
                self.problems.append(Problem(
                    suppression.path, suppression.line, "id",
                    f"duplicate id {suppression.id!r} (first defined at {seen.path}:{seen.line})"))


def load_for(config: Any, functions: jmespath.functions.Functions,
             rules: Sequence[Rule] | None) -> SuppressionSet:
    """The config's suppressions, checked against `rules` (all of them, enabled or not;
    None: the rules failed to load, so rule ids are not checked)."""
    if not getattr(config, "suppressions", ()):
        return SuppressionSet()
    return load_suppressions([Path(p) for p in config.suppressions], functions,
                             config.known_lists, None if rules is None else [r.id for r in rules],
                             defined_lists=config.lists)


def validate_with_rules(setup: Any, rules_of: Callable[[Any], Any]) -> tuple[Any, SuppressionSet]:
    """`trailguard validate`: the rules and the suppressions, every problem of both at once.

    Raises RuleError with all of them when either has an error."""
    try:
        ruleset, rule_problems = rules_of(setup), None
    except RuleError as exc:
        ruleset, rule_problems = None, exc.problems
    try:
        loaded = load_for(setup.config, setup.functions,
                          None if ruleset is None else ruleset.rules)
    except RuleError as exc:
        raise RuleError((rule_problems or []) + exc.problems) from None
    if rule_problems is not None:
        raise RuleError(rule_problems + list(loaded.warnings))
    return ruleset, loaded
