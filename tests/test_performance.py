"""Performance statistics: hand-computed series, live recording equals journal recording."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    SimulatedClock,
)
from ballast.engine.kernel.events import (
    AssetDecision,
    AssetState,
    FundingPaid,
    Message,
    OrderFilled,
    OrderIntent,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    Regime,
    RiskBudgetChanged,
    SessionStarted,
    Side,
)
from ballast.engine.kernel.journal import Journal
from ballast.engine.observe.performance import (
    PerformanceRecorder,
    PerformanceSummary,
    format_comparison,
    format_summary,
    from_journal,
)

DAY0 = 1_704_067_200 * NS_PER_SECOND  # 2024-01-01T00:00Z, a UTC midnight
SQRT_YEAR = math.sqrt(365)
D = Decimal


# --------------------------------------------------------------------------- event builders


def asset_state(asset: str, weight: Decimal | str) -> AssetState:
    z = D(0)
    w = D(weight)
    return AssetState(asset, z, z, z, z, z, z, z, z, z, None, z, w, w)


def snapshot(
    ts: int,
    nav: Decimal | str | int,
    *,
    fees: Decimal | str = "0",
    funding: Decimal | str = "0",
    transfers: Decimal | str = "0",
    leverage: Decimal | str = "1",
    weights: Mapping[str, str] | None = None,
) -> PortfolioSnapshot:
    z = D(0)
    assets = tuple(asset_state(a, w) for a, w in sorted((weights or {}).items()))
    return PortfolioSnapshot(
        ts_event=ts,
        ts_init=ts,
        trigger="price",
        nav=D(nav),
        cash=z,
        gross_leverage=D(leverage),
        net_leverage=D(leverage),
        margin_used=z,
        realized_pnl=z,
        unrealized_pnl=z,
        price_pnl=z,
        funding_pnl=D(funding),
        fees_paid=D(fees),
        transfers=D(transfers),
        peak_nav=z,
        drawdown=z,
        assets=assets,
    )


def budget(
    ts: int, regime: Regime, *, cap: str = "3", band_abs: str | None = "0.05"
) -> RiskBudgetChanged:
    return RiskBudgetChanged(
        ts_event=ts,
        ts_init=ts,
        regime=regime,
        volatility=D("0.5"),
        band_abs=None if band_abs is None else D(band_abs),
        band_rel=None,
        max_gross_leverage=D(cap),
        overlay_scale=D(1),
        allow_overlay_longs=True,
        reason="test",
    )


def decided(
    ts: int, targets: Mapping[str, tuple[str, str, str]], traded: Sequence[str] = ()
) -> RebalanceDecided:
    """``targets``: asset → (target, band_low, band_high); ``traded``: spot symbols with intents."""
    assets = tuple(
        AssetDecision(a, D(t), D(t), D(lo), D(hi), "sell spot" if a in traded else "hold")
        for a, (t, lo, hi) in sorted(targets.items())
    )
    intents = tuple(
        OrderIntent(f"d{ts}-{i}", s, "sell", D(1), "market", None, False, "band")
        for i, s in enumerate(traded)
    )
    return RebalanceDecided(ts, ts, f"d{ts}", "band", "spot", "normal", "", assets, intents)


def fill(ts: int, symbol: str, side: Side, qty: str, price: str, fee: str = "0") -> OrderFilled:
    return OrderFilled(
        ts, ts, "c1", "v1", f"t{ts}", symbol, side, D(qty), D(price), D(fee), "USDT", "taker"
    )


def funding_paid(ts: int, symbol: str, amount: str) -> FundingPaid:
    return FundingPaid(ts, ts, symbol, D(1), D(100), D("0.0001"), D(amount), "USDT")


def session(ts: int, n: int) -> SessionStarted:
    return SessionStarted(ts, ts, f"s{n}", "test", "simulated", "{}")


def record(
    events: Iterable[Message], *, sample_interval_ns: int = NS_PER_HOUR
) -> PerformanceRecorder:
    recorder = PerformanceRecorder(sample_interval_ns=sample_interval_ns)
    for event in events:
        recorder.on_event(event)
    return recorder


def summarise(events: Iterable[Message], risk_free_rate: float = 0.0) -> PerformanceSummary:
    return record(events).summary(risk_free_rate=risk_free_rate)


def daily_navs(navs: Sequence[Decimal | str | int], start: int = DAY0) -> list[PortfolioSnapshot]:
    return [snapshot(start + i * NS_PER_DAY, nav) for i, nav in enumerate(navs)]


def synthetic_run(days: int = 6, *, drift: float = 0.002, seed: int = 1) -> list[Message]:
    """A small hourly run with two assets, regimes, rebalances, fills, fees and funding."""
    events: list[Message] = [session(DAY0, 1), budget(DAY0, "normal")]
    nav, fees, fund = 100_000.0, D(0), D(0)
    for h in range(days * 24):
        ts = DAY0 + h * NS_PER_HOUR
        wave = math.sin((h + seed * 7) / 9)
        nav *= 1 + drift * wave + 0.0004 * math.cos(h * seed)
        if h == 48:
            events.append(budget(ts, "stressed", cap="1.5", band_abs="0.03"))
        if h == 96:
            events.append(budget(ts, "calm", cap="3", band_abs="0.07"))
        if h % 20 == 10:
            fee = D("12.5")
            fees += fee
            events.append(
                decided(
                    ts,
                    {"BTC": ("0.4", "0.35", "0.45"), "ETH": ("0.2", "0.15", "0.25")},
                    ["BTC/USDT"],
                )
            )
            events.append(fill(ts, "BTC/USDT", "sell", "0.25", "50000", str(fee)))
        if h % 8 == 7:
            fund += D("-4.25")
            events.append(funding_paid(ts, "BTC/USDT:USDT", "-4.25"))
        weights = {"BTC": f"{0.4 + 0.06 * wave:.4f}", "ETH": f"{0.2 - 0.03 * wave:.4f}"}
        lev = f"{1.2 + 0.3 * wave:.3f}"
        events.append(
            snapshot(ts, f"{nav:.2f}", fees=fees, funding=fund, leverage=lev, weights=weights)
        )
    return events


# --------------------------------------------------------------------------- returns and CAGR


def test_doubling_over_two_years_has_cagr_sqrt2_minus_1() -> None:
    s = summarise([snapshot(DAY0, 100_000), snapshot(DAY0 + 730 * NS_PER_DAY, 200_000)])
    assert s.total_return == pytest.approx(1.0)
    assert s.cagr == pytest.approx(math.sqrt(2) - 1, rel=1e-12)
    assert s.years == 2.0
    assert (s.initial_nav, s.final_nav) == (D(100_000), D(200_000))


def test_constant_daily_growth_compounds_to_known_cagr() -> None:
    navs = [D(100) * D("1.001") ** d for d in range(366)]
    s = summarise(daily_navs(navs))
    assert s.daily_returns == 365
    assert s.total_return == pytest.approx(1.001**365 - 1, rel=1e-9)
    assert s.cagr == pytest.approx(1.001**365 - 1, rel=1e-9)
    assert s.volatility == pytest.approx(0.0, abs=1e-9)
    assert s.max_drawdown == 0.0
    assert s.sortino is None  # no day below the risk-free rate


def test_daily_returns_use_the_last_snapshot_of_each_utc_day() -> None:
    half = NS_PER_DAY // 2
    events = [
        snapshot(DAY0, 100),
        snapshot(DAY0 + half, 105),  # close of day 0; the first return is 100 → 105
        snapshot(DAY0 + NS_PER_DAY + 1, 500),  # intraday, not a close
        snapshot(DAY0 + NS_PER_DAY + half, "110.25"),  # close of day 1
    ]
    s = summarise(events)
    assert s.daily_returns == 2
    assert s.volatility == pytest.approx(0.0, abs=1e-12)
    assert s.total_return == pytest.approx(0.1025)


def test_sharpe_sortino_and_volatility_by_hand() -> None:
    # Daily closes 100, 110, 99, 108.9: returns +10 %, −10 %, +10 %.
    events = daily_navs([100, 110, 99, "108.9"])
    mean = (0.1 - 0.1 + 0.1) / 3
    stdev = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)
    downside = math.sqrt(0.1**2 / 3)
    s = summarise(events)
    assert s.daily_returns == 3
    assert s.volatility == pytest.approx(stdev * SQRT_YEAR, rel=1e-9)
    assert s.sharpe == pytest.approx(mean / stdev * SQRT_YEAR, rel=1e-9)
    assert s.sortino == pytest.approx(mean / downside * SQRT_YEAR, rel=1e-9)
    assert s.sharpe == pytest.approx(5.5151, abs=1e-4)
    assert s.sortino == pytest.approx(11.0303, abs=1e-4)


def test_risk_free_rate_is_subtracted_per_day() -> None:
    events = daily_navs([100, 110, 99, "108.9"])
    rf_day = 0.0365 / 365
    mean = 0.1 / 3
    stdev = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)
    downside = math.sqrt((-0.1 - rf_day) ** 2 / 3)  # only the −10 % day is below rf
    s = summarise(events, risk_free_rate=0.0365)
    assert s.risk_free_rate == 0.0365
    assert s.sharpe == pytest.approx((mean - rf_day) / stdev * SQRT_YEAR, rel=1e-9)
    assert s.sortino == pytest.approx((mean - rf_day) / downside * SQRT_YEAR, rel=1e-9)


def test_ratios_are_undefined_on_too_short_or_flat_series() -> None:
    one_day = summarise([snapshot(DAY0, 100), snapshot(DAY0 + NS_PER_HOUR, 101)])
    assert (one_day.volatility, one_day.sharpe, one_day.sortino) == (None, None, None)
    flat = summarise(daily_navs([100, 100, 100, 100]))
    assert flat.volatility == 0.0
    assert (flat.sharpe, flat.sortino) == (None, None)
    sprint = summarise([snapshot(DAY0, 1), snapshot(DAY0 + NS_PER_DAY, 7)])
    assert sprint.cagr == math.inf  # 7× in a day has no finite annual rate
    assert "+inf %" in format_summary(sprint)
    single = summarise([snapshot(DAY0, 100)])
    assert (single.cagr, single.turnover_annual, single.total_return) == (None, None, 0.0)


# --------------------------------------------------------------------------- drawdown


def test_max_drawdown_with_peak_trough_and_recovery_dates() -> None:
    s = summarise(daily_navs([100, 120, 90, 100, 125, 110]))
    assert s.max_drawdown == pytest.approx(0.25)
    assert s.drawdown_peak_ns == DAY0 + NS_PER_DAY
    assert s.drawdown_trough_ns == DAY0 + 2 * NS_PER_DAY
    assert s.drawdown_recovery_ns == DAY0 + 4 * NS_PER_DAY


def test_a_deeper_later_drawdown_replaces_the_recovered_one() -> None:
    s = summarise(daily_navs([100, 90, 100, 70, 80]))
    assert s.max_drawdown == pytest.approx(0.3)
    assert (s.drawdown_peak_ns, s.drawdown_trough_ns) == (
        DAY0 + 2 * NS_PER_DAY,
        DAY0 + 3 * NS_PER_DAY,
    )
    assert s.drawdown_recovery_ns is None


def test_drawdown_curve_points_follow_the_running_peak() -> None:
    series = record(daily_navs([100, 120, 90, 132])).series()
    assert [p.drawdown for p in series.points] == pytest.approx([0.0, 0.0, 0.25, 0.0])
    assert [p.index for p in series.points] == pytest.approx([1.0, 1.2, 0.9, 1.32])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=40))
def test_without_transfers_return_and_drawdown_match_brute_force(navs: list[int]) -> None:
    s = summarise(daily_navs(navs))
    assert s.total_return == pytest.approx(navs[-1] / navs[0] - 1, rel=1e-9, abs=1e-12)
    worst = max(1 - v / max(navs[: i + 1]) for i, v in enumerate(navs))
    assert s.max_drawdown == pytest.approx(worst, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- money totals


def test_turnover_is_the_exact_sum_of_fill_notionals_and_annualised_on_average_nav() -> None:
    year = DAY0 + 365 * NS_PER_DAY
    events = [
        snapshot(DAY0, 100_000),
        fill(DAY0 + 1, "BTC/USDT", "buy", "0.5", "40000.10"),
        fill(DAY0 + 2, "ETH/USDT:USDT", "sell", "2", "2500.05"),
        snapshot(year, 100_000),
    ]
    s = summarise(events)
    assert s.turnover == D("25000.15")
    assert s.fills == 2
    assert s.average_nav == D(100_000)
    assert s.turnover_annual == pytest.approx(0.2500015)


def test_fees_and_funding_are_exact_changes_since_the_first_snapshot() -> None:
    events = [
        snapshot(DAY0, 1000, fees="0.10", funding="1"),
        funding_paid(DAY0 + 1, "BTC/USDT:USDT", "-0.30"),
        snapshot(DAY0 + 2, 1000, fees="0.35", funding="0.70"),
        funding_paid(DAY0 + 3, "ETH/USDT:USDT", "0.05"),
        funding_paid(DAY0 + 4, "BTC/USDT:USDT", "-0.20"),
        snapshot(DAY0 + 5, 1000, fees="1.10", funding="0.55"),
    ]
    s = summarise(events)
    assert s.fees_paid == D("1.00")
    assert s.funding_pnl == D("-0.45")
    assert s.funding_by_symbol == (("BTC/USDT:USDT", D("-0.50")), ("ETH/USDT:USDT", D("0.05")))


def test_deposits_are_not_returns() -> None:
    events = daily_navs([100])
    events.append(snapshot(DAY0 + NS_PER_DAY, 200, transfers="100"))  # a deposit of 100
    events.append(snapshot(DAY0 + 2 * NS_PER_DAY, 180, transfers="100"))
    events.append(snapshot(DAY0 + 3 * NS_PER_DAY, 220, transfers="100"))
    s = summarise(events)
    assert s.transfers == D(100)
    assert s.total_return == pytest.approx(0.1)
    assert s.max_drawdown == pytest.approx(0.1)


def test_sessions_are_linked_and_the_gap_between_them_is_a_transfer() -> None:
    events = [
        session(DAY0, 1),
        snapshot(DAY0, 100, fees="0"),
        snapshot(DAY0 + NS_PER_HOUR, 110, fees="1", funding="-2"),
        session(DAY0 + 2 * NS_PER_HOUR, 2),
        snapshot(DAY0 + 3 * NS_PER_HOUR, 150, fees="0", funding="0"),  # books restarted
        snapshot(DAY0 + 4 * NS_PER_HOUR, 165, fees="0.5", funding="0.25"),
    ]
    s = summarise(events)
    assert s.total_return == pytest.approx(0.21)
    assert (s.fees_paid, s.funding_pnl, s.transfers) == (D("1.5"), D("-1.75"), D(40))


# --------------------------------------------------------------------------- decisions, regimes


def test_rebalances_count_only_decisions_with_intents() -> None:
    targets = {"BTC": ("0.4", "0.35", "0.45")}
    events = [
        snapshot(DAY0, 100, weights={"BTC": "0.47"}),
        decided(DAY0 + 1, targets, ["BTC/USDT", "BTC/USDT:USDT"]),
        decided(DAY0 + 2, targets),
        decided(DAY0 + 3, targets, ["BTC/USDT"]),
        snapshot(DAY0 + 4, 100, weights={"BTC": "0.40"}),
    ]
    recorder = record(events)
    assert recorder.summary().rebalances == 2
    series = recorder.series()
    assert [(m.ts_ns, m.assets) for m in series.rebalances] == [
        (DAY0 + 1, ("BTC",)),
        (DAY0 + 3, ("BTC",)),
    ]
    assert len(series.targets["BTC"]) == 1  # unchanged targets are kept once
    assert series.points[-1].weight("BTC") == D("0.40")
    assert series.points[-1].weight("ETH") == 0


def test_a_budget_change_moves_the_band_around_the_last_target() -> None:
    events = [
        snapshot(DAY0, 100),
        decided(DAY0 + 1, {"BTC": ("0.4", "0.35", "0.45")}, ["BTC/USDT"]),
        budget(DAY0 + 2, "calm", band_abs="0.07"),
        snapshot(DAY0 + 3, 100),
    ]
    bands = [(t.ts_ns, t.band_low, t.band_high) for t in record(events).series().targets["BTC"]]
    assert bands == [(DAY0 + 1, D("0.35"), D("0.45")), (DAY0 + 2, D("0.33"), D("0.47"))]


def test_regime_time_fractions() -> None:
    events = [
        budget(DAY0 - NS_PER_HOUR, "normal"),
        snapshot(DAY0, 100),
        budget(DAY0 + 6 * NS_PER_HOUR, "stressed", cap="1.5"),
        snapshot(DAY0 + 10 * NS_PER_HOUR, 100),
        budget(DAY0 + 12 * NS_PER_HOUR, "calm"),
        snapshot(DAY0 + 24 * NS_PER_HOUR, 100),
    ]
    recorder = record(events)
    assert recorder.summary().regime_time == (("calm", 0.5), ("normal", 0.25), ("stressed", 0.25))
    caps = [(r.regime, r.max_gross_leverage) for r in recorder.series().regimes]
    assert caps == [("normal", D(3)), ("stressed", D("1.5")), ("calm", D(3))]


def test_time_before_the_first_budget_is_unknown() -> None:
    events = [
        snapshot(DAY0, 100),
        snapshot(DAY0 + NS_PER_HOUR, 100),
        budget(DAY0 + 3 * NS_PER_HOUR, "normal"),
        snapshot(DAY0 + 4 * NS_PER_HOUR, 100),
    ]
    assert summarise(events).regime_time == (("normal", 0.25), ("unknown", 0.75))


# --------------------------------------------------------------------------- curves, sources


def test_curves_keep_one_point_per_interval_but_statistics_use_every_snapshot() -> None:
    navs = [100 + (i % 5) * 3 - i for i in range(18)]
    events = [snapshot(DAY0 + i * 10 * NS_PER_MINUTE, nav) for i, nav in enumerate(navs)]
    hourly = record(events)
    every = record(events, sample_interval_ns=0)
    minute = NS_PER_MINUTE
    assert [p.ts_ns - DAY0 for p in hourly.series().points] == [
        0,
        50 * minute,
        110 * minute,
        170 * minute,
    ]
    assert len(every.series().points) == 18
    assert hourly.summary() == every.summary()
    with pytest.raises(ValueError, match="sample_interval_ns"):
        PerformanceRecorder(sample_interval_ns=-1)


def test_no_snapshot_no_summary() -> None:
    recorder = record([budget(DAY0, "normal"), fill(DAY0, "BTC/USDT", "buy", "1", "1")])
    assert not recorder.snapshots_seen
    with pytest.raises(ValueError, match="no PortfolioSnapshot"):
        recorder.summary()


async def test_from_journal_equals_recording_live_on_the_bus(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    path = tmp_path / "run.sqlite"
    live = PerformanceRecorder()
    async with Journal(path) as journal:
        bus = Bus(sim_clock, journal)
        live.attach(bus)
        for event in synthetic_run():
            bus.publish(event)
            if isinstance(event, PortfolioSnapshot):  # noise the recorder must ignore
                bus.publish(
                    QuoteTick(event.ts_event, event.ts_event, "BTC/USDT", D(1), D(2), D(1), D(1))
                )
    replayed = await from_journal(path)
    assert replayed.summary() == live.summary()
    assert replayed.series() == live.series()
    assert live.summary().rebalances == 7
    assert live.summary().fees_paid == D("87.5")


async def test_from_journal_can_select_a_time_window(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    events = synthetic_run()
    async with Journal(path) as journal:
        for event in events:
            journal.append(event)
    start, end = DAY0 + NS_PER_DAY, DAY0 + 3 * NS_PER_DAY
    windowed = await from_journal(path, since_ns=start, until_ns=end, sample_interval_ns=0)
    expected = record([e for e in events if start <= e.ts_event < end], sample_interval_ns=0)
    assert windowed.summary() == expected.summary()
    assert windowed.summary().start_ns == start


def test_recording_is_deterministic() -> None:
    first = record(synthetic_run()).result(risk_free_rate=0.02)
    second = record(synthetic_run()).result(risk_free_rate=0.02)
    assert first == second
    assert format_summary(first.summary) == format_summary(second.summary)


# --------------------------------------------------------------------------- tables


def test_summary_table_reads_like_a_report() -> None:
    s = summarise(daily_navs([100, 120, 90, 100, 125, 110]))
    text = format_summary(s, title="threshold")
    lines = text.splitlines()
    assert lines[0].split() == ["Metric", "threshold"]
    table = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines[2:])
    assert table["Total return"] == "+10.00 %"
    assert table["Max drawdown"] == "-25.00 %"
    assert table["Drawdown peak → trough"] == "2024-01-02 → 2024-01-03"
    assert table["Drawdown recovered"] == "2024-01-05"
    assert table["Final NAV (USDT)"] == "110.00"
    assert table["Sharpe (rf 0.00 %)"] == f"{s.sharpe:.2f}"
    assert table["Time in unknown"] == "100.00 %"


def test_comparison_table_has_one_column_per_strategy() -> None:
    a = record(synthetic_run(seed=1)).summary()
    b = record(synthetic_run(seed=2, drift=0.001)).summary()
    flat = summarise(daily_navs([100, 100]))
    text = format_comparison({"threshold": a, "growth_optimizer": b, "hodl": flat}, quote="USDC")
    lines = text.splitlines()
    assert lines[0].split() == ["Metric", "threshold", "growth_optimizer", "hodl"]
    fees = next(line for line in lines if line.startswith("Fees paid (USDC)"))
    assert fees.split()[-3:] == ["87.50", "87.50", "0.00"]
    stressed = next(line for line in lines if line.startswith("Time in stressed"))
    assert stressed.split()[-2:] == ["0.00", "%"]  # the flat run has no regime → 0 %
    assert len({len(line) for line in lines[:2]}) == 1
