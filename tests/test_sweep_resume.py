"""An interrupted ``ballast sweep`` resumes (issue 15): the sweep is killed (SIGKILL, its whole
process group) once a few variants are done; the re-run runs only the missing ones, leaves the
finished results untouched and prints the table an uninterrupted sweep prints."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ballast.engine.app.cli.main import main
from tests.support.cli import BALLAST, ENV, ROOT
from tests.support.sweep_case import write

pytestmark = pytest.mark.slow  # a CLI subprocess run

GRID = '[grid]\n"bands.abs_pp" = [2, 3, 5]\n"targets.BTC" = [0.4, 0.6]\n'


def _kill_after(command: list[str], runs: Path, done: int, timeout_s: float = 120) -> None:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            if runs.exists() and len(list(runs.glob("*.json"))) >= done:
                break
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_killed_sweep_resumes_with_only_the_missing_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, grid = write(tmp_path, GRID)
    out = tmp_path / "out"
    argv = ["sweep", "-c", str(config), "--grid", str(grid), "--workers", "1", "--no-report"]
    _kill_after([str(BALLAST), *argv, "--out", str(out)], out / "runs", done=2)
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert 2 <= len(kept) < 6, f"killed midway: {len(kept)} of 6 done"
    assert main([*argv, "--out", str(out)]) == 0
    resumed = capsys.readouterr().out
    assert f"variants: 6, {len(kept)} from earlier results" in resumed
    assert f"{6 - len(kept)} to run" in resumed
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in kept.items()), "finished ones not rerun"
    assert main([*argv, "--out", str(tmp_path / "fresh")]) == 0
    fresh = capsys.readouterr().out
    assert fresh[fresh.index("top ") :] == resumed[resumed.index("top ") :]
