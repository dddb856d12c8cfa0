"""The grid file of ``ballast sweep``: which config keys vary, over which values, and how.

.. code-block:: toml

    [grid]                                   # dotted config keys, each a list or a range
    "bands.abs_pp" = [3, 5, 8]
    "execution.mode" = ["spot", "auto"]
    "risk.drawdown_limit" = { start = 0.3, stop = 0.5, step = 0.1 }   # stop included

    [random]                                 # optional: a seeded sample of the grid
    samples = 20
    seed = 1

    [walk_forward]                           # optional: rolled train/test windows
    train = "90d"                            # h, d or w
    test = "30d"
    step = "30d"                             # default: test

Numbers are read exactly (``parse_float=Decimal``), as the config file's. A bad grid file raises
:class:`~ballast.engine.kernel.errors.ConfigError` naming the key (exit 2).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.errors import ConfigError

_RANGE_KEYS: Final = frozenset({"start", "stop", "step"})
_UNITS: Final = {"h": 3600, "d": 86_400, "w": 7 * 86_400}
MAX_RANGE: Final = 10_000
"""The most values one range may expand to (a typo in ``step`` must not expand to millions)."""


@dataclass(frozen=True)
class Axis:
    """One varied config key (dotted path) and its values, in the order written."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class RandomSearch:
    samples: int
    seed: int


@dataclass(frozen=True)
class WalkForward:
    train_ns: int
    test_ns: int
    step_ns: int


@dataclass(frozen=True)
class GridSpec:
    axes: tuple[Axis, ...]
    random: RandomSearch | None = None
    walk_forward: WalkForward | None = None
    source: str = ""


def load_grid(path: str | os.PathLike[str]) -> GridSpec:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read grid file: {exc.strerror}", source=str(file)) from None
    except UnicodeDecodeError:
        raise ConfigError("", "invalid TOML: not UTF-8 text", source=str(file)) from None
    return parse_grid(text, source=str(file))


def parse_grid(text: str, *, source: str = "<grid>") -> GridSpec:
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"invalid TOML: {exc}", source=source) from None
    unknown = sorted(set(document) - {"grid", "random", "walk_forward"})
    if unknown:
        raise ConfigError(unknown[0], "unknown section (grid, random, walk_forward)", source=source)
    grid = document.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid", "must be a table naming at least one config key", source=source)
    axes = tuple(_axes(grid, (), source))
    keys = [axis.key for axis in axes]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"grid.{twice[0]}", "named twice", source=source)
    return GridSpec(
        axes,
        _random(document.get("random"), source),
        _walk_forward(document.get("walk_forward"), source),
        source,
    )


def _axes(table: dict[str, Any], path: tuple[str, ...], source: str) -> list[Axis]:
    axes: list[Axis] = []
    for name, value in table.items():
        parts = (*path, *name.split("."))
        key = ".".join(parts)
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"grid.{key}", "the list of values is empty", source=source)
            axes.append(Axis(key, tuple(value)))
        elif isinstance(value, dict) and set(value) == _RANGE_KEYS:
            axes.append(Axis(key, _expand(value, f"grid.{key}", source)))
        elif isinstance(value, dict) and value and not set(value) & _RANGE_KEYS:
            axes.extend(_axes(value, parts, source))
        else:
            raise ConfigError(
                f"grid.{key}",
                "must be a list of values or a range { start = ..., stop = ..., step = ... }, "
                f"got {value!r}",
                source=source,
            )
    return axes


def _expand(spec: dict[str, Any], key: str, source: str) -> tuple[Any, ...]:
    """start, start + step, ... up to stop included (exact decimal steps)."""
    bounds = [spec["start"], spec["stop"], spec["step"]]
    if not all(isinstance(b, int | Decimal) and not isinstance(b, bool) for b in bounds):
        raise ConfigError(key, "start, stop and step must be numbers", source=source)
    start, stop, step = (Decimal(b) for b in bounds)
    if not step > 0 or not start <= stop:
        raise ConfigError(key, f"needs step > 0 and start <= stop, got {spec}", source=source)
    count = int((stop - start) / step) + 1
    if count > MAX_RANGE:
        raise ConfigError(key, f"expands to {count} values (at most {MAX_RANGE})", source=source)
    as_int = all(isinstance(b, int) for b in bounds)
    values = [start + i * step for i in range(count)]
    return tuple(int(v) for v in values) if as_int else tuple(values)


def _random(section: Any, source: str) -> RandomSearch | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError("random", "must be a table (samples, seed)", source=source)
    _no_other_keys(section, "random", {"samples", "seed"}, source)
    samples, seed = section.get("samples"), section.get("seed", 0)
    for name, value, low in (("samples", samples, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"random.{name}", f"must be an integer >= {low}", source=source)
    assert isinstance(samples, int)
    assert isinstance(seed, int)
    return RandomSearch(samples, seed)


def _walk_forward(section: Any, source: str) -> WalkForward | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError("walk_forward", "must be a table (train, test, step)", source=source)
    _no_other_keys(section, "walk_forward", {"train", "test", "step"}, source)
    for name in ("train", "test"):
        if name not in section:
            raise ConfigError(f"walk_forward.{name}", "is required", source=source)
    train = parse_duration(section["train"], "walk_forward.train", source)
    test = parse_duration(section["test"], "walk_forward.test", source)
    step = parse_duration(section.get("step", section["test"]), "walk_forward.step", source)
    return WalkForward(train, test, step)


_DURATION: Final = re.compile(r"(?P<n>[1-9][0-9]*)(?P<unit>[hdw])")


def parse_duration(value: Any, key: str, source: str = "") -> int:
    """``"90d"``, ``"12h"``, ``"2w"`` → nanoseconds."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            key, f"must be a duration such as '90d', '12h' or '2w', got {value!r}", source=source
        )
    return int(match["n"]) * _UNITS[match["unit"]] * NS_PER_SECOND


def _no_other_keys(section: dict[str, Any], name: str, known: set[str], source: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"{name}.{unknown[0]}", f"unknown key ({', '.join(sorted(known))})", source=source
        )
