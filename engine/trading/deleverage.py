"""Deleveraging requests: which reducing trades the risk actor asks for, and how large.

Pure functions of a :class:`~ballast.engine.trading.measures.Book` (the latest snapshot re-valued at
the current marks), the mandate and the net-leverage cap in force. See
:class:`~ballast.engine.kernel.events. DeleverageRequired` for the meaning of a request, and
:mod:`ballast.engine.trading.risk` for when they are sent:

- ``liquidation_distance``: a perp closer to liquidation than ``risk.deleverage_distance``:
  close the fraction of it (found by bisection with the exchange's own formula, closing at the
  mark moves its unrealised PnL into the wallet) that lifts its distance to that threshold ×
  (1 + ``deleverage_buffer``);
- ``margin_usage``: initial margin / margin balance above ``max_margin_usage``: reduce every perp
  by the same fraction, to ``max_margin_usage`` × (1 − ``deleverage_buffer``) (closing at the
  mark leaves the margin balance as it is);
- ``net_leverage``: Σ |net exposure| / NAV above the cap: reduce every net exposure by the same
  fraction, to the cap × (1 − ``deleverage_buffer``).

Notional rounded up to the cent, measure to 6 decimal places. Listed liquidation first, then
margin, then net leverage.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Final

from ballast.engine.kernel.config import RiskConfig
from ballast.engine.kernel.events import DeleverageReason, DeleverageRequired
from ballast.engine.kernel.instruments import base_of
from ballast.engine.trading.margin import PerpHolding, account_liquidation_price
from ballast.engine.trading.measures import Book, Liquidation

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_TWO: Final = Decimal(2)
_BISECTIONS: Final = 40
_CENT: Final = Decimal("0.01")
_MEASURE: Final = Decimal("0.000001")


def deleverage_requests(book: Book, risk: RiskConfig, cap: Decimal) -> list[DeleverageRequired]:
    """Every request for ``book`` (unstamped: ``ts_event = ts_init = 0``), ``cap`` being the net
    leverage cap in force."""
    return [
        *_liquidation_requests(book, risk),
        *_margin_requests(book, risk),
        *_net_requests(book, risk, cap),
    ]


def _liquidation_requests(book: Book, risk: RiskConfig) -> list[DeleverageRequired]:
    threshold = risk.deleverage_distance
    target = min(threshold * (_ONE + risk.deleverage_buffer), _ONE)
    out = []
    for liquidation in book.liquidations():
        distance = liquidation.distance
        if distance is None or distance >= threshold:
            continue
        fraction = _fraction_to_close(book, liquidation, target)
        notional = fraction * abs(liquidation.qty) * liquidation.mark
        out.append(
            _request(
                "liquidation_distance",
                liquidation.asset,
                liquidation.symbol,
                liquidation.qty,
                notional,
                (distance, threshold, target),
                f"{liquidation.asset} perp qty {liquidation.qty} mark {liquidation.mark} "
                f"liquidation {liquidation.price}: distance {distance:.4f} < "
                f"{threshold}; close {fraction:.4f} of it to reach {target:.4f}",
            )
        )
    return out


def _margin_requests(book: Book, risk: RiskConfig) -> list[DeleverageRequired]:
    limit = risk.max_margin_usage
    usage = book.margin_usage()
    if usage is not None and usage <= limit:
        return []
    target = limit * (_ONE - risk.deleverage_buffer)
    initial = book.initial_margin()
    balance = book.margin_balance()
    share = _ONE if usage is None else (initial - target * balance) / initial
    measure = usage if usage is not None else Decimal("Infinity")
    return [
        _request(
            "margin_usage",
            base_of(h.symbol),
            h.symbol,
            h.qty,
            share * abs(h.notional),
            (measure, limit, target),
            f"margin usage {measure:.4f} > {limit} (initial margin {initial:.2f}, margin "
            f"balance {balance:.2f}); reduce perps by {share:.4f} to reach {target:.4f}",
        )
        for h in book.holdings()
    ]


def _net_requests(book: Book, risk: RiskConfig, cap: Decimal) -> list[DeleverageRequired]:
    leverage = book.net_leverage()
    if leverage is None or leverage <= cap:
        return []
    target = cap * (_ONE - risk.deleverage_buffer)
    nav = book.nav()
    exposures = {s.asset: book.net_exposure(s) for s in book.snapshot.assets}
    total = sum((abs(v) for v in exposures.values()), _ZERO)
    share = (total - target * nav) / total
    return [
        _request(
            "net_leverage",
            asset,
            "",
            net,
            share * abs(net),
            (leverage, cap, target),
            f"net leverage {leverage:.4f} > cap {cap} at the marks (NAV {nav:.2f}); reduce "
            f"net exposures by {share:.4f} to reach {target:.4f}",
        )
        for asset, net in sorted(exposures.items())
        if net != 0
    ]


def _request(
    reason: DeleverageReason,
    asset: str,
    symbol: str,
    position: Decimal,
    notional: Decimal,
    levels: tuple[Decimal, Decimal, Decimal],
    detail: str,
) -> DeleverageRequired:
    """A DeleverageRequired that trades against ``position`` (stamped by the caller): the
    notional rounded up to the cent, the measure to 6 decimal places."""
    measure, limit, target = levels
    return DeleverageRequired(
        ts_event=0,
        ts_init=0,
        reason=reason,
        asset=asset,
        symbol=symbol,
        side="sell" if position > 0 else "buy",
        notional=notional.quantize(_CENT, rounding=ROUND_CEILING),
        measure=measure if measure.is_infinite() else measure.quantize(_MEASURE),
        limit=limit,
        target=target,
        detail=detail,
    )


def _fraction_to_close(book: Book, liquidation: Liquidation, target: Decimal) -> Decimal:
    """The smallest fraction of the position (to 1/2^40) whose close at the mark lifts its
    distance to liquidation to ``target`` (closing at the mark moves its unrealised PnL into the
    wallet; the rest of the account is held as it is)."""
    holdings = book.holdings()
    own = next(h for h in holdings if h.symbol == liquidation.symbol)
    others = [h for h in holdings if h.symbol != liquidation.symbol]

    def safe(fraction: Decimal) -> bool:
        kept = _ONE - fraction
        rest = PerpHolding(own.symbol, own.qty * kept, own.cost * kept, own.mark)
        wallet = book.snapshot.cash + fraction * own.unrealized
        price = account_liquidation_price(own.symbol, [rest, *others], wallet, book.table)
        return price is None or abs(own.mark - price) / own.mark >= target

    low, high = _ZERO, _ONE
    for _ in range(_BISECTIONS):
        middle = (low + high) / _TWO
        if safe(middle):
            high = middle
        else:
            low = middle
    return high
