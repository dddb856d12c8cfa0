"""The backtest report is an optional extra: ``pip install 'ballast[report]'`` brings matplotlib.

:mod:`ballast.engine.observe.report` (and with it matplotlib) is imported only here, when a
command is about to write a report, so ``ballast run`` and every other command start without it.
Without matplotlib a backtest still runs and prints its results; the report is skipped with one
line saying how to get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ballast.engine.app.backtest import BacktestRun

REPORT_EXTRA: Final = "pip install 'ballast[report]'"
_CHART_MODULES: Final = frozenset({"matplotlib", "numpy"})


def write_runs_report(
    runs: Sequence[BacktestRun], folder: str | Path, *, title: str, quote: str
) -> None:
    """Write the report of ``runs`` into ``folder`` and print where it is, or print why not."""
    try:
        from ballast.engine.observe.report import write_report
    except ImportError as exc:
        skip_without_charts(exc)
        return
    files = write_report(
        folder, {run.name: run.performance for run in runs}, title=title, quote=quote
    )
    print(f"report: {files.html}")


def skip_without_charts(exc: ImportError) -> None:
    """Say a report is skipped when ``exc`` is the missing charts extra (matplotlib, numpy);
    any other import error is a broken install of something else: raised again."""
    if (exc.name or "").partition(".")[0] not in _CHART_MODULES:
        raise exc
    print(f"report: skipped, the charts need matplotlib: {REPORT_EXTRA}")
