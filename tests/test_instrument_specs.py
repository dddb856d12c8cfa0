"""``[instruments]`` precision and per-symbol specs: the simulated venue's lot, tick and minimums
as the config sets them, an exact mode without any rounding, and the journal recording them."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.app.backtest import load_market, run_backtest, simulated_venue
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    RebalanceDecided,
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


SPECS = """
[instruments.specs."BTC/USDT"]
lot_size = "0.001"
tick_size = 0.5
min_notional = 50
[instruments.specs."ETH/USDT:USDT"]
min_qty = 0.05
"""


# ------------------------------------------------------------------ specs


def test_a_spec_replaces_the_filters_it_names_and_keeps_the_others() -> None:
    got = by_symbol(parse_config(SPECS))
    default = {i.symbol: i for i in binance_defaults(["BTC", "ETH"])}
    btc = got["BTC/USDT"]
    assert (btc.lot_size, btc.tick_size, btc.min_qty, btc.min_notional) == (
        D("0.001"),
        D("0.5"),
        D("0.001"),  # the minimum quantity follows the new lot
        D(50),
    )
    eth = got["ETH/USDT:USDT"]
    assert eth.min_qty == D("0.05")
    assert (eth.lot_size, eth.tick_size, eth.min_notional) == (
        default["ETH/USDT:USDT"].lot_size,
        default["ETH/USDT:USDT"].tick_size,
        default["ETH/USDT:USDT"].min_notional,
    )
    assert got["ETH/USDT"] == default["ETH/USDT"]
    assert got["BTC/USDT:USDT"] == default["BTC/USDT:USDT"]


def test_a_spec_rounds_to_its_lot_and_tick() -> None:
    btc = by_symbol(parse_config(SPECS))["BTC/USDT"]
    assert btc.round_qty(D("0.123456")) == D("0.123")
    assert btc.round_price(D("20000.26"), side="buy") == D("20000")
    assert btc.round_price(D("20000.26"), side="sell") == D("20000.5")
    assert btc.violation(D("0.0015"), None) == "quantity 0.0015 is not a multiple of lot size 0.001"
    assert btc.violation(D("0.002"), D(20_000)) == "notional 40.000 is below minimum notional 50"


def test_a_contract_size_counts_the_perps_lot_and_minimum_in_contracts() -> None:
    """A perp of 0.01 BTC per contract, traded by the contract, at least 5 contracts."""
    got = by_symbol(
        parse_config('[instruments.specs."BTC/USDT:USDT"]\ncontract_size = "0.01"\nmin_qty = 5\n')
    )
    perp = got["BTC/USDT:USDT"]
    assert (perp.lot_size, perp.min_qty) == (D("0.01"), D("0.05"))
    assert perp.round_qty(D("0.123")) == D("0.12")
    assert perp.violation(D("0.04"), None) is not None  # 4 contracts, below the minimum
    assert perp.violation(D("0.015"), None) is not None  # not a whole contract
    lots = by_symbol(
        parse_config('[instruments.specs."BTC/USDT:USDT"]\ncontract_size = 0.001\nlot_size = 10\n')
    )["BTC/USDT:USDT"]
    assert (lots.lot_size, lots.min_qty) == (D("0.01"), D("0.01"))


def test_the_simulated_exchange_fills_on_the_specs_tick_and_refuses_off_lot_sizes() -> None:
    config = parse_config(SPECS + "[paper]\nslippage_bps = 1\n")
    venue = simulated_venue(config, SimulatedClock(T0))
    venue.exchange.on_market(flat_bar("BTC/USDT", "20000"))
    events = venue.exchange.submit(market_order("BTC/USDT", "buy", "0.01"), T0)
    [fill] = [e for e in events if isinstance(e, OrderFilled)]
    assert fill.price == D("20002")  # 20000 + 1 bps = 20002.0, on the 0.5 tick
    venue.exchange.on_market(flat_bar("BTC/USDT", "20000.1"))
    events = venue.exchange.submit(market_order("BTC/USDT", "sell", "0.01", "c-2"), T0)
    [fill] = [e for e in events if isinstance(e, OrderFilled)]
    assert fill.price == D("19998")  # 20000.1 − 2.00001 = 19998.09999, down to the tick
    events = venue.exchange.submit(market_order("BTC/USDT", "buy", "0.00001", "c-3"), T0)
    [rejected] = [e for e in events if isinstance(e, OrderRejected)]  # a Binance lot, not this one
    assert "lot size 0.001" in rejected.reason


STUDY = THRESHOLD_STUDY


async def test_a_backtest_trades_and_journals_the_specs(tmp_path: Path) -> None:
    config = parse_config(STUDY + SPECS)
    bundle = load_market(config, DATA, start="2022-05-01", end="2022-06-01")
    run = await run_backtest(config, bundle, name="t", journal_path=tmp_path / "j.db")
    journal = await messages(run.journal)
    [loaded] = [m for m in journal if isinstance(m, InstrumentsLoaded)]
    assert {i.symbol: i for i in loaded.instruments} == by_symbol(config)
    btc = {i.symbol: i for i in loaded.instruments}["BTC/USDT"]
    assert (btc.lot_size, btc.tick_size, btc.min_notional) == (D("0.001"), D("0.5"), D(50))
    fills = [m for m in journal if isinstance(m, OrderFilled) and m.symbol == "BTC/USDT"]
    assert len(fills) >= 2
    assert all(f.qty % D("0.001") == 0 and f.price % D("0.5") == 0 for f in fills)
    assert any(f.qty % D("0.01") != 0 for f in fills)  # the lot is 0.001, not coarser


# ------------------------------------------------------------------ exact precision


def test_exact_precision_has_no_lot_tick_or_minimum() -> None:
    exact = parse_config('[instruments]\nprecision = "exact"\n')
    for inst in simulated_instruments(exact):
        filters = (inst.lot_size, inst.tick_size, inst.min_qty, inst.min_notional)
        assert filters == (D(0), D(0), D(0), D(0))
        assert inst.round_qty(D("0.123456789123456789")) == D("0.123456789123456789")
        assert inst.round_price(D("20000.123456789"), side="buy") == D("20000.123456789")
        assert inst.violation(D("1E-12"), D("0.0001")) is None
    # the fees stay the exchange's
    default = {i.symbol: i for i in binance_defaults(["BTC", "ETH"])}
    assert all(i.taker_fee == default[i.symbol].taker_fee for i in simulated_instruments(exact))


def test_exact_precision_fills_a_fractional_quantity_at_the_exact_price() -> None:
    config = parse_config('[instruments]\nprecision = "exact"\n[paper]\nslippage_bps = 0\n')
    venue = simulated_venue(config, SimulatedClock(T0))
    venue.exchange.on_market(flat_bar("BTC/USDT", "20000.123456789"))
    events = venue.exchange.submit(market_order("BTC/USDT", "buy", "0.000123456789"), T0)
    [fill] = [e for e in events if isinstance(e, OrderFilled)]
    assert (fill.qty, fill.price) == (D("0.000123456789"), D("20000.123456789"))
    assert fill.fee == D("0.000123456789") * D("20000.123456789") * D("0.001")


async def test_an_exact_backtest_buys_the_target_weights_exactly(tmp_path: Path) -> None:
    config = parse_config(
        STUDY.replace("[paper]\n", "[paper]\nslippage_bps = 0\n")
        + '[instruments]\nprecision = "exact"\n[fees]\npreset = "zero"\n'
    )
    bundle = load_market(config, DATA, start="2022-05-01", end="2022-05-03")
    run = await run_backtest(config, bundle, name="t", journal_path=tmp_path / "j.db")
    journal = await messages(run.journal)
    first = next(m for m in journal if isinstance(m, RebalanceDecided) and m.intents)
    buys = {f.symbol: f for f in journal if isinstance(f, OrderFilled)}
    assert set(buys) == {"BTC/USDT", "ETH/USDT"}
    nav = D(100_000)
    for symbol, weight in (("BTC/USDT", D("0.5")), ("ETH/USDT", D("0.3"))):
        fill = buys[symbol]
        assert fill.qty == weight * nav / fill.price  # not rounded to any lot
        assert fill.qty % D("0.00001") != 0  # finer than Binance's finest lot
    assert {i.symbol for i in first.intents} == {"BTC/USDT", "ETH/USDT"}
    after = next(
        m
        for m in journal
        if isinstance(m, PortfolioSnapshot) and m.ts_event > first.ts_event and m.cash < nav
    )
    assert abs(after.cash - D(20_000)) < D("1E-18")


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[instruments.specs."BTC/USDT"]\nlot_size = 0\n', 'instruments.specs."BTC/USDT".lot_size'),
        (
            '[instruments.specs."BTC/USDT:USDT"]\ntick_size = -0.1\n',
            'instruments.specs."BTC/USDT:USDT".tick_size',
        ),
        (
            '[instruments.specs."ETH/USDT"]\nmin_notional = -5\n',
            'instruments.specs."ETH/USDT".min_notional',
        ),
        ('[instruments.specs."BTC/USDT"]\nlot = 1\n', 'instruments.specs."BTC/USDT".lot'),
        ('[instruments.specs."SOL/USDT"]\nlot_size = 1\n', 'instruments.specs."SOL/USDT"'),
        ('[instruments]\nprecision = "approximate"\n', "instruments.precision"),
        (
            '[instruments.specs."BTC/USDT"]\ncontract_size = 0.01\n',
            'instruments.specs."BTC/USDT".contract_size',
        ),
        (
            '[instruments.specs."BTC/USDT:USDT"]\ncontract_size = 0\n',
            'instruments.specs."BTC/USDT:USDT".contract_size',
        ),
        (
            '[instruments]\nprecision = "exact"\n[instruments.specs."BTC/USDT"]\nlot_size = 1\n',
            'instruments.specs."BTC/USDT"',
        ),
        ('[venue]\nkind = "paper"\n[instruments]\nprecision = "exact"\n', "instruments.precision"),
        (
            '[venue]\nkind = "binance"\n[instruments.specs."BTC/USDT"]\ntick_size = 1\n',
            'instruments.specs."BTC/USDT"',
        ),
    ],
)
def test_a_bad_spec_exits_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = ballast("config", "check", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}: {key}: " in result.stderr


def test_the_loopback_exchange_refuses_simulated_venue_overrides(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text('[instruments]\nprecision = "exact"\n')
    result = ballast("venue", "serve", "-c", str(path), "--synthetic", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}: instruments.precision: applies to the simulated venue only" in result.stderr


def test_a_simulated_paper_run_trades_with_the_configured_precision_and_fees(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.toml"
    path.write_text(
        STUDY.replace(
            "[paper]\n",
            f'[paper]\ndata_dir = "{DATA}"\nstart = "2022-05-01"\nend = "2022-05-02"\n'
            "slippage_bps = 0\n",
        )
        + f'[journal]\npath = "{tmp_path / "run.db"}"\n[metrics]\nenabled = false\n'
        + '[instruments]\nprecision = "exact"\n[fees]\npreset = "zero"\n'
    )
    result = ballast("run", "-c", str(path), "--step-s", "0.001", "--max-runtime-s", "4")
    assert result.returncode == 0, result.stderr
    journal = asyncio.run(messages(tmp_path / "run.db"))
    [loaded] = [m for m in journal if isinstance(m, InstrumentsLoaded)]
    assert {i.symbol: i for i in loaded.instruments} == by_symbol(parse_config(path.read_text()))
    fills = {f.symbol: f for f in journal if isinstance(f, OrderFilled)}
    assert set(fills) == {"BTC/USDT", "ETH/USDT"}
    for symbol, weight in (("BTC/USDT", D("0.5")), ("ETH/USDT", D("0.3"))):
        assert fills[symbol].qty == weight * D(100_000) / fills[symbol].price
        assert str(fills[symbol].fee) == "0"
