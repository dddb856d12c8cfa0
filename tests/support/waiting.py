"""Wait for a condition instead of sleeping a guessed amount."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(
    condition: Callable[[], bool], *, within_s: float = 5.0, what: str = ""
) -> None:
    """Poll ``condition`` on the event loop until it holds; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s: {what or condition}")
        await asyncio.sleep(0.001)
