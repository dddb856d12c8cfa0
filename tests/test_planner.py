"""Rebalance planning: MISSION's worked examples to the cent, and band properties."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.events import Mode
from ballast.engine.kernel.instruments import binance_defaults, index_by_symbol
from ballast.engine.strategy.api import ResolvedTarget, TargetSet
from ballast.engine.trading.planner import (
    BudgetView,
    PlanInputs,
    band_width,
    excess,
    plan_rebalance,
)
from tests.support.book import Book, fine_instruments

D = Decimal
RebalanceTo = Literal["target", "edge"]
CENT = D("0.01")
BAND = BudgetView(band_abs=D("0.05"), band_rel=None)


def example_book(btc_price: Decimal) -> Book:
    """MISSION example 1: BTC $40,000 (1 BTC at 40,000), ETH $20,000 (10 ETH), USDT $40,000."""
    return Book(
        cash=D(40_000), spot={"BTC": D(1), "ETH": D(10)}, prices={"BTC": btc_price, "ETH": D(2_000)}
    )


def targets(**weights: str) -> dict[str, ResolvedTarget]:
    return TargetSet(weights={a: D(w) for a, w in weights.items()}).resolve()


def plan(book: Book, mode: Mode = "spot", instruments=None, **kw):  # type: ignore[no-untyped-def]
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=targets(BTC="0.40", ETH="0.20"),
        budget=BAND,
        instruments=instruments or fine_instruments(["BTC", "ETH"]),
        mode=mode,
        **kw,
    )
    return plan_rebalance(inp, "d1")


def test_example_1_spot_mode_sells_7200_of_btc() -> None:
    book = example_book(D(40_000))
    assert book.nav() == D(100_000)
    book.prices["BTC"] = D(52_000)  # +30 %
    assert book.nav() == D(112_000)
    assert book.weight("BTC").quantize(D("0.0001")) == D("0.4643")
    result = plan(book, "spot")
    assert [i.symbol for i in result.intents] == ["BTC/USDT"]
    sell = result.intents[0]
    assert sell.side == "sell"
    assert not sell.reduce_only
    assert (sell.qty * D(52_000)).quantize(CENT) == D("7200.00")
    assert "-7200.00" in " ".join(result.notes)
    book.fill(sell)
    assert book.net_exposure("BTC").quantize(CENT) == D("44800.00")
    assert (book.weight("BTC") * 100).quantize(CENT) == D("40.00")
    assert book.nav() == D(112_000)  # frictionless: NAV unchanged


def test_example_1_overlay_mode_opens_a_7200_perp_short() -> None:
    book = example_book(D(52_000))
    result = plan(book, "overlay")
    assert [i.symbol for i in result.intents] == ["BTC/USDT:USDT"]
    short = result.intents[0]
    assert short.side == "sell"
    assert not short.reduce_only
    assert (short.qty * D(52_000)).quantize(CENT) == D("7200.00")
    book.fill(short)
    assert book.spot["BTC"] == D(1)  # the core is untouched
    assert book.net_exposure("BTC").quantize(CENT) == D("44800.00")
    assert (book.weight("BTC") * 100).quantize(CENT) == D("40.00")


def test_example_1_with_binance_lots_rounds_down_within_one_lot() -> None:
    book = example_book(D(52_000))
    result = plan(book, "spot", instruments=index_by_symbol(binance_defaults(["BTC", "ETH"])))
    sell = result.intents[0]
    assert sell.qty == D("0.13846")  # 7200 / 52000 = 0.138461… rounded down to the 0.00001 lot
    assert D(7200) - sell.qty * D(52_000) < D("0.00001") * D(52_000)


def test_example_2_sizing_rule() -> None:
    assert excess(D(42_000), D("0.35"), D(103_000)) == D(5_950)
    book = Book(cash=D(61_000), spot={"BTC": D(1)}, prices={"BTC": D(42_000)})
    assert book.nav() == D(103_000)
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=targets(BTC="0.35"),
        budget=BAND,
        instruments=fine_instruments(["BTC"]),
    )
    sell = plan_rebalance(inp, "d1").intents[0]
    assert (sell.qty * D(42_000)).quantize(CENT) == D("5950.00")


def test_example_3_no_trade_inside_the_band() -> None:
    book = example_book(D(48_000))  # +20 %: 48,000 / 108,000 = 44.44 %
    assert (book.weight("BTC") * 100).quantize(CENT) == D("44.44")
    result = plan(book, "spot")
    assert result.intents == []
    assert {d.asset: d.action for d in result.assets} == {"BTC": "hold", "ETH": "hold"}


def test_weight_exactly_on_the_band_edge_is_inside() -> None:
    book = Book(cash=D(55_000), spot={"BTC": D(1)}, prices={"BTC": D(45_000)})
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=targets(BTC="0.40"),
        budget=BAND,
        instruments=fine_instruments(["BTC"]),
    )
    assert book.weight("BTC") == D("0.45")
    assert plan_rebalance(inp, "d1").intents == []


def test_band_width_takes_the_narrower_of_absolute_and_relative() -> None:
    assert band_width(D("0.40"), D("0.05"), None) == D("0.05")
    assert band_width(D("0.40"), None, D("0.20")) == D("0.08")
    assert band_width(D("0.40"), D("0.05"), D("0.10")) == D("0.04")


def test_case_b_underweight_opens_a_perp_long_and_stress_buys_spot_instead() -> None:
    book = example_book(D(24_000))  # BTC -40 %: 24,000 / 84,000 = 28.6 %
    result = plan(book, "overlay")
    assert [(i.symbol, i.side) for i in result.intents] == [("BTC/USDT:USDT", "buy")]
    stressed = plan_rebalance(
        PlanInputs(
            snapshot=book.snapshot(),
            targets=targets(BTC="0.40", ETH="0.20"),
            budget=BudgetView(D("0.05"), None, allow_overlay_longs=False, regime="stressed"),
            instruments=fine_instruments(["BTC", "ETH"]),
            mode="overlay",
        ),
        "d1",
    )
    assert [(i.symbol, i.side) for i in stressed.intents] == [("BTC/USDT", "buy")]


def test_case_b_unwind_closes_a_profitable_long_and_buys_spot() -> None:
    book = example_book(D(24_000))
    long = plan(book, "overlay").intents[0]
    book.fill(long)
    book.prices["BTC"] = D(27_000)  # recovers; weight back inside the band
    result = plan(book, "overlay")
    assert [(i.symbol, i.side, i.reduce_only) for i in result.intents] == [
        ("BTC/USDT:USDT", "sell", True),
        ("BTC/USDT", "buy", False),
    ]
    assert result.intents[0].qty == long.qty
    before = book.net_exposure("BTC")
    for intent in result.intents:
        book.fill(intent)
    assert book.perp["BTC"] == 0
    assert abs(book.net_exposure("BTC") - before) < D("0.01")


def test_core_floor_limits_spot_sales_and_auto_shorts_the_rest() -> None:
    book = example_book(D(52_000))
    floor = TargetSet(weights={"BTC": D("0.40"), "ETH": D("0.20")}, core_floors={"BTC": D("0.44")})
    cases: dict[Mode, list[str]] = {"spot": ["BTC/USDT"], "auto": ["BTC/USDT", "BTC/USDT:USDT"]}
    for mode, symbols in cases.items():
        inp = PlanInputs(
            snapshot=book.snapshot(),
            targets=floor.resolve(),
            budget=BAND,
            instruments=fine_instruments(["BTC", "ETH"]),
            mode=mode,
        )
        result = plan_rebalance(inp, "d1")
        assert [i.symbol for i in result.intents] == symbols
        spot_sale = result.intents[0].qty * D(52_000)
        assert spot_sale <= D(52_000) - D("0.44") * D(112_000)


def test_auto_prefers_spot_when_funding_makes_a_long_overlay_expensive() -> None:
    book = example_book(D(24_000))
    inputs = dict(
        snapshot=book.snapshot(),
        targets=targets(BTC="0.40", ETH="0.20"),
        budget=BAND,
        instruments=index_by_symbol(binance_defaults(["BTC", "ETH"])),
        mode="auto",
    )
    cheap = plan_rebalance(PlanInputs(**inputs, funding_rates={"BTC": D("-0.0005")}), "d1")  # type: ignore[arg-type]
    dear = plan_rebalance(PlanInputs(**inputs, funding_rates={"BTC": D("0.0005")}), "d1")  # type: ignore[arg-type]
    assert [i.symbol for i in cheap.intents] == ["BTC/USDT:USDT"]
    assert [i.symbol for i in dear.intents] == ["BTC/USDT"]
    assert "funding" in " ".join(dear.notes)


def test_below_min_notional_is_skipped_with_a_reason() -> None:
    """A $40 perp short is below Binance's $100 BTC perp minimum notional."""
    book = Book(cash=D(50), spot={"BTC": D("0.001")}, prices={"BTC": D(100_000)})
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=targets(BTC="0.40"),
        budget=BAND,
        instruments=index_by_symbol(binance_defaults(["BTC"])),
        mode="overlay",
    )
    result = plan_rebalance(inp, "d1")
    assert result.intents == []
    assert any("minimum notional" in n for n in result.notes)


