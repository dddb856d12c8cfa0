"""Ledger: the exact accounting of one portfolio. Pure and synchronous; it knows no bus.

Definitions (values in the quote currency, exact ``Decimal``; nothing is rounded for display):

- **cash** = Σ holdings of cash assets (the quote asset and stablecoins, each worth 1), the spot
  and futures wallets together: one cash bucket;
- **NAV** = cash + Σ spot qty × spot price + Σ perp unrealised PnL (qty × mark − qty × entry);
- **net exposure** (asset) = spot value + perp qty × perp mark; **weight** = net exposure / NAV;
- **gross leverage** = Σ (|spot value| + |perp notional|) / NAV (a basis trade counts both legs);
  **net leverage** (the mandate's measure) = Σ |net exposure| / NAV (a 1:1 hedge adds nothing);
- **funding** amount = −position qty × mark × rate (rate > 0: longs pay shorts).

Attribution. Once the ledger is open, after every operation, exactly:

    NAV − NAV0 = price_pnl + funding_pnl − fees_paid + transfers        (identity_residual() == 0)

- ``price_pnl``: mark moves (Δprice × qty) and the gap between a fill's price and the mark;
- ``fees_paid``: fees in quote value (a fee in the traded base asset at the fill price, any other
  asset at its last spot price);
- ``funding_pnl``: funding received (> 0) or paid (< 0);
- ``transfers``: whatever the venue reports that the ledger's own bookings do not explain
  (deposits, withdrawals, reconciliation differences of balances or positions), at current prices.

Balances. The ledger holds one quantity per asset, whichever wallet it is in. A BalanceUpdated is
the venue's statement of one (account, asset); the venue's total of an asset is the sum of the
latest statement of each account, and what differs from the ledger's own quantity is a transfer.
Fills, fees and funding are booked per asset, not per wallet, so a venue that settles perps in the
spot wallet (a unified account) and one with a separate futures wallet both reconcile exactly. A
move between the venue's own wallets arrives as two statements: two opposite transfers.

Opening. NAV is undefined while a held asset has no price. The ledger opens the first time NAV is
defined once at least one price is known: NAV0 is the NAV at that moment and attribution starts
there, so balances and positions reported before it are the opening holdings, not transfers. A
holding first priced after the opening (a deposit of an asset without a price yet) enters as a
transfer when its first price arrives. The peak NAV is rescaled by each transfer (NAV after /
NAV before), so deposits and withdrawals do not show up as drawdown.

Peak. The peak NAV is the highest NAV at a valuation point: a snapshot, or the end of a booking
(fill, funding, balance, position). A mark alone moves NAV but not the peak: the prices of one
instant arrive one by one, and the NAV between two of them (a new BTC price beside an old ETH
price, a spot leg repriced before its hedge) was never the portfolio's value. The portfolio
snapshots prices once all of an instant's are in.

Exactness. Bookings run in a 100-digit decimal context that traps ``Inexact``: a rounding that
would break the identity raises :class:`LedgerError` instead of hiding. The only divisions are
ratios (weights, leverage, drawdown, entry price) at 28 significant digits, and the cost basis
left after a partial perp close: cost × remaining / previous qty, rounded to 1e-12 quote units.
That rounding moves into the realised PnL, so NAV remains exact. The perp cost basis is the one
of :mod:`ballast.engine.trading.position`, which the simulated exchange books with too, so its
statements match the ledger's to the digit.

Venue ordering. Balances and positions are absolute statements of the venue. If a venue reports a
balance that already includes a fill before that fill arrives, the difference is booked as a
transfer and the next statement books it back: transfers net out, the identity holds throughout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from typing import Final, ParamSpec, TypeVar

from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import (
    AccountKind,
    AssetState,
    BalanceUpdated,
    FundingPaid,
    OrderFilled,
    PortfolioSnapshot,
    PositionUpdated,
    SnapshotTrigger,
)
from ballast.engine.kernel.instruments import base_of, is_perp, settle_of
from ballast.engine.trading.position import Position

STABLECOINS: Final = frozenset({"USDT", "USDC", "BUSD", "FDUSD"})
"""Assets counted as cash at 1 (besides the quote asset)."""

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_INFINITY: Final = Decimal("Infinity")
_EXACT: Final = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
"""Installed as the thread's context (not a copy) while a ledger method runs: only its traps are
ever read, never its flags, so sharing the one object is safe."""
_RATIO: Final = Context(prec=28, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Used through its own methods (``_RATIO.divide``): its flags are never read."""

