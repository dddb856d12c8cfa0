"""What the simulated exchange knows of prices, per symbol.

Conventions (the exchange model builds on them):

- **last price**: the close of the latest bar, the mid ``(bid + ask) / 2`` of the latest quote or
  the price of the latest trade, whichever arrived last;
- **best bid / best ask**: those of the latest quote. A later bar or trade clears them (it is
  newer information than the old quote), and ``best_bid``/``best_ask`` then fall back to the last
  price;
- **mark** (perpetuals): the latest ``MarkPriceUpdated`` if one ever arrived for the symbol, else
  the last price (bar close / quote mid / trade);
- **ranges**: ``high − low`` of the latest ``window`` bars, newest last (volatility slippage);
- **touch**: the most favourable prices an update offered a resting order: a bar's low (buyers)
  and high (sellers), a quote's ask and bid, a trade's price for both. A resting limit buy fills
  when ``touch.buy_at <= limit``, a sell when ``touch.sell_at >= limit``. A mark update is no
  trading price and has no touch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated, QuoteTick, TradeTick

_ZERO = Decimal(0)
_TWO = Decimal(2)


@dataclass(frozen=True, slots=True)
class Touch:
    """The best price a buyer (``buy_at``) and a seller (``sell_at``) could get in an update."""

    buy_at: Decimal
    sell_at: Decimal


@dataclass(slots=True)
class SymbolMarket:
    """Latest prices of one symbol (see the module docstring for the conventions)."""

    window: int = 1
    last: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    mark_feed: Decimal | None = None
    ranges: deque[Decimal] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.ranges = deque(self.ranges, maxlen=max(0, self.window))

    @property
    def best_bid(self) -> Decimal | None:
        return self.bid if self.bid is not None else self.last

    @property
    def best_ask(self) -> Decimal | None:
        return self.ask if self.ask is not None else self.last

    @property
    def mark(self) -> Decimal | None:
        return self.mark_feed if self.mark_feed is not None else self.last

    @property
    def spread(self) -> Decimal:
        """Quoted spread ``ask − bid`` of the current quote; zero without one."""
        if self.bid is None or self.ask is None:
            return _ZERO
        return self.ask - self.bid

    def apply(self, event: MarketData) -> Touch | None:
        """Take in one market data event; return the touch it offers resting orders."""
        return touch_of(event) if self.update(event) else None

    def update(self, event: MarketData) -> bool:
        """Take in one market data event; return whether it offers a touch (a trading price:
        :func:`touch_of`), without building it."""
        if isinstance(event, Bar):
            self.last, self.bid, self.ask = event.close, None, None
            self.ranges.append(event.high - event.low)  # the deque keeps the latest ``window``
            return True
        if isinstance(event, MarkPriceUpdated):
            self.mark_feed = event.mark
            return False
        if isinstance(event, QuoteTick):
            self.bid, self.ask = event.bid, event.ask
            self.last = (event.bid + event.ask) / _TWO
            return True
        self.last, self.bid, self.ask = event.price, None, None  # a TradeTick
        return True


def touch_of(event: MarketData) -> Touch | None:
    """The touch a bar, quote or trade offers resting orders; None for anything else."""
    if isinstance(event, Bar):
        return Touch(buy_at=event.low, sell_at=event.high)
    if isinstance(event, QuoteTick):
        return Touch(buy_at=event.ask, sell_at=event.bid)
    if isinstance(event, TradeTick):
        return Touch(buy_at=event.price, sell_at=event.price)
    return None


class MarketBoard:
    """Latest prices of every symbol seen."""

    def __init__(self, window: int = 1) -> None:
        self._window = max(1, window)
        self._symbols: dict[str, SymbolMarket] = {}

    def get(self, symbol: str) -> SymbolMarket:
        market = self._symbols.get(symbol)
        if market is None:
            market = self._symbols[symbol] = SymbolMarket(window=self._window)
        return market

    def apply(self, event: MarketData) -> Touch | None:
        return self.get(event.symbol).apply(event)

    def update(self, event: MarketData) -> bool:
        """:meth:`SymbolMarket.update` of the event's symbol."""
        market = self._symbols.get(event.symbol)
        if market is None:
            market = self.get(event.symbol)
        return market.update(event)

    def price(self, symbol: str) -> Decimal | None:
        """Last price, or None if no price was ever seen."""
        market = self._symbols.get(symbol)
        return None if market is None else market.last

    def mark(self, symbol: str) -> Decimal | None:
        market = self._symbols.get(symbol)
        return None if market is None else market.mark
