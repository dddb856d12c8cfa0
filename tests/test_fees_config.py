"""``[fees]``: named presets, per-market and per-symbol rates, one figure for the planner, the
simulated exchange and the journal; a frictionless backtest is exactly frictionless."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ballast.engine.app.backtest import load_market, run_backtest, simulated_venue
from ballast.engine.app.cli.cmd_plan import paper_venue
from ballast.engine.app.dry_run import dry_run
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import Config, json_schema, parse_config
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    OrderFilled,
    PortfolioSnapshot,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.simulated_instruments import simulated_instruments
from tests.support.cli import ballast
from tests.support.sim_orders import (
    DATA,
    T0,
    THRESHOLD_STUDY,
    by_symbol,
    flat_bar,
    market_order,
    messages,
)

D = Decimal


def rates(config: Config, symbol: str) -> tuple[Decimal, Decimal]:
    inst = by_symbol(config)[symbol]
    return inst.maker_fee, inst.taker_fee


# ------------------------------------------------------------------ the schedule


def test_by_default_the_fees_and_filters_are_todays() -> None:
    assert simulated_instruments(Config()) == binance_defaults(["BTC", "ETH"])
    config = Config()
    assert rates(config, "BTC/USDT") == (D("0.001"), D("0.001"))
    assert rates(config, "BTC/USDT:USDT") == (D("0.0002"), D("0.0005"))


def test_presets_set_every_instrument_of_their_market_type() -> None:
    zero = parse_config('[fees]\npreset = "zero"\n')
    assert {(i.maker_fee, i.taker_fee) for i in simulated_instruments(zero)} == {(D(0), D(0))}
    bnb = parse_config('[fees]\npreset = "binance_vip0_bnb"\n')
    assert rates(bnb, "ETH/USDT") == (D("0.00075"), D("0.00075"))
    assert rates(bnb, "ETH/USDT:USDT") == (D("0.00018"), D("0.00045"))
    vip1 = parse_config('[fees]\npreset = "binance_vip1"\n')
    assert rates(vip1, "BTC/USDT") == (D("0.0009"), D("0.001"))
    assert rates(vip1, "BTC/USDT:USDT") == (D("0.00016"), D("0.0004"))


def test_a_symbol_overrides_its_market_type_which_overrides_the_preset() -> None:
    config = parse_config(
        """
[fees]
preset = "zero"
perp = { taker = 0.0004 }
[fees.symbols."BTC/USDT:USDT"]
maker = 0.0001
[fees.symbols."ETH/USDT"]
taker = 0.002
"""
    )
    assert rates(config, "BTC/USDT:USDT") == (D("0.0001"), D("0.0004"))
    assert rates(config, "ETH/USDT:USDT") == (D(0), D("0.0004"))
    assert rates(config, "ETH/USDT") == (D(0), D("0.002"))
    assert rates(config, "BTC/USDT") == (D(0), D(0))


# ------------------------------------------------------------------ planner and exchange


ALL_IN_BTC = """
[instruments]
spot = ["BTC/USDT"]
perp = []
[targets]
BTC = 1
[paper]
balances = {USDT = 100000}
end = "2022-11-10"
slippage_bps = 0
"""


async def test_the_planner_sizes_a_buy_with_the_symbols_own_fee() -> None:
    """All cash into BTC: the buy is cut to the free cash (less the 5 % reserve) including the
    taker fee, and the fee is the symbol's own."""
    bought = {}
    for taker in ("0.001", "0.02"):
        text = f'{ALL_IN_BTC}[fees.symbols."BTC/USDT"]\ntaker = {taker}\n'
        config = parse_config(text)
        venue, market = paper_venue(config, None)
        result = await dry_run(config, venue, market)
        [approved] = result.approved
        [bar] = [b for b in market if b.symbol == "BTC/USDT"]
        lot = by_symbol(config)["BTC/USDT"].lot_size
        wanted = D(95_000) / (bar.close * (1 + D(taker)))
        assert approved.intent.qty == wanted.quantize(lot, rounding=ROUND_DOWN)
        bought[taker] = approved.intent.qty
    assert bought["0.02"] < bought["0.001"]


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [("BTC/USDT:USDT", D("0.0007")), ("ETH/USDT:USDT", D("0.0004")), ("BTC/USDT", D(0))],
)
def test_the_simulated_exchange_charges_the_configured_rate(symbol: str, expected: D) -> None:
    config = parse_config(
        """
[fees]
preset = "zero"
perp = { taker = 0.0004 }
[fees.symbols."BTC/USDT:USDT"]
taker = 0.0007
[paper]
slippage_bps = 0
"""
    )
    venue = simulated_venue(config, SimulatedClock(T0))
    venue.exchange.on_market(flat_bar(symbol, "2000"))
    events = venue.exchange.submit(market_order(symbol, "buy", "1.5"), T0)
    [fill] = [e for e in events if isinstance(e, OrderFilled)]
    assert (fill.price, fill.qty) == (D(2000), D("1.5"))
    assert fill.fee == D(3000) * expected


# ------------------------------------------------------------------ backtests


STUDY = THRESHOLD_STUDY + "slippage_bps = 0\n"