P = ParamSpec("P")
R = TypeVar("R")


class LedgerError(BallastError):
    """An operation the ledger cannot book exactly (unknown price of a fee asset, NAV undefined)."""


def _exact(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` in the exact context; an inexact result becomes a LedgerError.

    Nested calls (an exact method calling another) run straight in the context already set: the
    context switch is done once per outermost call, not once per helper (the hot path of a
    backtest marks and values the books on every bar).
    """

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        outer = getcontext()
        if outer is _EXACT:
            return method(*args, **kwargs)
        setcontext(_EXACT)
        try:
            return method(*args, **kwargs)
        except Inexact as exc:
            raise LedgerError(f"{method.__name__}: result needs more than 100 digits") from exc
        finally:
            setcontext(outer)

    return wrapper


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    return _RATIO.divide(numerator, denominator)  # the context's method: no context switch


def _share(value: Decimal, nav: Decimal) -> Decimal:
    """value / NAV; with NAV ≤ 0 any exposure is infinitely large (signed), none is 0."""
    if nav > 0:
        return _ratio(value, nav)
    return _ZERO if value == 0 else _INFINITY.copy_sign(value)


def _signed(fill: OrderFilled) -> Decimal:
    return fill.qty if fill.side == "buy" else -fill.qty


@dataclass
class PerpPosition(Position):
    """A perp position of the ledger: the shared cost basis (:mod:`ballast.engine.trading.position`)
    with what the ledger keeps beside it."""

    realized_pnl: Decimal = _ZERO
    funding: Decimal = _ZERO
    liquidation_price: Decimal | None = None
    margin: Decimal | None = None

    def trade(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill (see :meth:`Position.trade`) and add what it realises to the total."""
        realized = Position.trade(self, signed_qty, price)
        self.realized_pnl += realized
        return realized


_FLAT: Final = PerpPosition()
"""Read-only stand-in for an asset without a perp position (never booked into)."""


class Ledger:
    """Holdings, prices and PnL attribution of one portfolio, in exact decimals.

    ``leverage`` is the margin setting used for :meth:`margin_used` when the venue has not
    reported a position's margin.
    """

    def __init__(
        self,
        *,
        quote: str = "USDT",
        cash_assets: Iterable[str] = STABLECOINS,
        leverage: Decimal = _ONE,
    ) -> None:
        if leverage <= 0:
            raise ValueError(f"leverage must be > 0, got {leverage}")
        self.quote = quote
        self.cash_assets = frozenset(cash_assets) | {quote}
        self.leverage = leverage
        self.holdings: dict[str, Decimal] = {}
        self.reported: dict[tuple[AccountKind, str], Decimal] = {}
        """The venue's latest statement per (account, asset)."""
        self.spot_prices: dict[str, Decimal] = {}
        self.perp_marks: dict[str, Decimal] = {}
        self.positions: dict[str, PerpPosition] = {}
        self.price_pnl = _ZERO
        self.funding_pnl = _ZERO
        self.fees_paid = _ZERO
        self.transfers = _ZERO
        self.realized_pnl = _ZERO
        self.nav0: Decimal | None = None
        self.peak_nav = _ZERO
        self._assets: list[str] | None = None
        self._unpriced: list[str] | None = None

    def _changed(self) -> None:
        """Holdings, positions or the set of priced assets changed: forget the cached lists.
        Every booking but a re-mark of an already priced asset calls it."""
        self._assets = self._unpriced = None

    # ------------------------------------------------------------------ state

    @property
    def is_open(self) -> bool:
        """Attribution has started (NAV0 is set)."""
        return self.nav0 is not None

    @property
    def valued(self) -> bool:
        """Open, and every holding has a price: NAV and a snapshot are defined."""
        return self.is_open and not self._unpriced_list()

    @_exact
    def cash(self) -> Decimal:
        return self._cash()

    def spot_qty(self, asset: str) -> Decimal:
        return self.holdings.get(asset, _ZERO)

    def assets(self) -> list[str]:
        """Non-cash assets with a holding, a position or a known price, sorted (a new list)."""
        return list(self._asset_list())

    def _asset_list(self) -> list[str]:
        if self._assets is None:
            held = {a for a, v in self.holdings.items() if v and a not in self.cash_assets}
            keys = held | set(self.spot_prices) | set(self.perp_marks) | set(self.positions)
            self._assets = sorted(keys)
        return self._assets

    def unpriced(self) -> list[str]:
        """Assets held (spot or perp) without a price: while any exist, NAV is undefined."""
        return list(self._unpriced_list())

    def _unpriced_list(self) -> list[str]:
        if self._unpriced is None:
            spot = self.spot_prices
            missing = {a for a in self._asset_list() if self.spot_qty(a) and a not in spot}
            missing |= {a for a, p in self.positions.items() if p.qty and a not in self.perp_marks}
            self._unpriced = sorted(missing)
        return self._unpriced

    # ------------------------------------------------------------------ market data

    # The marks are the hot path of a backtest (every bar): once the ledger is open and the asset
    # priced, a re-mark books Δprice × qty through the exact context's own methods (the same
    # operations, rounding and traps as inside @_exact, without switching the thread's context).

    def mark_spot(self, asset: str, price: Decimal) -> None:
        """Revalue the spot holding of ``asset``: Δprice × qty is price PnL."""
        if asset in self.cash_assets:
            return
        old = self.spot_prices.get(asset)
        if old is None or self.nav0 is None:
            self._mark_spot(asset, price)
            return
        self.spot_prices[asset] = price
        qty = self.holdings.get(asset, _ZERO)
        try:
            moved = _EXACT.multiply(_EXACT.subtract(price, old), qty)
            self.price_pnl = _EXACT.add(self.price_pnl, moved)
        except Inexact as exc:
            raise LedgerError("mark_spot: result needs more than 100 digits") from exc

    @_exact
    def _mark_spot(self, asset: str, price: Decimal) -> None:
        self._set_spot_price(asset, price)
        self._settle(valuation=False)

    def mark_perp(self, asset: str, mark: Decimal) -> None:
        """Revalue the perp position of ``asset``: Δmark × qty is price PnL."""
        old = self.perp_marks.get(asset)
        if old is None or self.nav0 is None:
            self._mark_perp(asset, mark)
            return
        self.perp_marks[asset] = mark
        pos = self.positions.get(asset)
        if pos is None or pos.qty == 0:
            return
        try:
            moved = _EXACT.multiply(_EXACT.subtract(mark, old), pos.qty)
            self.price_pnl = _EXACT.add(self.price_pnl, moved)
        except Inexact as exc:
            raise LedgerError("mark_perp: result needs more than 100 digits") from exc

    @_exact
    def _mark_perp(self, asset: str, mark: Decimal) -> None:
        self._set_perp_mark(asset, mark)
        self._settle(valuation=False)

    def _set_spot_price(self, asset: str, price: Decimal) -> None:
        old = self.spot_prices.get(asset)
        self.spot_prices[asset] = price
        qty = self.spot_qty(asset)
        if old is None:
            self._changed()
            self._book_transfer(qty * price)  # a holding valued for the first time
        else:
            self._book_price((price - old) * qty)

    def _set_perp_mark(self, asset: str, mark: Decimal) -> None:
        old = self.perp_marks.get(asset)
        self.perp_marks[asset] = mark
        if old is None:
            self._changed()
        pos = self.positions.get(asset)
        if pos is None or pos.qty == 0:
            return
        if old is None:
            self._book_transfer(pos.unrealized(mark))
        else:
            self._book_price((mark - old) * pos.qty)

    # ------------------------------------------------------------------ account events

    @_exact
    def apply_balance(self, event: BalanceUpdated) -> None:
        """Adopt the venue's statement; an unexplained difference is a transfer at current price."""
        self._changed()
        asset = event.asset
        self.reported[(event.account, asset)] = event.free + event.locked
        venue_total = sum((v for (_, a), v in self.reported.items() if a == asset), _ZERO)
        diff = venue_total - self.holdings.get(asset, _ZERO)
        self.holdings[asset] = venue_total
        value = self._value_of(asset, diff)
        if value is not None:  # None: unpriced, booked when its first price arrives
            self._book_transfer(value)
        self._settle()

    @_exact
    def apply_position(self, event: PositionUpdated) -> None:
        """Adopt the venue's perp position; the change of its value is a transfer at mark.

        Quantity and entry price are the venue's (the ledger's exact cost basis is kept when both
        already agree). The venue's mark is used only while no mark is known; liquidation price
        and margin are taken as reported (until the next fill makes them stale).
        """
        asset = base_of(event.symbol)
        pos = self.positions.setdefault(asset, PerpPosition())
        before = self._perp_value(asset)
        if (pos.qty, pos.entry_price) != (event.qty, event.entry_price):
            pos.qty, pos.cost = event.qty, event.qty * event.entry_price
        pos.liquidation_price = event.liquidation_price if event.qty else None
        pos.margin = event.margin if event.qty and event.margin > 0 else None
        if asset not in self.perp_marks and event.mark_price > 0:
            self.perp_marks[asset] = event.mark_price
        self._changed()
        self._book_transfer(self._perp_value(asset) - before)
        self._settle()

    @_exact
    def apply_funding(self, event: FundingPaid) -> None:
        """Funding settles in cash (``amount`` > 0 received) and is funding PnL of the position."""
        value = self._value_of(event.asset, event.amount)
        if value is None:
            raise LedgerError(f"funding in {event.asset}: no price to value it")
        self._add(event.asset, event.amount)
        self.positions.setdefault(base_of(event.symbol), PerpPosition()).funding += value
        self._changed()
        if self.is_open:
            self.funding_pnl += value
        self._settle()

    @_exact
    def funding_due(self, asset: str, rate: Decimal) -> Decimal:
        """What the current position receives (> 0) or pays (< 0) at ``rate`` and its mark."""
        pos = self.positions.get(asset)
        mark = self.perp_marks.get(asset)
        if pos is None or mark is None:
            return _ZERO
        return -pos.qty * mark * rate

    # ------------------------------------------------------------------ fills

    @_exact
    def apply_fill(self, fill: OrderFilled) -> None:
        """Book an execution: spot (cash ↔ base) or perp (position, realised PnL into cash)."""
        self._check_fill(fill)
        self._changed()
        if is_perp(fill.symbol):
            self._perp_fill(fill)
        else:
            self._spot_fill(fill)
        self._settle()

    def _check_fill(self, fill: OrderFilled) -> None:
        """Refuse before changing anything, so a bad fill leaves the ledger as it was."""
        if fill.qty <= 0 or fill.price <= 0:
            raise LedgerError(f"fill {fill.trade_id}: qty {fill.qty} @ {fill.price} not positive")
        if settle_of(fill.symbol) not in self.cash_assets:
            raise LedgerError(f"{fill.symbol}: only instruments quoted in cash are supported")
        asset = fill.fee_asset
        if fill.fee == 0 or asset in self.cash_assets or asset in self.spot_prices:
            return
        if asset == base_of(fill.symbol) and not is_perp(fill.symbol):
            return  # priced at the fill price below
        raise LedgerError(f"fill {fill.trade_id}: fee in {asset} without a price to value it")

    def _spot_fill(self, fill: OrderFilled) -> None:
        base, signed = base_of(fill.symbol), _signed(fill)
        if base not in self.spot_prices:
            self._set_spot_price(base, fill.price)
        self._add(base, signed)
        self._add(settle_of(fill.symbol), -signed * fill.price)
        self._book_price(signed * (self.spot_prices[base] - fill.price))
        self._charge_fee(fill)

    def _perp_fill(self, fill: OrderFilled) -> None:
        base, signed = base_of(fill.symbol), _signed(fill)
        if base not in self.perp_marks:
            self._set_perp_mark(base, fill.price)
        pos = self.positions.setdefault(base, PerpPosition())
        realized = pos.trade(signed, fill.price)
        pos.margin = pos.liquidation_price = None  # stale until the venue reports again
        self._add(settle_of(fill.symbol), realized)
        self.realized_pnl += realized
        self._book_price(signed * (self.perp_marks[base] - fill.price))
        self._charge_fee(fill)

    def _charge_fee(self, fill: OrderFilled) -> None:
        """The fee leaves the account in its asset. A base-asset fee is valued at the fill
        price; its value at the spot mark differs by a price effect."""
        asset, fee = fill.fee_asset, fill.fee
        if fee == 0:
            return
        self._add(asset, -fee)
        if asset in self.cash_assets:
            value = fee
        elif asset == base_of(fill.symbol):
            value = fee * fill.price
            self._book_price(fee * (fill.price - self.spot_prices[asset]))
        else:
            value = fee * self.spot_prices[asset]
        if self.is_open:
            self.fees_paid += value

    # ------------------------------------------------------------------ bookings

    def _add(self, asset: str, delta: Decimal) -> None:
        self.holdings[asset] = self.holdings.get(asset, _ZERO) + delta
        self._changed()

    def _value_of(self, asset: str, qty: Decimal) -> Decimal | None:
        if asset in self.cash_assets:
            return qty
        price = self.spot_prices.get(asset)
        return None if price is None else qty * price

    def _perp_value(self, asset: str) -> Decimal:
        """The position's unrealised PnL as counted in NAV (0 while it has no mark)."""
        pos = self.positions.get(asset)
        mark = self.perp_marks.get(asset)
        return _ZERO if pos is None or mark is None else pos.unrealized(mark)

    def _book_price(self, value: Decimal) -> None:
        if self.is_open:
            self.price_pnl += value

    def _book_transfer(self, value: Decimal) -> None:
        if not self.is_open or value == 0:
            return
        self.transfers += value
        nav = self.nav_or_none()
        if nav is not None:
            before = nav - value
            self.peak_nav = nav if before <= 0 else _ratio(self.peak_nav * nav, before)

    def _settle(self, *, valuation: bool = True) -> None:
        """After every operation: open the ledger when NAV first becomes defined; after a booking
        (``valuation``), raise the peak. A mark alone leaves the peak to the next valuation."""
        if self.nav0 is not None and not valuation:
            return
        nav = self.nav_or_none()
        if nav is None:
            return
        if self.nav0 is None:
            if self.spot_prices or self.perp_marks:
                self.nav0 = self.peak_nav = nav
            return
        self.peak_nav = max(self.peak_nav, nav)

    # ------------------------------------------------------------------ valuation

    def nav_or_none(self) -> Decimal | None:
        return None if self._unpriced_list() else self._nav()

    def nav(self) -> Decimal:
        missing = self._unpriced_list()
        if missing:
            raise LedgerError(f"NAV undefined: no price for {', '.join(missing)}")
        return self._nav()

    # Public valuation methods run in the exact context (@_exact); the unwrapped ``_`` forms are
    # for callers already inside it (one context switch per outermost call, not per helper).

    @_exact
    def _nav(self) -> Decimal:
        spot = sum((self._spot_value(a) for a in self._asset_list()), _ZERO)
        return self._cash() + spot + self._unrealized_pnl()

    def _cash(self) -> Decimal:
        return sum((v for a, v in self.holdings.items() if a in self.cash_assets), _ZERO)

    def _spot_value(self, asset: str) -> Decimal:
        qty = self.holdings.get(asset, _ZERO)
        return qty * self.spot_prices[asset] if qty else _ZERO

    def _perp_notional(self, asset: str) -> Decimal:
        pos = self.positions.get(asset)
        return pos.qty * self.perp_marks[asset] if pos is not None and pos.qty else _ZERO

    def _unrealized_pnl(self) -> Decimal:
        return sum((self._perp_value(a) for a in self.positions), _ZERO)

    @_exact
    def spot_value(self, asset: str) -> Decimal:
        return self._spot_value(asset)

    @_exact
    def perp_notional(self, asset: str) -> Decimal:
        return self._perp_notional(asset)

    @_exact
    def unrealized_pnl(self) -> Decimal:
        return self._unrealized_pnl()

    @_exact
    def net_exposure(self, asset: str) -> Decimal:
        return self._spot_value(asset) + self._perp_notional(asset)

    def weight(self, asset: str) -> Decimal:
        return _share(self.net_exposure(asset), self.nav())

    @_exact
    def gross_leverage(self) -> Decimal:
        return self._gross_leverage(self.nav())

    @_exact
    def net_leverage(self) -> Decimal:
        return self._net_leverage(self.nav())

    def _gross_leverage(self, nav: Decimal) -> Decimal:
        legs = (abs(self._spot_value(a)) + abs(self._perp_notional(a)) for a in self._asset_list())
        return _share(sum(legs, _ZERO), nav)

    def _net_leverage(self, nav: Decimal) -> Decimal:
        net = (abs(self._spot_value(a) + self._perp_notional(a)) for a in self._asset_list())
        return _share(sum(net, _ZERO), nav)

    @_exact
    def margin_used(self) -> Decimal:
        """Σ venue-reported margin, or |perp notional| / leverage where none is known."""
        return self._margin_used()

    def _margin_used(self) -> Decimal:
        total = _ZERO
        for asset, pos in self.positions.items():
            if pos.margin is not None:
                total += pos.margin
            elif pos.qty:
                total += _ratio(abs(self._perp_notional(asset)), self.leverage)
        return total

    def drawdown(self) -> Decimal:
        """(peak NAV − NAV) / peak NAV, ≥ 0; 0 while the peak is not positive."""
        return self._drawdown(self.nav())

    def _drawdown(self, nav: Decimal) -> Decimal:
        if self.peak_nav <= 0:
            return _ZERO
        return max(_ZERO, _ratio(self.peak_nav - nav, self.peak_nav))

    @_exact
    def identity_residual(self) -> Decimal:
        """(NAV − NAV0) − (price PnL + funding PnL − fees + transfers); exactly 0 by design."""
        if self.nav0 is None:
            raise LedgerError("the ledger is not open yet: NAV has never been defined")
        explained = self.price_pnl + self.funding_pnl - self.fees_paid + self.transfers
        return self.nav() - self.nav0 - explained

    # ------------------------------------------------------------------ snapshot

    @_exact
    def snapshot(
        self, ts_event: int, trigger: SnapshotTrigger, *, ts_init: int | None = None
    ) -> PortfolioSnapshot:
        """The valued portfolio, exact (nothing rounded). Raises while NAV is undefined.

        A snapshot is a valuation point: it raises the peak NAV to this NAV if higher.

        Each asset's spot value and perp notional are computed once and shared by NAV, the
        leverages and the asset states (the sums are exact, so the figures are those of
        :meth:`nav`, :meth:`gross_leverage`, :meth:`net_leverage` and :meth:`asset_state`)."""
        missing = self._unpriced_list()
        if missing:
            raise LedgerError(f"NAV undefined: no price for {', '.join(missing)}")
        assets = self._asset_list()
        spot_of, notional_of = self._spot_value, self._perp_notional
        legs = [(a, spot_of(a), notional_of(a)) for a in assets]
        cash = self._cash()
        unrealized = self._unrealized_pnl()
        nav = cash + sum((s for _, s, _ in legs), _ZERO) + unrealized
        if self.nav0 is not None:
            self.peak_nav = max(self.peak_nav, nav)
        gross = sum((abs(s) + abs(n) for _, s, n in legs), _ZERO)
        net = sum((abs(s + n) for _, s, n in legs), _ZERO)
        return PortfolioSnapshot(
            ts_event=ts_event,
            ts_init=ts_event if ts_init is None else ts_init,
            trigger=trigger,
            nav=nav,
            cash=cash,
            gross_leverage=_share(gross, nav),
            net_leverage=_share(net, nav),
            margin_used=self._margin_used(),
            realized_pnl=self.realized_pnl,
            unrealized_pnl=unrealized,
            price_pnl=self.price_pnl,
            funding_pnl=self.funding_pnl,
            fees_paid=self.fees_paid,
            transfers=self.transfers,
            peak_nav=self.peak_nav,
            drawdown=self._drawdown(nav),
            assets=tuple(self._asset_state(a, nav, s, n) for a, s, n in legs),
        )

    @_exact
    def asset_state(self, asset: str, nav: Decimal) -> AssetState:
        """One asset of a snapshot. Unknown prices show as 0."""
        return self._asset_state(asset, nav, self._spot_value(asset), self._perp_notional(asset))

    def _asset_state(
        self, asset: str, nav: Decimal, spot_value: Decimal, notional: Decimal
    ) -> AssetState:
        pos = self.positions.get(asset) or _FLAT
        mark = self.perp_marks.get(asset)
        net = spot_value + notional
        return AssetState(
            asset=asset,
            spot_qty=self.holdings.get(asset, _ZERO),
            spot_price=self.spot_prices.get(asset, _ZERO),
            spot_value=spot_value,
            perp_qty=pos.qty,
            perp_price=_ZERO if mark is None else mark,
            perp_notional=notional,
            perp_entry_price=pos.entry_price,
            perp_unrealized_pnl=_ZERO if mark is None or pos is _FLAT else pos.unrealized(mark),
            perp_funding=pos.funding,
            perp_liquidation_price=pos.liquidation_price,
            net_exposure=net,
            weight=_share(net, nav),
            spot_weight=_share(spot_value, nav),
        )
