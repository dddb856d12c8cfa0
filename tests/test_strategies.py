"""Built-in strategy presets, the strategy guard and the strategy registry.

Contexts are built by hand from PortfolioSnapshot / MarketView / RiskBudgetChanged, as the
Rebalancer builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.errors import ConfigError, StrategyError
from ballast.engine.kernel.events import (
    AssetState,
    PortfolioSnapshot,
    Regime,
    RiskBudgetChanged,
    StrategyFailed,
)
from ballast.engine.kernel.redaction import register_secret
from ballast.engine.strategy.api import MarketView, Strategy, StrategyContext, TargetSet
from ballast.engine.strategy.guard import GuardedStrategy
from ballast.engine.strategy.registry import known_strategies, load_strategy
from ballast.strategies.conservative_hedger import ConservativeHedger
from ballast.strategies.growth_optimizer import GrowthOptimizer
from ballast.strategies.threshold import Threshold
from ballast.strategies.yield_aggregator import YieldAggregator
from tests.conftest import START_NS

D = Decimal
ZERO = D(0)
ONE = D(1)
NAV = D(100_000)
PRICES = {"BTC": D(50_000), "ETH": D(2_500)}
BUILT_INS = {
    "threshold": Threshold,
    "conservative_hedger": ConservativeHedger,
    "growth_optimizer": GrowthOptimizer,
    "yield_aggregator": YieldAggregator,
}


# ----------------------------------------------------------------------------------- builders


def asset_state(asset: str, spot_weight: Decimal, price: Decimal) -> AssetState:
    value = spot_weight * NAV
    return AssetState(
        asset=asset,
        spot_qty=value / price,
        spot_price=price,
        spot_value=value,
        perp_qty=ZERO,
        perp_price=price,
        perp_notional=ZERO,
        perp_entry_price=ZERO,
        perp_unrealized_pnl=ZERO,
        perp_funding=ZERO,
        perp_liquidation_price=None,
        net_exposure=value,
        weight=spot_weight,
        spot_weight=spot_weight,
    )


def snapshot(
    ts_ns: int, *, drawdown: Decimal = ZERO, prices: Mapping[str, Decimal] = PRICES
) -> PortfolioSnapshot:
    weights = {"BTC": D("0.4"), "ETH": D("0.2")}
    assets = tuple(asset_state(a, weights[a], p) for a, p in sorted(prices.items()) if a in weights)
    return PortfolioSnapshot(
        ts_event=ts_ns,
        ts_init=ts_ns,
        trigger="price",
        nav=NAV,
        cash=NAV - sum((s.spot_value for s in assets), ZERO),
        gross_leverage=D("0.6"),
        net_leverage=D("0.6"),
        margin_used=ZERO,
        realized_pnl=ZERO,
        unrealized_pnl=ZERO,
        price_pnl=ZERO,
        funding_pnl=ZERO,
        fees_paid=ZERO,
        transfers=ZERO,
        peak_nav=NAV / (1 - drawdown),
        drawdown=drawdown,
        assets=assets,
    )


def budget(
    regime: Regime = "normal", *, overlay_scale: Decimal = ONE, allow_longs: bool = True
) -> RiskBudgetChanged:
    return RiskBudgetChanged(
        ts_event=START_NS,
        ts_init=START_NS,
        regime=regime,
        volatility=D("0.5"),
        band_abs=D("0.05"),
        band_rel=None,
        max_gross_leverage=D(3),
        overlay_scale=overlay_scale,
        allow_overlay_longs=allow_longs,
        reason="test",
    )


def context(
    ts_ns: int = START_NS,
    *,
    prices: Mapping[str, Decimal] = PRICES,
    funding: Mapping[str, Decimal] | None = None,
    risk: RiskBudgetChanged | None = None,
    kill_switch: bool = False,
    drawdown: Decimal = ZERO,
) -> StrategyContext:
    market = MarketView(
        spot_prices=dict(prices), perp_marks=dict(prices), funding_rates=dict(funding or {})
    )
    return StrategyContext(
        ts_ns=ts_ns,
        snapshot=snapshot(ts_ns, drawdown=drawdown, prices=prices),
        market=market,
        budget=risk,
        kill_switch=kill_switch,
    )


def nets(targets: TargetSet) -> dict[str, Decimal]:
    return {asset: resolved.net for asset, resolved in targets.resolve().items()}


def spots(targets: TargetSet) -> dict[str, Decimal | None]:
    return {asset: resolved.spot for asset, resolved in targets.resolve().items()}


# ----------------------------------------------------------------------------------- registry


def test_every_built_in_is_registered_by_name_and_builds_with_defaults() -> None:
    assert set(BUILT_INS) <= set(known_strategies())
    for name, cls in BUILT_INS.items():
        strategy = load_strategy(name, {})
        assert type(strategy) is cls
        assert strategy.name == name
        assert isinstance(strategy.targets(context()), TargetSet)


def test_a_module_class_spec_is_imported_directly() -> None:
    strategy = load_strategy("ballast.strategies.threshold:Threshold", {"weights": {"BTC": 0.4}})
    assert strategy.targets(context()).weights == {"BTC": D("0.4")}


def test_an_unknown_name_is_a_config_error_listing_the_known_names() -> None:
    with pytest.raises(ConfigError) as caught:
        load_strategy("thresold", {})
    assert caught.value.key == "strategy.name"
    assert "unknown strategy 'thresold'" in caught.value.problem
    assert (
        "conservative_hedger, growth_optimizer, threshold, yield_aggregator" in caught.value.problem
    )


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("no_such_module:Thing", "cannot import module 'no_such_module'"),
        ("ballast.strategies.threshold:Nope", "has no 'Nope'"),
        (
            "ballast.engine.kernel.errors:ConfigError",
            "not a subclass of ballast.engine.strategy.api.Strategy",
        ),
        ("ballast.engine.strategy.api:Strategy", "is abstract"),
    ],
)
def test_a_bad_module_class_spec_is_a_config_error_on_the_name(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_strategy(spec, {})
    assert caught.value.key == "strategy.name"
    assert problem in caught.value.problem


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_a_typo_in_params_names_the_key(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_strategy(name, {"x": 1})
    assert caught.value.key == "strategy.params.x"
    assert "unknown key" in caught.value.problem


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("threshold", {"weights": {"ETH": 0.2, "BTC": "lots"}}, "strategy.params.weights.BTC"),
        ("threshold", {"weights": {"BTC": 0.7, "ETH": 0.6}}, "strategy.params.weights"),
        ("threshold", {"prefer": {"BTC": "futures"}}, "strategy.params.prefer.BTC"),
        ("conservative_hedger", {"alert_drawdown": 2}, "strategy.params.alert_drawdown"),
        ("conservative_hedger", {"clear_drawdown": 0.2}, "strategy.params.clear_drawdown"),
        ("conservative_hedger", {"core": {"BTC": -0.1}}, "strategy.params.core.BTC"),
        ("growth_optimizer", {"lookback_h": "week"}, "strategy.params.lookback_h"),
        ("growth_optimizer", {"sample_h": 0}, "strategy.params.sample_h"),
        ("growth_optimizer", {"weak_hedge_ratio": "nan"}, "strategy.params.weak_hedge_ratio"),
        ("yield_aggregator", {"exit_apr": 0.3}, "strategy.params.exit_apr"),
        ("yield_aggregator", {"carry_weight": 0.6}, "strategy.params.carry_weight"),
    ],
)
def test_a_bad_param_value_names_the_key(name: str, params: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_strategy(name, params)
    assert caught.value.key == key


class PickyStrategy(Strategy):
    """A plug-in that checks its params its own way."""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        if "level" not in self.params:
            raise ValueError("level is required")

    def targets(self, context: StrategyContext) -> TargetSet:
        return TargetSet(weights={})


def test_a_plug_in_rejecting_its_params_is_a_config_error_on_the_params() -> None:
    with pytest.raises(ConfigError) as caught:
        load_strategy(f"{__name__}:PickyStrategy", {})
    assert caught.value.key == "strategy.params"
    assert "ValueError: level is required" in caught.value.problem


# ---------------------------------------------------------------------------------- threshold


def test_threshold_holds_the_params_weights_exactly() -> None:
    targets = Threshold({"weights": {"BTC": 0.4, "ETH": 0.2}}).targets(context())
    assert targets.weights == {"BTC": D("0.4"), "ETH": D("0.2")}
    assert nets(targets) == {"BTC": D("0.4"), "ETH": D("0.2")}
    assert spots(targets) == {"BTC": None, "ETH": None}  # the execution mode picks the instrument


def test_threshold_takes_the_config_targets_the_rebalancer_passes_as_weights() -> None:
    config = parse_config("[targets]\nBTC = 0.40\nETH = 0.20\n")
    strategy = load_strategy(
        config.strategy.name, config.strategy.params or {"weights": config.targets}
    )
    assert strategy.targets(context()).weights == {"BTC": D("0.40"), "ETH": D("0.20")}


def test_threshold_without_weights_targets_nothing() -> None:
    assert Threshold().targets(context()).resolve() == {}


def test_threshold_passes_floors_and_preferences() -> None:
    params = {"weights": {"BTC": 0.4}, "core_floors": {"BTC": 0.3}, "prefer": {"BTC": "perp"}}
    (resolved,) = Threshold(params).targets(context()).resolve().values()
    assert (resolved.net, resolved.core_floor, resolved.prefer) == (D("0.4"), D("0.3"), "perp")


# ------------------------------------------------------------------------ conservative_hedger

CORE_80 = {"BTC": D("0.5"), "ETH": D("0.3")}


def test_conservative_hedger_holds_an_80_percent_spot_core_with_no_overlay_when_calm() -> None:
    targets = ConservativeHedger().targets(context(risk=budget("calm")))
    assert nets(targets) == CORE_80
    assert spots(targets) == CORE_80
    assert targets.core_floors == CORE_80
    assert sum(CORE_80.values()) == D("0.8")


@pytest.mark.parametrize(
    "alert",
    [
        {"risk": budget("stressed")},
        {"kill_switch": True},
        {"drawdown": D("0.10")},
    ],
    ids=["stressed", "kill-switch", "drawdown"],
)
def test_conservative_hedger_hedges_the_whole_spot_book_during_an_alert(
    alert: dict[str, Any],
) -> None:
    targets = ConservativeHedger().targets(context(**alert))
    assert nets(targets) == {"BTC": ZERO, "ETH": ZERO}
    assert spots(targets) == CORE_80  # the core is kept, never sold to hedge
    assert {r.core_floor for r in targets.resolve().values()} == set(CORE_80.values())
    assert "risk alert" in targets.note


def test_conservative_hedger_drawdown_alert_clears_only_below_the_clear_level() -> None:
    # every context at the same instant: no minimum hold here (tests/test_preset_signals.py)
    hedger = ConservativeHedger({"alert_drawdown": 0.10, "clear_drawdown": 0.05, "min_hold_h": 0})
    observed = [
        nets(hedger.targets(context(drawdown=D(dd))))["BTC"]
        for dd in ("0.08", "0.10", "0.07", "0.05", "0.049", "0.07")
    ]
    assert observed == [D("0.5"), ZERO, ZERO, ZERO, D("0.5"), D("0.5")]


def test_conservative_hedger_core_and_hedge_ratio_are_configurable() -> None:
    hedger = ConservativeHedger({"core": {"BTC": 0.6}, "hedge_ratio": 0.5})
    targets = hedger.targets(context(risk=budget("stressed")))
    assert nets(targets) == {"BTC": D("0.30")}
    assert spots(targets) == {"BTC": D("0.6")}


def test_conservative_hedger_releases_a_drawdown_hedge_when_the_core_rebounds() -> None:
    """Issue 16 item 7: fully hedged, NAV (so the drawdown) is frozen above the clear level; the
    hedge comes off when the core's prices are 10 % above their low since the alert, and the
    alert does not come back at once on the old drawdown."""
    hedger = ConservativeHedger({"min_hold_h": 0})
    path = [  # (BTC price, ETH price, drawdown as the frozen hedged NAV shows it)
        ("40000", "2000", "0.10"),  # alert: hedge
        ("36000", "1800", "0.0522"),  # falls further: hedged, NAV frozen
        ("34000", "1700", "0.0522"),  # the low
        ("37000", "1850", "0.0522"),  # +8.8 %: still hedged
        ("37400", "1870", "0.0522"),  # +10 %: released
        ("38000", "1900", "0.0522"),  # the old drawdown does not re-arm it
    ]
    observed = []
    notes = []
    for btc, eth, dd in path:
        targets = hedger.targets(context(prices={"BTC": D(btc), "ETH": D(eth)}, drawdown=D(dd)))
        observed.append(nets(targets)["BTC"])
        notes.append(targets.note)
    assert observed == [ZERO, ZERO, ZERO, ZERO, D("0.5"), D("0.5")]
    assert "hedge released: the core's prices are 10.00% above their low" in notes[4]


def test_conservative_hedger_hedges_again_on_a_new_fall_from_the_hedged_peak() -> None:
    hedger = ConservativeHedger({"release_rebound": 0.10, "min_hold_h": 0})
    hedger.targets(context(prices={"BTC": D(40_000), "ETH": D(2_000)}, drawdown=D("0.10")))
    hedger.targets(context(prices={"BTC": D(30_000), "ETH": D(1_500)}, drawdown=D("0.10")))
    released = hedger.targets(
        context(prices={"BTC": D(33_000), "ETH": D(1_650)}, drawdown=D("0.10"))
    )
    assert nets(released)["BTC"] == D("0.5")
    # NAV (100,000 in these contexts) is the hedged peak; a new 10 % fall from it hedges again.
    snap = snapshot(START_NS, drawdown=D("0.19"))
    fallen = StrategyContext(
        ts_ns=START_NS,
        snapshot=msgspec.structs.replace(snap, nav=D(90_000)),
        market=MarketView(spot_prices={}, perp_marks={}, funding_rates={}),
        budget=None,
        kill_switch=False,
    )
    assert nets(hedger.targets(fallen))["BTC"] == ZERO


def test_yield_aggregator_keeps_an_open_carry_in_a_stressed_regime() -> None:
    """Issue 16 (item 4, the carry): zero net exposure is not force-unwound by the regime."""
    strategy = YieldAggregator(RAW)
    funding = {"BTC": HIGH, "ETH": HIGH}
    carry_spots(strategy, funding=funding)
    ctx = context(funding=funding, risk=budget("stressed", overlay_scale=ZERO, allow_longs=False))
    carried = tuple(
        msgspec.structs.replace(a, perp_qty=-a.spot_qty) if a.asset == "BTC" else a
        for a in ctx.snapshot.assets
    )
    ctx = msgspec.structs.replace(
        ctx, snapshot=msgspec.structs.replace(ctx.snapshot, assets=carried)
    )
    targets = strategy.targets(ctx)
    assert spots(targets) == {"BTC": D("0.25"), "ETH": ZERO}  # open: kept; not open: not entered
    assert nets(targets) == {"BTC": ZERO, "ETH": ZERO}
    assert "BTC carry open: kept whole (stressed regime)" in targets.note


# --------------------------------------------------------------------------- growth_optimizer


WEEK = {"lookback_h": 168}  # a one-week momentum (the default is 720 h)


def strong_run(strategy: Strategy, *, risk: RiskBudgetChanged | None = None) -> TargetSet:
    """A week and an hour of BTC and ETH both rising 0.05 % an hour (+8.8 % over the lookback):
    the signal is warm and both assets are strong."""
    targets = TargetSet(weights={})
    for hour in range(169):
        rise = 1 + D("0.0005") * hour
        prices = {a: p * rise for a, p in PRICES.items()}
        targets = strategy.targets(context(START_NS + hour * NS_PER_HOUR, prices=prices, risk=risk))
    return targets


def test_growth_optimizer_default_allocation_is_the_mission_example() -> None:
    """The brief's example is the allocation with both assets strong (issue 12: not before the
    signal is warm; tests/test_preset_signals.py)."""
    targets = strong_run(GrowthOptimizer(WEEK))
    assert targets.spot_weights == {"BTC": D("0.35"), "ETH": D("0.25")}
    assert targets.weights == {"BTC": D("0.65"), "ETH": D("0.55")}
    resolved = targets.resolve()
    # On $100,000: BTC spot $35k, ETH spot $25k, a $30k perp long each at 2× on $15k margin.
    perp_notional = {a: (r.net - (r.spot or ZERO)) * NAV for a, r in resolved.items()}
    assert perp_notional == {"BTC": D(30_000), "ETH": D(30_000)}
    margin = sum(perp_notional.values(), ZERO) / 2
    stable = NAV - sum(targets.spot_weights.values(), ZERO) * NAV - margin
    assert (margin, stable) == (D(30_000), D(10_000))
    assert targets.core_floors == targets.spot_weights


def feed_prices(
    strategy: Strategy, btc_path: list[Decimal], *, risk: RiskBudgetChanged | None = None
) -> TargetSet:
    """Call the strategy once an hour with BTC following ``btc_path`` (ETH flat)."""
    targets = TargetSet(weights={})
    for hour, btc in enumerate(btc_path):
        prices = {"BTC": btc, "ETH": PRICES["ETH"]}
        targets = strategy.targets(context(START_NS + hour * NS_PER_HOUR, prices=prices, risk=risk))
    return targets


def test_growth_optimizer_hedges_a_weak_asset_and_holds_only_the_core_of_a_flat_one() -> None:
    falling = [D(50_000) - D(50) * hour for hour in range(169)]  # −16.8 % over the week
    targets = feed_prices(GrowthOptimizer(WEEK), falling)
    assert nets(targets) == {"BTC": D("0.175"), "ETH": D("0.25")}  # BTC 50 % hedged, ETH core
    assert spots(targets) == {"BTC": D("0.35"), "ETH": D("0.25")}
    assert "BTC weak (momentum -16.80%, held 0 h of min 168 h): 50% of spot hedged" in targets.note
    assert "ETH neutral (momentum +0.00%" in targets.note


def test_growth_optimizer_weak_asset_recovers_only_at_the_recover_level() -> None:
    strategy = GrowthOptimizer(
        {"lookback_h": 2, "weak_below": 0.05, "recover_above": 0, "min_hold_h": 0}
    )
    path = [D(100), D(100), D(94), D(97), D(92), D(95), D(99)]
    observed = []
    for hour, btc in enumerate(path):
        prices = {"BTC": btc, "ETH": PRICES["ETH"]}
        observed.append(
            nets(strategy.targets(context(START_NS + hour * NS_PER_HOUR, prices=prices)))["BTC"]
        )
    # hours 0–1 warming up (core only); vs two hours before: hour 2 −6 % → weak; hours 3–5 −3 %,
    # −2.1 %, −2.1 % (above −5 % but below 0: still weak); hour 6 +7.6 % → strong.
    core, weak, strong = D("0.35"), D("0.175"), D("0.65")
    assert observed == [core, core, weak, weak, weak, weak, strong]


def test_growth_optimizer_scales_longs_with_the_budget_and_drops_them_when_forbidden() -> None:
    half = strong_run(GrowthOptimizer(WEEK), risk=budget(overlay_scale=D("0.5")))
    assert nets(half) == {"BTC": D("0.50"), "ETH": D("0.40")}
    no_longs = strong_run(GrowthOptimizer(WEEK), risk=budget("stressed", allow_longs=False))
    assert nets(no_longs) == {"BTC": D("0.35"), "ETH": D("0.25")}
    strategy = GrowthOptimizer(WEEK)
    strong_run(strategy)
    later = {a: p * D("1.0845") for a, p in PRICES.items()}
    kill = strategy.targets(context(START_NS + 169 * NS_PER_HOUR, prices=later, kill_switch=True))
    assert nets(kill) == {"BTC": D("0.35"), "ETH": D("0.25")}


def test_growth_optimizer_keeps_hedges_when_longs_are_forbidden() -> None:
    falling = [D(50_000) - D(50) * hour for hour in range(169)]
    targets = feed_prices(
        GrowthOptimizer(WEEK), falling, risk=budget("stressed", allow_longs=False)
    )
    assert nets(targets) == {"BTC": D("0.175"), "ETH": D("0.25")}


def test_growth_optimizer_is_deterministic_for_the_same_sequence_of_contexts() -> None:
    path = [D(50_000) + D(137) * ((hour * 7) % 11 - 5) for hour in range(200)]
    assert feed_prices(GrowthOptimizer(WEEK), path) == feed_prices(GrowthOptimizer(WEEK), path)


# --------------------------------------------------------------------------- yield_aggregator

# Funding per 8 h; annualised = rate × 1095.
HIGH = D("0.0002")  # 21.9 % APR > 15 %
MIDDLE = D("0.0001")  # 10.95 % APR: between exit and enter
LOW = D("0.00004")  # 4.38 % APR < 5 %
# These contexts share one instant: the latest rate alone, no hold (tests/test_preset_signals.py).
RAW = {"funding_window_h": 0, "min_hold_h": 0}


def carry_spots(strategy: YieldAggregator, **ctx: Any) -> dict[str, Decimal | None]:
    targets = strategy.targets(context(**ctx))
    assert all(net == 0 for net in nets(targets).values())  # delta-neutral beyond the (empty) core
    return spots(targets)


def test_yield_aggregator_enters_the_carry_above_enter_apr() -> None:
    targets = YieldAggregator(RAW).targets(context(funding={"BTC": HIGH, "ETH": MIDDLE}))
    assert spots(targets) == {"BTC": D("0.25"), "ETH": ZERO}
    assert nets(targets) == {"BTC": ZERO, "ETH": ZERO}  # long spot + perp short of the same size
    assert "BTC carry on (funding 21.9% APR)" in targets.note


def test_yield_aggregator_carry_has_hysteresis() -> None:
    strategy = YieldAggregator(RAW)
    observed = [
        carry_spots(strategy, funding={"BTC": rate})["BTC"]
        for rate in (MIDDLE, HIGH, MIDDLE, LOW, MIDDLE, HIGH)
    ]
    assert observed == [ZERO, D("0.25"), D("0.25"), ZERO, ZERO, D("0.25")]


def test_yield_aggregator_keeps_its_state_without_a_funding_rate() -> None:
    strategy = YieldAggregator(RAW)
    carry_spots(strategy, funding={"BTC": HIGH, "ETH": HIGH})
    assert carry_spots(strategy, funding={}) == {"BTC": D("0.25"), "ETH": D("0.25")}


def test_yield_aggregator_unwinds_its_carry_on_the_kill_switch_only() -> None:
    """The regime's overlay scale sizes a new carry (an open one is kept whole in a stressed
    regime: test_yield_aggregator_keeps_an_open_carry_in_a_stressed_regime); the kill switch
    unwinds every carry."""
    strategy = YieldAggregator(RAW)
    funding = {"BTC": HIGH, "ETH": HIGH}
    assert carry_spots(strategy, funding=funding, risk=budget(overlay_scale=D("0.5"))) == {
        "BTC": D("0.125"),
        "ETH": D("0.125"),
    }
    assert carry_spots(strategy, funding=funding, kill_switch=True) == {"BTC": ZERO, "ETH": ZERO}
    assert carry_spots(strategy, funding=funding) == {"BTC": D("0.25"), "ETH": D("0.25")}


def test_yield_aggregator_keeps_a_directional_core_beside_the_carry() -> None:
    strategy = YieldAggregator(
        {"core": {"BTC": 0.1}, "assets": ["BTC"], "carry_weight": 0.4, **RAW}
    )
    targets = strategy.targets(context(funding={"BTC": HIGH}))
    assert nets(targets) == {"BTC": D("0.1")}
    assert spots(targets) == {"BTC": D("0.5")}
    assert targets.core_floors == {"BTC": D("0.1")}


# -------------------------------------------------------------------------------------- guard


class Scripted(Strategy):
    """Returns (or raises) whatever it was given, counting calls."""

    name: ClassVar[str] = "scripted"

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result
        self.calls = 0

    def targets(self, context: StrategyContext) -> TargetSet:
        self.calls += 1
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result  # type: ignore[return-value]


def test_a_raising_strategy_is_halted_with_a_clear_error_and_never_called_again() -> None:
    strategy = Scripted(ZeroDivisionError("division by zero"))
    guard = GuardedStrategy(strategy, "mine")

    assert guard.call(context()) is None
    assert guard.halted
    assert isinstance(guard.error, StrategyError)
    assert "strategy 'mine' raised ZeroDivisionError: division by zero" in str(guard.error)
    assert "test_strategies.py" in str(guard.error)  # where it raised
    event = guard.failure_event(START_NS + 5)
    assert event == StrategyFailed(
        ts_event=START_NS + 5, ts_init=START_NS + 5, strategy="mine", error=str(guard.error)
    )

    assert guard.call(context()) is None
    assert strategy.calls == 1
    assert guard.failure_event(START_NS + 6) is None  # published once, for the halting call


def test_a_healthy_guard_reports_no_failure() -> None:
    guard = GuardedStrategy(Threshold({"weights": {"BTC": 0.4}}), "threshold")
    assert guard.call(context()) == TargetSet(
        weights={"BTC": D("0.4")}, note="static target weights"
    )
    assert (guard.halted, guard.error, guard.failure_event(START_NS)) == (False, None, None)


def test_the_guard_keeps_the_resolved_targets_of_the_set_it_returns() -> None:
    targets = TargetSet(
        weights={"BTC": D("0.5"), "ETH": D("0.2")},
        spot_weights={"BTC": D("0.6")},
        hedge_ratios={"ETH": D("0.5")},
    )
    guard = GuardedStrategy(Scripted(targets), "scripted")
    assert guard.resolved == {}
    returned = guard.call(context())
    assert returned is not None
    assert returned is not targets
    assert guard.resolved == returned.resolve()
    assert guard.resolved["ETH"].net == D("0.1")


def test_a_halted_strategy_does_not_stop_another() -> None:
    broken = GuardedStrategy(Scripted(RuntimeError("boom")), "broken")
    healthy = GuardedStrategy(ConservativeHedger(), "conservative_hedger")
    for _ in range(3):
        assert broken.call(context()) is None
        assert healthy.call(context()) is not None
    assert broken.halted
    assert not healthy.halted


def test_the_error_message_is_redacted() -> None:
    register_secret("s3cr3t-api-key")
    guard = GuardedStrategy(Scripted(ValueError("login failed for s3cr3t-api-key")), "leaky")
    guard.call(context())
    assert "s3cr3t" not in str(guard.error)
    assert "login failed for ***" in str(guard.error)


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({"BTC": D("0.4")}, "expected a TargetSet, got dict"),
        (TargetSet(weights={"BTC": 0.4}), "weights['BTC'] is 0.4 (float), not a Decimal"),  # type: ignore[dict-item]
        (TargetSet(weights={"BTC": D("NaN")}), "weights['BTC'] = NaN is outside"),
        (TargetSet(weights={"BTC": D("Infinity")}), "is outside"),
        (TargetSet(weights={"BTC": D(4)}), "weights['BTC'] = 4 is outside [-3, 3]"),
        (TargetSet(weights={}, spot_weights={"BTC": D("-0.1")}), "spot_weights['BTC']"),
        (TargetSet(weights={}, hedge_ratios={"BTC": D("-1")}), "hedge_ratios['BTC']"),
        (TargetSet(weights={"": D("0.1")}), "not an asset name"),
        (TargetSet(weights={}, prefer={"BTC": "futures"}), "prefer['BTC'] is 'futures'"),  # type: ignore[dict-item]
        (TargetSet(weights={}, spot_weights={"BTC": D("0.7"), "ETH": D("0.4")}), "add up to 1.1"),
        (
            TargetSet(
                weights={"BTC": D(-3)}, spot_weights={"BTC": D(1)}, hedge_ratios={"BTC": D(3)}
            ),
            "net target of 'BTC' = -6 is outside ±3",
        ),
        (TargetSet(weights={}, note=None), "note is a NoneType"),  # type: ignore[arg-type]
        (None, "got NoneType"),
    ],
)
def test_an_invalid_target_set_halts_the_strategy(result: object, problem: str) -> None:
    guard = GuardedStrategy(Scripted(result), "sloppy")
    assert guard.call(context()) is None
    assert guard.halted
    assert "strategy 'sloppy' returned an invalid target set" in str(guard.error)
    assert problem in str(guard.error)


def test_targets_for_an_asset_the_engine_does_not_trade_halt_the_strategy() -> None:
    guard = GuardedStrategy(Scripted(TargetSet(weights={"DOGE": D("0.1")})), "x", assets={"BTC"})
    assert guard.call(context()) is None
    assert "'DOGE', which is not traded (known: BTC)" in str(guard.error)


def test_an_async_targets_method_halts_without_leaving_a_coroutine_behind() -> None:
    class Async(Strategy):
        async def targets(self, context: StrategyContext) -> TargetSet:  # type: ignore[override]
            return TargetSet(weights={})

    guard = GuardedStrategy(Async(), "async")
    assert guard.call(context()) is None
    assert "expected a TargetSet, got coroutine" in str(guard.error)


class Meddler(Strategy):
    """Tries to change what it was shown."""

    def __init__(self, attempt: str) -> None:
        super().__init__()
        self.attempt = attempt

    def targets(self, context: StrategyContext) -> TargetSet:
        if self.attempt == "prices":
            context.market.spot_prices["BTC"] = D(1)  # type: ignore[index]
        elif self.attempt == "funding":
            context.market.funding_rates.clear()  # type: ignore[attr-defined]
        elif self.attempt == "snapshot":
            context.snapshot.nav = D(0)  # type: ignore[misc]
        elif self.attempt == "assets":
            context.snapshot.assets.append(context.snapshot.assets[0])  # type: ignore[attr-defined]
        return TargetSet(weights={})


@pytest.mark.parametrize("attempt", ["prices", "funding", "snapshot", "assets"])
def test_a_strategy_cannot_mutate_the_context(attempt: str) -> None:
    engine_context = context(funding={"BTC": HIGH})
    guard = GuardedStrategy(Meddler(attempt), "meddler")
    assert guard.call(engine_context) is None
    assert guard.halted
    assert engine_context.market.spot_prices["BTC"] == PRICES["BTC"]
    assert engine_context.market.funding_rates == {"BTC": HIGH}
    assert engine_context.snapshot.nav == NAV
    assert len(engine_context.snapshot.assets) == 2


def test_the_returned_target_set_is_detached_from_the_strategy() -> None:
    weights = {"BTC": D("0.4")}
    guard = GuardedStrategy(Scripted(TargetSet(weights=weights)), "keeper")
    targets = guard.call(context())
    weights["BTC"] = D("0.9")  # the strategy changes its own dict after returning it
    assert targets is not None
    assert targets.weights == {"BTC": D("0.4")}


weight_values = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True, places=4),
    st.floats(allow_nan=True),
    st.integers(min_value=-5, max_value=5),
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL"]), weight_values, max_size=3))
def test_the_guard_either_passes_valid_weights_or_halts(weights: dict[str, Any]) -> None:
    guard = GuardedStrategy(Scripted(TargetSet(weights=weights)), "fuzzed")
    targets = guard.call(context())
    valid = all(isinstance(w, Decimal) and w.is_finite() and abs(w) <= 3 for w in weights.values())
    assert (targets is not None) == valid == (not guard.halted)
    if targets is not None:
        assert targets.weights == weights