async def test_a_zero_fee_backtest_pays_no_fee_and_its_nav_is_the_frictionless_arithmetic(
    tmp_path: Path,
) -> None:
    config = parse_config(STUDY + '[fees]\npreset = "zero"\n')
    bundle = load_market(config, DATA, start="2022-05-01", end="2022-07-01")
    run = await run_backtest(config, bundle, name="t", journal_path=tmp_path / "j.db")
    journal = await messages(run.journal)
    fills = [m for m in journal if isinstance(m, OrderFilled)]
    assert len(fills) >= 4  # the first allocation and rebalances in May-June 2022
    assert all(fill.fee == 0 for fill in fills)
    snapshots = [m for m in journal if isinstance(m, PortfolioSnapshot)]
    last = snapshots[-1]
    assert last.fees_paid == 0
    # cash is the start less what was bought plus what was sold, nothing else ...
    cash = D(100_000)
    held: dict[str, Decimal] = {}
    for fill in fills:
        sign = 1 if fill.side == "buy" else -1
        cash -= sign * fill.qty * fill.price
        asset = fill.symbol.partition("/")[0]
        held[asset] = held.get(asset, D(0)) + sign * fill.qty
    assert last.cash == cash
    # ... and NAV is that cash plus the holdings at the last prices: no friction at all
    assert {a.asset: a.spot_qty for a in last.assets if a.spot_qty} == held
    nav = cash + sum((a.spot_qty * a.spot_price for a in last.assets), D(0))
    assert last.nav == nav
    assert last.nav - D(100_000) == last.price_pnl


async def test_a_backtest_charges_and_journals_a_symbols_own_fee(tmp_path: Path) -> None:
    config = parse_config(STUDY + '[fees.symbols."ETH/USDT"]\ntaker = 0.0025\n')
    bundle = load_market(config, DATA, start="2022-05-01", end="2022-06-01")
    run = await run_backtest(config, bundle, name="t", journal_path=tmp_path / "j.db")
    journal = await messages(run.journal)
    [loaded] = [m for m in journal if isinstance(m, InstrumentsLoaded)]
    fees = {i.symbol: (i.maker_fee, i.taker_fee) for i in loaded.instruments}
    assert fees["ETH/USDT"] == (D("0.001"), D("0.0025"))
    assert fees["BTC/USDT"] == (D("0.001"), D("0.001"))
    fills = [m for m in journal if isinstance(m, OrderFilled)]
    assert {f.symbol for f in fills} == {"BTC/USDT", "ETH/USDT"}
    for fill in fills:
        rate = D("0.0025") if fill.symbol == "ETH/USDT" else D("0.001")
        assert fill.fee == fill.qty * fill.price * rate
    paid = sum((f.fee for f in fills), D(0))
    assert [m for m in journal if isinstance(m, PortfolioSnapshot)][-1].fees_paid == paid
    assert run.performance.summary.fees_paid == paid


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[fees]\nspot = { maker = -0.001 }\n", "fees.spot.maker"),
        ('[fees.symbols."BTC/USDT:USDT"]\ntaker = -0.0001\n', 'fees.symbols."BTC/USDT:USDT".taker'),
        ("[fees]\nperp = { taker = 0.5 }\n", "fees.perp.taker"),
        ('[fees]\npreset = "vip42"\n', "fees.preset"),
        ('[fees.symbols."SOL/USDT"]\ntaker = 0.001\n', 'fees.symbols."SOL/USDT"'),
        ('[fees.symbols."BTC/USDT"]\n', 'fees.symbols."BTC/USDT".maker'),
        ('[venue]\nkind = "binance"\n[fees]\npreset = "zero"\n', "fees.preset"),
        ('[venue]\nkind = "paper"\n[fees]\nspot = { taker = 0 }\n', "fees.spot"),
    ],
)
def test_a_bad_fee_exits_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = ballast("config", "check", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}: {key}: " in result.stderr


def test_a_backtest_states_its_costs_and_charges_them(tmp_path: Path) -> None:
    path = tmp_path / "study.toml"
    path.write_text(
        STUDY.replace("slippage_bps = 0", "slippage_bps = 0\ndata_dir = " + f'"{DATA}"')
        + '[fees]\npreset = "zero"\n[fees.symbols."BTC/USDT"]\ntaker = 0.0025\n'
        + '[instruments]\nprecision = "exact"\n'
    )
    result = ballast(
        "backtest",
        "-c",
        str(path),
        "--start",
        "2022-05-01",
        "--end",
        "2022-05-03",
        "--journal",
        str(tmp_path / "j.db"),
        "--no-report",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "costs: fees zero (maker/taker: spot 0 %/0 %, perp 0 %/0 %), own rates for BTC/USDT; "
        "precision exact; slippage 0 bps"
    ) in result.stdout.splitlines()
    # the threshold buys 50 % of 100,000 in BTC at 0.25 %, 30 % in ETH at 0: 125.00 paid
    [fees_line] = [line for line in result.stdout.splitlines() if line.startswith("Fees paid")]
    assert fees_line.split()[3] == "125.00"


@pytest.mark.parametrize(
    "document",
    [
        {"fees": {"spot": {"maker": -0.001}}},
        {"fees": {"symbols": {"BTC/USDT": {"taker": 0.5}}}},
        {"fees": {"preset": "vip42"}},
        {"instruments": {"specs": {"BTC/USDT": {"lot_size": 0}}}},
        {"instruments": {"specs": {"BTC/USDT": {"min_notional": -1}}}},
        {"instruments": {"precision": "approximate"}},
    ],
)
def test_the_schema_states_the_bounds_of_fees_and_specs(document: dict[str, Any]) -> None:
    validator = Draft202012Validator(json_schema())
    assert list(validator.iter_errors(document)) != []
    fine = {"fees": {"spot": {"maker": 0}}, "instruments": {"specs": {"BTC/USDT": {"lot_size": 1}}}}
    assert list(validator.iter_errors(fine)) == []
