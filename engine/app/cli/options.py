"""Argument types shared by the commands' options."""

from __future__ import annotations

import argparse

from ballast.engine.kernel.timefmt import parse_time


def time_option(text: str) -> int:
    """The type of every option that takes a time: epoch ns by the engine's one rule
    (:func:`ballast.engine.kernel.timefmt.parse_time`). Bad text is a usage error naming the
    option (exit 2)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
