"""The backtest's progress bar (rich): drawn on a terminal with the share of simulated time, the
event rate and the time left; nothing at all where the output is not a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from ballast.engine.app.cli.progress import BacktestProgress
from ballast.engine.kernel.clock import NS_PER_SECOND
from tests.conftest import START_NS

DAY = 86_400 * NS_PER_SECOND


def feed(progress: BacktestProgress, days: int) -> None:
    for day in range(1, days + 1):
        progress(day * 1_000, START_NS + day * DAY)


def test_on_a_terminal_the_bar_shows_progress_date_rate_and_time_left() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with BacktestProgress("threshold", START_NS, START_NS + 100 * DAY, console=console) as bar:
        feed(bar, 50)
    text = out.getvalue()  # the frames drawn, the last one on leaving
    assert "threshold" in text
    assert "50%" in text
    assert "events/s" in text
    assert re.search(r"\d+:\d\d:\d\d", text)  # the time left
    assert re.search(r"\d{4}-\d\d-\d\d", text)  # the simulated day reached


def test_off_a_terminal_nothing_is_drawn() -> None:
    out = io.StringIO()
    console = Console(file=out)  # a file: not a terminal
    with BacktestProgress("threshold", START_NS, START_NS + 100 * DAY, console=console) as bar:
        feed(bar, 100)
    assert not bar.live
    assert out.getvalue() == ""
