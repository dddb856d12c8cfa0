"""MetricsExporter: a known portfolio state driven through a real bus, read back with
prometheus-client's own parser (names, types, values), on a simulated clock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ballast.engine import __version__
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, Config, RiskConfig
from ballast.engine.kernel.events import (
    AssetDecision,
    BalanceUpdated,
    DataRejected,
    DataStale,
    FundingPaid,
    HandlerFailed,
    InstrumentsLoaded,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Mode,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    RebalanceTrigger,
    Regime,
    RiskBudgetChanged,
    StrategyFailed,
)
from ballast.engine.kernel.journal import Journal
from ballast.engine.kernel.redaction import register_secret
from ballast.engine.observe.metrics import MAX_LABEL_VALUES, OTHER, MetricsExporter
from tests.conftest import START_NS
from tests.support.book import Book

D = Decimal
SEC = NS_PER_SECOND
SECRET = "sk-live-9f8e7d6c5b4a"

Families = dict[str, tuple[str, list[Sample]]]


def scrape(exporter: MetricsExporter) -> Families:
    text = exporter.exposition().decode()
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def value(families: Families, sample_name: str, **labels: str) -> float:
    family = _family_of(families, sample_name)
    found = [s.value for s in families[family][1] if s.name == sample_name and s.labels == labels]
    assert len(found) == 1, f"{sample_name}{labels}: {families[family][1]}"
    return found[0]


def _family_of(families: Families, sample_name: str) -> str:
    for suffix in ("", "_total", "_bucket", "_count", "_sum", "_info"):
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in families:
            return sample_name.removesuffix(suffix) if suffix else sample_name
    raise AssertionError(f"{sample_name}: no such family in {sorted(families)}")


def example_1_snapshot(ts: int) -> PortfolioSnapshot:
    """MISSION example 1 after BTC rose 30 %: BTC $52,000, ETH $20,000, USDT $40,000."""
    book = Book(cash=D(40_000), spot={"BTC": D(1), "ETH": D(10)})
    book.prices = {"BTC": D(52_000), "ETH": D(2_000)}
    snapshot = book.snapshot(ts)
    return msgspec.structs.replace(
        snapshot, margin_used=D(5_600), realized_pnl=D("123.45"), fees_paid=D(0)
    )


def budget(regime: Regime, *, band: str, cap: str, overlay: str, vol: str) -> RiskBudgetChanged:
    return RiskBudgetChanged(
        START_NS, START_NS, regime, D(vol), D(band), None, D(cap), D(overlay), True, "test"
    )


@pytest.fixture
def bus(sim_clock: SimulatedClock) -> Bus:
    return Bus(sim_clock)


@pytest.fixture
def exporter(bus: Bus, sim_clock: SimulatedClock) -> MetricsExporter:
    config = Config(
        targets={"BTC": D("0.40"), "ETH": D("0.20")},
        bands=BandsConfig(abs_pp=D(5)),
        risk=RiskConfig(max_gross_leverage=D(3), stale_after_s=30.0),
    )
    return MetricsExporter.from_config(config, bus, sim_clock)


CATALOGUE = {
    "ballast_build_info": "gauge",
    "ballast_nav": "gauge",
    "ballast_asset_weight_ratio": "gauge",
    "ballast_asset_target_ratio": "gauge",
    "ballast_asset_band_low_ratio": "gauge",
    "ballast_asset_band_high_ratio": "gauge",
    "ballast_asset_drift_ratio": "gauge",
    "ballast_asset_net_exposure": "gauge",
    "ballast_leverage_gross_ratio": "gauge",
    "ballast_leverage_net_ratio": "gauge",
    "ballast_leverage_cap_ratio": "gauge",
    "ballast_margin_usage_ratio": "gauge",
    "ballast_liquidation_distance_ratio": "gauge",
    "ballast_regime": "gauge",
    "ballast_volatility_annualised_ratio": "gauge",
    "ballast_budget_band_ratio": "gauge",
    "ballast_budget_overlay_scale_ratio": "gauge",
    "ballast_funding_rate_ratio": "gauge",
    "ballast_funding_paid": "counter",
    "ballast_funding_received": "counter",
    "ballast_fees_paid": "counter",
    "ballast_realized_pnl": "gauge",
    "ballast_rebalances": "counter",
    "ballast_orders": "counter",
    "ballast_vetoes": "counter",
    "ballast_kill_switch_engaged": "gauge",
    "ballast_market_data_age_seconds": "gauge",
    "ballast_market_data_stale": "gauge",
    "ballast_data_rejected": "counter",
    "ballast_event_lag_seconds": "histogram",
    "ballast_bus_queue_depth": "gauge",
    "ballast_journal_commit_duration_seconds": "histogram",
    "ballast_journal_events_written": "counter",
    "ballast_venue_reconnects": "counter",
    "ballast_strategy_errors": "counter",
    "ballast_handler_errors": "counter",
}


def test_every_metric_of_the_catalogue_has_its_type_and_a_unit_in_its_help(
    exporter: MetricsExporter,
) -> None:
    text = exporter.exposition().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {name: families[name].type for name in CATALOGUE} == CATALOGUE
    assert all(name.startswith("ballast_") for name in families)
    units = ("ratio", "seconds", "currency", "count", "boolean", "messages", "records", "1")
    for name in CATALOGUE:
        assert any(unit in families[name].documentation for unit in units), name


def test_a_known_portfolio_state_is_exported(bus: Bus, exporter: MetricsExporter) -> None:
    bus.publish(budget("normal", band="0.05", cap="3", overlay="1", vol="0.55"))
    bus.publish(example_1_snapshot(START_NS))
    m = scrape(exporter)

    assert value(m, "ballast_nav", currency="USDT") == 112_000
    assert value(m, "ballast_asset_weight_ratio", asset="BTC") == pytest.approx(52 / 112)
    assert value(m, "ballast_asset_weight_ratio", asset="ETH") == pytest.approx(20 / 112)
    assert value(m, "ballast_asset_target_ratio", asset="BTC") == pytest.approx(0.40)
    assert value(m, "ballast_asset_band_low_ratio", asset="BTC") == pytest.approx(0.35)
    assert value(m, "ballast_asset_band_high_ratio", asset="BTC") == pytest.approx(0.45)
    assert value(m, "ballast_asset_drift_ratio", asset="BTC") == pytest.approx(52 / 112 - 0.40)
    assert value(m, "ballast_asset_drift_ratio", asset="ETH") == pytest.approx(20 / 112 - 0.20)
    assert value(m, "ballast_asset_net_exposure", asset="BTC", currency="USDT") == 52_000
    assert value(m, "ballast_leverage_gross_ratio") == pytest.approx(72 / 112)
    assert value(m, "ballast_leverage_net_ratio") == pytest.approx(72 / 112)
    assert value(m, "ballast_leverage_cap_ratio") == 3
    assert value(m, "ballast_margin_usage_ratio") == pytest.approx(0.05)
    assert value(m, "ballast_realized_pnl", currency="USDT") == pytest.approx(123.45)
    assert value(m, "ballast_volatility_annualised_ratio") == pytest.approx(0.55)
    assert value(m, "ballast_budget_band_ratio") == pytest.approx(0.05)
    assert value(m, "ballast_budget_overlay_scale_ratio") == 1
    assert value(m, "ballast_build_info", version=__version__) == 1


def test_regime_is_one_hot_and_the_budget_moves_bands_and_cap(
    bus: Bus, exporter: MetricsExporter
) -> None:
    bus.publish(example_1_snapshot(START_NS))
    bus.publish(budget("stressed", band="0.03", cap="1.5", overlay="0", vol="0.95"))
    m = scrape(exporter)
    regimes = {r: value(m, "ballast_regime", regime=r) for r in ("calm", "normal", "stressed")}
    assert regimes == {"calm": 0, "normal": 0, "stressed": 1}
    assert value(m, "ballast_leverage_cap_ratio") == 1.5
    assert value(m, "ballast_budget_overlay_scale_ratio") == 0
    assert value(m, "ballast_asset_band_high_ratio", asset="BTC") == pytest.approx(0.43)
    assert value(m, "ballast_asset_band_low_ratio", asset="ETH") == pytest.approx(0.17)

    bus.publish(budget("calm", band="0.07", cap="3", overlay="1", vol="0.30"))
    m = scrape(exporter)
    regimes = {r: value(m, "ballast_regime", regime=r) for r in ("calm", "normal", "stressed")}
    assert regimes == {"calm": 1, "normal": 0, "stressed": 0}


def decision(trigger: RebalanceTrigger, mode: Mode, btc_target: str) -> RebalanceDecided:
    btc = AssetDecision("BTC", D("0.4643"), D(btc_target), D("0.30"), D("0.40"), "buy spot")
    return RebalanceDecided(START_NS, START_NS, "s-d1", trigger, mode, "normal", "why", (btc,), ())


def test_decisions_set_targets_and_count_rebalances(bus: Bus, exporter: MetricsExporter) -> None:
    bus.publish(example_1_snapshot(START_NS))
    bus.publish(decision("band", "spot", "0.35"))
    bus.publish(decision("kill_switch", "spot", "0.35"))
    m = scrape(exporter)
    assert value(m, "ballast_rebalances_total", trigger="band", mode="spot") == 1
    assert value(m, "ballast_rebalances_total", trigger="kill_switch", mode="spot") == 1
    assert value(m, "ballast_rebalances_total", trigger="budget", mode="spot") == 0
    assert value(m, "ballast_asset_target_ratio", asset="BTC") == pytest.approx(0.35)
    assert value(m, "ballast_asset_band_high_ratio", asset="BTC") == pytest.approx(0.40)
    assert value(m, "ballast_asset_drift_ratio", asset="BTC") == pytest.approx(52 / 112 - 0.35)
    assert value(m, "ballast_asset_target_ratio", asset="ETH") == pytest.approx(0.20)


def order_flow(bus: Bus) -> None:
    cmd = SubmitOrder(
        START_NS, START_NS, "i1", "bl-i1", "BTC/USDT", "sell", "market", D("0.1"), None,
        False, False, "GTC",
    )  # fmt: skip
    bus.publish(cmd)
    bus.publish(OrderAccepted(START_NS, START_NS, "bl-i1", "v1", "BTC/USDT"))
    for n, fee in enumerate(("3.60", "-0.10"), start=1):  # a maker rebate is not a fee paid
        bus.publish(
            OrderFilled(
                START_NS, START_NS, "bl-i1", "v1", f"t{n}", "BTC/USDT", "sell", D("0.05"),
                D(52_000), D(fee), "USDT", "taker",
            )
        )  # fmt: skip
    bus.publish(OrderCanceled(START_NS, START_NS, "bl-i2", "BTC/USDT", "user"))
    bus.publish(OrderRejected(START_NS, START_NS, "bl-i3", "BTC/USDT", "insufficient balance"))
    for reason in ("max_gross_leverage", "max_gross_leverage", "stale_data"):
        bus.publish(OrderVetoed(START_NS, START_NS, "i4", "BTC/USDT:USDT", reason, "detail"))


def test_orders_vetoes_and_fees_are_counted(bus: Bus, exporter: MetricsExporter) -> None:
    order_flow(bus)
    m = scrape(exporter)
    statuses = ("submitted", "accepted", "filled", "canceled", "rejected")
    counts = {s: value(m, "ballast_orders_total", status=s) for s in statuses}
    assert counts == {"submitted": 1, "accepted": 1, "filled": 2, "canceled": 1, "rejected": 1}
    assert value(m, "ballast_vetoes_total", reason="max_gross_leverage") == 2
    assert value(m, "ballast_vetoes_total", reason="stale_data") == 1
    assert value(m, "ballast_vetoes_total", reason="kill_switch") == 0
    assert value(m, "ballast_fees_paid_total", currency="USDT") == pytest.approx(3.60)


def funding(amount: str, rate: str) -> FundingPaid:
    return FundingPaid(
        START_NS, START_NS, "BTC/USDT:USDT", D("-0.1"), D(50_000), D(rate), D(amount), "USDT"
    )


def test_funding_paid_and_received_are_absolute_totals_and_the_rate_is_per_symbol(
    bus: Bus, exporter: MetricsExporter
) -> None:
    bus.publish(funding("5", "0.001"))
    bus.publish(funding("-2.5", "-0.0005"))
    bus.publish(funding("-1", "-0.0002"))
    bus.publish(
        MarkPriceUpdated(START_NS, START_NS, "BTC/USDT:USDT", D(50_000), D(50_010), D("1E-4"), 0)
    )
    m = scrape(exporter)
    assert value(m, "ballast_funding_received_total", currency="USDT") == 5
    assert value(m, "ballast_funding_paid_total", currency="USDT") == 3.5
    assert value(m, "ballast_funding_rate_ratio", symbol="BTC/USDT:USDT") == pytest.approx(1e-4)


def test_kill_switch_gauge_follows_trigger_and_reset(bus: Bus, exporter: MetricsExporter) -> None:
    assert value(scrape(exporter), "ballast_kill_switch_engaged") == 0
    bus.publish(KillSwitchTriggered(START_NS, START_NS, "drawdown", "drawdown 0.3 >= 0.25"))
    assert value(scrape(exporter), "ballast_kill_switch_engaged") == 1
    bus.publish(KillSwitchReset(START_NS, START_NS, "operator"))
    assert value(scrape(exporter), "ballast_kill_switch_engaged") == 0


def quote(symbol: str, ts: int, *, lag_ns: int = 0) -> QuoteTick:
    return QuoteTick(ts, ts + lag_ns, symbol, D(100), D(101), D(1), D(1))


def test_data_age_stale_flag_and_lag_are_read_on_the_engine_clock(
    bus: Bus, exporter: MetricsExporter, sim_clock: SimulatedClock
) -> None:
    bus.publish(quote("BTC/USDT", START_NS, lag_ns=20_000_000))  # 20 ms from origin to here
    bus.publish(quote("ETH/USDT", START_NS, lag_ns=-5))  # clock skew counts as no lag
    sim_clock.advance_to(START_NS + 10 * SEC)
    m = scrape(exporter)
    assert value(m, "ballast_market_data_age_seconds", symbol="BTC/USDT") == 10
    assert value(m, "ballast_market_data_stale", symbol="BTC/USDT") == 0
    assert value(m, "ballast_market_data_stale", symbol="BTC/USDT:USDT") == 1  # never seen
    assert value(m, "ballast_event_lag_seconds_count") == 2
    assert value(m, "ballast_event_lag_seconds_sum") == pytest.approx(0.02)
    assert value(m, "ballast_event_lag_seconds_bucket", le="0.01") == 1
    assert value(m, "ballast_event_lag_seconds_bucket", le="0.025") == 2

    sim_clock.advance_to(START_NS + 31 * SEC)
    assert value(scrape(exporter), "ballast_market_data_stale", symbol="BTC/USDT") == 1
    bus.publish(quote("BTC/USDT", START_NS + 31 * SEC))
    assert value(scrape(exporter), "ballast_market_data_stale", symbol="BTC/USDT") == 0

    bus.publish(DataStale(START_NS + 31 * SEC, START_NS + 31 * SEC, "BTC/USDT", 0, 0, 0))
    assert value(scrape(exporter), "ballast_market_data_stale", symbol="BTC/USDT") == 1
    bus.publish(quote("BTC/USDT", START_NS + 32 * SEC))
    assert value(scrape(exporter), "ballast_market_data_stale", symbol="BTC/USDT") == 0


def test_liquidation_distance_is_shown_while_a_perp_position_is_open(
    bus: Bus, exporter: MetricsExporter
) -> None:
    snapshot = example_1_snapshot(START_NS)
    btc = msgspec.structs.replace(
        snapshot.assets[0],
        perp_qty=D("-0.5"),
        perp_price=D(50_000),
        perp_liquidation_price=D(90_000),  # the venue's estimate at the last fill: stale
    )
    # USDT 5,120 as collateral: liquidation where 5,120 − 0.5 × (P − 50,000) = 0.004 × 0.5 × P,
    # P = 30,120 / 0.502 = 60,000, 20 % above the mark
    short = msgspec.structs.replace(snapshot, cash=D(5_120), assets=(btc, *snapshot.assets[1:]))
    bus.publish(short)
    m = scrape(exporter)
    assert value(m, "ballast_liquidation_distance_ratio", symbol="BTC/USDT:USDT") == 0.2
    bus.publish(snapshot)  # the position closed
    assert scrape(exporter)["ballast_liquidation_distance_ratio"][1] == []


def test_rejected_data_strategy_errors_and_handler_errors_are_counted(
    bus: Bus, exporter: MetricsExporter
) -> None:
    bus.publish(DataRejected(START_NS, START_NS, "BTC/USDT", "price_jump", "12 % move"))

    def broken(event: QuoteTick) -> None:
        raise RuntimeError("boom")

    bus.subscribe(QuoteTick, broken, name="MyDashboard.on_quote")
    bus.publish(quote("BTC/USDT", START_NS))
    bus.publish(StrategyFailed(START_NS, START_NS, "threshold", "ZeroDivisionError"))
    m = scrape(exporter)
    assert value(m, "ballast_data_rejected_total", reason="price_jump") == 1
    assert value(m, "ballast_data_rejected_total", reason="crossed_quote") == 0
    assert value(m, "ballast_handler_errors_total", actor="MyDashboard") == 1
    assert value(m, "ballast_handler_errors_total", actor="Portfolio") == 0  # listed at 0
    assert value(m, "ballast_strategy_errors_total", strategy="threshold") == 1


def test_venue_reconnects_are_registered_at_zero_when_instruments_load(
    bus: Bus, exporter: MetricsExporter
) -> None:
    bus.publish(InstrumentsLoaded(START_NS, START_NS, "memory", ()))
    assert value(scrape(exporter), "ballast_venue_reconnects_total", venue="memory") == 0


def test_label_values_are_bounded(bus: Bus, exporter: MetricsExporter) -> None:
    for n in range(MAX_LABEL_VALUES + 20):
        bus.publish(
            OrderVetoed(START_NS, START_NS, f"i{n}", "BTC/USDT", cast(Any, f"code_{n}"), "")
        )
    samples = scrape(exporter)["ballast_vetoes"][1]
    reasons = {s.labels["reason"] for s in samples if s.name == "ballast_vetoes_total"}
    assert len(reasons) == MAX_LABEL_VALUES + 1
    assert OTHER in reasons


def test_secrets_never_appear_in_any_metric_or_label(bus: Bus, exporter: MetricsExporter) -> None:
    register_secret(SECRET)
    bus.publish(InstrumentsLoaded(START_NS, START_NS, f"venue-{SECRET}", ()))
    bus.publish(BalanceUpdated(START_NS, START_NS, "spot", f"X{SECRET}", D(1), D(0)))
    bus.publish(OrderVetoed(START_NS, START_NS, SECRET, SECRET, cast(Any, f"r_{SECRET}"), SECRET))
    bus.publish(DataRejected(START_NS, START_NS, f"{SECRET}/USDT", cast(Any, SECRET), SECRET))
    bus.publish(StrategyFailed(START_NS, START_NS, f"mod:{SECRET}", f"key={SECRET}"))
    bus.publish(HandlerFailed(START_NS, START_NS, SECRET, "QuoteTick", 1, SECRET))
    bus.publish(KillSwitchTriggered(START_NS, START_NS, cast(Any, SECRET), f"detail {SECRET}"))
    bus.publish(quote(f"{SECRET}/USDT", START_NS))
    bus.publish(decision(cast(Any, SECRET), cast(Any, SECRET), "0.4"))
    text = exporter.exposition().decode()
    assert SECRET not in text
    assert "***" in text  # the labels were there, masked
    assert "ballast_kill_switch_engaged 1.0" in text


async def test_journal_commits_records_and_queue_depth_are_exported(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    async with Journal(tmp_path / "journal.db") as journal:
        bus = Bus(sim_clock, journal)
        exporter = MetricsExporter(bus, sim_clock)
        async with exporter:
            for n in range(10):
                bus.publish(quote("BTC/USDT", START_NS + n))
            assert value(scrape(exporter), "ballast_bus_queue_depth") == 10  # not yet committed
            await bus.sync()
            m = scrape(exporter)
            assert value(m, "ballast_journal_events_written_total") == 10
            assert value(m, "ballast_bus_queue_depth") == 0
            assert value(m, "ballast_journal_commit_duration_seconds_count") == journal.commits
            assert journal.commits >= 1
        assert journal.commit_observers == []
