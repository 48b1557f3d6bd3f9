"""The config sections owned by later stages, checked when the config loads.

`sources` and `server` are checked key by key against their declarations
(engine.daemon.registry), each problem with the line of its key. For `validate` and `run`,
`outputs` and `routes` are checked here too, by the outputs' own checks (one problem per
output at most: those checks stop at an output's first), so that one run reports every
problem of the file rather than one section's. A list of ConfigError is returned; the loader
raises them together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.daemon.registry import SERVER, check_source, source_name
from engine.errors import ConfigError
from engine.settings import Where, check_section
from engine.yamlio import Located


def where_in(path: Path, located: Any, fallback: int) -> Where:
    """key -> `PATH:LINE` of that key in `located` ('' -> the mapping's own line)."""
    def where(key: str) -> str:
        if not isinstance(located, Located):
            return f"{path}:{fallback}"
        return f"{path}:{located.line_of(key) if key else located.line}"

    return where


def _errors(problems: list[tuple[str, str]]) -> list[ConfigError]:
    return [ConfigError(message, where) for where, message in problems]


def check_sources(located: Any, values: Any, path: Path, line: int) -> list[ConfigError]:
    """Every problem of the `sources:` list; `line` is the line of its key."""
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        return [ConfigError("sources: expected a list of mappings", f"{path}:{line}")]
    entries = located if isinstance(located, list) and len(located) == len(values) else values
    errors: list[ConfigError] = []
    names: dict[str, int] = {}  # -> the number of the source first named so
    for number, (entry, settings) in enumerate(zip(entries, values, strict=True)):
        where = where_in(path, entry, line)
        errors += _errors(check_source(settings, number, where))
        name = source_name(settings, number)
        if name in names:
            errors.append(ConfigError(f"sources[{number}].name: {name!r} is already the name "
                                      f"of sources[{names[name]}] (each needs its own: "
                                      "it keys what was read)", where("name")))
        names.setdefault(name, number)
    return errors


def check_server(located: Any, values: Any, path: Path, line: int) -> list[ConfigError]:
    if values is None:
        return []
    if not isinstance(values, dict):
        return [ConfigError("server: expected a mapping (listen, grace_period)",
                            f"{path}:{line}")]
    return _errors(check_section(values, SERVER, "server", where_in(path, located, line)))


def check_delivery(located: Any, outputs: Mapping[str, Mapping[str, Any]],
                   routes: list[Any], path: Path, at: Callable[[str], str]) -> list[ConfigError]:
    """The outputs' and routes' own checks, every output's first problem collected."""
    from engine.outputs.dispatcher import OUTPUT_TYPES
    from engine.outputs.routing import parse_routes

    errors = []
    where = where_in(path, located, 1)
    for name, settings in outputs.items():
        kind = settings.get("type")
        cls = OUTPUT_TYPES.get(str(kind))
        try:
            if cls is None:
                raise ConfigError(f"outputs.{name}: unknown type {kind!r} (known: "
                                  f"{', '.join(sorted(OUTPUT_TYPES))})", where(str(name)))
            cls.check(name, settings, where(str(name)))
        except ConfigError as exc:
            errors.append(exc)
    try:
        parse_routes(routes, outputs, at("routes"))
    except ConfigError as exc:
        errors.append(exc)
    return errors
