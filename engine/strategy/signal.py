"""Building blocks for strategy signals: a warm-up, hysteresis and a minimum holding period.

A position driven by a signal must not be opened before the signal has seen its whole lookback
(**warm-up**), must not flip every time the signal crosses one level (**hysteresis**: a state is
entered at one level and left at another) and must not be left before it has been held a minimum
time (**minimum hold**). Each piece describes itself in words, so a preset can state its
parameters in the decision's reason.

- :class:`TrailingReturn`: the return of each asset over a lookback, ``None`` until the lookback
  is filled (:attr:`Reading.warmup`).
- :class:`Levels`: three states (``up``, ``flat``, ``down``) from a value, with different levels
  to enter and to leave each of ``up`` and ``down``.
- :class:`TrailingMean`: the mean of each key's value over a window (e.g. funding rates), ``None``
  until the window is filled.
- :class:`Latch`: a state per key that changes at most once per minimum holding period.

All of them are deterministic functions of the sequence of values they are shown.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Final, Literal

import msgspec

from ballast.engine.kernel.clock import NS_PER_HOUR

State = Literal["up", "flat", "down"]
_ONE: Final = Decimal(1)


def hours(ns: int) -> str:
    """``ns`` as whole hours (floored), for reasons: ``12 h``."""
    return f"{ns // NS_PER_HOUR} h"


# ------------------------------------------------------------------------------ warm-up


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """A signal's value, or ``None`` while it warms up, and how much history it has."""

    value: Decimal | None
    seen_ns: int
    lookback_ns: int

    @property
    def warm(self) -> bool:
        return self.value is not None

    @property
    def warmup(self) -> str:
        """``warming up: 12 of 168 h``."""
        seen = min(self.seen_ns, self.lookback_ns)
        return f"warming up: {seen // NS_PER_HOUR} of {hours(self.lookback_ns)}"


class TrailingReturn:
    """Return of each asset over ``lookback_ns``, from the prices it is shown.

    Remembers at most one price per ``sample_ns`` and only as far back as the window needs. Until
    a price at least ``lookback_ns`` old is remembered the reading has no value (warm-up).
    """

    def __init__(self, lookback_ns: int, sample_ns: int) -> None:
        if not 0 < sample_ns <= lookback_ns:
            raise ValueError(f"sample_ns must be in (0, lookback_ns], got {sample_ns}")
        self.lookback_ns = lookback_ns
        self.sample_ns = sample_ns
        self._samples: dict[str, deque[tuple[int, Decimal]]] = {}

    def update(self, key: str, ts_ns: int, price: Decimal) -> Reading:
        """Record ``price`` at ``ts_ns`` and read the return since ``lookback`` ago."""
        samples = self._samples.setdefault(key, deque())
        if not samples or ts_ns - samples[-1][0] >= self.sample_ns:
            samples.append((ts_ns, price))
        cutoff = ts_ns - self.lookback_ns
        while len(samples) > 1 and samples[1][0] <= cutoff:
            samples.popleft()
        first_ts, first_price = samples[0]
        seen = max(0, ts_ns - first_ts)
        if first_ts > cutoff or first_price <= 0:
            return Reading(value=None, seen_ns=seen, lookback_ns=self.lookback_ns)
        return Reading(value=price / first_price - _ONE, seen_ns=seen, lookback_ns=self.lookback_ns)


class TrailingMean:
    """Mean of each key's value over the last ``window_ns``, one sample per ``sample_ns``.

    Until a sample at least ``window_ns`` old is remembered the reading has no value (warm-up).
    A window of 0 reads the latest value alone (no warm-up).
    """

    def __init__(self, window_ns: int, sample_ns: int) -> None:
        if window_ns < 0 or sample_ns <= 0:
            raise ValueError(f"bad window {window_ns} or sample {sample_ns}")
        self.window_ns = window_ns
        self.sample_ns = sample_ns
        self._samples: dict[str, deque[tuple[int, Decimal]]] = {}

    def update(self, key: str, ts_ns: int, value: Decimal) -> Reading:
        """Record ``value`` at ``ts_ns`` (if a sample is due) and read the window's mean."""
        if self.window_ns == 0:
            return Reading(value=value, seen_ns=0, lookback_ns=0)
        samples = self._samples.setdefault(key, deque())
        if not samples or ts_ns - samples[-1][0] >= self.sample_ns:
            samples.append((ts_ns, value))
        cutoff = ts_ns - self.window_ns
        while len(samples) > 1 and samples[1][0] <= cutoff:
            samples.popleft()
        seen = max(0, ts_ns - samples[0][0])
        if samples[0][0] > cutoff:
            return Reading(value=None, seen_ns=seen, lookback_ns=self.window_ns)
        inside = [v for t, v in samples if t > cutoff] or [samples[-1][1]]
        mean = sum(inside, Decimal(0)) / len(inside)
        return Reading(value=mean, seen_ns=seen, lookback_ns=self.window_ns)


