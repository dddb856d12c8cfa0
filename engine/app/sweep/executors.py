"""Where a sweep's tasks run, behind one small interface (:class:`Executor`): in this process,
on a local process pool (the default: one worker per core), or on a Ray cluster.

The market series go to each place once: a pool worker gets them when it starts (its
initializer; the series are pickled once for all workers), Ray holds them once in the cluster's
object store (``ray.put``) and every task gets the reference (a Ray worker process reads it once
and keeps it for its next tasks); a task itself carries only its config (JSON) and date range."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ballast.adapters.data.bundle import MarketSeries
from ballast.engine.app.sweep.task import Record, Task, run_task

Done = Callable[[Record], None]


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        """Run every task, calling ``done`` with each record as it comes (in this process)."""


class InProcess:
    """One task after another, here (``--workers 1``)."""

    name = "this process"

    def __init__(self, series: MarketSeries) -> None:
        self.series = series

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        for task in tasks:
            done(run_task(self.series, task))


_SERIES: MarketSeries | None = None


def _init_worker(payload: bytes) -> None:
    global _SERIES
    _SERIES = pickle.loads(payload)


def _pool_task(task: Task) -> Record:
    assert _SERIES is not None, "a pool worker without its market series"
    return run_task(_SERIES, task)


class LocalPool:
    """A pool of ``workers`` processes (spawned: a clean interpreter each, on every platform)."""

    def __init__(self, series: MarketSeries, workers: int) -> None:
        self.series = series
        self.workers = workers
        self.name = f"{workers} local processes"

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        if not tasks:
            return
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            min(self.workers, len(tasks)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(pickle.dumps(self.series, protocol=pickle.HIGHEST_PROTOCOL),),
        ) as pool:
            futures = [pool.submit(_pool_task, task) for task in tasks]
            try:
                for future in concurrent.futures.as_completed(futures):
                    done(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


class RayCluster:
    """Tasks on a Ray cluster at ``address`` (``auto``: the one this machine belongs to;
    ``local``: a new one-machine cluster on 127.0.0.1). Needs ``pip install 'ballast[ray]'``."""

    def __init__(self, series: MarketSeries, address: str) -> None:
        self.series = series
        self.address = address
        self.name = f"Ray ({address})"

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        if not tasks:
            return
        import ray

        options: dict[str, Any] = {"address": self.address, "log_to_driver": False}
        if self.address == "local":
            options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
        started = not ray.is_initialized()
        if started:
            ray.init(**options)
        try:
            remote = ray.remote(_ray_task)
            series = ray.put(self.series)  # once, in the object store; tasks get the reference
            # in a list: Ray passes the reference itself, the worker reads it once (_ray_task)
            pending = [remote.remote([series], task) for task in tasks]
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                done(ray.get(ready[0]))
        finally:
            if started:
                ray.shutdown()


_RAY_SERIES: dict[str, MarketSeries] = {}


def _ray_task(reference: list[Any], task: Task) -> Record:
    """A Ray worker reads the series from the object store once (Ray reuses its worker
    processes), not once per task."""
    import ray

    key = reference[0].hex()
    series = _RAY_SERIES.get(key)
    if series is None:
        _RAY_SERIES.clear()
        series = _RAY_SERIES[key] = ray.get(reference[0])
    return run_task(series, task)


def ray_missing() -> str | None:
    """Why Ray cannot be used here (None: it can)."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        return f"Ray is not installed ({exc}): pip install 'ballast[ray]'"
    return None
