"""Walk-forward windows: a train window, then the test window right after it, rolled by a step
over the data. Windows are half-open ``[start, end)`` in bar close times, as every date range of
a backtest: a bar closing exactly at a train window's end is the first bar of its test window.
Only whole windows are made: the last test window ends at or before the data's end (the close
after its last bar)."""

from __future__ import annotations

from dataclasses import dataclass

from ballast.engine.app.sweep.grid import WalkForward


@dataclass(frozen=True)
class Window:
    index: int
    train: tuple[int, int]
    test: tuple[int, int]


def windows(first_ns: int, end_ns: int, spec: WalkForward) -> list[Window]:
    """The windows from ``first_ns`` (the first bar close) to ``end_ns`` (exclusive)."""
    made: list[Window] = []
    start = first_ns
    while start + spec.train_ns + spec.test_ns <= end_ns:
        split = start + spec.train_ns
        made.append(Window(len(made), (start, split), (split, split + spec.test_ns)))
        start += spec.step_ns
    return made
