"""Calendar windows: known high-risk periods (``risk.calendar``) in which the regime is stressed.

Parsed here, in the kernel, because both the configuration (which refuses a bad window at load) and
the risk actor's regime classifier (:mod:`ballast.engine.trading.regime`) read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ballast.engine.kernel.timefmt import parse_time


@dataclass(frozen=True)
class CalendarWindow:
    """A known high-risk window [start, end) in epoch nanoseconds."""

    start_ns: int
    end_ns: int
    label: str

    def contains(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns


def parse_calendar(windows: Iterable[str]) -> tuple[CalendarWindow, ...]:
    """Parse ``"START/END"`` ISO 8601 UTC windows (as in ``risk.calendar``)."""
    out: list[CalendarWindow] = []
    for text in windows:
        start, _, end = text.partition("/")
        window = CalendarWindow(parse_time(start.strip()), parse_time(end.strip()), text)
        if window.end_ns <= window.start_ns:
            raise ValueError(f"calendar window {text!r} ends before it starts")
        out.append(window)
    return tuple(out)
