"""Rule files -> validated, frozen `Rule` objects, with every problem found in one pass.

Loading is the only place a rule is checked: schema, durations, JMESPath syntax, function
names and arity, list names, duplicate ids, and (as warnings) field paths that CloudTrail
records never have. Problems are collected across all files and raised together as one
`RuleError`, so an author fixes a rule set in one round trip, not one error at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jmespath.functions
import orjson

from engine import lint, sequencerules
from engine.conditions import expressions
from engine.conditions.catalogue import unknown_field
from engine.durations import parse_duration
from engine.errors import Problem, RuleError
from engine.model import SEVERITIES, FirstSeen, Rule, RuleTest, Threshold
from engine.yamlio import Located, Place, SourceLines, plain, read_documents

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
SUMMARY_FIELD = re.compile(r"\{([^{}]+)\}")
REQUIRED = ("id", "title", "severity", "condition")
KNOWN_KEYS = frozenset({
    "id", "title", "severity", "description", "enabled", "tags", "condition", "group_by",
    "dedup", "threshold", "first_seen", "summary", "runbook", "references", "outputs", "tests",
    "sequence", "absence",
})
TEST_KEYS = frozenset({"name", "event", "event_file", "events", "expect", "expect_alerts",
                       "lists", "suppressions"})


class _Reported(Exception):
    """A field's problems were already reported, each at its own line."""


class _Invalid(Exception):
    """A field's value is wrong; carries the message and, optionally, a more precise line,
    and `more` problems of the same field: all are reported, not just the first."""

    def __init__(self, message: str, line: int | None = None,
                 more: Sequence[tuple[str, int | None]] = ()) -> None:
        super().__init__(message)
        self.line = line
        self.problems = [(message, line), *more]


def _raise_all(problems: list[tuple[str, int | None]]) -> None:
    if problems:
        raise _Invalid(problems[0][0], problems[0][1], problems[1:])


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    warnings: tuple[Problem, ...] = ()
    files: tuple[str, ...] = ()

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


@dataclass
class _Context:
    """What checking needs besides the YAML: the function table, lists and output names."""

    functions: jmespath.functions.Functions
    known_lists: frozenset[str]
    output_names: frozenset[str] | None
    problems: list[Problem] = field(default_factory=list)
    ids: list[tuple[str, str, int]] = field(default_factory=list)  # (id, path, line)
    defined_lists: frozenset[str] | None = None  # lists the config defines; None: don't warn
    sources: SourceLines = field(default_factory=SourceLines)  # lines inside values


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Rule files under `paths`: files as given, directories searched recursively, sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml")
                                and p.is_file() and not _hidden(p, path)))
        else:
            found.append(path)
    return found


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_rules(
    paths: Sequence[str | Path],
    functions: jmespath.functions.Functions,
    known_lists: Iterable[str] = (),
    output_names: Iterable[str] | None = None,
    defined_lists: Iterable[str] | None = None,
) -> RuleSet:
    """Load and check every rule under `paths`; raise RuleError listing every error.

    `defined_lists`, when given, are the lists the config defines: a rule reading any other
    (well-known) list gets a warning, since that list is empty.
    """
    ctx = _Context(functions, frozenset(known_lists),
                   None if output_names is None else frozenset(output_names),
                   defined_lists=None if defined_lists is None else frozenset(defined_lists))
    files = discover(paths)
    rules: list[Rule] = []
    for path in files:
        rules.extend(_load_file(path, ctx))
    _check_duplicate_ids(ctx)
    ctx.problems.sort(key=lambda p: (p.path, p.line))
    errors = [p for p in ctx.problems if p.severity == "error"]
    warnings = tuple(p for p in ctx.problems if p.severity == "warning")
    if errors:
        raise RuleError(errors + list(warnings))
    return RuleSet(tuple(rules), warnings, tuple(str(f) for f in files))


def _load_file(path: Path, ctx: _Context) -> list[Rule]:
    documents = read_documents(path, ctx.problems)
    rules = []
    for document in documents:
        if not isinstance(document, Located):
            ctx.problems.append(Problem(str(path), 1, "rule", "a rule must be a mapping"))
            continue
        rule = _build_rule(path, document, ctx)
        if rule is not None:
            rules.append(rule)
    return rules


