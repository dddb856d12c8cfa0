"""Market regime: realised volatility on a fixed time grid, calendar windows, and a classifier.

Volatility. :class:`VolatilityEstimator` samples one price per grid point (default hourly, grid
aligned to the Unix epoch): the last price observed at or before that point. Each new sample adds
the squared log return since the previous sample to an exponentially weighted moving average whose
weight halves every ``half_life_h`` hours. A gap of ``k`` grid points with no new price in between
contributes its total return once, spread evenly over the gap (variance ``r² / k`` with weight
``1 − λ**k``), never ``k`` zero returns. Annualised volatility = sqrt(variance × samples per
year), with 365 × 24 hourly samples a year (crypto trades every day). All arithmetic is
:class:`~decimal.Decimal` (correctly rounded ``ln`` and ``sqrt``), so replays on any machine
produce the same figures; published figures are rounded to 6 decimal places.

Regime. :class:`RegimeClassifier` maps volatility to ``calm`` (below ``calm_vol``), ``stressed``
(at or above ``stressed_vol``) or ``normal``, with hysteresis: it leaves ``stressed`` only once
volatility is below 0.9 × ``stressed_vol`` and leaves ``calm`` only once it is above 1.1 ×
``calm_vol``. Until the estimator has ``warmup`` samples the regime is ``normal``. Inside a
calendar window (a known high-risk event) the regime is ``stressed`` whatever the volatility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Final, NamedTuple

from ballast.engine.kernel.calendar_windows import CalendarWindow
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_YEAR
from ballast.engine.kernel.events import Regime

_CTX: Final = Context(prec=34)
_ZERO: Final = Decimal(0)
_HALF: Final = Decimal("0.5")
_PUBLISHED: Final = Decimal("0.000001")
DEFAULT_WARMUP: Final = 24
STRESSED_EXIT: Final = Decimal("0.9")
CALM_EXIT: Final = Decimal("1.1")


def decay_per_sample(half_life_h: float, interval_ns: int = NS_PER_HOUR) -> Decimal:
    """λ such that a sample's weight halves every ``half_life_h`` hours: 0.5 ** (Δt / half-life)."""
    exponent = _CTX.divide(Decimal(interval_ns), Decimal(str(half_life_h)) * NS_PER_HOUR)
    return _CTX.power(_HALF, exponent)


class VolatilityEstimator:
    """EWMA of squared log returns sampled on a fixed event-time grid (see the module docstring)."""

    def __init__(self, *, half_life_h: float, interval_ns: int = NS_PER_HOUR) -> None:
        if interval_ns <= 0 or half_life_h <= 0:
            raise ValueError("interval_ns and half_life_h must be positive")
        self.interval_ns = interval_ns
        self.decay = decay_per_sample(half_life_h, interval_ns)
        self.samples_per_year = Decimal(NS_PER_YEAR) / Decimal(interval_ns)
        self.samples = 0
        self.variance: Decimal | None = None
        self._annualised: tuple[Decimal, Decimal] | None = None
        """(the variance it was computed from, the published figure): risk reads it per bar."""
        self._last_price: Decimal | None = None
        self._last_ts: int | None = None
        self._sample_grid: int | None = None
        self._sample_price: Decimal | None = None

    def update(self, ts_ns: int, price: Decimal) -> bool:
        """Observe a price at ``ts_ns`` (non-decreasing). True when a new sample was taken."""
        if price <= 0 or (self._last_ts is not None and ts_ns < self._last_ts):
            return False
        grid = ts_ns - ts_ns % self.interval_ns
        at_grid: Decimal | None = price
        seen_at: int | None = ts_ns
        if ts_ns != grid:  # the price at the grid point is the one seen before this one
            at_grid, seen_at = self._last_price, self._last_ts
        self._last_price, self._last_ts = price, ts_ns
        if at_grid is None or seen_at is None:
            return False
        return self._sample(grid, at_grid, seen_at)

    def _sample(self, grid: int, price: Decimal, seen_at: int) -> bool:
        previous, previous_price = self._sample_grid, self._sample_price
        if previous is None or previous_price is None:
            self._sample_grid, self._sample_price = grid, price
            return False
        if grid <= previous or seen_at <= previous:
            return False  # same grid point, or no new price since the last sample: wait
        steps = (grid - previous) // self.interval_ns
        log_return = _CTX.ln(_CTX.divide(price, previous_price))
        self._add(_CTX.divide(log_return * log_return, Decimal(steps)), steps)
        self._sample_grid, self._sample_price = grid, price
        return True

    def _add(self, per_interval_variance: Decimal, steps: int) -> None:
        if self.variance is None:
            self.variance = per_interval_variance
        else:
            weight = _CTX.power(self.decay, steps)
            self.variance = weight * self.variance + (1 - weight) * per_interval_variance
        self.samples += 1

    @property
    def annualised(self) -> Decimal:
        """Annualised volatility as a fraction (0.65 = 65 %), rounded to 6 dp; 0 before data."""
        variance = self.variance
        if variance is None:
            return _ZERO
        cached = self._annualised
        if cached is not None and cached[0] is variance:
            return cached[1]
        value = _CTX.sqrt(variance * self.samples_per_year).quantize(_PUBLISHED)
        self._annualised = (variance, value)
        return value


