"""Planning within the account (issue 16): free cash for spot buys, available margin for perp
orders, after what the same plan already commits; auto's cost with the basis and its overrides
named; the Case A unwind; deleveraging toward a net-leverage target."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.events import Mode, OrderIntent, PortfolioSnapshot
from ballast.engine.kernel.instruments import Instrument, base_of, binance_defaults, index_by_symbol
from ballast.engine.strategy.api import TargetSet
from ballast.engine.trading.planner import (
    BudgetView,
    Plan,
    PlanInputs,
    account_figures,
    leverage_of,
    plan_deleverage,
    plan_rebalance,
)
from tests.support.book import Book, fine_instruments

D = Decimal
BAND = BudgetView(band_abs=D("0.05"), band_rel=None)
STRESSED = BudgetView(D("0.03"), None, allow_overlay_longs=False, regime="stressed")


def inputs(
    snapshot: PortfolioSnapshot,
    wanted: TargetSet,
    mode: Mode = "overlay",
    instruments: dict[str, Instrument] | None = None,
    **kw: object,
) -> PlanInputs:
    return PlanInputs(
        snapshot=snapshot,
        targets=wanted.resolve(),
        budget=kw.pop("budget", BAND),  # type: ignore[arg-type]
        instruments=instruments or fine_instruments(sorted(a.asset for a in snapshot.assets)),
        mode=mode,
        **kw,  # type: ignore[arg-type]
    )


def replay_within_account(inp: PlanInputs, plan: Plan) -> list[str]:
    """Play the plan's orders, in order, against the account as the simulated venue checks it
    (spot buy: cost with fee <= min(free cash, available margin); an order growing a perp
    position: its initial margin <= available margin); return every breach. An independent model:
    cash, unrealised PnL and positions are moved here, not by the planner. Cash may end below zero
    only by what closing trades cost (their fees, the losses they realise): reducing risk is never
    blocked for want of cash."""
    prices = {a.asset: (a.spot_price, a.perp_price or a.spot_price) for a in inp.snapshot.assets}
    cash = inp.snapshot.cash
    perp = {a.asset: a.perp_qty for a in inp.snapshot.assets}
    entry = {a.asset: a.perp_entry_price for a in inp.snapshot.assets}
    breaches: list[str] = []
    closing_costs = D(0)

    def available() -> Decimal:
        upnl = sum((q * (prices[a][1] - entry[a]) for a, q in perp.items()), D(0))
        margin = sum((abs(q) * prices[a][1] / leverage_of(inp, a) for a, q in perp.items()), D(0))
        return cash + upnl - margin

    for intent in plan.intents:
        asset = base_of(intent.symbol)
        inst = inp.instruments[intent.symbol]
        signed = intent.qty if intent.side == "buy" else -intent.qty
        if ":" not in intent.symbol:
            price = prices[asset][0]
            cost = intent.qty * price * (1 + inst.taker_fee)
            if intent.side == "buy" and cost > min(cash, available()):
                breaches.append(f"{intent}: {cost} > cash {cash}, available {available()}")
            cash -= signed * price + intent.qty * price * inst.taker_fee
            continue
        price = prices[asset][1]
        held = perp[asset]
        growth = abs(held + signed) - abs(held)
        if growth > 0 and growth * price / leverage_of(inp, asset) > available():
            breaches.append(f"{intent}: margin {growth * price} / lev > {available()}")
        fee = intent.qty * price * inst.taker_fee
        if held != 0 and (held > 0) != (signed > 0):
            closed = min(abs(signed), abs(held)) * (1 if held > 0 else -1)
            realised = closed * (price - entry[asset])
            cash += realised
            closing_costs += fee - min(D(0), realised)  # a closing trade may realise a loss
        if held + signed == 0:
            entry[asset] = D(0)
        elif held == 0 or (held > 0) != (held + signed > 0):
            entry[asset] = price
        elif abs(held + signed) > abs(held):
            entry[asset] = (held * entry[asset] + signed * price) / (held + signed)
        perp[asset] = held + signed
        cash -= fee
    if cash + closing_costs < 0:  # purchases and openings never spend cash the book lacks
        breaches.append(f"cash below zero: {cash} (closing trades cost {closing_costs})")
    return breaches


def test_a_case_a_short_is_sized_within_the_available_margin_and_says_so() -> None:
    """Issue 16 item 1: the overlay short of MISSION example 1 on a book with little cash."""
    book = Book(cash=D(500), spot={"BTC": D(1)}, prices={"BTC": D(52_000)})
    wanted = TargetSet(weights={"BTC": D("0.40")})
    inp = inputs(book.snapshot(), wanted, margin_buffer=D("0.05"))
    plan = plan_rebalance(inp, "d1")
    [short] = plan.intents
    account = account_figures(inp)
    margin = short.qty * D(52_000) / 10
    assert margin <= account.available_margin - account.reserve
    assert short.qty * D(52_000) < D("0.6") * book.nav() - D(1)  # less than the excess
    assert any("cut to" in n and "available margin" in n for n in plan.notes), plan.notes
    assert replay_within_account(inp, plan) == []


def test_spot_buys_beside_perp_orders_leave_the_margin_those_orders_take() -> None:
    """Issue 16 item 1 (the 3x variant): a spot buy planned beside a perp long must not spend the
    cash that margins the perp."""
    book = Book(cash=D(100_000), spot={"BTC": D(0)}, prices={"BTC": D(50_000)})
    wanted = TargetSet(weights={"BTC": D("1.9")}, spot_weights={"BTC": D("0.97")})
    inp = inputs(book.snapshot(), wanted, margin_buffer=D(0))
    plan = plan_rebalance(inp, "d1")
    assert {i.symbol for i in plan.intents} == {"BTC/USDT", "BTC/USDT:USDT"}
    assert replay_within_account(inp, plan) == []


def test_auto_routes_what_the_margin_does_not_take_to_spot() -> None:
    book = Book(cash=D(300), spot={"BTC": D(1)}, prices={"BTC": D(52_000)})
    wanted = TargetSet(weights={"BTC": D("0.40")})
    funding = {"BTC": D("0.001")}  # shorts earn: the perp is cheaper
    inp = inputs(book.snapshot(), wanted, "auto", funding_rates=funding)
    plan = plan_rebalance(inp, "d1")
    assert [(i.symbol, i.side) for i in plan.intents] == [
        ("BTC/USDT:USDT", "sell"),
        ("BTC/USDT", "sell"),
    ]
    assert any("overridden by margin" in n and "routed to spot" in n for n in plan.notes)
    hedged = sum(i.qty for i in plan.intents) * D(52_000)
    assert abs(hedged - (D(52_000) - D("0.40") * book.nav())) < D(1)
    assert replay_within_account(inp, plan) == []


def with_perp_price(snapshot: PortfolioSnapshot, asset: str, price: Decimal) -> PortfolioSnapshot:
    assets = tuple(
        msgspec.structs.replace(a, perp_price=price) if a.asset == asset else a
        for a in snapshot.assets
    )
    return msgspec.structs.replace(snapshot, assets=assets)


def test_auto_cost_of_a_perp_includes_the_basis() -> None:
    """Issue 16 item 5: a perp long at a 0.3 % premium costs more than spot, though its fee and
    funding alone are cheaper."""
    book = Book(cash=D(76_000), spot={"BTC": D("0.2")}, prices={"BTC": D(40_000)})
    wanted = TargetSet(weights={"BTC": D("0.40")})
    binance = dict(index_by_symbol(binance_defaults(["BTC"])))
    flat = plan_rebalance(inputs(book.snapshot(), wanted, "auto", binance), "d1")
    assert [i.symbol for i in flat.intents] == ["BTC/USDT:USDT"]
    premium = with_perp_price(book.snapshot(), "BTC", D(40_120))
    plan = plan_rebalance(inputs(premium, wanted, "auto", binance), "d1")
    assert [i.symbol for i in plan.intents] == ["BTC/USDT"]
    [note] = [n for n in plan.notes if "auto buy" in n]
    assert "basis 0.30%" in note
    assert "perp cost 0.35%" in note


def test_auto_names_the_regime_when_it_overrides_the_cheaper_perp() -> None:
    """Issue 16 item 5: "perp cost −0.34 % → spot first" did not say why."""
    book = Book(cash=D(76_000), spot={"BTC": D("0.2")}, prices={"BTC": D(40_000)})
    wanted = TargetSet(weights={"BTC": D("0.40")})
    funding = {"BTC": D("-0.0002")}
    inp = inputs(book.snapshot(), wanted, "auto", funding_rates=funding, budget=STRESSED)
    plan = plan_rebalance(inp, "d1")
    assert [i.symbol for i in plan.intents] == ["BTC/USDT"]
    [note] = [n for n in plan.notes if "auto buy" in n]
    assert "-> spot first, overridden: overlay longs are off (stressed regime)" in note


def case_a_book(btc: str, entry: str, short: str) -> Book:
    return Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(btc), "ETH": D(2_000)},
        perp={"BTC": D(short)},
        entry={"BTC": D(entry)},
    )


def test_a_case_a_short_comes_off_when_the_spot_weight_is_back_in_its_band() -> None:
    """Issue 16 item 6: BTC back at 44,000 = 42.0 % spot weight, inside 40 ± 5, short open."""
    book = case_a_book("44000", "52000", "-0.1")
    wanted = TargetSet(weights={"BTC": D("0.40"), "ETH": D("0.20")})
    plan = plan_rebalance(inputs(book.snapshot(), wanted), "d1")
    assert [(i.symbol, i.side, i.qty, i.reduce_only) for i in plan.intents] == [
        ("BTC/USDT:USDT", "buy", D("0.1"), True)
    ]
    assert any("spot weight 41.98% back inside the band" in n for n in plan.notes), plan.notes
    [btc] = [a for a in plan.assets if a.asset == "BTC"]
    assert btc.action == "unwind short"


def test_a_case_a_short_comes_off_with_a_spot_sale_when_the_price_has_fallen_back() -> None:
    """BTC 1.2 held, 50,000 at 51,000 entry shorted 0.15; spot weight still above the band."""
    book = Book(
        cash=D(40_000),
        spot={"BTC": D("1.2"), "ETH": D(10)},
        prices={"BTC": D(49_000), "ETH": D(2_000)},
        perp={"BTC": D("-0.15")},
        entry={"BTC": D(51_000)},
    )
    assert D("0.35") <= book.weight("BTC") <= D("0.45")
    wanted = TargetSet(weights={"BTC": D("0.40"), "ETH": D("0.20")})
    plan = plan_rebalance(inputs(book.snapshot(), wanted), "d1")
    assert [(i.symbol, i.side, i.qty, i.reduce_only) for i in plan.intents] == [
        ("BTC/USDT:USDT", "buy", D("0.15"), True),
        ("BTC/USDT", "sell", D("0.15"), False),
    ]
    assert any("fell 3.92% below the short's entry" in n for n in plan.notes), plan.notes
    before = book.weight("BTC")
    for intent in plan.intents:
        book.fill(intent)
    assert book.perp["BTC"] == 0
    assert book.weight("BTC") == before  # the net exposure did not move


def test_deleverage_scales_net_exposure_down_to_the_target_with_reducing_trades() -> None:
    book = Book(
        cash=D(10_000),
        spot={"BTC": D(1)},
        prices={"BTC": D(50_000), "ETH": D(2_000)},
        perp={"BTC": D(1), "ETH": D(-20)},
        entry={"BTC": D(50_000), "ETH": D(2_000)},
    )
    assert book.nav() == D(60_000)  # net: BTC 100,000, ETH −40,000 → 140,000 / 60,000 = 2.33
    wanted = TargetSet(weights={"BTC": D("0.5")}, core_floors={"BTC": D("0.5")})
    inp = inputs(book.snapshot(), wanted)
    plan = plan_deleverage(inp, "d1", "deleverage", D("1.5"))
    assert all(i.reduce_only or i.side == "sell" for i in plan.intents)
    for intent in plan.intents:
        book.fill(intent)
    net = abs(book.net_exposure("BTC")) + abs(book.net_exposure("ETH"))
    assert abs(net / book.nav() - D("1.5")) < D("0.001")
    assert plan_deleverage(inp, "d2", "deleverage", D(3)).intents == []


# ----------------------------------------------------------------------------- properties

prices = st.decimals(min_value=D(10), max_value=D(100_000), places=2)


def with_basis(book: Book, basis: dict[str, Decimal]) -> PortfolioSnapshot:
    """The book's snapshot with each perp marked at spot × basis (NAV, notional, unrealised PnL
    and weights recomputed at those marks)."""
    marks = {a: (p * basis[a]).quantize(D("0.01")) for a, p in book.prices.items()}
    states = []
    for s in book.snapshot().assets:
        mark = marks[s.asset]
        notional = s.perp_qty * mark
        upnl = s.perp_qty * (mark - s.perp_entry_price)
        states.append((s, mark, notional, upnl))
    nav = book.cash + sum((s.spot_value + upnl for s, _, _, upnl in states), D(0))
    assets = tuple(
        msgspec.structs.replace(
            s,
            perp_price=mark,
            perp_notional=notional,
            perp_unrealized_pnl=upnl,
            net_exposure=s.spot_value + notional,
            weight=(s.spot_value + notional) / nav if nav else D(0),
            spot_weight=s.spot_value / nav if nav else D(0),
        )
        for s, mark, notional, upnl in states
    )
    return msgspec.structs.replace(book.snapshot(), nav=nav, peak_nav=nav, assets=assets)


@st.composite
def books(draw: st.DrawFn) -> tuple[PlanInputs, str]:
    assets = ["BTC", "ETH", "SOL"][: draw(st.integers(1, 3))]
    spot = {a: draw(st.decimals(min_value=D(0), max_value=D(20), places=3)) for a in assets}
    marks = {a: draw(prices) for a in assets}
    perp = {a: draw(st.decimals(min_value=D(-20), max_value=D(20), places=3)) for a in assets}
    entry = {
        a: marks[a] * draw(st.sampled_from([D("0.5"), D("0.9"), D(1), D("1.2")])) for a in assets
    }
    book = Book(
        cash=draw(st.decimals(min_value=D(0), max_value=D(500_000), places=2)),
        spot=spot,
        prices=marks,
        perp={a: q for a, q in perp.items() if q},
        entry={a: entry[a] for a, q in perp.items() if q},
    )
    assume(book.nav() > 0)
    basis = {a: draw(st.sampled_from([D("0.995"), D(1), D("1.004")])) for a in assets}
    snapshot = with_basis(book, basis)
    assume(snapshot.nav > 0)
    weights = {a: draw(st.decimals(min_value=D(0), max_value=D("1.5"), places=2)) for a in assets}
    spot_weights = {a: min(w, D("0.45")) for a, w in weights.items()} if draw(st.booleans()) else {}
    floors = {a: draw(st.sampled_from([D(0), D("0.1")])) for a in assets}
    wanted = TargetSet(weights=weights, spot_weights=spot_weights, core_floors=floors)
    funding = {
        a: draw(st.sampled_from([D("-0.001"), D(0), D("0.0001"), D("0.002")])) for a in assets
    }
    inp = PlanInputs(
        snapshot=snapshot,
        targets=wanted.resolve(),
        budget=draw(st.sampled_from([BAND, STRESSED])),
        instruments=index_by_symbol(binance_defaults(assets)),
        mode=draw(st.sampled_from(["spot", "overlay", "auto"])),
        funding_rates=funding,
        perp_leverage={a: draw(st.sampled_from([D(1), D(3), D(10), D(20)])) for a in assets},
        margin_buffer=draw(st.sampled_from([D(0), D("0.05"), D("0.2")])),
    )
    return inp, draw(st.sampled_from(["rebalance", "deleverage"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_planned_orders_never_exceed_free_cash_or_available_margin(
    case: tuple[PlanInputs, str],
) -> None:
    inp, kind = case
    if inp.snapshot.nav <= 0:
        return
    plan = (
        plan_rebalance(inp, "d1")
        if kind == "rebalance"
        else plan_deleverage(inp, "d1", "deleverage", D(1))
    )
    assert replay_within_account(inp, plan) == []
    assert all(isinstance(i, OrderIntent) for i in plan.intents)


def test_auto_names_the_gross_cap_when_it_overrides_the_cheaper_perp_short() -> None:
    """MISSION example 1 in auto mode with funding paying shorts: the perp is cheaper, but the
    short would take gross leverage from 0.64 to 0.71, above a 0.7 cap; the spot sale is taken
    and the reason says why."""
    book = Book(
        cash=D(40_000), spot={"BTC": D(1), "ETH": D(10)}, prices={"BTC": D(52_000), "ETH": D(2_000)}
    )
    wanted = TargetSet(weights={"BTC": D("0.40"), "ETH": D("0.20")})
    funding = {"BTC": D("0.001")}
    free = plan_rebalance(inputs(book.snapshot(), wanted, "auto", funding_rates=funding), "d1")
    assert [i.symbol for i in free.intents] == ["BTC/USDT:USDT"]
    capped_budget = BudgetView(D("0.05"), None, max_gross_leverage=D("0.7"))
    inp = inputs(book.snapshot(), wanted, "auto", funding_rates=funding, budget=capped_budget)
    plan = plan_rebalance(inp, "d1")
    assert [(i.symbol, i.side) for i in plan.intents] == [("BTC/USDT", "sell")]
    [note] = [n for n in plan.notes if "auto sell" in n]
    assert (
        "-> spot first, overridden: a perp sell would take gross leverage above the cap 0.7x"
        in note
    )