def _build_rule(path: Path, doc: Located, ctx: _Context) -> Rule | None:
    if isinstance(doc.get("id"), str):
        ctx.ids.append((doc["id"], str(path), doc.line_of("id")))
    before = len([p for p in ctx.problems if p.severity == "error"])
    report = _reporter(path, doc, ctx)
    for key in doc:
        if key not in KNOWN_KEYS:
            report(str(key), f"unknown key (known keys: {', '.join(sorted(KNOWN_KEYS))})")
    for key in REQUIRED:
        if key not in doc and not (key == "condition" and ("sequence" in doc or "absence" in doc)):
            report(key, "required field is missing")  # a sequence's steps are its condition
    sequencerules.check_combination(doc, report)
    values: dict[str, Any] = {}
    for key, parse in _FIELDS.items():
        if key in doc:
            try:
                values[key] = parse(doc[key], doc, path, ctx)
            except _Invalid as exc:
                for message, line in exc.problems:
                    report(key, message, line)
            except _Reported:
                pass
    if "sequence" in values:
        values.setdefault("condition", "")
    if len([p for p in ctx.problems if p.severity == "error"]) > before or not all(
        k in values for k in REQUIRED
    ):
        return None
    lines = {str(key): doc.line_of(str(key)) for key in doc}
    return Rule(path=str(path), line=doc.line, lines=lines, **values)


def _reporter(path: Path, doc: Located, ctx: _Context) -> Callable[..., None]:
    def report(key: str, message: str, line: int | None = None, severity: str = "error") -> None:
        ctx.problems.append(Problem(str(path), line or doc.line_of(key), key, message, severity))

    return report


def _check_duplicate_ids(ctx: _Context) -> None:
    """Checked on every document with an id, valid or not, so all problems show at once."""
    first: dict[str, tuple[str, int]] = {}
    for rule_id, path, line in ctx.ids:
        if rule_id in first:
            seen_path, seen_line = first[rule_id]
            ctx.problems.append(Problem(path, line, "id", f"duplicate id {rule_id!r} "
                                        f"(first defined at {seen_path}:{seen_line})"))
        else:
            first[rule_id] = (path, line)


# --- field parsers: (value, document, path, context) -> parsed value, or raise _Invalid ---

