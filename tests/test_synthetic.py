"""The seeded regime-switching synthetic market, through the same MarketBundle API as real data.

Statistical checks use fixed seeds and generous bounds (they are deterministic, not flaky).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections import defaultdict
from decimal import Decimal

import pytest

from ballast.adapters.data.synthetic import AssetSpec, Regime, SyntheticConfig, SyntheticMarket
from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated
from tests.test_data_loaders import assert_no_look_ahead, assert_stream_order

SMALL = SyntheticConfig(seed=7, bars=24 * 10)


def closes(market: SyntheticMarket) -> dict[str, list[Bar]]:
    out: dict[str, list[Bar]] = defaultdict(list)
    for bar in market.bars():
        out[bar.symbol].append(bar)
    return out


def log_returns(bars: list[Bar]) -> list[float]:
    return [math.log(b.close / a.close) for a, b in itertools.pairwise(bars)]


def test_same_seed_same_events_and_different_seed_different_events() -> None:
    first = SyntheticMarket(SMALL).bundle()
    again = SyntheticMarket(SyntheticConfig(seed=7, bars=24 * 10)).bundle()
    other = SyntheticMarket(SyntheticConfig(seed=8, bars=24 * 10)).bundle()
    events = list(first.events())
    assert events == list(again.events())
    assert events == list(first.events())  # a bundle re-generates identically on every pass
    assert first.settlements == again.settlements
    assert events != list(other.events())
    assert first.settlements != other.settlements


def test_bundle_shape_matches_loaded_data() -> None:
    market = SyntheticMarket(SMALL)
    bundle = market.bundle()
    events: list[MarketData] = list(bundle.events())
    assert len(events) == 240 * 6  # 4 bars + 2 marks per hour
    assert_stream_order(events)
    assert assert_no_look_ahead(events, bundle.funding_history) == 2 * 240
    assert bundle.settlements == market.settlements()
    assert [s.ts_ns for s in bundle.funding_history[:2]] == [SMALL.start_ns] * 2  # prior rate
    assert bundle.settlements[0].ts_ns == SMALL.start_ns + 8 * NS_PER_HOUR
    assert bundle.report().gaps() == []
    assert [c.count for c in bundle.report().series] == [240] * 4 + [30, 30]
    assert bundle.span() == (SMALL.start_ns + NS_PER_HOUR, SMALL.start_ns + 240 * NS_PER_HOUR)
    assert market.symbols == ["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert bundle.interval_s == 3600


def test_prices_positive_on_tick_and_consistent_bars() -> None:
    config = SyntheticConfig(seed=3, bars=3 * 24 * 60, interval_s=60)
    tick = Decimal("0.01")
    for symbol, bars in closes(SyntheticMarket(config)).items():
        assert len(bars) == 3 * 24 * 60, symbol
        for prev, bar in itertools.pairwise(bars):
            assert bar.open == prev.close
        for bar in bars:
            prices = (bar.open, bar.high, bar.low, bar.close)
            assert all(p > 0 and p % tick == 0 for p in prices)
            assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
            assert bar.volume >= 0
            assert bar.interval_s == 60


def test_perp_tracks_spot_through_a_small_basis() -> None:
    bars = closes(SyntheticMarket(SyntheticConfig(seed=4)))
    for asset in ("BTC", "ETH"):
        spot, perp = bars[f"{asset}/USDT"], bars[f"{asset}/USDT:USDT"]
        basis = [float(p.close / s.close) - 1 for s, p in zip(spot, perp, strict=True)]
        assert max(abs(b) for b in basis) < 0.01
        assert statistics.pstdev(basis) > 0.0001  # it moves


def test_assets_are_correlated_through_the_common_factor() -> None:
    bars = closes(SyntheticMarket(SyntheticConfig(seed=5)))
    corr = statistics.correlation(log_returns(bars["BTC/USDT"]), log_returns(bars["ETH/USDT"]))
    assert 0.6 < corr < 0.9  # loadings 0.9 × 0.85 ≈ 0.77


def regime_at(path: list[tuple[int, str]], ts: int) -> str:
    return path[bisect.bisect_right([t for t, _ in path], ts) - 1][1]


def test_regimes_switch_and_change_volatility() -> None:
    market = SyntheticMarket(SyntheticConfig(seed=11))
    path = market.regime_path()
    assert len(path) > 10
    assert {name for _, name in path} == {"calm", "normal", "stressed"}
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(path))
    spot = closes(market)["BTC/USDT"]
    by_regime: dict[str, list[float]] = defaultdict(list)
    for bar, ret in zip(spot[1:], log_returns(spot), strict=True):
        by_regime[regime_at(path, bar.ts_event)].append(ret)
    hourly = {name: statistics.pstdev(r) * math.sqrt(24 * 365) for name, r in by_regime.items()}
    assert hourly["calm"] < hourly["normal"] < hourly["stressed"]
    assert 0.2 < hourly["calm"] < 0.5
    assert 0.8 < hourly["stressed"] < 1.5


def test_jumps_occur_at_the_configured_rate() -> None:
    quiet = (Regime("flat", 0.01, 0.0, 1e12, 0.0, ()),)
    config = SyntheticConfig(
        seed=21,
        assets=(AssetSpec("X", 100.0),),
        regimes=quiet,
        start_regime="flat",
        jumps_per_year=100,
        jump_mean=0.05,
        jump_std=0.0,
    )
    returns = log_returns(closes(SyntheticMarket(config))["X/USDT"])
    jumps = [r for r in returns if abs(r) > 0.025]
    assert 70 <= len(jumps) <= 130  # Poisson, mean ≈ 99.4 over one year of hourly bars
    assert all(abs(r - 0.05) < 0.001 for r in jumps)


def test_funding_settles_every_8h_on_the_utc_grid() -> None:
    market = SyntheticMarket(SyntheticConfig(seed=2, bars=2 * 24 * 60, interval_s=60))
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
        times = [s.ts_ns for s in market.settlements() if s.symbol == symbol]
        assert len(times) == 6
        assert {t % (8 * NS_PER_HOUR) for t in times} == {0}
        assert {b - a for a, b in itertools.pairwise(times)} == {8 * NS_PER_HOUR}
    marks = [e for e in market.bundle().events() if isinstance(e, MarkPriceUpdated)]
    assert {m.next_funding_ns % (8 * NS_PER_HOUR) for m in marks} == {0}


def test_bars_longer_than_the_funding_interval_still_settle_every_8h() -> None:
    market = SyntheticMarket(SyntheticConfig(bars=3, interval_s=86400))
    times = sorted({s.ts_ns for s in market.settlements()})
    assert times == [SMALL.start_ns + h * NS_PER_HOUR for h in range(8, 73, 8)]
    assert market.bundle().settlements == market.settlements()
    assert [s.ts_ns for s in market.funding_history()][:2] == [SMALL.start_ns] * 2


def test_funding_is_higher_in_calm_uptrends_and_sometimes_negative() -> None:
    market = SyntheticMarket(SyntheticConfig(seed=1))
    path = market.regime_path()
    by_regime: dict[str, list[Decimal]] = defaultdict(list)
    for s in market.settlements():
        by_regime[regime_at(path, s.ts_ns)].append(s.rate)
        assert abs(s.rate) <= Decimal("0.003")
        assert s.rate == s.rate.quantize(Decimal("0.00000001"))
    assert statistics.mean(by_regime["calm"]) > statistics.mean(by_regime["stressed"])
    assert statistics.mean(by_regime["calm"]) > Decimal("0.0001")
    assert any(r < 0 for r in by_regime["stressed"])


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="start regime"):
        SyntheticMarket(SyntheticConfig(start_regime="euphoric"))
    bad_exit = (Regime("calm", 0.3, 0.0, 10, 0.0, (("mania", 1.0),)),)
    with pytest.raises(ValueError, match="bad exit"):
        SyntheticMarket(SyntheticConfig(regimes=bad_exit, start_regime="calm"))
    with pytest.raises(ValueError, match="must be positive"):
        SyntheticMarket(SyntheticConfig(bars=0))
    with pytest.raises(ValueError, match="asset X"):
        SyntheticMarket(SyntheticConfig(assets=(AssetSpec("X", -1.0),)))
