"""The report is an optional extra (``pip install 'ballast[report]'``): without matplotlib,
``ballast backtest`` still runs and says in one line how to get the report, and ``ballast run``
never imports it. matplotlib is made missing in a real subprocess of the CLI, the way Python
itself does it: ``sys.modules['matplotlib'] = None`` makes every ``import matplotlib`` fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cli import ENV, ROOT
from tests.support.paper_config import DATA, paper_config

WITHOUT_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None; "
    "from ballast.engine.app.cli.main import main; sys.exit(main(sys.argv[1:]))"
)
SKIPPED = "report: skipped, the charts need matplotlib: pip install 'ballast[report]'"


def ballast_without_matplotlib(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MATPLOTLIB, *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_backtest_without_matplotlib_runs_and_says_how_to_get_the_report(
    tmp_path: Path,
) -> None:
    config = tmp_path / "backtest.toml"
    config.write_text('[strategy]\nname = "threshold"\n')
    report = tmp_path / "report"
    proc = ballast_without_matplotlib(
        "backtest",
        "-c",
        str(config),
        f"--data={DATA}",
        "--start=2022-05-01",
        "--end=2022-05-08",
        f"--journal={tmp_path / 'j.db'}",
        f"--report={report}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Metric" in proc.stdout  # the comparison table is printed as always
    assert [line for line in proc.stdout.splitlines() if line.startswith("report:")] == [SKIPPED]
    assert not report.exists()
    # stderr is not a terminal here: no progress bar is drawn, one summary line per run
    lines = proc.stderr.splitlines()
    assert [line.split()[0] for line in lines] == ["threshold", "buy_and_hold", "calendar"]
    assert all(" done: " in line and line.endswith("/s)") for line in lines), proc.stderr
    assert "\x1b" not in proc.stderr


def test_ballast_run_never_imports_the_report(tmp_path: Path) -> None:
    paper = paper_config(
        tmp_path / "paper.toml",
        {
            "journal": {"path": str(tmp_path / "journal.db")},
            "paper": {"data_dir": str(DATA), "start": "2024-04-17T23:00"},
            "metrics": {"enabled": False},
        },
    )
    probe = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from ballast.engine.app.cli.main import main; code = main(sys.argv[1:]); "
        "assert 'ballast.engine.observe.report' not in sys.modules, 'report imported'; "
        "sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "run", "-c", str(paper), "--step-s=0", "--max-runtime-s=1"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