def _string(value: Any, *_: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty string, got {_kind(value)}")
    return value.strip()


def _optional_string(value: Any, *_: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_kind(value)}")
    return value.strip()


def _rule_id(value: Any, *_: Any) -> str:
    text = _string(value)
    if not RULE_ID.match(text):
        raise _Invalid(f"{text!r} is not a valid id: use lowercase letters, digits, '.', '_', '-'")
    return text


def _severity(value: Any, *_: Any) -> str:
    if value not in SEVERITIES:
        raise _Invalid(f"expected one of {' | '.join(SEVERITIES)}, got {value!r}")
    return str(value)


def _boolean(value: Any, *_: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_kind(value)}")
    return value


def _strings(value: Any, *_: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid("expected a list of strings")
    return tuple(value)


def _duration(value: Any, *_: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _condition(value: Any, doc: Located, path: Path, ctx: _Context) -> str:
    text = _string(value)
    place = Place(doc, "condition", text)
    tree = _check_expression(text, "condition", place, path, ctx)
    if tree is not None:
        tokens = lint.Tokens(text)
        for finding in lint.constant_operands(tree):
            line = ctx.sources.line(path, place, tokens.offset(finding.anchor))
            ctx.problems.append(Problem(str(path), line, "condition", finding.message,
                                        finding.severity))
    return text


def _group_by(value: Any, doc: Located, path: Path, ctx: _Context) -> tuple[str, ...]:
    expressions_ = _strings(value)
    listed = isinstance(value, list)
    for number, text in enumerate(expressions_):
        _check_expression(text, "group_by", Place(doc, "group_by", text,
                                                  item=number if listed else None), path, ctx)
    return expressions_


def _summary(value: Any, doc: Located, path: Path, ctx: _Context) -> str:
    text = _optional_string(value)
    for found in SUMMARY_FIELD.finditer(text):
        _check_expression(found.group(1), "summary",
                          Place(doc, "summary", text, found.start(1)), path, ctx)
    stray = lint.stray_brace(SUMMARY_FIELD.sub("", text))
    if stray:
        raise _Invalid(f"{stray}: {text}")
    return text


def _outputs(value: Any, doc: Located, path: Path, ctx: _Context) -> tuple[str, ...]:
    names = _strings(value)
    if ctx.output_names is not None:
        unknown = [n for n in names if n not in ctx.output_names]
        if unknown:
            raise _Invalid(f"unknown output(s) {', '.join(unknown)} (the config defines: "
                           f"{', '.join(sorted(ctx.output_names)) or 'none'})")
    return names


def _threshold(value: Any, doc: Located, path: Path, ctx: _Context) -> Threshold:
    settings = _settings(value, required={"count", "window"}, optional={"distinct"})
    problems: list[tuple[str, int | None]] = []
    count = settings["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        problems.append((f"count must be a whole number >= 1, got {count!r}",
                         _line(value, "count")))
    try:
        window = parse_duration(settings["window"])
    except ValueError as exc:
        problems.append((f"window: {exc}", _line(value, "window")))
    distinct = settings.get("distinct")
    if distinct is not None:
        try:
            distinct = _string(distinct)
            _check_expression(distinct, "threshold", doc, path, ctx)
        except _Invalid as exc:
            problems.append((f"distinct: {exc}", _line(value, "distinct")))
    _raise_all(problems)
    return Threshold(count=count, window=window, distinct=distinct)


def _sequence(value: Any, doc: Located, path: Path, ctx: _Context) -> Any:
    check, report = _step_checks(doc, path, ctx, "sequence")
    parsed = sequencerules.parse_sequence(value, doc.line_of("sequence"), check, report)
    if parsed is None:
        raise _Reported
    return parsed


def _absence(value: Any, doc: Located, path: Path, ctx: _Context) -> Any:
    _, report = _step_checks(doc, path, ctx, "absence")
    parsed = sequencerules.parse_absence(value, doc.line_of("absence"), report)
    if parsed is None:
        raise _Reported
    return parsed


def _step_checks(doc: Located, path: Path, ctx: _Context, key: str) -> tuple[Any, Any]:
    """engine.sequencerules' callbacks: problems at their own line, under `key`."""

    def report(message: str, line: int) -> None:
        ctx.problems.append(Problem(str(path), line, key, message))

    def check(text: str, item: Any, prefix: str) -> bool:
        """A step's condition, its problems at their own line in the step, under `key`."""
        before = len(ctx.problems)
        place = Place(item, "condition", text) if isinstance(item, Located) else doc
        tree = _check_expression(text, "condition", place, path, ctx)
        added = ctx.problems[before:]
        ctx.problems[before:] = [replace(p, field=key, message=f"{prefix}: condition: "
                                         f"{p.message}") for p in added]
        return tree is not None and not any(p.severity == "error" for p in added)

    return check, report


def _first_seen(value: Any, doc: Located, path: Path, ctx: _Context) -> FirstSeen:
    settings = _settings(value, required={"value"}, optional={"remember", "learn"})
    expression = _string(settings["value"])
    holder = value if isinstance(value, Located) else doc
    _check_expression(expression, "first_seen",
                      Place(holder, "value" if holder is value else "first_seen", expression),
                      path, ctx)
    problems: list[tuple[str, int | None]] = []
    durations = {"remember": 0.0, "learn": 0.0}
    for name, default in (("remember", "90d"), ("learn", None)):
        try:
            raw = settings.get(name, default)
            durations[name] = parse_duration(raw) if raw else 0.0
        except ValueError as exc:
            problems.append((f"{name}: {exc}", _line(value, name)))
    _raise_all(problems)
    return FirstSeen(value=expression, remember=durations["remember"], learn=durations["learn"])


def _settings(value: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"expected a mapping with {', '.join(sorted(required))}")
    missing = required - value.keys()
    unknown = value.keys() - required - optional
    problems: list[tuple[str, int | None]] = []
    if missing:
        problems.append((f"missing {', '.join(sorted(missing))}", None))
    if unknown:
        problems.append((f"unknown key(s) {', '.join(sorted(map(str, unknown)))}",
                         _line(value, sorted(map(str, unknown))[0])))
    _raise_all(problems)
    return dict(value)


def _tests(value: Any, doc: Located, path: Path, ctx: _Context) -> tuple[RuleTest, ...]:
    if not isinstance(value, list):
        raise _Invalid("expected a list of tests")
    tests = []
    for number, item in enumerate(value, 1):
        try:
            tests.append(_test_suppressions(_one_test(item, number, path), item, doc, path, ctx))
        except _Invalid as exc:
            line = exc.line or (item.line if isinstance(item, Located) else doc.line_of("tests"))
            ctx.problems.append(Problem(str(path), line, "tests", f"test {number}: {exc}"))
    return tuple(tests)


def _one_test(item: Any, number: int, path: Path) -> RuleTest:
    if not isinstance(item, Located):
        raise _Invalid("a test must be a mapping")
    unknown = item.keys() - TEST_KEYS
    if unknown:
        first = sorted(unknown)[0]
        raise _Invalid(f"unknown key(s) {', '.join(sorted(unknown))}", item.line_of(first))
    sources = [k for k in ("event", "event_file", "events") if k in item]
    if len(sources) != 1:
        raise _Invalid("give exactly one of event, event_file, events")
    events = _test_events(item, sources[0], path)
    expect, expect_alerts = item.get("expect"), item.get("expect_alerts")
    if (expect is None) == (expect_alerts is None):
        raise _Invalid("give exactly one of expect (true/false) or expect_alerts (a number)")
    if expect is not None and not isinstance(expect, bool):
        raise _Invalid("expect must be true or false", item.line_of("expect"))
    if expect_alerts is not None and type(expect_alerts) is not int:
        raise _Invalid("expect_alerts must be a whole number", item.line_of("expect_alerts"))
    name = item.get("name") or f"test {number}"
    return RuleTest(name=str(name), line=item.line, events=events, expect=expect,
                    expect_alerts=expect_alerts, lists=_test_lists(item))


def _test_suppressions(test: RuleTest, item: Located, doc: Located, path: Path,
                       ctx: _Context) -> RuleTest:
    """A test's own `suppressions:` (engine.suppressions), like its `lists:`: they replace
    the config's for that test; `rules:` defaults to the rule under test. Their expiry is not
    warned about: a test may check that an expired suppression does nothing."""
    if "suppressions" not in item:
        return test
    from dataclasses import replace

    from engine.suppressions import parse_entries

    rule_id = given if isinstance(given := doc.get("id"), str) else ""
    found, problems = parse_entries(item["suppressions"], str(path), ctx.functions,
                                    ctx.known_lists, {rule_id}, (rule_id,))
    ctx.problems.extend(p for p in problems if p.field != "expires" or p.severity == "error")
    return replace(test, suppressions=tuple(found))


def _test_lists(item: Located) -> dict[str, tuple[str, ...]] | None:
    lists = item.get("lists")
    if lists is None:
        return None
    valid = isinstance(lists, dict) and all(
        isinstance(v, list) and all(isinstance(x, str | int) for x in v) for v in lists.values())
    if not valid:
        raise _Invalid("lists must map list names to lists of strings", item.line_of("lists"))
    return {str(name): tuple(str(x) for x in values) for name, values in lists.items()}


def _test_events(item: Located, source: str, path: Path) -> tuple[dict[str, Any], ...]:
    raw = item[source]
    if source == "event_file":
        target = path.parent / str(raw)
        try:
            raw = orjson.loads(target.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise _Invalid(f"event_file {target}: {exc}", item.line_of(source)) from None
        if isinstance(raw, dict) and isinstance(raw.get("Records"), list):
            raw = raw["Records"]
    events = raw if isinstance(raw, list) else [raw]
    if source == "events" and not isinstance(raw, list):
        raise _Invalid("events must be a list of records", item.line_of(source))
    if not events or not all(isinstance(e, dict) for e in events):
        raise _Invalid(f"{source} must hold CloudTrail records (mappings)", item.line_of(source))
    return tuple(plain(e) for e in events)


def _check_expression(text: str, key: str, place: Place | Located, path: Path,
                      ctx: _Context) -> expressions.Node | None:
    """Syntax, functions and lists are errors; unknown CloudTrail fields are warnings. Each
    problem is reported on its own line, where it is in the expression. The syntax tree,
    or None when the expression does not parse. `place` may be the mapping holding the
    expression under `key` (then its line is found when `key` holds the text itself)."""
    if not isinstance(place, Place):
        place = Place(place, key, text)

    def report(message: str, offset: int | None, severity: str = "error") -> None:
        ctx.problems.append(Problem(str(path), ctx.sources.line(path, place, offset), key,
                                    message, severity))

    try:
        tree = expressions.parse(text)
    except expressions.ExpressionSyntaxError as exc:
        report(f"{exc}: {text}", exc.offset)
        return None
    tokens = lint.Tokens(text)
    findings = expressions.check_functions(tree, ctx.functions, ctx.known_lists)
    for finding in findings:
        report(finding.message, tokens.offset(finding.anchor))
    if findings:
        return tree
    if ctx.defined_lists is not None:
        for name in sorted(expressions.list_names(tree) - ctx.defined_lists):
            report(f"list {name!r} is not defined in the config: it is empty, which changes "
                   "what this rule does", tokens.offset(("literal", name)), "warning")
    for field_path in expressions.root_field_paths(tree):
        message = unknown_field(field_path)
        if message:
            token = tokens.find(("identifier", field_path[0]))
            report(message + lint.field_hint(token),
                   None if token is None else int(token["start"]), "warning")
    return tree


def _line(value: Any, key: str) -> int | None:
    return value.line_of(key) if isinstance(value, Located) else None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


_FIELDS: dict[str, Callable[[Any, Located, Path, _Context], Any]] = {
    "id": _rule_id, "title": _string, "severity": _severity, "description": _optional_string,
    "enabled": _boolean, "tags": _strings, "condition": _condition, "group_by": _group_by,
    "dedup": _duration, "threshold": _threshold, "first_seen": _first_seen,
    "summary": _summary, "runbook": _optional_string, "references": _strings,
    "outputs": _outputs, "tests": _tests, "sequence": _sequence, "absence": _absence,
}
