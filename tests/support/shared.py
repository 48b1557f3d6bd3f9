"""The team's shared data, found beside the repository (`../shared`), never by absolute path.

A checkout at /work/<name> finds /work/shared; CI, which has no shared directory, finds
nothing, and the tests that need it fall back to the samples under tests/ or skip.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"
