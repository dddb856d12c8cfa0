"""Argument types shared by the commands' options."""

from __future__ import annotations

import argparse

from ballast.engine.kernel.bar_interval import BAR_INTERVAL_FORMS, parse_bar_interval
from ballast.engine.kernel.timefmt import parse_time


def time_option(text: str) -> int:
    """The type of every option that takes a time: epoch ns by the engine's one rule
    (:func:`ballast.engine.kernel.timefmt.parse_time`). Bad text is a usage error naming the
    option (exit 2)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bar_interval_option(text: str) -> int:
    """The type of every ``--bar-interval`` option: seconds, by the rule of ``[paper]
    bar_interval`` (:func:`ballast.engine.kernel.bar_interval.parse_bar_interval`). Bad text is a
    usage error naming the option (exit 2)."""
    try:
        return parse_bar_interval(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


BAR_INTERVAL_HELP = (
    f"bar interval, {BAR_INTERVAL_FORMS} (default: [paper] bar_interval, else detected from the "
    "data: the median spacing of its times)"
)
