"""Volatility estimator, regime classifier, the budget derived from them, the actor's regime."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from itertools import pairwise

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.calendar_windows import CalendarWindow, parse_calendar
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import Bar, RiskBudgetChanged
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.regime import (
    RegimeClassifier,
    VolatilityEstimator,
    decay_per_sample,
)
from ballast.engine.trading.risk import RiskManager
from tests.conftest import START_NS

D = Decimal
T0 = START_NS - START_NS % NS_PER_HOUR + NS_PER_HOUR  # 2023-11-14T23:00Z, the first full hour
HOURS_A_YEAR = D(8760)


def hourly_return(vol: str) -> Decimal:
    """The hourly log return whose square, every hour, is an annualised volatility of ``vol``."""
    return D(vol) / HOURS_A_YEAR.sqrt()


def zigzag(vol: str, hours: int) -> list[Decimal]:
    """Log returns +r, −r, +r, … of an annualised volatility of ``vol``."""
    r = hourly_return(vol)
    return [r if i % 2 == 0 else -r for i in range(hours)]


def prices(log_returns: Iterable[Decimal], start: Decimal | None = None) -> list[Decimal]:
    out = [D(100) if start is None else start]
    for r in log_returns:
        out.append(out[-1] * r.exp())
    return out


def close(a: Decimal, b: float, tol: float = 1e-12) -> bool:
    return abs(float(a) - b) < tol


# ------------------------------------------------------------------------- estimator


def test_first_samples_follow_the_ewma_formula() -> None:
    est = VolatilityEstimator(half_life_h=24)
    lam = 0.5 ** (1 / 24)
    for i, price in enumerate(["100", "110", "99"]):
        est.update(T0 + i * NS_PER_HOUR, D(price))

    first = math.log(1.1) ** 2
    expected = lam * first + (1 - lam) * math.log(0.9) ** 2
    assert est.samples == 2
    assert est.variance is not None
    assert close(est.variance, expected)
    assert est.annualised == D(f"{math.sqrt(expected * 8760):.6f}")


def test_decay_halves_a_sample_weight_over_one_half_life() -> None:
    assert close(decay_per_sample(24) ** 24, 0.5)
    assert close(decay_per_sample(12, 2 * NS_PER_HOUR), 0.5 ** (2 / 12))


def test_samples_the_last_price_at_or_before_each_grid_point() -> None:
    est = VolatilityEstimator(half_life_h=24)
    est.update(T0, D(100))
    est.update(T0 + 10 * NS_PER_MINUTE, D(120))
    est.update(T0 + 50 * NS_PER_MINUTE, D(105))  # the last price before T0 + 1h
    assert est.samples == 0
    est.update(T0 + 65 * NS_PER_MINUTE, D(130))  # closes the grid point T0 + 1h at 105
    assert est.samples == 1
    assert est.variance is not None
    assert close(est.variance, math.log(1.05) ** 2)
    est.update(T0 + 2 * NS_PER_HOUR, D(91))  # on the grid point itself: it is the price there
    assert est.samples == 2
    lam = 0.5 ** (1 / 24)
    expected = lam * math.log(1.05) ** 2 + (1 - lam) * math.log(91 / 105) ** 2
    assert close(est.variance, expected)


def test_a_gap_uses_the_total_return_once_not_zeros() -> None:
    est = VolatilityEstimator(half_life_h=24)
    est.update(T0, D(100))
    est.update(T0 + NS_PER_HOUR, D(110))
    est.update(T0 + 6 * NS_PER_HOUR, D(121))  # five grid points later, no price in between

    lam5 = 0.5 ** (5 / 24)
    first = math.log(1.1) ** 2
    expected = lam5 * first + (1 - lam5) * first / 5
    assert est.samples == 2  # one sample for the gap, not five
    assert est.variance is not None
    assert close(est.variance, expected)
    # five zero returns would have decayed the variance instead
    assert est.variance > D(str(first * 0.5 ** (5 / 24)))


def test_a_price_after_a_quiet_gap_is_measured_from_the_last_sample() -> None:
    est = VolatilityEstimator(half_life_h=24)
    est.update(T0, D(100))
    est.update(T0 + 3 * NS_PER_HOUR + 30 * NS_PER_MINUTE, D(104))  # nothing new at 1h, 2h, 3h: wait
    assert est.samples == 0
    est.update(T0 + 4 * NS_PER_HOUR + 1, D(999))  # grid point 4h closes at 104
    assert est.samples == 1
    assert est.variance is not None
    assert close(est.variance, math.log(1.04) ** 2 / 4)


def test_steady_returns_give_their_annualised_volatility() -> None:
    est = VolatilityEstimator(half_life_h=24)
    for i, price in enumerate(prices(zigzag("0.6", 200))):
        est.update(T0 + i * NS_PER_HOUR, price)
    assert est.annualised == D("0.600000")


def test_old_and_non_positive_prices_are_ignored() -> None:
    est = VolatilityEstimator(half_life_h=24)
    est.update(T0 + NS_PER_HOUR, D(100))
    assert not est.update(T0, D(50))
    assert not est.update(T0 + 2 * NS_PER_HOUR, D(0))
    assert est.update(T0 + 2 * NS_PER_HOUR, D(101))
    assert est.variance is not None
    assert close(est.variance, math.log(1.01) ** 2)


# ------------------------------------------------------------------------ classifier


def classifier(calendar: tuple[CalendarWindow, ...] = ()) -> RegimeClassifier:
    return RegimeClassifier(calm_vol=D("0.40"), stressed_vol=D("0.90"), calendar=calendar)


def regimes(clf: RegimeClassifier, vols: Iterable[str]) -> list[str]:
    return [clf.classify(T0, D(v), 100).regime for v in vols]


def test_warm_up_is_normal_whatever_the_volatility() -> None:
    reading = classifier().classify(T0, D("2.5"), 23)
    assert reading.regime == "normal"
    assert reading.reason == "warm-up (23/24 samples)"


def test_thresholds() -> None:
    assert regimes(classifier(), ["0.39"]) == ["calm"]
    assert regimes(classifier(), ["0.40"]) == ["normal"]
    assert regimes(classifier(), ["0.90"]) == ["stressed"]


def test_hysteresis_leaves_stressed_only_below_0_9_of_the_threshold() -> None:
    seen = regimes(classifier(), ["0.95", "0.85", "0.89", "0.82", "0.81", "0.80", "0.85"])
    assert seen == ["stressed"] * 5 + ["normal", "normal"]


def test_hysteresis_leaves_calm_only_above_1_1_of_the_threshold() -> None:
    seen = regimes(classifier(), ["0.30", "0.42", "0.44", "0.45", "0.42", "0.39"])
    assert seen == ["calm", "calm", "calm", "normal", "normal", "calm"]


def test_calendar_window_forces_stressed_then_volatility_rules_again() -> None:
    window = "2023-11-15T00:00/2023-11-15T02:00"
    clf = classifier(calendar=parse_calendar([window]))
    start = clf.calendar[0].start_ns
    assert start == T0 + NS_PER_HOUR
    inside = clf.classify(start, D("0.30"), 100)
    assert (inside.regime, inside.reason) == ("stressed", f"calendar window {window}")
    assert clf.classify(start + 2 * NS_PER_HOUR - 1, D("0.30"), 5).regime == "stressed"
    assert clf.classify(start + 2 * NS_PER_HOUR, D("0.30"), 100).regime == "calm"


def test_bad_calendar_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_calendar(["2024-03-20T20:00/2024-03-20T18:00"])


# ---------------------------------------------------------------------------- budget


def test_calm_budget_widens_bands_so_btc_may_drift_to_47_percent() -> None:
    budget = RiskBudget.derive(RiskConfig(), BandsConfig(abs_pp=D(5)), "calm")
    assert budget.band_abs == D("0.07")
    assert D("0.40") + budget.band_abs == D("0.47")
    assert (budget.max_gross_leverage, budget.overlay_scale, budget.allow_overlay_longs) == (
        D(3),
        D(1),
        True,
    )


def test_normal_budget_is_the_configuration() -> None:
    budget = RiskBudget.derive(
        RiskConfig(), BandsConfig(abs_pp=D(5), rel=D("0.2"), combine="narrower"), "normal"
    )
    assert (budget.band_abs, budget.band_rel) == (D("0.05"), D("0.2"))
    assert budget.max_gross_leverage == D(3)


def test_stressed_budget_contracts() -> None:
    budget = RiskBudget.derive(RiskConfig(), BandsConfig(abs_pp=None, rel=D("0.2")), "stressed")
    assert budget.band_abs is None
    assert budget.band_rel == D("0.12")
    assert budget.max_gross_leverage == D("1.5")
    assert budget.overlay_scale == 0
    assert budget.allow_overlay_longs is False


def test_budget_event_carries_fractions_and_the_reason() -> None:
    event = RiskBudget.derive(RiskConfig(), BandsConfig(), "calm").to_event(
        T0, "volatility low", volatility=D("0.2")
    )
    assert event == RiskBudgetChanged(
        ts_event=T0,
        ts_init=T0,
        regime="calm",
        volatility=D("0.2"),
        band_abs=D("0.07"),
        band_rel=None,
        max_gross_leverage=D(3),
        overlay_scale=D(1),
        allow_overlay_longs=True,
        reason="volatility low",
        max_net_leverage=D(3),
    )


# ------------------------------------------------------------------ the actor's regime


QUIET = RiskConfig(stale_after_s=4 * 3600)  # the staleness timer stays out of the way


class Regimes:
    """A RiskManager on a bus fed hourly BTC/USDT bars; collects RiskBudgetChanged."""

    def __init__(self, clock: SimulatedClock, risk: RiskConfig = QUIET) -> None:
        self.clock = clock
        self.bus = Bus(clock)
        self.risk = RiskManager(self.bus, clock, risk=risk, bands=BandsConfig(abs_pp=D(5)))
        self.changes: list[RiskBudgetChanged] = []
        self.vols: list[Decimal] = []
        self.bus.subscribe(RiskBudgetChanged, self.changes.append)
        self.hour = 0

    def feed(self, closes: Iterable[Decimal]) -> None:
        for price in closes:
            ts = T0 + self.hour * NS_PER_HOUR
            self.clock.advance_to(ts)
            self.bus.publish(
                Bar(
                    ts_event=ts,
                    ts_init=ts,
                    symbol="BTC/USDT",
                    interval_s=3600,
                    open=price,
                    high=price,
                    low=price,
                    close=price,
                    volume=D(1),
                )
            )
            self.vols.append(self.risk.estimator.annualised)
            self.hour += 1

    @property
    def regimes(self) -> list[str]:
        return [c.regime for c in self.changes]


async def test_start_publishes_the_normal_budget(sim_clock: SimulatedClock) -> None:
    world = Regimes(sim_clock)
    async with world.risk:
        assert len(world.changes) == 1
        start = world.changes[0]
        assert (start.regime, start.reason, start.band_abs) == ("normal", "start", D("0.05"))
        assert start.ts_event == START_NS


async def test_a_calm_series_yields_calm_with_widened_bands(sim_clock: SimulatedClock) -> None:
    world = Regimes(sim_clock)
    async with world.risk:
        world.feed(prices(zigzag("0.2", 48)))
    assert world.regimes == ["normal", "calm"]
    calm = world.changes[-1]
    assert calm.band_abs == D("0.07")
    assert (calm.overlay_scale, calm.allow_overlay_longs) == (D(1), True)
    assert calm.max_gross_leverage == D(3)
    assert calm.volatility == D("0.200000")
    assert calm.reason == "volatility 0.2000 < calm 0.40"
    assert calm.ts_event == T0 + 24 * NS_PER_HOUR  # the 24th sample ends the warm-up


async def test_a_volatility_spike_contracts_the_budget(sim_clock: SimulatedClock) -> None:
    world = Regimes(sim_clock)
    async with world.risk:
        world.feed(prices(zigzag("0.2", 48) + zigzag("3.0", 12)))
    # no portfolio, no band anywhere: the regime alone contracts the budget
    assert world.regimes[:2] == ["normal", "calm"]
    assert world.regimes[-1] == "stressed"
    stressed = world.changes[-1]
    assert stressed.allow_overlay_longs is False
    assert stressed.overlay_scale == 0
    assert stressed.max_gross_leverage == D("1.5")
    assert stressed.band_abs == D("0.03")
    assert stressed.volatility >= D("0.9")
    assert stressed.reason.startswith(f"volatility {stressed.volatility:.4f} >= stressed 0.90")


def blocks(high: str, low: str, size: int, hours: int) -> list[Decimal]:
    """Alternating blocks of ``size`` hours at two volatilities."""
    out: list[Decimal] = []
    while len(out) < hours:
        out += zigzag(high, size) + zigzag(low, size)
    return out[:hours]


def crossings(vols: list[Decimal], level: Decimal) -> int:
    return sum(1 for a, b in pairwise(vols) if (a < level) != (b < level))


async def test_hysteresis_prevents_flapping(sim_clock: SimulatedClock) -> None:
    world = Regimes(sim_clock)
    async with world.risk:
        closes = prices(zigzag("0.95", 48))
        world.feed(closes)
        assert world.regimes == ["normal", "stressed"]
        hovering = prices(blocks("1.0", "0.75", 6, 120), closes[-1])[1:]
        world.feed(hovering)
        hover = world.vols[-120:]
        assert crossings(hover, D("0.9")) >= 5  # the estimate crosses the threshold again and again
        assert min(hover) > D("0.81")
        assert world.regimes == ["normal", "stressed"]  # ... and the regime stays put
        world.feed(prices(zigzag("0.5", 48), hovering[-1])[1:])
    assert world.regimes == ["normal", "stressed", "normal"]
    assert world.changes[-1].volatility < D("0.81")


async def test_calendar_window_forces_stressed(sim_clock: SimulatedClock) -> None:
    risk = RiskConfig(calendar=["2023-11-15T00:00/2023-11-15T02:00"])  # timer every 15 s
    world = Regimes(sim_clock, risk)
    start, end = T0 + NS_PER_HOUR, T0 + 3 * NS_PER_HOUR
    async with world.risk:
        sim_clock.advance_to(start + NS_PER_HOUR)
        assert world.regimes == ["normal", "stressed"]
        entered = world.changes[-1]
        assert entered.reason == "calendar window 2023-11-15T00:00/2023-11-15T02:00"
        assert start <= entered.ts_event < start + 15 * NS_PER_SECOND
        assert entered.allow_overlay_longs is False
        sim_clock.advance_to(end + NS_PER_HOUR)
    assert world.regimes == ["normal", "stressed", "normal"]
    assert end <= world.changes[-1].ts_event < end + 15 * NS_PER_SECOND


def test_assess_then_reading_is_classify_and_words_only_on_request() -> None:
    """The risk actor's hot path (assess every sample, reading only on a budget change) classifies
    exactly as classify does, through warm-up, both hystereses and a calendar window."""
    window = "2023-11-15T00:00/2023-11-15T02:00"
    plain, lazy = (classifier(calendar=parse_calendar([window])) for _ in range(2))
    inside = plain.calendar[0].start_ns
    steps = [(T0, "2.5", 5), (T0, "0.95", 100), (T0, "0.85", 100), (T0, "0.80", 100)]
    steps += [(T0, "0.30", 100), (T0, "0.42", 100), (T0, "0.45", 100), (inside, "0.30", 100)]
    steps += [(inside + 2 * NS_PER_HOUR, "0.30", 100)]
    for ts, vol, samples in steps:
        assessment = lazy.assess(ts, D(vol), samples)
        expected = plain.classify(ts, D(vol), samples)
        assert assessment.regime == expected.regime
        assert lazy.reading(assessment) == expected
    assert (
        plain.reading(plain.assess(T0, D("0.95"), 100)).reason
        == "volatility 0.9500 >= stressed 0.90"
    )
