"""Portfolio: the actor that values the portfolio and publishes :class:`PortfolioSnapshot`.

Consumes market data (QuoteTick mid, Bar close, TradeTick price, MarkPriceUpdated mark and
funding rate) and account and order facts (BalanceUpdated, PositionUpdated, OrderFilled,
FundingPaid); keeps the books in a :class:`~ballast.engine.trading.ledger.Ledger` (see there for
NAV, exposure, leverage and the attribution identity).

Market data reaches it only once the bus's :class:`~ballast.engine.trading.market_gate.MarketGate`
has accepted it (a rejected point is published as ``DataRejected`` instead, and no actor sees it).
Spot symbols (``BTC/USDT``) mark the spot price of their base asset, perp symbols
(``BTC/USDT:USDT``) its perp mark. A perp's MarkPriceUpdated is the mark; its quotes, trades and
bars mark it only until the first MarkPriceUpdated of that symbol has been seen.

Snapshots:

- after every account, order and funding event, at once, with ``trigger`` ``"balance"``,
  ``"position"``, ``"fill"`` or ``"funding"``;
- after price events (``"price"``), once the market data of that instant has been delivered (a
  journaled timer at the event's own time: on the simulated clock it fires when time moves on,
  so the bars of every instrument closing at one time are all applied before the portfolio is
  valued and the rebalancer asked; on the live clock, as soon as the loop is free), and at most
  once per ``min_snapshot_interval_ns`` of event time (a move held back is snapshotted at the end
  of the interval, so the last price of a burst is always evaluated);
- never while NAV is undefined: no snapshot until every held asset (spot or perp) has a price, and
  attribution starts (NAV0) at the first moment it has (see :mod:`ballast.engine.trading.ledger`,
  "Opening"). Sessions should therefore publish the account state before market data starts.

A fill is booked once: a venue re-delivering the same (client order id, trade id) is ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    FundingPaid,
    MarketEvent,
    MarkPriceUpdated,
    OrderFilled,
    PositionUpdated,
    QuoteTick,
    SnapshotTrigger,
    TimerFired,
    TradeTick,
)
from ballast.engine.kernel.instruments import base_of, is_perp
from ballast.engine.trading.ledger import Ledger

_FILLS_REMEMBERED = 100_000


class Portfolio(Actor):
    """Values the portfolio on every relevant event; ``ledger`` may be read (not written)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        quote: str = "USDT",
        min_snapshot_interval_ns: int = NS_PER_SECOND,
        leverage: Decimal = Decimal(1),
    ) -> None:
        super().__init__(bus, clock)
        self.ledger = Ledger(quote=quote, leverage=leverage)
        self.min_snapshot_interval_ns = min_snapshot_interval_ns
        self._funding_rates: dict[str, Decimal] = {}
        self._marked: set[str] = set()
        self._kinds: dict[str, tuple[str, bool]] = {}
        """symbol → (its base asset, is it a perp): parsed once per symbol."""
        self._last_price_snapshot_ns: int | None = None
        self._price_snapshot_armed = False
        self._fills: set[tuple[str, str]] = set()
        self._fill_order: deque[tuple[str, str]] = deque()
        self.subscribe(QuoteTick, self.on_quote)
        self.subscribe(Bar, self.on_bar)
        self.subscribe(TradeTick, self.on_trade)
        self.subscribe(MarkPriceUpdated, self.on_mark)
        self.subscribe(BalanceUpdated, self.on_balance)
        self.subscribe(PositionUpdated, self.on_position)
        self.subscribe(OrderFilled, self.on_fill)
        self.subscribe(FundingPaid, self.on_funding)

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> Portfolio:
        interval_ns = round(config.execution.price_snapshot_interval_s * NS_PER_SECOND)
        return cls(bus, clock, quote=config.venue.quote, min_snapshot_interval_ns=interval_ns)

    @property
    def funding_rates(self) -> Mapping[str, Decimal]:
        """Latest accepted funding rate per asset (per funding interval), read-only."""
        return MappingProxyType(self._funding_rates)

    # ------------------------------------------------------------------ market data

    def on_quote(self, tick: QuoteTick) -> None:
        self._use_price(tick, tick.symbol, (tick.bid + tick.ask) / 2)

    def on_bar(self, bar: Bar) -> None:
        self._use_price(bar, bar.symbol, bar.close)

    def on_trade(self, trade: TradeTick) -> None:
        self._use_price(trade, trade.symbol, trade.price)

    def on_mark(self, event: MarkPriceUpdated) -> None:
        self._marked.add(event.symbol)
        self._funding_rates[self._kind_of(event.symbol)[0]] = event.funding_rate
        self._use_price(event, event.symbol, event.mark)

    def _kind_of(self, symbol: str) -> tuple[str, bool]:
        kind = self._kinds.get(symbol)
        if kind is None:
            kind = self._kinds[symbol] = (base_of(symbol), is_perp(symbol))
        return kind

    def _use_price(self, event: MarketEvent, symbol: str, price: Decimal) -> None:
        asset, perp = self._kinds.get(symbol) or self._kind_of(symbol)
        if not perp:
            self.ledger.mark_spot(asset, price)
        elif isinstance(event, MarkPriceUpdated) or symbol not in self._marked:
            self.ledger.mark_perp(asset, price)
        else:
            return  # the perp's mark price stream is authoritative
        self._price_snapshot(event.ts_event)

    def _price_snapshot(self, ts_event: int) -> None:
        """A price move is snapshotted once the market data of its instant has been delivered (a
        timer at its own time: every bar or tick of that instant is applied first), and at most
        once per interval: a move inside the interval after a snapshot waits for its end."""
        if self._price_snapshot_armed:
            return
        last = self._last_price_snapshot_ns
        due = ts_event
        if last is not None and ts_event - last < self.min_snapshot_interval_ns:
            due = last + self.min_snapshot_interval_ns
        self._price_snapshot_armed = True
        self.after("price-snapshot", due, self._on_price_timer)

    def _on_price_timer(self, event: TimerFired) -> None:
        self._price_snapshot_armed = False
        if self._snapshot(event.ts_event, "price"):
            self._last_price_snapshot_ns = event.ts_event

    # ------------------------------------------------------------------ account and orders

    def on_balance(self, event: BalanceUpdated) -> None:
        self.ledger.apply_balance(event)
        self._snapshot(event.ts_event, "balance")

    def on_position(self, event: PositionUpdated) -> None:
        self.ledger.apply_position(event)
        self._snapshot(event.ts_event, "position")

    def on_funding(self, event: FundingPaid) -> None:
        self.ledger.apply_funding(event)
        self._snapshot(event.ts_event, "funding")

    def on_fill(self, fill: OrderFilled) -> None:
        key = (fill.client_order_id, fill.trade_id)
        if key in self._fills:
            self.log.warning("fill %s of %s delivered again: ignored", fill.trade_id, fill.symbol)
            return
        self.ledger.apply_fill(fill)
        self._remember(key)
        self._snapshot(fill.ts_event, "fill")

    def _remember(self, key: tuple[str, str]) -> None:
        self._fills.add(key)
        self._fill_order.append(key)
        if len(self._fill_order) > _FILLS_REMEMBERED:
            self._fills.discard(self._fill_order.popleft())

    # ------------------------------------------------------------------ snapshots

    def _snapshot(self, ts_event: int, trigger: SnapshotTrigger) -> bool:
        """Publish a snapshot if NAV is defined; True if one was published."""
        if not self.ledger.valued:
            return False
        self.publish(self.ledger.snapshot(ts_event, trigger, ts_init=self.now()))
        return True
