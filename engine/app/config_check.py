"""The one validation path of a config file: everything ``plan``, ``backtest`` and ``run`` would
reject at start, checked before anything else happens.

:func:`~ballast.engine.kernel.config.parse_config` checks what the file alone can tell (types,
unknown keys, ranges, sections against each other). :func:`check_startable` adds what only the
installed code can tell: that the strategy resolves and accepts its params (``[targets]`` included,
passed as its
``weights``), that the target set it asks for on an all-cash book names traded assets within the
leverage cap, and that every plug-in actor imports and builds. ``ballast config check`` and every
command that takes a config call :func:`load_checked_config`, so they accept and refuse the same
files with the same one-line message naming the key.
"""

from __future__ import annotations

import os
from typing import Any, Final

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import Config, load_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.strategy.api import Strategy

_WEIGHTS: Final = "strategy.params.weights"


def load_checked_config(path: str | os.PathLike[str]) -> Config:
    """:func:`~ballast.engine.kernel.config.load_config`, then :func:`check_startable`."""
    config = load_config(path)
    check_startable(config, source=str(path))
    return config


def check_startable(config: Config, *, source: str = "") -> None:
    """Raise the :class:`~ballast.engine.kernel.errors.ConfigError` the engine would raise while
    starting."""
    try:
        strategy = _build_strategy(config)
        _check_neutral_targets(config, strategy)
        _build_actors(config)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source=source) from None


def _build_strategy(config: Config) -> Strategy:
    from ballast.engine.strategy.registry import load_strategy, strategy_params

    try:
        return load_strategy(config.strategy.name, strategy_params(config))
    except ConfigError as exc:
        if config.strategy.params or not exc.key.startswith(_WEIGHTS):
            raise
        raise _as_targets_error(config, exc) from None


def _as_targets_error(config: Config, exc: ConfigError) -> ConfigError:
    """``[targets]`` reach the strategy as ``strategy.params.weights``: name the key the user
    wrote."""
    if exc.key == _WEIGHTS and exc.problem.startswith("unknown key"):
        return ConfigError(
            "targets",
            f"strategy.name {config.strategy.name!r} does not take target weights (its targets "
            "come from its own [strategy.params]); remove [targets] or choose a strategy that "
            "takes weights",
        )
    return ConfigError("targets" + exc.key.removeprefix(_WEIGHTS), exc.problem)


def _check_neutral_targets(config: Config, strategy: Strategy) -> None:
    """What the strategy asks for on an all-cash book, judged as the strategy guard would judge
    it at the first decision. A strategy that raises here (it may need market data) is left to
    the guard at run time."""
    from ballast.engine.app.dry_run import neutral_context
    from ballast.engine.strategy.guard import freeze_context, target_set_problem

    try:
        result: Any = strategy.targets(freeze_context(neutral_context()))
    except Exception:  # judged by the guard once market data exists
        return
    cap, traded = config.risk.max_gross_leverage, config.instruments.assets()
    problem = target_set_problem(result, cap, frozenset(traded))
    if problem is not None:
        key = "targets" if config.targets and not config.strategy.params else "strategy.params"
        raise ConfigError(
            key,
            f"strategy.name {config.strategy.name!r} would ask for an invalid target set: "
            f"{problem} (weights lie within ±risk.max_gross_leverage = {cap}, assets among the "
            f"instruments: {', '.join(sorted(traded))})",
        )


def _build_actors(config: Config) -> None:
    """Import and build the ``engine.actors`` on a bus of their own (never started)."""
    from ballast.engine.app.session import user_actors

    clock = SimulatedClock(0)
    user_actors(config, Bus(clock), clock)
