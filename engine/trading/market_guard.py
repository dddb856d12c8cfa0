"""MarketGuard: absurd market data is rejected before anything is valued or traded on it.

A price point is rejected when:

- it is not a positive, finite number (``non_positive_price``);
- it is a quote whose bid is above its ask (``crossed_quote``; bid == ask is accepted);
- its ``ts_event`` is older than the last accepted point of its series (``out_of_order``);
- it is a bar whose open, high or low is not a positive, finite number (``non_positive_price``);
- it moves more than ``max_deviation`` (a fraction: 0.10 = 10 %) away from the last accepted price
  of its series (``price_jump``) and is not yet confirmed.

Confirmation keeps a real crash from freezing the price forever: a jump is accepted when it is the
``confirmations``-th consecutive out-of-band point (at strictly increasing times) whose prices all
lie within ``max_deviation`` of the first of them. With the default of 3, the first two such points
are rejected and the third is accepted. A point back inside the band clears the unconfirmed ones;
an out-of-band point inconsistent with them starts a new confirmation run.

A point stamped more than ``max_ahead_ns`` after the engine's clock is rejected
(``future_timestamp``, :meth:`MarketGuard.check_time`): accepted, it would become its series' last
time and every true point after it would be ``out_of_order``.

A funding rate (of a perp's mark update) is rejected when it is not finite or its magnitude is
above ``max_abs_funding_rate`` per funding interval (``implausible_funding_rate``): real rates stay
far below the venues' caps (Binance: ±0.75 % to ±3 % per interval), a rate of 5.0 is a data error.

Each symbol has one series per ``source`` (for example ``"last"`` for quotes, trades and bars and
``"mark"`` for a perp's mark price), since those are different prices published on different
clocks. The first point of a series has nothing to compare with and is accepted if positive.

With ``confirm_first`` (a live venue: its first quotes after a start are not to be trusted blindly),
a quote series accepts its first quote only when it agrees, within ``max_deviation``, with the
quote before it: until then each quote is rejected (``unconfirmed_first``) and held as the one the
next must agree with. A true first quote costs one quote; an absurd one is rejected, and so is the
true quote after it (it disagrees), the one after that starts the series.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.events import DataRejectReason

NON_POSITIVE: Final[DataRejectReason] = "non_positive_price"
CROSSED: Final[DataRejectReason] = "crossed_quote"
OUT_OF_ORDER: Final[DataRejectReason] = "out_of_order"
PRICE_JUMP: Final[DataRejectReason] = "price_jump"
FUNDING_RATE: Final[DataRejectReason] = "implausible_funding_rate"
FUTURE: Final[DataRejectReason] = "future_timestamp"
UNCONFIRMED_FIRST: Final[DataRejectReason] = "unconfirmed_first"
DEFAULT_MAX_ABS_FUNDING_RATE: Final = Decimal("0.03")

_TWO: Final = Decimal(2)


@dataclass(frozen=True)
class Rejection:
    """Why a point was rejected: a short ``reason`` code and a human ``detail``."""

    reason: DataRejectReason
    detail: str


@dataclass(slots=True)
class _Series:
    price: Decimal | None = None
    ts_ns: int | None = None
    pending: list[tuple[int, Decimal]] = field(default_factory=list)
    """Unconfirmed out-of-band points (ts, price), oldest first."""


class MarketGuard:
    """Accepts or rejects price points; counts rejects per (symbol, reason)."""

    def __init__(
        self,
        max_deviation: Decimal = Decimal("0.10"),
        *,
        confirmations: int = 3,
        max_abs_funding_rate: Decimal = DEFAULT_MAX_ABS_FUNDING_RATE,
        confirm_first: bool = False,
    ) -> None:
        if max_deviation <= 0:
            raise ValueError(f"max_deviation must be > 0, got {max_deviation}")
        if confirmations < 1:
            raise ValueError(f"confirmations must be >= 1, got {confirmations}")
        if not max_abs_funding_rate > 0:
            raise ValueError(f"max_abs_funding_rate must be > 0, got {max_abs_funding_rate}")
        self.max_deviation = max_deviation
        self.confirmations = confirmations
        self.max_abs_funding_rate = max_abs_funding_rate
        self.confirm_first = confirm_first
        self._first_held: dict[tuple[str, str], tuple[int, Decimal]] = {}
        """Quote series without an accepted price: (ts, mid) of the last quote held."""
        self.rejects: Counter[tuple[str, str]] = Counter()
        self.accepted = 0
        self._series: dict[tuple[str, str], _Series] = {}

    def reject_count(self, symbol: str | None = None, reason: str | None = None) -> int:
        """Rejects so far, optionally of one symbol and/or one reason."""
        return sum(
            n
            for (s, r), n in self.rejects.items()
            if (symbol is None or s == symbol) and (reason is None or r == reason)
        )

    def last_price(self, symbol: str, source: str = "last") -> Decimal | None:
        """The last accepted price of a series."""
        series = self._series.get((symbol, source))
        return None if series is None else series.price

    def check_quote(
        self, symbol: str, bid: Decimal, ask: Decimal, ts_ns: int, *, source: str = "last"
    ) -> Rejection | None:
        """Check a best bid/ask; its mid is the price checked against the series."""
        if not (_positive(bid) and _positive(ask)):
            return self._reject(symbol, NON_POSITIVE, f"bid {bid} / ask {ask} not positive")
        if bid > ask:
            return self._reject(symbol, CROSSED, f"bid {bid} is above ask {ask}")
        mid = (bid + ask) / _TWO
        if self.confirm_first:
            unconfirmed = self._first(symbol, mid, ts_ns, source)
            if unconfirmed is not None:
                return unconfirmed
        return self.check(symbol, mid, ts_ns, source=source)

    def _first(self, symbol: str, price: Decimal, ts_ns: int, source: str) -> Rejection | None:
        """``confirm_first``: None once the series has an accepted price, or when ``price``
        agrees with the quote held before it (then :meth:`check` starts the series with it);
        else the quote is held and rejected."""
        key = (symbol, source)
        series = self._series.get(key)
        if series is not None and series.price is not None:
            return None
        held = self._first_held.get(key)
        if held is not None and ts_ns < held[0]:
            return self._reject(symbol, OUT_OF_ORDER, f"{held[0] - ts_ns} ns older than the held")
        self._first_held[key] = (ts_ns, price)
        if held is None:
            detail = (
                f"first quote {price}: held until the next agrees within {self.max_deviation:.2%}"
            )
            return self._reject(symbol, UNCONFIRMED_FIRST, detail)
        move = self._deviation(held[1], price)
        if move <= self.max_deviation:
            del self._first_held[key]
            return None
        detail = (
            f"first quotes disagree: {price} is {move:.2%} from {held[1]} (max "
            f"{self.max_deviation:.2%}); held until the next agrees"
        )
        return self._reject(symbol, UNCONFIRMED_FIRST, detail)

    def check_bar(
        self, symbol: str, prices: tuple[Decimal, Decimal, Decimal, Decimal], ts_ns: int
    ) -> Rejection | None:
        """Check a bar's (open, high, low, close): all must be positive; the close is the price
        checked against the series."""
        for p in prices:
            if not (p.is_finite() and p > 0):
                shown = "/".join(str(p) for p in prices)
                return self._reject(symbol, NON_POSITIVE, f"bar o/h/l/c {shown} not all positive")
        return self._check_series(symbol, prices[3], ts_ns, "last")

    def check_time(
        self, symbol: str, ts_ns: int, now_ns: int, max_ahead_ns: int
    ) -> Rejection | None:
        """Reject a point stamped more than ``max_ahead_ns`` after ``now_ns``."""
        ahead = ts_ns - now_ns
        if ahead <= max_ahead_ns:
            return None
        return self._reject(
            symbol, FUTURE, f"stamped {ahead} ns ahead of the clock (max {max_ahead_ns} ns)"
        )

    def check_funding(self, symbol: str, rate: Decimal) -> Rejection | None:
        """Check a funding rate per interval (it has no series: each settlement stands alone)."""
        if rate.is_finite() and abs(rate) <= self.max_abs_funding_rate:
            return None
        return self._reject(
            symbol,
            FUNDING_RATE,
            f"funding rate {rate} is outside ±{self.max_abs_funding_rate} per interval",
        )

    def check(
        self, symbol: str, price: Decimal, ts_ns: int, *, source: str = "last"
    ) -> Rejection | None:
        """None if ``price`` at ``ts_ns`` is accepted (and becomes the series' last price)."""
        if not (price.is_finite() and price > 0):
            return self._reject(symbol, NON_POSITIVE, f"price {price} is not positive")
        return self._check_series(symbol, price, ts_ns, source)

    def _check_series(
        self, symbol: str, price: Decimal, ts_ns: int, source: str
    ) -> Rejection | None:
        """:meth:`check` of a price already known to be positive (the hot path: one dict lookup,
        the accept inlined)."""
        key = (symbol, source)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        last_ts = series.ts_ns
        if last_ts is not None and ts_ns < last_ts:
            late = last_ts - ts_ns
            return self._reject(symbol, OUT_OF_ORDER, f"{late} ns older than the last accepted")
        last = series.price
        if last is not None and abs(price - last) / last > self.max_deviation:
            return self._jump(symbol, series, price, ts_ns)
        series.price, series.ts_ns = price, ts_ns
        if series.pending:
            series.pending.clear()
        self.accepted += 1
        return None

    def _jump(self, symbol: str, series: _Series, price: Decimal, ts_ns: int) -> Rejection | None:
        pending = series.pending
        if pending and ts_ns <= pending[-1][0]:
            return self._reject(symbol, PRICE_JUMP, self._jump_detail(series, price, "repeat"))
        if pending and self._deviation(pending[0][1], price) > self.max_deviation:
            pending.clear()
        pending.append((ts_ns, price))
        if len(pending) < self.confirmations:
            return self._reject(symbol, PRICE_JUMP, self._jump_detail(series, price, "unconfirmed"))
        self._accept(series, price, ts_ns)
        return None

    def _jump_detail(self, series: _Series, price: Decimal, what: str) -> str:
        last = series.price if series.price is not None else price
        move = self._deviation(last, price)
        seen = len(series.pending)
        return (
            f"{price} is {move:.2%} from the last accepted {last} (max "
            f"{self.max_deviation:.2%}); {what}, {seen}/{self.confirmations} consistent points"
        )

    def _accept(self, series: _Series, price: Decimal, ts_ns: int) -> None:
        series.price, series.ts_ns = price, ts_ns
        series.pending.clear()
        self.accepted += 1

    def _reject(self, symbol: str, reason: DataRejectReason, detail: str) -> Rejection:
        self.rejects[(symbol, reason)] += 1
        return Rejection(reason, detail)

    @staticmethod
    def _deviation(reference: Decimal, price: Decimal) -> Decimal:
        return abs(price - reference) / reference


def _positive(value: Decimal) -> bool:
    return value.is_finite() and value > 0