@dataclass(frozen=True)
class RegimeReading:
    """A classification: the regime, the volatility it was based on, and why."""

    regime: Regime
    volatility: Decimal
    reason: str


_WARMUP: Final = -1
"""The rule of an assessment made before the warm-up ended."""


class RegimeAssessment(NamedTuple):
    """A classification before its reason is put in words (:meth:`RegimeClassifier.reading`)."""

    regime: Regime
    volatility: Decimal
    samples: int
    rule: int
    window: CalendarWindow | None


class RegimeClassifier:
    """Volatility (and calendar) → regime, with hysteresis and a warm-up (module docstring)."""

    def __init__(
        self,
        *,
        calm_vol: Decimal,
        stressed_vol: Decimal,
        calendar: Sequence[CalendarWindow] = (),
        warmup: int = DEFAULT_WARMUP,
    ) -> None:
        if stressed_vol <= calm_vol:
            raise ValueError("stressed_vol must be above calm_vol")
        self.calm_vol = calm_vol
        self.stressed_vol = stressed_vol
        self.calendar = tuple(calendar)
        self.warmup = warmup
        self._vol_regime: Regime = "normal"

    def window_at(self, ts_ns: int) -> CalendarWindow | None:
        return next((w for w in self.calendar if w.contains(ts_ns)), None)

    def classify(self, ts_ns: int, volatility: Decimal, samples: int) -> RegimeReading:
        """The regime at ``ts_ns`` given the current volatility estimate and its sample count."""
        return self.reading(self.assess(ts_ns, volatility, samples))

    def assess(self, ts_ns: int, volatility: Decimal, samples: int) -> RegimeAssessment:
        """:meth:`classify` without the reason's text (formatted by :meth:`reading` only when
        wanted: the risk actor asks at every sample and needs the text only on a change)."""
        regime: Regime
        rule: int
        if samples < self.warmup:
            regime, rule = "normal", _WARMUP
        else:
            regime, rule = self._next_regime(volatility)
        self._vol_regime = regime
        window = self.window_at(ts_ns) if self.calendar else None
        if window is not None:
            regime = "stressed"
        return RegimeAssessment(regime, volatility, samples, rule, window)

    def reading(self, assessment: RegimeAssessment) -> RegimeReading:
        """The reading of an assessment, its reason in words."""
        regime, vol, samples, rule, window = assessment
        if window is not None:
            return RegimeReading("stressed", vol, f"calendar window {window.label}")
        if rule == _WARMUP:
            return RegimeReading(regime, vol, f"warm-up ({samples}/{self.warmup} samples)")
        return RegimeReading(regime, vol, f"volatility {vol:.4f} {self._why(rule)}")

    def _next_regime(self, vol: Decimal) -> tuple[Regime, int]:
        """The volatility regime and the rule (index into :meth:`_why`) that chose it."""
        if vol >= self.stressed_vol:
            return "stressed", 0
        if self._vol_regime == "stressed" and vol >= self.stressed_vol * STRESSED_EXIT:
            return "stressed", 1
        if vol < self.calm_vol:
            return "calm", 2
        if self._vol_regime == "calm" and vol <= self.calm_vol * CALM_EXIT:
            return "calm", 3
        return "normal", 4

    def _why(self, rule: int) -> str:
        if rule == 0:
            return f">= stressed {self.stressed_vol}"
        if rule == 1:
            return f">= stressed exit {self.stressed_vol * STRESSED_EXIT:.4f} (hysteresis)"
        if rule == 2:
            return f"< calm {self.calm_vol}"
        if rule == 3:
            return f"<= calm exit {self.calm_vol * CALM_EXIT:.4f} (hysteresis)"
        return f"between calm {self.calm_vol} and stressed {self.stressed_vol}"
