"""The registry of source types: `type:` name -> its settings and how to build it.

`SOURCE_TYPES` is a plain dict, as the outputs' `OUTPUT_TYPES` is. Each entry declares every
key the type accepts, with its kind (engine.settings), so the config loader checks a source
completely, with lines, before anything runs; building is then only construction. The
`server:` section is declared here too. Source classes are imported when built: the config
loader (and so `validate`) never pays for boto3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import settings as kinds
from engine.settings import Section

if TYPE_CHECKING:
    from engine.daemon.sources import Marks, Source

Builder = Callable[[str, Mapping[str, Any], "Marks | None", Mapping[str, str]], "Source"]
COMMON = {"type": kinds.string, "name": kinds.string}
AWS = {"region": kinds.string, "endpoint_url": kinds.http_url}


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "expected a string"


@dataclass(frozen=True)
class SourceType:
    section: Section
    build: Builder


def _files(name: str, settings: Mapping[str, Any], marks: Marks | None,
           environ: Mapping[str, str]) -> Source:
    from engine.daemon.sources import FilesSource

    paths = settings.get("paths") or []
    return FilesSource(name, [paths] if isinstance(paths, str) else [str(p) for p in paths],
                       marks)


def _stdin(name: str, settings: Mapping[str, Any], marks: Marks | None,
           environ: Mapping[str, str]) -> Source:
    from engine.daemon.sources import StdinSource

    return StdinSource(name)


def _sqs(name: str, settings: Mapping[str, Any], marks: Marks | None,
         environ: Mapping[str, str]) -> Source:
    from engine.daemon.aws_sources import SqsSource

    return SqsSource.from_config(name, settings, environ)


def _s3(name: str, settings: Mapping[str, Any], marks: Marks | None,
        environ: Mapping[str, str]) -> Source:
    from engine.daemon.aws_sources import S3Source

    return S3Source.from_config(name, settings, marks, environ)


SOURCE_TYPES: dict[str, SourceType] = {
    "files": SourceType(Section({**COMMON, "paths": kinds.strings}, frozenset({"paths"})),
                        _files),
    "stdin": SourceType(Section(COMMON), _stdin),
    "sqs": SourceType(Section({
        **COMMON, **AWS, "queue_url": kinds.string, "s3_endpoint_url": kinds.http_url,
        "visibility_timeout": kinds.duration_up_to(43_200, "12h (SQS' limit)"),
        "max_messages": kinds.integer(1, 10), "wait_seconds": kinds.integer(0, 20),
    }, frozenset({"queue_url"})), _sqs),
    "s3": SourceType(Section({
        **COMMON, **AWS, "bucket": kinds.string, "prefix": _text,
        "poll_interval": kinds.duration,
    }, frozenset({"bucket"})), _s3),
}

SERVER = Section({"listen": kinds.listen, "grace_period": kinds.duration})


def source_name(settings: Mapping[str, Any], number: int) -> str:
    """A source's name: its `name`, else `TYPE-N` (N its place in the list, from 0)."""
    return str(settings.get("name") or f"{settings.get('type')}-{number}")


def check_source(settings: Mapping[str, Any], number: int,
                 where: kinds.Where) -> list[tuple[str, str]]:
    """Every problem of one `sources:` entry, as (where, `sources[N]...: message`)."""
    field = f"sources[{number}]"
    kind = settings.get("type")
    source_type = SOURCE_TYPES.get(kind) if isinstance(kind, str) else None
    if source_type is None:
        known = ", ".join(sorted(SOURCE_TYPES))
        problem = (f"{field}.type: unknown type {kind!r} (known: {known})" if kind is not None
                   else f"{field}: missing type (known: {known})")
        return [(where("type"), problem)]
    return kinds.check_section(settings, source_type.section, field, where)
