"""The sweep's progress bar on stderr, drawn by rich: tasks done, their rate and the time left
(drawn only while stderr is a terminal; a summary line is always printed at the end)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ballast.engine.app.sweep.task import Record


@contextlib.contextmanager
def sweep_progress(title: str, total: int) -> Iterator[Callable[[Record], None]]:
    console = Console(stderr=True, force_terminal=sys.stderr.isatty())
    bar = Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(title, total=total)
    started = time.perf_counter()
    done = 0

    def advance(record: Record) -> None:
        nonlocal done
        done += 1
        bar.advance(task)

    if console.is_terminal and total:
        bar.start()
    try:
        yield advance
    finally:
        bar.stop()
    if total:
        seconds = time.perf_counter() - started
        rate = done / seconds * 60 if seconds > 0 else 0.0
        console.print(
            f"{title}: {done} run in {seconds:.1f} s ({rate:.1f}/min)",
            markup=False,
            highlight=False,
        )
