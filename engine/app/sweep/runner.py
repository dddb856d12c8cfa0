"""A sweep from start to end: validate every variant, load the market once, run the tasks that
have no result yet (:mod:`.store`) on the chosen executor, then choose and judge per
walk-forward window, and write the results."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ballast.adapters.data.bundle import MarketSeries, TimeLike
from ballast.engine.app.backtest import market_bundle, market_series
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.sweep.configs import base_document, variant_configs
from ballast.engine.app.sweep.executors import Executor, InProcess, LocalPool, RayCluster
from ballast.engine.app.sweep.grid import GridSpec, load_grid
from ballast.engine.app.sweep.store import ResultStore, code_version, data_fingerprint, task_key
from ballast.engine.app.sweep.table import WindowChoice, rank
from ballast.engine.app.sweep.task import Record, Task
from ballast.engine.app.sweep.variants import Variant, variants
from ballast.engine.app.sweep.windows import Window, windows
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import Config, config_to_json
from ballast.engine.kernel.errors import ConfigError

Progress = Callable[[str, int], AbstractContextManager[Callable[[Record], None]]]
"""``progress(title, total)``: a context giving the callback of each finished task."""


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base config, the grid, its variants and their configs."""

    base: Config
    spec: GridSpec
    variants: list[Variant]
    configs: dict[str, Config]

    @property
    def by_id(self) -> dict[str, Variant]:
        return {v.id: v for v in self.variants}


def prepare(config_path: str | os.PathLike[str], grid_path: str | os.PathLike[str]) -> Sweep:
    """Every check before anything runs: the config file, the grid file, every variant's
    config (a :class:`~ballast.engine.kernel.errors.ConfigError` naming the key and variant)."""
    base = load_checked_config(config_path)
    spec = load_grid(grid_path)
    chosen = variants(spec)
    configs = variant_configs(base_document(config_path), base, chosen, source=spec.source)
    return Sweep(base, spec, chosen, configs)


@dataclass(frozen=True)
class Options:
    out: Path
    data: Path
    start: TimeLike | None = None
    end: TimeLike | None = None
    interval_s: int | None = None
    workers: int = 1
    ray: str | None = None
    keep_journals: bool = False
    metric: str = "sharpe"


@dataclass
class Outcome:
    records: list[Record] = field(default_factory=list)
    """Every record of this sweep (full-range runs, or walk-forward train and test runs)."""
    choices: list[WindowChoice] = field(default_factory=list)
    reused: int = 0
    ran: int = 0


def executor_for(series: MarketSeries, options: Options) -> Executor:
    if options.ray is not None:
        return RayCluster(series, options.ray)
    if options.workers <= 1:
        return InProcess(series)
    return LocalPool(series, options.workers)


class Runner:
    def __init__(
        self,
        sweep: Sweep,
        options: Options,
        *,
        progress: Progress,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sweep = sweep
        self.options = options
        self.progress = progress
        self.say = say
        self.series = market_series(sweep.base, options.data, interval_s=options.interval_s)
        self.store = ResultStore(options.out)
        self.data = data_fingerprint(self.series)
        self.code = code_version()
        shipped = self.series.between(options.start, options.end)  # what the tasks may need
        self.executor = executor_for(shipped, options)
        self.outcome = Outcome()

    def span(self) -> tuple[int, int, int]:
        """(first bar close, last bar close, bar interval ns) of the sweep's date range."""
        bundle = market_bundle(
            self.sweep.base, self.series, start=self.options.start, end=self.options.end
        )
        first, last = bundle.span()
        return first, last, bundle.interval_s * NS_PER_SECOND

    def run(self) -> Outcome:
        wf = self.sweep.spec.walk_forward
        if wf is None:
            tasks = [
                self._task(v, "full", -1, self.options.start, self.options.end)
                for v in self.sweep.variants
            ]
            self.outcome.records = self._execute("variants", tasks)
            return self.outcome
        first, last, interval = self.span()
        made = windows(first, last + interval, wf)
        if not made:
            raise ConfigError(
                "walk_forward",
                "the data range holds no whole train + test window",
                source=self.sweep.spec.source,
            )
        train = [
            self._task(v, "train", w.index, *w.train) for w in made for v in self.sweep.variants
        ]
        trained = self._execute("train windows", train)
        chosen = [self._choose(w, trained) for w in made]
        test = [
            self._task(self.sweep.by_id[record.variant], "test", w.index, *w.test)
            for w, record in zip(made, chosen, strict=True)
        ]
        tested = {r.window: r for r in self._execute("test windows", test)}
        self.outcome.records = trained + list(tested.values())
        self.outcome.choices = [
            WindowChoice(w.index, w.train, w.test, r.variant, r, tested.get(w.index))
            for w, r in zip(made, chosen, strict=True)
        ]
        return self.outcome

    def _choose(self, window: Window, trained: Sequence[Record]) -> Record:
        return rank([r for r in trained if r.window == window.index], self.options.metric)[0]

    def _task(
        self,
        variant: Variant,
        phase: str,
        window: int,
        start: TimeLike | None,
        end: TimeLike | None,
    ) -> Task:
        config_json = config_to_json(self.sweep.configs[variant.id])
        lo, hi = _ns(start), _ns(end)
        keep = self.options.keep_journals
        key = task_key(config_json, lo, hi, data=self.data, code=self.code, journal=keep)
        suffix = "" if phase == "full" else f".{phase}{window}"
        journal = self.options.out / "journals" / f"{variant.id}{suffix}.db" if keep else None
        return Task(key, variant.id, phase, window, lo, hi, config_json, str(journal or ""))

    def _execute(self, title: str, tasks: Sequence[Task]) -> list[Record]:
        """The record of every task: stored ones reused, the others run (and stored)."""
        found: dict[int, Record] = {}
        missing: list[Task] = []
        slots: dict[str, list[int]] = {}
        for index, task in enumerate(tasks):
            record = self.store.get(task.key)
            if record is not None and (not task.journal or Path(task.journal).exists()):
                found[index] = _as_task(record, task)
            else:
                if task.key not in slots:
                    missing.append(task)
                slots.setdefault(task.key, []).append(index)
        self.say(
            f"{title}: {len(tasks)}, {len(found)} from earlier results in {self.store.folder}, "
            f"{len(missing)} to run on {self.executor.name}"
        )
        if missing and self.options.keep_journals:
            (self.options.out / "journals").mkdir(parents=True, exist_ok=True)
        with self.progress(title, len(missing)) as advance:

            def done(record: Record) -> None:
                self.store.put(record)
                for index in slots[record.key]:
                    found[index] = _as_task(record, tasks[index])
                advance(record)

            self.executor.run(missing, done)
        self.outcome.reused += len(tasks) - len(missing)
        self.outcome.ran += len(missing)
        return [found[index] for index in range(len(tasks))]


def _as_task(record: Record, task: Task) -> Record:
    """A stored record as the result of ``task`` (the same config may be another variant's, or
    the same variant under another id in a grid that grew)."""
    return msgspec.structs.replace(
        record, variant=task.variant, phase=task.phase, window=task.window, journal=task.journal
    )


def _ns(moment: TimeLike | None) -> int | None:
    from ballast.adapters.data.bundle import to_ns

    return None if moment is None else to_ns(moment)