# ----------------------------------------------------------------------------- properties

prices = st.decimals(min_value=D(1), max_value=D(100_000), places=2)
qtys = st.decimals(min_value=D(0), max_value=D(50), places=4)
weights = st.decimals(min_value=D(0), max_value=D("0.45"), places=2)


@st.composite
def portfolios(draw: st.DrawFn) -> tuple[Book, TargetSet, BudgetView, Mode, RebalanceTo]:
    assets = ["BTC", "ETH", "SOL"][: draw(st.integers(1, 3))]
    book = Book(
        cash=draw(st.decimals(min_value=D(0), max_value=D(1_000_000), places=2)),
        spot={a: draw(qtys) for a in assets},
        prices={a: draw(prices) for a in assets},
    )
    wanted = {a: draw(weights) for a in assets}
    total = sum(wanted.values(), D(0))
    if total > D("0.95"):  # a valid config never targets more than 100 % (room left for fees)
        wanted = {
            a: (w * D("0.95") / total).quantize(D("0.0001"), rounding="ROUND_DOWN")
            for a, w in wanted.items()
        }
    band = BudgetView(
        band_abs=draw(st.sampled_from([D("0.02"), D("0.05"), D("0.10")])),
        band_rel=draw(st.sampled_from([None, D("0.25")])),
    )
    mode: Mode = draw(st.sampled_from(["spot", "overlay", "auto"]))
    to: RebalanceTo = draw(st.sampled_from(["target", "edge"]))
    return book, TargetSet(weights=wanted), band, mode, to


