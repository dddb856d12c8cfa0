"""The backtest's progress bar on stderr, drawn by rich: simulated time done, events per second
and the time left.

It is drawn only while stderr is a terminal, and cleared when the run ends; every run then leaves
one summary line (events, seconds, rate), also in a log or a captured output, where nothing else
is drawn.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Final, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ballast.engine.app.backtest import BacktestRun
from ballast.engine.kernel.timefmt import ns_to_iso

STEPS: Final = 1000
"""The bar moves at each 1/STEPS of simulated time (not at every event: that is the hot loop)."""


class EventRate(ProgressColumn):
    """Market events replayed per second of wall time."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        if not elapsed:
            return Text("")
        events: int = task.fields.get("events", 0)
        return Text(f"{events / elapsed:,.0f} events/s", style="progress.data.speed")


class BacktestProgress:
    """Progress of one backtest run: call it with (events so far, ``ts_event`` of the last one)
    inside ``with``; :meth:`done` prints the summary line. ``console`` defaults to stderr, drawn
    only when that is a terminal."""

    def __init__(
        self, name: str, first_ns: int, last_ns: int, *, console: Console | None = None
    ) -> None:
        self.name = name
        self.first = first_ns
        self.span = max(1, last_ns - first_ns)
        self.console = console or Console(stderr=True, force_terminal=sys.stderr.isatty())
        self.live = self.console.is_terminal
        self._step = -1
        self._bar = Progress(
            TextColumn("{task.description:<20}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[day]}"),
            EventRate(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._bar.add_task(name, total=self.span, day="", events=0)

    def __enter__(self) -> Self:
        if self.live:
            self._bar.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self._bar.stop()  # its last frame is cleared (transient)

    def __call__(self, events: int, ts_ns: int) -> None:
        step = min(STEPS, (ts_ns - self.first) * STEPS // self.span)
        if step == self._step or not self.live:
            return
        self._step = step
        day = ns_to_iso(ts_ns)[:10]
        self._bar.update(self._task, completed=ts_ns - self.first, day=day, events=events)

    def done(self, run: BacktestRun) -> None:
        line = (
            f"{self.name:<20} done: {run.events:,} events in {run.seconds:.1f} s "
            f"({run.events_per_s:,.0f}/s)"
        )
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
