"""The installed ``ballast`` console script run as a subprocess, the way a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BALLAST = Path(sys.executable).parent / "ballast"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def ballast(
    *args: str, cwd: Path = ROOT, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``ballast ARGS`` in ``cwd`` (default: the checkout) and capture its output."""
    return subprocess.run(
        [str(BALLAST), *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
