"""`trailguard.yml`: the config file, `${VAR}` interpolation, and named lists.

The config is checked as a whole when it loads, like rules: a daemon that starts with a typo
in its config and only notices at the first alert is a daemon that misses that alert.
Sections owned by later stages (sources, outputs, routes, server) are kept as validated
mappings here and interpreted by the module that uses them; sources and server are checked
key by key against their declarations (engine.configcheck), outputs and routes too when
`delivery=True` (validate, run). Every problem is collected and raised at once, as one
ConfigError: a config with three mistakes takes one run to fix, not three. Values read from
an environment variable whose name says it is a secret (`SLACK_BOT_TOKEN`) are registered
with engine.redaction, so no error or log line shows them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine import configcheck
from engine.conditions.functions import WELL_KNOWN_LISTS
from engine.durations import parse_duration
from engine.errors import ConfigError
from engine.redaction import SECRET_NAME, register_secret, register_url_password
from engine.yamlio import Located, error_line, load_documents, plain

TOP_LEVEL = frozenset({"rules", "lists", "state", "allowed_lateness", "sources", "outputs",
                       "routes", "server", "suppressions"})
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_LATENESS = 15 * 60.0


@dataclass(frozen=True)
class Config:
    path: str | None = None
    rules: tuple[str, ...] = ()
    lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    state: str | None = None
    allowed_lateness: float = DEFAULT_LATENESS
    sources: tuple[Mapping[str, Any], ...] = ()
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    routes: tuple[Mapping[str, Any], ...] = ()
    server: Mapping[str, Any] = field(default_factory=dict)
    lines: Mapping[str, int] = field(default_factory=dict)
    suppressions: tuple[str, ...] = ()  # files or directories, like rules (engine.suppressions)

    @property
    def known_lists(self) -> frozenset[str]:
        return WELL_KNOWN_LISTS | frozenset(self.lists)

    def where(self, key: str) -> str:
        return f"{self.path}:{self.lines.get(key, 1)}" if self.path else key


def load_config(path: str | Path, environ: Mapping[str, str] | None = None,
                delivery: bool = False) -> Config:
    """Read and check a config file; raise one ConfigError carrying every problem, each
    naming the file, line and field. `delivery` checks outputs and routes as well."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        documents = load_documents(path)
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(getattr(exc, "problem", exc)), f"{path}:{error_line(exc)}") from None
    if len(documents) != 1 or not isinstance(documents[0], Located):
        raise ConfigError("the config must be one YAML mapping", f"{path}:1")
    doc = documents[0]
    errors: list[ConfigError] = []
    for key in doc:
        if key not in TOP_LEVEL:
            errors.append(ConfigError(f"{key}: unknown key (known: {', '.join(sorted(TOP_LEVEL))})",
                                      f"{path}:{doc.line_of(key)}"))
    resolved = _interpolate(doc, env, path, errors)
    config = _build(path, doc, resolved, errors)
    outputs_read = bool(config.outputs) or not resolved.get("outputs")  # else already an error
    if delivery and outputs_read:
        errors += configcheck.check_delivery(doc.get("outputs"), config.outputs,
                                             list(config.routes), path, config.where)
    if errors:
        raise ConfigError.collected(sorted(errors, key=_line_of))
    return config


def _line_of(error: ConfigError) -> int:
    line = error.where.rpartition(":")[2]
    return int(line) if line.isdigit() else 0


