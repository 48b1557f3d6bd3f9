"""Where the shipped rule pack is: the checkout's `rules/`, or `engine/rules` once installed."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_rules() -> Path:
    installed = _PACKAGE / "rules"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "rules"
