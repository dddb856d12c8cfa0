"""The event loop every command runs on: uvloop where it is installed (a dependency everywhere but
Windows; its loop as :mod:`ballast.engine.app.uv_loop` amends it), else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``asyncio.Runner``'s ``loop_factory``: uvloop's, or None for asyncio's default."""
    try:
        from ballast.engine.app.uv_loop import new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return None
    return new_event_loop
