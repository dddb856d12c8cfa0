"""Configuration of the simulated exchange (backtests, paper trading, the loopback venue)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ballast.adapters.sim.fees import FeeSchedule
from ballast.adapters.sim.margin import GENERIC_BRACKETS, Bracket, default_brackets
from ballast.adapters.sim.slippage import SlippageConfig
from ballast.engine.trading.margin import DEFAULT_LEVERAGE


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """Simulated delays, integer nanoseconds.

    ``fill_ns``: an order becomes live ``fill_ns`` after its submit. With 0 (default) a market
    order fills at once at the current price; otherwise it fills at the first bar/quote/trade of
    its symbol stamped ``>= submit + fill_ns``, at that update's price. A resting limit order can
    only be filled by data stamped from then on (a limit that crosses on arrival still fills at
    once, as taker).
    ``ack_ns``: how long the venue front end (backtest driver, loopback venue) should hold the
    events of a submit or cancel before delivering them. The exchange core stamps its events with
    the time it is given and does not use ``ack_ns`` itself.
    """

    ack_ns: int = 0
    fill_ns: int = 0


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the simulated exchange needs besides instruments.

    - ``fees``: maker/taker schedule (Binance defaults: spot 0.1/0.1 %, USD-M 0.02/0.05 %);
    - ``slippage``: model (``fixed`` bps, ``spread``, ``volatility``) and its parameters;
    - ``latency``: ``ack_ns``/``fill_ns`` (see :class:`Latency`);
    - ``default_leverage`` / ``leverage``: perp leverage, per symbol (default 10);
    - ``brackets``: maintenance-margin tiers per perp symbol (Binance BTCUSDT/ETHUSDT by
      default); ``generic_brackets`` for perps without their own;
    - ``liquidation_fee_rate``: fraction of the liquidated notional charged on a liquidation
      (Binance-like clearance fee, default 1.25 %);
    - ``balances``: initial wallet balances by asset (e.g. ``{"USDT": Decimal(100_000)}``);
    - ``quote_asset``: the settlement/margin asset of the unified account.
    """

    fees: FeeSchedule = FeeSchedule()
    slippage: SlippageConfig = SlippageConfig()
    latency: Latency = Latency()
    default_leverage: Decimal = DEFAULT_LEVERAGE
    leverage: dict[str, Decimal] = {}
    brackets: dict[str, tuple[Bracket, ...]] = msgspec.field(default_factory=default_brackets)
    generic_brackets: tuple[Bracket, ...] = GENERIC_BRACKETS
    liquidation_fee_rate: Decimal = Decimal("0.0125")
    balances: dict[str, Decimal] = {}
    quote_asset: str = "USDT"
