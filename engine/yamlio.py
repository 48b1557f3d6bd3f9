"""YAML loading that remembers where each value came from.

Every rule and config problem is reported as `PATH:LINE: field: message`, so mappings are
loaded as `Located` dicts that carry the line of each key. Timestamps stay strings: a
CloudTrail `eventTime` in a rule test must reach the rule exactly as CloudTrail writes it,
not as a `datetime`.

Aliases are expanded at most :data:`MAX_ALIAS_VALUES` values beyond the document's own: an
alias bomb (nine lists of nine aliases of the list before, ~400 million values from 30 lines)
in a rule's `tests:` or a config's `lists:` took `validate` past 60 s and 5 GB. Such a
document is refused with the line of the anchor that is expanded, before anything is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class Located(dict[str, Any]):
    """A mapping from YAML with the 1-based line of itself and of each of its keys."""

    line: int = 1
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


# libyaml's parser when PyYAML was built with it (5-10x faster on the rule pack); the
# construction below is Python either way, so lines are recorded the same.
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader that records lines and does not turn timestamps into datetimes."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[str(key)] = key_node.start_mark.line + 1
    return mapping


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


def _construct_document(loader: _Loader, node: yaml.Node) -> Any:
    _check_aliases(node)
    return _Base.construct_document(loader, node)


_Loader.construct_document = _construct_document


def load_documents(path: Path) -> list[Any]:
    """All YAML documents of a file; raises yaml.YAMLError (with a mark) on bad syntax."""
    with path.open("rb") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_Loader) if doc is not None]


def plain(value: Any) -> Any:
    """Located dicts (recursively) as plain dicts, for records handed to rules."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1