def _build(path: Path, doc: Located, raw: Any, errors: list[ConfigError]) -> Config:
    def at(key: str) -> str:
        return f"{path}:{doc.line_of(key)}"

    def collect(parse: Any, default: Any) -> Any:
        try:
            return parse()
        except ConfigError as exc:
            errors.append(exc)
            return default

    base = path.parent
    lines = {str(k): doc.line_of(str(k)) for k in doc}
    errors += configcheck.check_sources(doc.get("sources"), raw.get("sources"), path,
                                        lines.get("sources", 1))
    errors += configcheck.check_server(doc.get("server"), raw.get("server"), path,
                                       lines.get("server", 1))
    sources = raw.get("sources") if isinstance(raw.get("sources"), list) else []
    return Config(
        path=str(path),
        rules=collect(lambda: _rule_paths(raw.get("rules", []), base, at), ()),
        lists=collect(lambda: _lists(raw.get("lists") or {}, base, at), {}),
        state=collect(lambda: _state_url(raw.get("state"), base, at), None)
        if raw.get("state") else None,
        allowed_lateness=collect(lambda: _lateness(raw.get("allowed_lateness"), at),
                                 DEFAULT_LATENESS),
        sources=tuple(_source(s, base) for s in sources if isinstance(s, dict)),
        outputs=collect(lambda: _outputs(raw.get("outputs") or {}, at), {}),
        routes=tuple(collect(lambda: _mappings(raw.get("routes") or [], "routes", at), [])),
        server=dict(raw.get("server") or {}) if isinstance(raw.get("server"), dict) else {},
        lines=lines,
        suppressions=collect(lambda: _rule_paths(raw.get("suppressions", []), base, at,
                                                 "suppressions"), ()),
    )


def _interpolate(value: Any, env: Mapping[str, str], path: Path, errors: list[ConfigError],
                 line: int = 1) -> Any:
    """`${VAR}` in any string, resolved from the environment; a missing one is an error."""
    if isinstance(value, Located):
        return {k: _interpolate(v, env, path, errors, value.line_of(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(item, env, path, errors, line) for item in value]
    if isinstance(value, str):
        def replace(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in env:
                errors.append(ConfigError(f"environment variable {name} is not set",
                                          f"{path}:{line}"))
                return ""
            if SECRET_NAME.search(name):
                register_secret(env[name])
            return env[name]

        return _ENV.sub(replace, value)
    return plain(value)


def _relative(base: Path, target: str) -> Path:
    candidate = Path(target)
    return candidate if candidate.is_absolute() else base / candidate


def _rule_paths(value: Any, base: Path, at: Any, key: str = "rules") -> tuple[str, ...]:
    return tuple(str(_relative(base, item)) for item in _string_list(value, key, at))


def _string_list(value: Any, key: str, at: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings", at(key))
    return value


def _lists(value: Any, base: Path, at: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError("lists: expected a mapping of list names", at("lists"))
    lists = {}
    for name, items in value.items():
        if isinstance(items, dict) and set(items) == {"file"}:
            items = _read_list_file(_relative(base, str(items["file"])), name, at)
        if not isinstance(items, list):
            raise ConfigError(f"lists.{name}: expected a list or {{file: PATH}}", at("lists"))
        lists[str(name)] = tuple(str(item) for item in items)
    for name in ("trusted_networks",):
        for cidr in lists.get(name, ()):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"lists.{name}: {cidr!r} is not a CIDR", at("lists")) from None
    return lists


def _read_list_file(path: Path, name: str, at: Any) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        message = f"lists.{name}: cannot read {path}: {exc.strerror}"
        raise ConfigError(message, at("lists")) from None
    items = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [item for item in items if item]


def _state_url(value: Any, base: Path, at: Any) -> str:
    text = str(value)
    register_url_password(text)  # redis://:PASSWORD@host: shown nowhere, whatever shows it
    if not text.startswith(("memory://", "sqlite://", "redis://", "rediss://")):
        raise ConfigError(f"state: unsupported URL {text!r} (memory://, sqlite:///PATH, "
                          "redis://HOST:PORT/DB)", at("state"))
    if text.startswith("sqlite:///") and not text.startswith("sqlite:////"):
        return f"sqlite:///{base / text[len('sqlite:///'):]}"  # relative to the config file
    return text


def _source(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    """A `files` source's paths are relative to the config file, like `rules:`."""
    if settings.get("type") == "files" and isinstance(settings.get("paths"), list):
        return {**settings, "paths": [str(_relative(base, str(p))) for p in settings["paths"]]}
    return settings


def _lateness(value: Any, at: Any) -> float:
    if value is None:
        return DEFAULT_LATENESS
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"allowed_lateness: {exc}", at("allowed_lateness")) from None


def _mappings(value: Any, key: str, at: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{key}: expected a list of mappings", at(key))
    return value


def _outputs(value: Any, at: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError("outputs: expected a mapping of output names to settings", at("outputs"))
    for name, settings in value.items():
        if "type" not in settings:
            raise ConfigError(f"outputs.{name}: missing type", at("outputs"))
    return value
