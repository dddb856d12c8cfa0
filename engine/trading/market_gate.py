"""MarketGate: the one place market data is judged before anything uses it.

Installed on a session's bus (:meth:`ballast.engine.kernel.bus.Bus.set_gate`), it runs a
:class:`~ballast.engine.trading.market_guard.MarketGuard` over every market data message as it is
dispatched:

- ``QuoteTick``: the bid/ask (mid checked against the ``last`` series);
- ``Bar``: open, high, low and close positive, the close checked against the ``last`` series;
- ``TradeTick``: the price, against the ``last`` series;
- ``MarkPriceUpdated``: the funding rate within ``risk.max_abs_funding_rate``, then the mark
  against the symbol's ``mark`` series.

On a live venue (``venue.kind`` ``binance`` or ``paper``), before those, any of them stamped more
than ``max_ahead_ns`` (:data:`MAX_AHEAD_NS`, five minutes) after the clock is rejected
(``future_timestamp``): a malformed exchange time would otherwise freeze its series (every true
point after it would be out of order). Off (None) elsewhere: a simulated venue's data may be
judged before its clock reaches it. Live, too, a symbol's first quote is not trusted alone: it is
held (``unconfirmed_first``, logged at info) until the next quote agrees with it
(``MarketGuard(confirm_first=True)``); backtests accept the first point as before.

An accepted message is delivered as usual. A rejected one is delivered to no subscriber (no
estimator, ledger, strategy, rebalancer or metric sees it) and a :class:`DataRejected` naming
the symbol, the reason, the detail and the journal seq of the rejected record is published in its
place. The venue is not behind the gate: a simulated exchange takes market data before the bus
does and may fill at a price the engine rejects, as a real venue trades on what its market does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    Bar,
    DataRejected,
    MarketEvent,
    MarkPriceUpdated,
    QuoteTick,
    TradeTick,
)
from ballast.engine.trading.market_guard import UNCONFIRMED_FIRST, MarketGuard, Rejection

log = logging.getLogger("ballast.MarketGate")

_Judge = Callable[[Any], Rejection | None]

MAX_AHEAD_NS: Final = 300 * NS_PER_SECOND
"""How far after the engine's clock a market data point may be stamped (clock skew between an
exchange and the engine is milliseconds to seconds)."""


class MarketGate:
    """Judges market data for one bus (see the module docstring); ``guard`` keeps the counts."""

    def __init__(
        self,
        clock: Clock,
        guard: MarketGuard | None = None,
        *,
        max_ahead_ns: int | None = None,
    ) -> None:
        self.clock = clock
        self.guard = guard if guard is not None else MarketGuard()
        self.max_ahead_ns = max_ahead_ns
        self._judges: dict[type[MarketEvent], _Judge] = {
            QuoteTick: self._quote,
            Bar: self._bar,
            TradeTick: self._trade,
            MarkPriceUpdated: self._mark,
        }

    @classmethod
    def from_config(cls, config: Config, clock: Clock, *, history: bool = False) -> MarketGate:
        """The gate of ``config``'s venue; ``history``: screening recorded data (``ballast plan``
        over a data folder), where times are judged against each other, not against a clock."""
        risk = config.risk
        live = config.venue.kind in ("binance", "paper") and not history
        guard = MarketGuard(
            risk.max_price_deviation,
            max_abs_funding_rate=risk.max_abs_funding_rate,
            confirm_first=live,
        )
        return cls(clock, guard, max_ahead_ns=MAX_AHEAD_NS if live else None)

    def install(self, bus: Bus) -> MarketGate:
        bus.set_gate(self.screen)
        return self

    def screen(self, seq: int, event: MarketEvent) -> DataRejected | None:
        """None if ``event`` is accepted, else the DataRejected to publish in its place."""
        judge = self._judges.get(type(event))
        if judge is None:
            return None
        rejection = None
        if self.max_ahead_ns is not None:
            now = self.clock.now_ns()
            symbol = str(getattr(event, "symbol", ""))
            rejection = self.guard.check_time(symbol, event.ts_event, now, self.max_ahead_ns)
        if rejection is None:
            rejection = judge(event)
            if rejection is None:
                return None
        symbol = str(getattr(event, "symbol", ""))
        level = log.info if rejection.reason == UNCONFIRMED_FIRST else log.warning
        level("rejected %s data: %s (%s)", symbol, rejection.reason, rejection.detail)
        return DataRejected(
            ts_event=event.ts_event,
            ts_init=self.clock.now_ns(),
            symbol=symbol,
            reason=rejection.reason,
            detail=rejection.detail,
            seq=seq,
        )

    def _quote(self, tick: QuoteTick) -> Rejection | None:
        return self.guard.check_quote(tick.symbol, tick.bid, tick.ask, tick.ts_event)

    def _bar(self, bar: Bar) -> Rejection | None:
        prices = (bar.open, bar.high, bar.low, bar.close)
        return self.guard.check_bar(bar.symbol, prices, bar.ts_event)

    def _trade(self, trade: TradeTick) -> Rejection | None:
        return self.guard.check(trade.symbol, trade.price, trade.ts_event)

    def _mark(self, update: MarkPriceUpdated) -> Rejection | None:
        funding = self.guard.check_funding(update.symbol, update.funding_rate)
        if funding is not None:
            return funding
        return self.guard.check(update.symbol, update.mark, update.ts_event, source="mark")
