"""Process metrics of a served engine: memory, file descriptors and asyncio tasks.

:func:`register_process_metrics` adds to a registry prometheus-client's process collector
(``process_resident_memory_bytes``, ``process_open_fds``, ``process_cpu_seconds_total``, ... on
Linux, from ``/proc/self``) and ``ballast_asyncio_tasks``: the tasks of the event loop that
scrapes (every task not yet done), the figure a soak watches for leaked tasks. Only a served
engine (``[metrics] enabled``) has them: they describe the process, not the portfolio, and a
backtest's exposition file stays the same from run to run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


def running_tasks() -> int | None:
    """Tasks not yet done on the running event loop; None outside one."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return None


class TaskCollector(Collector):
    """``ballast_asyncio_tasks`` at scrape time (nothing when scraped outside an event loop)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = running_tasks()
        if tasks is None:
            return
        yield GaugeMetricFamily(
            "ballast_asyncio_tasks",
            "asyncio tasks of the engine's event loop not yet done (tasks)",
            value=tasks,
        )


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Add the process collector and :class:`TaskCollector` to ``registry``."""
    ProcessCollector(registry=registry)
    registry.register(TaskCollector())
