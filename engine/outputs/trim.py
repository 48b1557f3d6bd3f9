"""Fit an alert's JSON into a byte budget by cutting its largest parts, and say so.

SNS takes 256 KB. What makes an alert too big is whatever an attacker or an odd record
makes big: a policy document in the event, a 400 KB `group_by` value, a summary rendered
from it, a list of 100,000 event ids. So the cut is not limited to the event: from the top
of the alert, the walk goes down into the largest part while one part dominates its
container (at least half of it), and cuts there. A cut string keeps its first characters
after a `[trimmed: N bytes]` marker; a cut list keeps its first items; a cut object becomes a
marker. Repeat until the message fits. A top-level `trimmed` object lists every cut path
and the original size, so a reader knows the alert is incomplete and where.

If cutting cannot get there (a pathological shape), the alert shrinks to its identifying
fields, cut short, plus the note: it still arrives, and says what it lost.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.outputs.values import dumps, text_of

MARKER = "[trimmed: "
MIN_CUT = 64  # bytes: smaller parts are never worth a marker
KEEP_CHARS = 100  # characters a cut string keeps after its marker
KEEP_ITEMS = 10
MAX_CUTS = 64
MAX_NOTED = 20
IDENTITY = ("alert_id", "rule_id", "title", "severity", "summary", "group_key", "event_count",
            "first_event_time", "last_event_time", "detected_at")


def fit(doc: dict[str, Any], budget: int, reason: str) -> bytes:
    """`doc` encoded; when over `budget` bytes, cut (largest first) until it fits."""
    raw = dumps(doc)
    if len(raw) <= budget:
        return raw
    work = orjson.loads(raw)
    if not isinstance(work, dict):
        work = {"alert": work}
    note: dict[str, Any] = {"reason": reason, "original_bytes": len(raw), "fields": []}
    work["trimmed"] = note
    for _ in range(MAX_CUTS):
        encoded = dumps(work)
        if len(encoded) <= budget:
            return encoded
        if not _cut_largest(work, note):
            break
    encoded = dumps(work)
    return encoded if len(encoded) <= budget else dumps(minimal(work, note))


def _size(value: Any) -> int:
    if isinstance(value, str) and value.startswith(MARKER):
        return 0  # already cut: never chosen again
    return len(dumps(value))


def _children(value: Any) -> list[tuple[Any, int]]:
    """(key, size) of each part of a container, the key's own bytes included."""
    if isinstance(value, dict):
        return [(k, len(k.encode()) + _size(v)) for k, v in value.items() if k != "trimmed"]
    if isinstance(value, list):
        return [(i, _size(v)) for i, v in enumerate(value)]
    return []


def _cut_largest(doc: dict[str, Any], note: dict[str, Any]) -> bool:
    """Cut the part that dominates the alert; False when nothing is left worth cutting."""
    parts = _children(doc)
    if not parts:
        return False
    key, size = max(parts, key=lambda part: part[1])
    if size < MIN_CUT:
        return False
    if len(key.encode()) * 2 > size:  # a huge key: only dropping it helps
        del doc[key]
        _noted(note, [key])
        return True
    parent, path = doc, [key]
    while True:
        value = parent[key]
        parts = _children(value)
        child, child_size = max(parts, key=lambda part: part[1]) if parts else (None, 0)
        if child is None or child_size < MIN_CUT or child_size * 2 < _size(value):
            break
        if isinstance(child, str) and len(child.encode()) * 2 > child_size:
            break  # the dominating part is a key: cut the object holding it
        parent, key = value, child
        path.append(child)
    parent[key] = _shortened(parent[key])
    _noted(note, path)
    return True


def _shortened(value: Any) -> Any:
    size = len(dumps(value))
    if isinstance(value, str):
        head = value[:KEEP_CHARS] if size >= 1024 else ""
        return f"{MARKER}{size} bytes] {head}".rstrip()
    if isinstance(value, list) and len(dumps(value[:KEEP_ITEMS])) * 2 < size:
        rest = len(value) - KEEP_ITEMS
        return [*value[:KEEP_ITEMS], f"{MARKER}{rest} more items]"]
    count = f", {len(value)} items" if isinstance(value, dict | list) else ""
    return f"{MARKER}{size} bytes{count}]"


def _noted(note: dict[str, Any], path: list[Any]) -> None:
    fields: list[str] = note["fields"]
    if len(fields) < MAX_NOTED:
        fields.append(".".join(text_of(p, 64)[:64] for p in path))
    else:
        note["more_fields"] = int(note.get("more_fields", 0)) + 1


def minimal(doc: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
    """The alert reduced to its identifying fields, each at most 1,000 characters."""
    small: dict[str, Any] = {}
    for key in IDENTITY:
        if key in doc:
            value = doc[key]
            small[key] = value if isinstance(value, int | float | bool) or value is None \
                else text_of(value, 1000)[:1000]
    fields = note.get("fields", [])[:MAX_NOTED]
    small["trimmed"] = {"reason": text_of(note.get("reason"), 200)[:200],
                        "original_bytes": note.get("original_bytes"),
                        "fields": [*fields, "everything but the alert's identifying fields"]}
    return small