@settings(max_examples=300, deadline=None)
@given(portfolios())
def test_after_a_frictionless_rebalance_every_weight_is_inside_its_band(
    case: tuple[Book, TargetSet, BudgetView, Mode, RebalanceTo],
) -> None:
    book, wanted, band, mode, to = case
    if book.nav() < D(10_000):
        return  # tiny portfolios are all below minimum notional: nothing to assert
    instruments = fine_instruments(list(book.spot))
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=wanted.resolve(),
        budget=band,
        instruments=instruments,
        mode=mode,
        rebalance_to=to,
    )
    nav_before = book.nav()
    result = plan_rebalance(inp, "d1")
    for intent in result.intents:
        inst = instruments[intent.symbol]
        assert inst.violation(intent.qty, None) is None
        assert intent.qty * book.prices[intent.symbol.split("/")[0]] >= inst.min_notional
        book.fill(intent)
    assert book.nav() == nav_before  # frictionless: NAV only moves by fees
    assert book.cash >= 0  # never buys with cash it does not have
    skipped = " ".join(result.notes)
    for asset, target in wanted.resolve().items():
        width = band_width(target.net, band.band_abs, band.band_rel)
        weight = book.weight(asset)
        if "minimum notional" in skipped and asset in skipped:
            continue
        if any(n.startswith(f"{asset}: ") and " cut to " in n for n in result.notes):
            continue  # the account (cash or margin) limited the trade, and the plan says so
        assert target.net - width <= weight <= target.net + width, (
            asset,
            weight,
            target.net,
            width,
        )


@settings(max_examples=100, deadline=None)
@given(portfolios(), st.decimals(min_value=D("0.0001"), max_value=D("0.002"), places=4))
def test_fees_are_the_only_nav_change(
    case: tuple[Book, TargetSet, BudgetView, Mode, RebalanceTo], fee: Decimal
) -> None:
    book, wanted, band, mode, _ = case
    if book.nav() < D(10_000):
        return
    inp = PlanInputs(
        snapshot=book.snapshot(),
        targets=wanted.resolve(),
        budget=band,
        instruments=fine_instruments(list(book.spot)),
        mode=mode,
    )
    nav_before = book.nav()
    for intent in plan_rebalance(inp, "d1").intents:
        book.fill(intent, fee)
    assert book.nav() == nav_before - book.fees


@pytest.mark.parametrize("mode", ["spot", "overlay", "auto"])
def test_plans_are_deterministic(mode: Mode) -> None:
    book = example_book(D(52_000))
    assert plan(book, mode).intents == plan(book, mode).intents
