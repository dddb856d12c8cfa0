"""The variants of a grid: every point of it, or a seeded random sample of its points.

A variant's id is its place in the full grid (``v0001`` is the first value of every axis, the
last axis varying fastest), so the same point has the same id in a grid and a random search, and
its position on each axis tells its neighbours (one step along one axis)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ballast.engine.app.sweep.grid import GridSpec


@dataclass(frozen=True)
class Variant:
    id: str
    position: tuple[int, ...]
    """The index of its value on each axis of the grid."""
    params: tuple[tuple[str, Any], ...]
    """(dotted key, value) per axis."""

    def describe(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.params)

    def neighbour_of(self, other: Variant) -> bool:
        """One step apart along exactly one axis."""
        steps = [abs(a - b) for a, b in zip(self.position, other.position, strict=True)]
        return sorted(steps)[-1:] == [1] and sum(steps) == 1


def size(spec: GridSpec) -> int:
    return math.prod(len(axis.values) for axis in spec.axes)


def variants(spec: GridSpec) -> list[Variant]:
    """Every grid point in order, or ``[random] samples`` of them (seeded, in grid order)."""
    total = size(spec)
    if spec.random is None or spec.random.samples >= total:
        indices: Iterator[int] | list[int] = iter(range(total))
    else:
        indices = sorted(random.Random(spec.random.seed).sample(range(total), spec.random.samples))
    width = max(4, len(str(total)))
    return [_variant(spec, flat, width) for flat in indices]


def _variant(spec: GridSpec, flat: int, width: int) -> Variant:
    position: list[int] = []
    rest = flat
    for axis in reversed(spec.axes):
        rest, index = divmod(rest, len(axis.values))
        position.append(index)
    position.reverse()
    params = tuple((axis.key, axis.values[i]) for axis, i in zip(spec.axes, position, strict=True))
    return Variant(f"v{flat + 1:0{width}d}", tuple(position), params)
