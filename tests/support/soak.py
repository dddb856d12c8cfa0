"""What a soak samples of a running engine, and how it turns samples into growth figures.

:func:`sample` reads one :class:`Sample` of a ``ballast run`` subprocess: its resident memory
(``VmRSS`` of ``/proc/PID/status``, the process's own), its open file descriptors (the entries of
``/proc/PID/fd``) and its asyncio tasks (``ballast_asyncio_tasks`` of its ``/metrics``), with
the market's data time and steps at that moment.

:func:`growth_pct` is the growth of one series after warm-up: the samples of the first
``warmup`` share of the run are left out; the rest is cut in a head and a tail (each a
``window`` share of what is left); growth is the tail's level over the head's level, in percent
(0 when it shrank). The level is the median by default, so a garbage collection at one sample
does not make a trend; for small counts that come and go (asyncio tasks of orders being sent,
REST connections) it is the floor (``level=min``): what leaks stays, and raises the floor.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.support.live_exchange import Engine

_TASKS = re.compile(r"^ballast_asyncio_tasks (?P<value>\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_kib: int
    fds: int
    tasks: int
    steps: int


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (kiB, ``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def tasks_of(engine: Engine) -> int:
    """``ballast_asyncio_tasks`` from the engine's ``/metrics``."""
    response = await engine.get("/metrics")
    assert response.status == 200, response.text
    found = _TASKS.search(response.text)
    assert found is not None, "no ballast_asyncio_tasks in /metrics"
    return int(float(found["value"]))


async def sample(engine: Engine, at_s: float, steps: int) -> Sample:
    pid = engine.proc.pid
    tasks = await tasks_of(engine)
    return Sample(at_s, rss_kib(pid), open_fds(pid), tasks, steps)


def growth_pct(
    values: Sequence[float],
    *,
    warmup: float = 0.3,
    window: float = 0.25,
    level: Callable[[list[float]], float] = statistics.median,
) -> float:
    """Growth after warm-up of ``values`` in percent (module docstring)."""
    rest = list(values[int(len(values) * warmup) :])
    n = max(1, int(len(rest) * window))
    assert len(rest) >= 2 * n, f"too few samples for a growth figure: {len(values)}"
    head, tail = level(rest[:n]), level(rest[-n:])
    assert head > 0, f"no baseline: {rest[:n]}"
    return max(0.0, (tail - head) / head * 100)
