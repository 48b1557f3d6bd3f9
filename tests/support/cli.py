"""Run the real `trailguard` command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, stdin: bytes = b"", cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """`python -m engine ARGS` with `stdin` piped in; text stdout and stderr."""
    environ = {**os.environ, **(env or {})}
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        environ.pop(proxy, None)  # slack-sdk would send localhost traffic through a proxy
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args], input=stdin, capture_output=True,
        cwd=cwd or REPO, env=environ, timeout=timeout, check=False,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())
