"""YAML loading that remembers where each value came from.

Every rule and config problem is reported as `PATH:LINE: field: message`, so mappings are
loaded as `Located` dicts that carry the line of each key, and where each scalar value (or
list item) starts: a problem inside a multi-line condition is reported at its own line
(`SourceLines.line`), not at the `condition:` key. Timestamps stay strings: a
CloudTrail `eventTime` in a rule test must reach the rule exactly as CloudTrail writes it,
not as a `datetime`.

Aliases are expanded at most :data:`MAX_ALIAS_VALUES` values beyond the document's own: an
alias bomb (nine lists of nine aliases of the list before, ~400 million values from 30 lines)
in a rule's `tests:` or a config's `lists:` took `validate` past 60 s and 5 GB. Such a
document is refused with the line of the anchor that is expanded, before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml


class Located(dict[str, Any]):
    """A mapping from YAML with the 1-based line of itself and of each of its keys."""

    line: int = 1
    key_lines: dict[str, int]
    # where each scalar value starts: (0-based line, column, style), for line_in_value;
    # for a list of scalars (group_by: [a, b]), where each item starts
    value_marks: dict[str, tuple[int, int, str | None]]
    item_marks: dict[str, list[tuple[int, int, str | None]]]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


# libyaml's parser when PyYAML was built with it (5-10x faster on the rule pack); the
# construction below is Python either way, so lines are recorded the same.
if TYPE_CHECKING:  # checked as SafeLoader: CSafeLoader has the same constructor and resolver
    _Base = yaml.SafeLoader
else:
    _Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """SafeLoader that records lines and does not turn timestamps into datetimes."""

    def construct_document(self, node: yaml.Node) -> Any:
        """Refuse an alias bomb (`_check_aliases`) before anything is built."""
        _check_aliases(node)
        return super().construct_document(node)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    mapping.value_marks = {}
    mapping.item_marks = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            mapping.value_marks[str(key)] = _mark(value_node)
        elif isinstance(value_node, yaml.SequenceNode):
            mapping.item_marks[str(key)] = [_mark(item) for item in value_node.value]
    return mapping


def _mark(node: yaml.Node) -> tuple[int, int, str | None]:
    return node.start_mark.line, node.start_mark.column, getattr(node, "style", None)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# Values that aliases may add to a document beyond the nodes written in it; a rule file's
# tests reuse an event a few times, far below this.
MAX_ALIAS_VALUES = 100_000


def _check_aliases(node: yaml.Node) -> None:
    """Raise a YAML error at the anchor's line when aliases expand `node` too far."""
    sizes: dict[int, int] = {}
    uses: dict[int, tuple[int, yaml.Node]] = {}
    try:
        total = _expanded(node, sizes, uses, set())
    except RecursionError:
        raise yaml.constructor.ConstructorError(
            None, None, "nested too deep", node.start_mark) from None
    if total - len(sizes) <= MAX_ALIAS_VALUES:
        return
    count, anchored = max(uses.values(), key=lambda use: sizes[id(use[1])] * use[0])
    raise yaml.constructor.ConstructorError(
        None, None, f"aliases expand this document by more than {MAX_ALIAS_VALUES:,} values "
        f"(this anchor, of {sizes[id(anchored)]:,} values, is aliased {count} time(s))",
        anchored.start_mark)


def _expanded(node: yaml.Node, sizes: dict[int, int], uses: dict[int, tuple[int, yaml.Node]],
              open_: set[int]) -> int:
    """The number of values `node` stands for, every alias expanded (memoised by node)."""
    key = id(node)
    if key in sizes:
        count, _ = uses.get(key, (0, node))
        uses[key] = (count + 1, node)
        return sizes[key]
    if key in open_:
        raise yaml.constructor.ConstructorError(
            None, None, "an alias refers to a value that contains it", node.start_mark)
    open_.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded(child, sizes, uses, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded(k, sizes, uses, open_) + _expanded(v, sizes, uses, open_)
                    for k, v in node.value)
    open_.discard(key)
    sizes[key] = size
    return size


def load_documents(path: Path) -> list[Any]:
    """All YAML documents of a file; raises yaml.YAMLError (with a mark) on bad syntax."""
    with path.open("rb") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_Loader) if doc is not None]


def read_documents(path: Path, problems: list[Any]) -> list[Any]:
    """The YAML documents of a rule or suppression file; [] when it cannot be read or
    parsed, after adding that problem (an `engine.errors.Problem` at its line) to `problems`:
    one bad file must not hide the problems of the others."""
    from engine.errors import Problem  # errors imports nothing of ours; keep yamlio leaf-like

    try:
        return load_documents(path)
    except OSError as exc:
        problems.append(Problem(str(path), 1, "file", f"cannot read: {exc.strerror}"))
    except yaml.YAMLError as exc:
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(str(path), error_line(exc), "yaml", str(reason)))
    return []


def plain(value: Any) -> Any:
    """Located dicts (recursively) as plain dicts, for records handed to rules."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def line_in_value(lines: list[str], mark: tuple[int, int, str | None], text: str,
                  offset: int) -> int:
    """The 1-based line of `text[offset]`, `text` being a scalar's value (stripped or not)
    that starts at `mark` in the file of `lines`.

    YAML folds and indents a multi-line scalar (`condition: >-`), so offsets in the value
    are not offsets in the file; but it only ever changes whitespace. The position is found
    by counting the non-blank characters before it, in the value and then in the file.
    (A quoted scalar with escapes may be off by the escapes' length: rare in expressions.)"""
    target = sum(1 for char in text[:offset] if not char.isspace())
    line, column, style = mark
    if style in ("|", ">"):
        line, column = line + 1, 0  # the content starts below the `>-` indicator
    elif style in ("'", '"'):
        column += 1
    seen = 0
    for number in range(line, len(lines)):
        for char in lines[number][column:]:
            if not char.isspace():
                if seen == target:
                    return number + 1
                seen += 1
        column = 0
    return mark[0] + 1


@dataclass(frozen=True)
class Place:
    """Where an expression sits: the mapping and key holding it, the whole value, and the
    expression's offset in it (a summary's `{expr}`), so problems point at their own line."""

    doc: Located
    key: str
    value: str
    base: int = 0
    item: int | None = None  # the expression is this item of a list (group_by: [a, b])


@dataclass
class SourceLines:
    """Files' lines, read when a problem needs a line inside a value (rarely: only then)."""

    files: dict[str, list[str]] = field(default_factory=dict)

    def line(self, path: Path, place: Place, offset: int | None) -> int:
        """The line of `offset` in the expression at `place`; the key's line if unknown."""
        mark = getattr(place.doc, "value_marks", {}).get(place.key)
        if place.item is not None:
            items = getattr(place.doc, "item_marks", {}).get(place.key, [])
            mark = items[place.item] if place.item < len(items) else None
        if offset is None or mark is None:
            return place.doc.line_of(place.key)
        if str(path) not in self.files:
            try:
                self.files[str(path)] = path.read_text(errors="replace").splitlines()
            except OSError:
                self.files[str(path)] = []
        return line_in_value(self.files[str(path)], mark, place.value, place.base + offset)


def error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1
