"""Finding a strategy by the name in ``[strategy] name`` and building it with its params.

``name`` is either ``module:Class`` (imported directly) or a name registered in the
``ballast.strategies`` entry-point group. The built-in presets are registered there by Ballast's
own ``pyproject.toml``; a plug-in package registers its strategies the same way::

    [project.entry-points."ballast.strategies"]
    my_strategy = "my_package.module:MyStrategy"

Every problem is a :class:`~ballast.engine.kernel.errors.ConfigError`: ``strategy.name`` when the
strategy cannot be found or is not a :class:`~ballast.engine.strategy.api.Strategy`,
``strategy.params.<key>`` when its parameters are wrong (built-ins validate them with
:func:`ballast.engine.strategy.api.parse_params`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Final

from ballast.engine.kernel.config import Config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.plugins import entry_point_names, load_entry_point, load_object
from ballast.engine.kernel.redaction import redact
from ballast.engine.strategy.api import Strategy

GROUP: Final = "ballast.strategies"
_NAME_KEY: Final = "strategy.name"
_PARAMS_KEY: Final = "strategy.params"


def known_strategies() -> list[str]:
    """Names of the installed strategies (built-ins and plug-ins), sorted."""
    return sorted(entry_point_names(GROUP))


def load_strategy(name_or_spec: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Build the strategy named ``name_or_spec`` with ``params`` (``[strategy.params]``)."""
    cls = strategy_class(name_or_spec)
    try:
        return cls(params)
    except ConfigError:
        raise
    except Exception as exc:  # a plug-in's constructor judged its params
        problem = f"strategy {name_or_spec!r} rejected its params: {type(exc).__name__}: {exc}"
        raise ConfigError(_PARAMS_KEY, redact(problem)) from None


def strategy_params(config: Config) -> dict[str, Any]:
    """The params the strategy is built with: ``[strategy.params]``, or when that is empty the
    ``[targets]`` as ``weights``."""
    params: dict[str, Any] = dict(config.strategy.params)
    if not params and config.targets:
        params["weights"] = dict(config.targets)
    return params


def strategy_class(name_or_spec: str) -> type[Strategy]:
    """The Strategy subclass behind a ``module:Class`` spec or an entry-point name."""
    if ":" in name_or_spec:
        obj = load_object(name_or_spec, key=_NAME_KEY)
    else:
        _require_known(name_or_spec)
        obj = load_entry_point(GROUP, name_or_spec, key=_NAME_KEY)
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise ConfigError(
            _NAME_KEY,
            f"{name_or_spec!r} is {obj!r}, not a subclass of ballast.engine.strategy.api.Strategy",
        )
    if inspect.isabstract(obj):
        raise ConfigError(_NAME_KEY, f"{name_or_spec!r} is abstract: it does not define targets()")
    return obj


def _require_known(name: str) -> None:
    known = known_strategies()
    if name not in known:
        listed = ", ".join(known) or "none installed"
        raise ConfigError(
            _NAME_KEY,
            f"unknown strategy {name!r}; known: {listed} (or name your own as 'module:Class')",
        )
