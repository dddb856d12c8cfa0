"""Helpers of the simulated venue's fee and filter tests: the instruments a config gives, a flat
bar and a market order at one instant, and a journal's messages."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import Bar, Side
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.simulated_instruments import simulated_instruments

T0 = 1_700_000_000_000_000_000
DATA = Path(__file__).resolve().parents[2] / "data" / "market"

THRESHOLD_STUDY = """
[strategy]
name = "threshold"
[targets]
BTC = 0.5
ETH = 0.3
[bands]
abs_pp = 2
[execution]
mode = "spot"
cooldown_s = 0
[risk]
drawdown_limit = 1
[paper]
balances = {USDT = 100000}
"""
"""A spot threshold study on the bundled data (no kill switch, no cooldown); ``[paper]`` last,
so a test may append its keys."""


def by_symbol(config: Config) -> dict[str, Instrument]:
    return {i.symbol: i for i in simulated_instruments(config)}


async def messages(path: Path) -> list[Any]:
    async with JournalReader(path) as reader:
        return await reader.messages()


def flat_bar(symbol: str, close: str) -> Bar:
    """An hourly bar at ``T0`` whose open, high, low and close are ``close``."""
    c = Decimal(close)
    return Bar(T0, T0, symbol, 3600, c, c, c, c, Decimal(1))


def market_order(symbol: str, side: Side, qty: str, cid: str = "c-1") -> SubmitOrder:
    return SubmitOrder(
        ts_event=T0,
        ts_init=T0,
        intent_id=f"i-{cid}",
        client_order_id=cid,
        symbol=symbol,
        side=side,
        order_type="market",
        qty=Decimal(qty),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )
