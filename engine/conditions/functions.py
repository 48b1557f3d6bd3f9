"""trailguard's JMESPath functions (SPEC §1), registered beside the standard ones.

They never raise on a missing or wrong-typed argument: CloudTrail records are irregular (a
field is absent, null, or a service name where an IP was expected), and a rule must not
error on them. Wrong *arity* is still an error, found when rules load.

`matches` runs on RE2 (google-re2), whose time is linear in the text whatever the pattern:
with Python's backtracking `re`, `matches(userAgent, '^(a+)+$')` on a hostile 36-character
user agent took minutes per record and stalled the daemon. A literal pattern RE2 cannot run
(backreferences, lookaround) is a load error, found by engine.conditions.expressions; a pattern
computed from the record that RE2 refuses is no match. Differences from `re.search` are listed in
docs/functions.md.

Lists (`trusted_networks`, ...) come from the config. A name is resolved when the function is
called, against the lists this Functions instance was built with; parsed CIDRs and regexes are
cached because the same few values are used on every record.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, TypedDict, TypeVar

import jmespath.functions
import orjson
import re2

# Lists that the shipped rule pack reads; a config need not define them (they are then empty),
# but any other name must be defined, so a misspelt name is a load error, not a silent no-op.
WELL_KNOWN_LISTS: frozenset[str] = frozenset(
    {"trusted_networks", "ci_publishers", "trusted_accounts"}
)

# functions whose argument at this position names a config list when it is a string literal
LIST_ARGUMENT: Mapping[str, int] = {"ip_in": 1, "in_list": 1, "list": 0}
# functions whose argument at this position is a regular expression, checked when it is a literal
REGEX_ARGUMENT: Mapping[str, int] = {"matches": 1}


class _ArgumentSpec(TypedDict):
    """One argument of a jmespath function signature; no types: any JSON value."""

    types: list[str]


_Method = TypeVar("_Method", bound=Callable[..., Any])


class _Signature(Protocol):
    """jmespath's untyped `signature(*specs)`: records the specs on the method, returns it."""

    def __call__(self, *arguments: _ArgumentSpec) -> Callable[[_Method], _Method]: ...


signature: _Signature = jmespath.functions.signature
_ANY: _ArgumentSpec = {"types": []}
_NetworkTuple = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _networks(cidrs: tuple[str, ...]) -> _NetworkTuple:
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            continue  # validated at config load; a bad literal in a rule is just no match
    return tuple(networks)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print each refused pattern on stderr


_UNANCHORED = re2._Anchor.UNANCHORED


@lru_cache(maxsize=512)
def _regex(pattern: str) -> Any:
    """The compiled RE2 program of `pattern`, or None when RE2 refuses it. The wrapper's own
    search() maps every match's byte offsets back to characters: 3x the time of asking the
    program directly whether it matches, which is all matches() needs."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)._regexp
    except re2.error:
        return None


def pattern_error(pattern: str) -> str | None:
    """Why `matches` cannot run `pattern` (RE2 refuses it), or None when it can."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        return (f"matches() cannot run pattern {pattern!r} in linear time (RE2: {text}); "
                "see docs/functions.md")
    return None


@lru_cache(maxsize=512)
def _parse_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def arn_account(value: Any) -> str | None:
    """Account id of an ARN (`arn:aws:iam::123456789012:role/x`), or of a bare 12-digit id."""
    if not isinstance(value, str):
        return None
    if value.isdigit() and len(value) == 12:
        return value
    parts = value.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[4].isdigit():
        return parts[4]
    return None


# jmespath is untyped, so mypy sees its Functions as Any: subclassing it is its extension API
class TrailguardFunctions(jmespath.functions.Functions):  # type: ignore[misc]
    """Standard JMESPath functions plus SPEC §1's, bound to the config's named lists."""

    def __init__(self, lists: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__()
        self.lists: dict[str, tuple[str, ...]] = {
            name: tuple(str(item) for item in items) for name, items in (lists or {}).items()
        }

    def _named_or_literal(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            return self.lists.get(value, ())
        if isinstance(value, list):
            return tuple(item for item in value if isinstance(item, str))
        return ()

    @signature(_ANY, _ANY)
    def _func_ip_in(self, ip: Any, cidrs: Any) -> bool:
        if not isinstance(ip, str):
            return False
        address = _address(ip)
        if address is None:
            return False
        return any(address in network for network in _networks(self._named_or_literal(cidrs)))

    @signature(_ANY, _ANY)
    def _func_in_list(self, value: Any, name: Any) -> bool:
        return value is not None and value in self._named_or_literal(name)

    @signature(_ANY)
    def _func_list(self, name: Any) -> list[str]:
        return list(self.lists.get(name, ())) if isinstance(name, str) else []

    @signature(_ANY, _ANY)
    def _func_matches(self, text: Any, pattern: Any) -> bool:
        if not isinstance(text, str) or not isinstance(pattern, str):
            return False
        compiled = _regex(pattern)
        if compiled is None:
            return False
        data = text.encode("utf-8", "surrogatepass")  # a lone surrogate must not raise
        return bool(compiled.Match(_UNANCHORED, data, 0, len(data))[0][0] >= 0)

    @signature(_ANY, _ANY)
    def _func_glob(self, text: Any, pattern: Any) -> bool:
        if not isinstance(text, str) or not isinstance(pattern, str):
            return False
        return fnmatch.fnmatchcase(text, pattern)

    @signature(_ANY)
    def _func_lower(self, text: Any) -> str | None:
        return text.lower() if isinstance(text, str) else None

    @signature(_ANY)
    def _func_upper(self, text: Any) -> str | None:
        return text.upper() if isinstance(text, str) else None

    @signature(_ANY, _ANY)
    def _func_split(self, text: Any, sep: Any) -> list[str] | None:
        if not isinstance(text, str) or not isinstance(sep, str) or not sep:
            return None
        return text.split(sep)

    @signature(_ANY)
    def _func_from_json(self, text: Any) -> Any:
        if isinstance(text, dict | list):
            return text  # some envelopes log policyDocument already parsed; be forgiving
        return _parse_json(text) if isinstance(text, str) else None

    @signature(_ANY)
    def _func_hour_of(self, text: Any) -> int | None:
        moment = _parse_time(text)
        return None if moment is None else _utc(moment).hour

    @signature(_ANY)
    def _func_weekday_of(self, text: Any) -> int | None:
        moment = _parse_time(text)
        return None if moment is None else _utc(moment).isoweekday()

    @signature(_ANY)
    def _func_arn_account(self, value: Any) -> str | None:
        return arn_account(value)

    @signature(_ANY, _ANY)
    def _func_difference(self, items: Any, remove: Any) -> list[Any] | None:
        if not isinstance(items, list):
            return None
        removed = remove if isinstance(remove, list) else [remove]
        return [item for item in items if item not in removed]

    @signature(_ANY)
    def _func_to_list(self, value: Any) -> list[Any]:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.astimezone(UTC) if moment.tzinfo else moment


def function_names(functions: jmespath.functions.Functions) -> Iterable[str]:
    """Every name callable in a condition (standard + ours)."""
    table: dict[str, Any] = functions.FUNCTION_TABLE  # jmespath's: name -> function, signature
    return table.keys()