# ------------------------------------------------------------------------------ hysteresis


class Levels(msgspec.Struct, frozen=True, kw_only=True):
    """Hysteresis between three states of a value.

    ``up`` is entered at ``value >= up_enter`` and left when ``value < up_exit``; ``down`` is
    entered at ``value <= down_enter`` and left when ``value > down_exit``; ``flat`` in between.
    ``down_enter <= down_exit`` and ``up_exit <= up_enter``: the gaps are the hysteresis.
    """

    up_enter: Decimal
    up_exit: Decimal
    down_enter: Decimal
    down_exit: Decimal

    def __post_init__(self) -> None:
        if not (self.down_enter <= self.down_exit and self.up_exit <= self.up_enter):
            raise ValueError("levels: each state must be left at or inside its entry level")
        if self.down_enter >= self.up_enter:
            raise ValueError("levels: down must be entered below up")

    def next(self, current: State, value: Decimal) -> State:
        """The state ``value`` asks for, coming from ``current``."""
        if value >= self.up_enter:
            return "up"
        if value <= self.down_enter:
            return "down"
        if current == "up" and value >= self.up_exit:
            return "up"
        if current == "down" and value <= self.down_exit:
            return "down"
        return "flat"

    def describe(self, unit: str = "%") -> str:
        """``up at >= +5.00 % until < +0.00 %, down at <= -5.00 % until > +0.00 %``."""

        def show(level: Decimal) -> str:
            return f"{level:+.2%}" if unit == "%" else f"{level:+}"

        return (
            f"up at >= {show(self.up_enter)} until < {show(self.up_exit)}, "
            f"down at <= {show(self.down_enter)} until > {show(self.down_exit)}"
        )


# ------------------------------------------------------------------------------ minimum hold


class Held(msgspec.Struct, frozen=True, kw_only=True):
    """Where a :class:`Latch` stands after a step."""

    state: str
    held_ns: int | None  # time in ``state`` so far (None: the initial state, never entered)
    min_hold_ns: int
    wanted: str  # what was asked; differs from ``state`` while the minimum hold blocks it
    changed: bool  # the state changed at this step

    @property
    def blocked(self) -> bool:
        return self.wanted != self.state

    @property
    def hold(self) -> str:
        """``held 12 h of min 72 h`` (``min hold 72 h`` once it is met)."""
        if self.held_ns is None or self.held_ns >= self.min_hold_ns:
            return f"min hold {hours(self.min_hold_ns)}"
        return f"held {hours(self.held_ns)} of min {hours(self.min_hold_ns)}"


class Latch:
    """A state per key that changes at most once per ``min_hold_ns``.

    Every key starts in ``initial``, which may be left at once (it was never chosen); a state
    entered by a change is kept for at least ``min_hold_ns`` whatever is asked meanwhile. With
    ``held``, only those states are kept (e.g. a hedge is held, but entering one is never
    delayed); the others may be left at once.
    """

    def __init__(
        self, initial: str, min_hold_ns: int, *, held: frozenset[str] | None = None
    ) -> None:
        if min_hold_ns < 0:
            raise ValueError(f"min_hold_ns must be >= 0, got {min_hold_ns}")
        self.initial = initial
        self.min_hold_ns = min_hold_ns
        self.held = held
        self._state: dict[str, tuple[str, int | None]] = {}  # key → (state, entered at)

    def state(self, key: str) -> str:
        return self._state.get(key, (self.initial, None))[0]

    def step(self, key: str, ts_ns: int, wanted: str) -> Held:
        """Ask for ``wanted`` at ``ts_ns``: granted unless the current state is still held."""
        state, since = self._state.get(key, (self.initial, None))
        held = None if since is None else max(0, ts_ns - since)
        if self.held is not None and state not in self.held:
            held = None  # a state that is not held may be left at once
        if wanted == state or (held is not None and held < self.min_hold_ns):
            return Held(
                state=state,
                held_ns=held,
                min_hold_ns=self.min_hold_ns,
                wanted=wanted,
                changed=False,
            )
        self._state[key] = (wanted, ts_ns)
        return Held(
            state=wanted, held_ns=0, min_hold_ns=self.min_hold_ns, wanted=wanted, changed=True
        )
