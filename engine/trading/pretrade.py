"""The pre-trade check: one pure function from an order intent and the state around it to a verdict.

:func:`check` returns :class:`Approved` (the intent, possibly with a smaller quantity, and why it
was cut) or :class:`Vetoed` (a stable reason code from :data:`REASON_CODES` and a detail with the
numbers). Checks run in this order:

0. ``unreconciled``: while the venue's account disagrees with the journal's book
   (:class:`~ballast.engine.kernel.events.ReconcileMismatch` not yet resolved) no intent passes,
   reduce-only ones included: the book the checks below would read is not known to be right.
   On a live venue the same veto holds intents from the session's start and from a user-stream
   gap until the venue caught up and a reconcile agreed (:mod:`ballast.engine.trading.risk`).
1. ``kill_switch``: while the kill switch is on only reduce-only intents pass.
2. ``unknown_instrument`` / ``no_portfolio``: no exchange filters, or no valued portfolio (NAV ≤ 0
   blocks everything but reduce-only intents).
3. ``stale_data``: no mark, or a mark older than ``stale_after_s``.
4. ``price_sanity``: a limit price further than ``max_price_deviation`` from the mark (the limit
   price is then rounded to the tick, never to a worse price).
5. ``precision`` / ``min_notional``: quantity rounded down to the lot, at least the minimum
   quantity, notional at the mark (and at the limit price) at least the minimum notional.
6. Reduce-only intents: ``reduce_only`` (must shrink the position, at most to zero), then
   ``reduce_in_flight`` (at most the position minus the unfilled quantity of the reduce-only
   orders already in flight for the same symbol, ``reducing``: a second close of the same
   exposure, such as the kill switch's close-everything order after an approved deleveraging
   sell, is cut to what is left or vetoed). They skip the exposure-increasing checks below.
7. ``max_order_notional``, ``max_asset_weight``, ``max_net_leverage``, ``max_gross_leverage``,
   ``max_margin_usage``, ``liquidation_distance``, ``max_daily_turnover``: each cuts the quantity
   down to what fits (rounded down to the lot), or vetoes with its own code when what fits is below
   the minimum quantity or notional.

``liquidation_distance``: an order that opens or grows a perp position, flips one beyond zero, or
spends collateral (a spot buy while perps are open) may not bring any perp's distance to
liquidation below ``deleverage_liquidation_distance`` (fees ignored): the level at which the risk
actor would ask to deleverage, so the engine does not trade itself into a forced reduction.
Reducing a position always passes. It is judged on ``settled``, the book the risk actor's kill
switch and deleveraging judge (:meth:`~ballast.engine.trading.risk.RiskManager.settled_book`): the
snapshot at the latest perp marks, with the approved reduce-only market orders still in flight
counted as filled at the mark (:meth:`~ballast.engine.trading.measures.Book.settled`: they only
shrink positions, at most to zero). So the spot buy of a Case B unwind, checked right after its
perp close was approved, is judged on the book the close leaves, not on the long it removes. No
other in-flight order is counted (a limit close may rest, a plain order may not reduce); when a
close ends unfilled the next check is on the book without it. Without ``settled``: the snapshot
at its own marks, nothing in flight counted. The caps below keep counting every order in flight
at its worst, closes included: the orders of a decision go out together and the venue may fill
them in either order, so each must be one it accepts with the close not yet filled (the margin a
spot buy spends while the long is still open); the distance to liquidation is a buffer the
kill switch and the deleveraging also judge on the settled book, so a moment below it while the
close works is no breach.

Exposure is valued at the mark and the fill is assumed not to change NAV (fees ignored):

- net exposure(asset) = spot value + perp notional; weight = net exposure / NAV;
- **net leverage** (the mandate's cap, ``max_net_leverage``) = Σ |net exposure| / NAV: a 1:1 hedge
  or a basis trade adds nothing;
- **gross leverage** (exchange-side, ``max_gross_leverage``) = Σ (|spot value| + |perp notional|)
  / NAV, both legs of every asset;
- **margin usage** (exchange-side, ``max_margin_usage``) = Σ |perp notional| / leverage / margin
  balance, margin balance = cash + Σ perp unrealised PnL (a spot buy spends it, a sale adds to it).

``in_flight`` maps symbols to the signed notional (buy > 0) of approved intents not yet filled.
They are counted at their worst: each quantity is taken at the larger of its absolute value with
and without its in-flight orders (for an asset's net exposure: with all its in-flight buys, or
with all its sells), so a cap holds whether those orders fill or not.

What passes a cap while over it:

- an order that reduces its asset's net exposure (every in-flight end of it moves toward zero) is
  never vetoed or cut by ``max_net_leverage`` or ``max_gross_leverage``; it is cut only where it
  would cross zero and overshoot to the other side beyond the net cap;
- an order that does not raise margin usage (a spot sale, a perp order that shrinks its position
  or flips it to no larger a size) is never vetoed or cut by ``max_margin_usage``; an order that
  raises it (a perp order growing its position, a hedge included, or a spot buy while perps are
  open) is cut to what the margin allows;
- ``max_asset_weight`` and ``max_gross_leverage`` let through an order that does not increase
  what they measure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from functools import cached_property
from typing import Final, get_args

import msgspec

from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import RiskConfig
from ballast.engine.kernel.events import AssetState, OrderIntent, PortfolioSnapshot, VetoReason
from ballast.engine.kernel.instruments import Instrument, base_of, is_perp, perp_symbol, quote_of
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.margin import (
    MarginTable,
    PerpHolding,
    account_liquidation_price,
    default_margin_table,
    liquidation_distance,
)
from ballast.engine.trading.measures import Book
from ballast.engine.trading.position import realized, traded

REASON_CODES: Final[frozenset[VetoReason]] = frozenset(get_args(VetoReason))
"""Every veto reason code (:data:`~ballast.engine.kernel.events.VetoReason`)."""

# Wide enough that sums and products of money are exact; divisions round down, so a computed
# room is never larger than the true one.
_CTX: Final = Context(prec=60, rounding=ROUND_FLOOR)
_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_MINUS_ONE: Final = Decimal(-1)
_CENT: Final = Decimal("0.01")
_BP: Final = Decimal("0.0001")
_INFINITY: Final = Decimal("Infinity")
_BISECTIONS: Final = 60
_NO_FLIGHT: Final[Mapping[str, Decimal]] = {}
_DEFAULT_MARGIN: Final = default_margin_table()

Leg = tuple[str, bool]
"""(asset, is_perp): one of the two legs of an asset's exposure."""


@dataclass(frozen=True)
class Approved:
    """The intent may go out with this (possibly reduced) quantity. ``cut_reason`` is empty when
    nothing was cut, else ``"code: old → new (numbers)"`` per cut, joined by ``"; "``."""

    intent: OrderIntent
    cut_reason: str = ""


@dataclass(frozen=True)
class Vetoed:
    """The intent must not go out. ``reason`` is one of :data:`REASON_CODES`."""

    reason: VetoReason
    detail: str


Verdict = Approved | Vetoed


def read_only_veto(approved: Approved) -> Vetoed:
    """What a read-only engine (``[security] read_only``) makes of an approved intent: a veto
    naming the order it would have sent (after the checks' cuts), so the journal explains it."""
    intent = approved.intent
    price = "" if intent.price is None else f" at {_plain(intent.price)}"
    flags = " reduce-only" if intent.reduce_only else ""
    cut = f" (cut: {approved.cut_reason})" if approved.cut_reason else ""
    return Vetoed(
        "read_only",
        f"read-only mode ([security] read_only = true): would {intent.side} "
        f"{_plain(intent.qty)} {intent.symbol} {intent.order_type}{price}{flags}{cut}; not sent",
    )


@dataclass(frozen=True)
class _Limit:
    """A limit's largest quantity; its detail (numbers for the cut or veto text) is written only
    when the limit cuts or vetoes (most orders pass most limits: no text for them)."""

    code: VetoReason
    max_qty: Decimal
    explain: Callable[[], str]

    @property
    def detail(self) -> str:
        return self.explain()


def _no_detail() -> str:
    return ""


@dataclass(frozen=True)
class _Book:
    """Everything one check looks at, with the optional inputs resolved."""

    intent: OrderIntent
    instrument: Instrument
    snapshot: PortfolioSnapshot
    mark: Decimal
    price: Decimal | None
    budget: RiskBudget
    mandate: RiskConfig
    in_flight: Mapping[str, Decimal]
    turnover_today: Decimal
    margin: MarginTable
    reducing: Mapping[str, Decimal]
    settled: Book | None

    @property
    def sign(self) -> Decimal:
        return _ONE if self.intent.side == "buy" else _MINUS_ONE

    @property
    def nav(self) -> Decimal:
        return self.snapshot.nav

    @property
    def own_leg(self) -> Leg:
        return (self.instrument.base, self.instrument.is_perp)

    def state(self) -> AssetState | None:
        return next((s for s in self.snapshot.assets if s.asset == self.instrument.base), None)

    @cached_property
    def all_net_ends(self) -> dict[str, tuple[Decimal, Decimal]]:
        """:func:`_all_net_ends`, once per check (several limits read it; nobody writes it)."""
        return _all_net_ends(self)

    @cached_property
    def flight_legs(self) -> dict[Leg, Decimal]:
        """:func:`_flight_legs` of the in-flight orders, once per check (read only)."""
        return _flight_legs(self.in_flight)


def check(
    intent: OrderIntent,
    *,
    instrument: Instrument | None,
    snapshot: PortfolioSnapshot | None,
    mark: Decimal | None,
    mark_age_ns: int | None,
    budget: RiskBudget,
    mandate: RiskConfig,
    in_flight: Mapping[str, Decimal] = _NO_FLIGHT,
    reducing: Mapping[str, Decimal] = _NO_FLIGHT,
    turnover_today: Decimal = _ZERO,
    kill_switch: bool = False,
    margin: MarginTable | None = None,
    unreconciled: str | None = None,
    settled: Book | None = None,
) -> Verdict:
    """Approve (maybe cut) or veto ``intent``. Pure: the same inputs give the same verdict.

    ``margin``: leverage (initial margin) per perp symbol; default: :func:`default_margin_table`.
    ``unreconciled``: what the open reconciliation mismatch is about, or why intents are held
    until the venue caught up and reconciled (None: reconciled).
    ``reducing``: unfilled quantity (signed, buy > 0) of the reduce-only orders in flight, by
    symbol.
    ``settled``: the risk actor's settled book (``snapshot`` at the latest perp marks, the
    approved reduce-only market closes in flight counted as filled), which the liquidation guard
    judges (module docstring); None: ``snapshot`` at its own marks.
    """
    with localcontext(_CTX):
        if unreconciled is not None:
            return Vetoed(
                "unreconciled",
                f"the venue's account is not reconciled with the journal ({unreconciled}): "
                "no intent passes until it is (or the operator accepts the venue's state)",
            )
        if kill_switch and not intent.reduce_only:
            return Vetoed("kill_switch", "kill switch is on: only reduce-only intents pass")
        if instrument is None:
            return Vetoed("unknown_instrument", f"no exchange filters for {intent.symbol}")
        if snapshot is None or (snapshot.nav <= 0 and not intent.reduce_only):
            nav = "none" if snapshot is None else str(snapshot.nav)
            return Vetoed("no_portfolio", f"no valued portfolio to check against (NAV {nav})")
        fresh = _fresh_mark(intent, mark, mark_age_ns, mandate)
        if isinstance(fresh, Vetoed):
            return fresh
        price = _sane_price(intent, instrument, fresh, mandate)
        if isinstance(price, Vetoed):
            return price
        book = _Book(
            intent,
            instrument,
            snapshot,
            fresh,
            price,
            budget,
            mandate,
            in_flight,
            turnover_today,
            margin if margin is not None else _DEFAULT_MARGIN,
            reducing,
            settled,
        )
        return _size(book)


# ---------------------------------------------------------------------------- gates


def _fresh_mark(
    intent: OrderIntent, mark: Decimal | None, age_ns: int | None, mandate: RiskConfig
) -> Decimal | Vetoed:
    threshold_ns = int(mandate.stale_after_s * NS_PER_SECOND)
    if mark is None or age_ns is None:
        return Vetoed("stale_data", f"no mark price for {intent.symbol}")
    if age_ns > threshold_ns:
        # No age in the text: a live run checks a little after the decision's input arrived,
        # a replay at its arrival, so the age differs by that latency (DataStale has the age).
        return Vetoed(
            "stale_data",
            f"mark {mark} for {intent.symbol} is older than the threshold "
            f"({mandate.stale_after_s}s)",
        )
    if mark <= 0:
        return Vetoed("price_sanity", f"mark {mark} for {intent.symbol} is not positive")
    return mark


def _sane_price(
    intent: OrderIntent, instrument: Instrument, mark: Decimal, mandate: RiskConfig
) -> Decimal | Vetoed | None:
    """The limit price rounded to the tick (never worse), None for market orders, or a veto."""
    if intent.order_type == "market":
        return None
    if intent.price is None or intent.price <= 0:
        return Vetoed("price_sanity", f"limit order without a positive price: {intent.price}")
    deviation = abs(intent.price - mark) / mark
    if deviation > mandate.max_price_deviation:
        return Vetoed(
            "price_sanity",
            f"limit {intent.price} is {_percent(deviation)} from mark {mark} "
            f"(max {_percent(mandate.max_price_deviation)})",
        )
    return instrument.round_price(intent.price, side=intent.side)


# ---------------------------------------------------------------------------- sizing


def _size(book: _Book) -> Verdict:
    """Round to the lot, then apply each limit in order, re-rounding after every cut."""
    qty = _plain(book.instrument.round_qty(book.intent.qty))
    problem = _size_problem(book, qty)
    if problem is not None:
        return Vetoed(*problem)
    limits = _REDUCE_ONLY_LIMITS if book.intent.reduce_only else _EXPOSURE_LIMITS
    cuts: list[str] = []
    for limit_of in limits:
        limit = limit_of(book)
        if isinstance(limit, Vetoed):
            return limit
        if qty <= limit.max_qty:
            continue
        cut = _plain(book.instrument.round_qty(max(limit.max_qty, _ZERO)))
        problem = _size_problem(book, cut)
        if problem is not None:
            return Vetoed(limit.code, f"{limit.detail}; fits {cut}, but {problem[1]}")
        cuts.append(f"{limit.code}: {qty} → {cut} ({limit.detail})")
        qty = cut
    intent = msgspec.structs.replace(book.intent, qty=qty, price=book.price)
    return Approved(intent, "; ".join(cuts))


def _size_problem(book: _Book, qty: Decimal) -> tuple[VetoReason, str] | None:
    """(code, detail) when ``qty`` breaks an exchange filter at the mark or the limit price."""
    inst = book.instrument
    if qty <= 0 or qty < inst.min_qty:
        return "precision", f"quantity {qty} is below minimum {inst.min_qty} (lot {inst.lot_size})"
    for price in (book.mark, book.price):
        if price is not None and qty * price < inst.min_notional:
            return "min_notional", (
                f"notional {_money(qty * price)} at {price} is below minimum {inst.min_notional}"
            )
    problem = inst.violation(qty, book.price)
    return None if problem is None else ("precision", problem)


# ---------------------------------------------------------------------------- limits


def _reduce_only(book: _Book) -> _Limit | Vetoed:
    state = book.state()
    position = _ZERO
    if state is not None:
        position = state.perp_qty if book.instrument.is_perp else state.spot_qty
    if position * book.sign >= 0:
        return Vetoed(
            "reduce_only",
            f"reduce-only {book.intent.side} of {book.intent.symbol} does not reduce "
            f"position {position}",
        )
    return _Limit("reduce_only", abs(position), lambda: f"position is {position}")


def _reduce_in_flight(book: _Book) -> _Limit | Vetoed:
    """What the position leaves after the reduce-only orders already in flight on the same side
    (the order's own direction) have filled."""
    state = book.state()
    position = _ZERO
    if state is not None:
        position = state.perp_qty if book.instrument.is_perp else state.spot_qty
    pending = book.reducing.get(book.intent.symbol, _ZERO) * book.sign
    if pending <= 0:
        return _Limit("reduce_in_flight", _INFINITY, _no_detail)
    rest = abs(position) - pending
    detail = (
        f"position {position}, reduce-only {book.intent.side} of {pending} already in flight "
        f"for {book.intent.symbol}"
    )
    if rest <= 0:
        return Vetoed(
            "reduce_in_flight", f"{detail}: this {book.intent.qty} would close it a second time"
        )
    return _Limit("reduce_in_flight", rest, lambda: detail)


def _order_notional(book: _Book) -> _Limit:
    reference = max(book.mark, book.price or _ZERO)
    cap = book.mandate.max_order_notional
    return _Limit(
        "max_order_notional", cap / reference, lambda: f"max order notional {_money(cap)}"
    )


def _asset_weight(book: _Book) -> _Limit:
    asset = book.instrument.base
    state = book.state()
    net = state.net_exposure if state is not None else _ZERO
    flight = sum((v for s, v in book.in_flight.items() if base_of(s) == asset), _ZERO)
    cap = book.mandate.max_asset_weight * book.nav
    max_qty = _room(book, (net, net + flight), cap, _ZERO)

    def detail() -> str:
        return (
            f"{asset} weight {_ratio(net / book.nav)}, in flight {_money(flight)}, "
            f"max {book.mandate.max_asset_weight} of NAV {_money(book.nav)}"
        )

    return _Limit("max_asset_weight", max_qty, detail)


def _gross_leverage(book: _Book) -> _Limit:
    legs = _legs(book.snapshot)
    flight = book.flight_legs
    own = book.own_leg
    others = sum(
        (
            _worst(legs.get(k, _ZERO), flight.get(k, _ZERO))
            for k in legs.keys() | flight.keys()
            if k != own
        ),
        _ZERO,
    )
    own_now = legs.get(own, _ZERO)
    own_ends = (own_now, own_now + flight.get(own, _ZERO))
    cap = book.budget.max_gross_leverage * book.nav
    max_qty = max(_room(book, own_ends, cap, others), _flatten_qty(book, _net_ends(book)))

    def detail() -> str:
        gross = others + max(abs(x) for x in own_ends)
        return _leverage_detail("gross", gross, book.budget.max_gross_leverage, book.nav)

    return _Limit("max_gross_leverage", max_qty, detail)


def _net_leverage(book: _Book) -> _Limit:
    """The mandate's cap on Σ |net exposure|: room on the order's asset, the other assets taken at
    their worst; a reducing order passes up to zero and beyond it only within the cap."""
    asset = book.instrument.base
    others = sum(
        (max(abs(x) for x in ends) for a, ends in book.all_net_ends.items() if a != asset),
        _ZERO,
    )
    own_ends = _net_ends(book)
    cap = book.budget.max_net_leverage * book.nav
    room = max(cap - others, _ZERO)
    max_qty = min((room - book.sign * x) / book.mark for x in own_ends)

    def detail() -> str:
        net = others + max(abs(x) for x in own_ends)
        return _leverage_detail("net", net, book.budget.max_net_leverage, book.nav)

    return _Limit("max_net_leverage", max_qty, detail)


def _leverage_detail(measure: str, exposure: Decimal, cap: Decimal, nav: Decimal) -> str:
    """``net leverage 1.2000 incl. in flight, cap 3× of NAV 100000.00, room 180000.00``."""
    return (
        f"{measure} leverage {_ratio(exposure / nav)} incl. in flight, "
        f"cap {cap}× of NAV {_money(nav)}, room {_money(max(cap * nav - exposure, _ZERO))}"
    )


def _margin_usage(book: _Book) -> _Limit:
    """Initial margin ≤ ``max_margin_usage`` × margin balance after the order, in-flight orders at
    their worst. Orders that reduce margin usage pass."""
    usage_cap = book.mandate.max_margin_usage
    balance = book.snapshot.cash + sum((s.perp_unrealized_pnl for s in book.snapshot.assets), _ZERO)
    flight = book.flight_legs
    balance -= sum((v for (_, perp), v in flight.items() if not perp and v > 0), _ZERO)
    perps = _perp_ends(book)
    own = book.instrument.symbol
    others = sum(
        (
            book.margin.initial(symbol, max(abs(x) for x in ends))
            for symbol, ends in perps.items()
            if symbol != own
        ),
        _ZERO,
    )
    if book.instrument.is_perp:
        ends = perps.get(own, (_ZERO,))
        leverage = book.margin.leverage(own)
        initial = others + book.margin.initial(own, max(abs(x) for x in ends))
        room = max(usage_cap * balance - others, _ZERO) * leverage
        max_qty = _room(book, ends, room, _ZERO)  # never more initial margin than now or room
    else:
        initial = others
        room = balance - others / usage_cap
        spends = book.sign > 0 and others > 0  # without perps a spot buy uses no margin
        max_qty = room / book.mark if spends else _INFINITY

    def detail() -> str:
        usage = "n/a" if balance <= 0 else _ratio(initial / balance)
        return (
            f"margin usage {usage} incl. in flight (initial margin {_money(initial)}, margin "
            f"balance {_money(balance)}), max {usage_cap}"
        )

    return _Limit("max_margin_usage", max_qty, detail)


def _liquidation_guard(book: _Book) -> _Limit:
    """The largest qty after which every perp stays at least ``deleverage_liquidation_distance``
    from liquidation (module docstring); reducing a position is always allowed."""
    threshold = book.mandate.deleverage_distance
    inst = book.instrument
    base = book.settled
    if base is None:
        base = Book(book.snapshot, {inst.base: inst} if inst.is_perp else {}, book.margin)
    holdings, wallet = base.holdings(), base.snapshot.cash
    own = next((h for h in holdings if inst.is_perp and h.symbol == inst.symbol), None)
    position = own.qty if own is not None else _ZERO
    free = abs(position) if book.sign * position < 0 else _ZERO  # reducing part: always allowed
    wanted = book.intent.qty
    guarded = inst.is_perp or (book.sign > 0 and holdings)
    if threshold == 0 or not guarded or wanted <= free:
        return _Limit("liquidation_distance", _INFINITY, _no_detail)

    def nearest(qty: Decimal) -> Decimal | None:
        after, cash = _after_trade(book, holdings, wallet, qty)
        distances = [
            liquidation_distance(h.mark, price)
            for h in after
            if (price := account_liquidation_price(h.symbol, after, cash, book.margin)) is not None
        ]
        return min(distances, default=None)

    def safe(qty: Decimal) -> bool:
        distance = nearest(qty)
        return distance is None or distance >= threshold

    if safe(wanted):
        return _Limit("liquidation_distance", _INFINITY, _no_detail)
    low, high = free, wanted
    if not safe(low):
        high = low
    for _ in range(_BISECTIONS):
        if high - low < book.instrument.lot_size:
            break  # the result is rounded down to the lot anyway
        middle = (low + high) / 2
        if safe(middle):
            low = middle
        else:
            high = middle

    def detail() -> str:
        now = nearest(_ZERO)
        settled = base.snapshot is not book.snapshot
        closing = " once the closing orders in flight fill" if settled else ""
        return (
            f"nearest liquidation {'none' if now is None else _percent(now)} away{closing}, "
            f"min {_percent(threshold)} after the order"
        )

    return _Limit("liquidation_distance", low, detail)


def _after_trade(
    book: _Book, holdings: list[PerpHolding], wallet: Decimal, qty: Decimal
) -> tuple[list[PerpHolding], Decimal]:
    """The perp holdings and quote ``wallet`` after ``qty`` of the order fills at the mark."""
    inst = book.instrument
    signed = book.sign * qty
    if not inst.is_perp:
        return holdings, wallet - signed * book.mark
    own = next((h for h in holdings if h.symbol == inst.symbol), None)
    old_qty, old_cost = (own.qty, own.cost) if own is not None else (_ZERO, _ZERO)
    new_qty, new_cost = traded(old_qty, old_cost, signed, book.mark)
    wallet += realized(old_cost, new_cost, signed, book.mark)
    others = [h for h in holdings if h.symbol != inst.symbol]
    if new_qty == 0:
        return others, wallet
    return [*others, PerpHolding(inst.symbol, new_qty, new_cost, book.mark)], wallet


def _daily_turnover(book: _Book) -> _Limit:
    cap = book.mandate.max_daily_turnover * book.nav
    used = book.turnover_today + sum((abs(v) for v in book.in_flight.values()), _ZERO)
    return _Limit(
        "max_daily_turnover",
        (cap - used) / book.mark,
        lambda: f"turnover today {_money(used)} incl. in flight, max {_money(cap)}",
    )


_Check = Callable[[_Book], _Limit | Vetoed]
_REDUCE_ONLY_LIMITS: Final[tuple[_Check, ...]] = (_reduce_only, _reduce_in_flight)
_EXPOSURE_LIMITS: Final[tuple[_Check, ...]] = (
    _order_notional,
    _asset_weight,
    _net_leverage,
    _gross_leverage,
    _margin_usage,
    _liquidation_guard,
    _daily_turnover,
)


# ---------------------------------------------------------------------------- exposure maths


def _room(book: _Book, ends: tuple[Decimal, ...], cap: Decimal, others: Decimal) -> Decimal:
    """Largest qty q ≥ 0 with others + |x + side·q·mark| ≤ max(cap, now) for every x in ``ends``.

    ``max(cap, now)`` lets an order through that does not make things worse. For each x the bound
    is q ≤ (ceiling − others − side·x) / mark (the side where |·| grows).
    """
    ceiling = max(cap, others + max(abs(x) for x in ends))
    return min((ceiling - others - book.sign * x) / book.mark for x in ends)


def _all_net_ends(book: _Book) -> dict[str, tuple[Decimal, Decimal]]:
    """asset → (net exposure with all its in-flight sells, with all its in-flight buys)."""
    out: dict[str, tuple[Decimal, Decimal]] = {
        s.asset: (s.net_exposure, s.net_exposure) for s in book.snapshot.assets
    }
    for symbol, notional in book.in_flight.items():
        low, high = out.get(base_of(symbol), (_ZERO, _ZERO))
        if notional < 0:
            low += notional
        else:
            high += notional
        out[base_of(symbol)] = (low, high)
    return out


def _net_ends(book: _Book) -> tuple[Decimal, Decimal]:
    return book.all_net_ends.get(book.instrument.base, (_ZERO, _ZERO))


def _flatten_qty(book: _Book, ends: tuple[Decimal, ...]) -> Decimal:
    """The largest qty that moves every end toward zero without crossing it (0 if the order
    grows any end)."""
    if any(book.sign * x >= 0 for x in ends):
        return _ZERO
    return min(abs(x) for x in ends) / book.mark


def _perp_ends(book: _Book) -> dict[str, tuple[Decimal, ...]]:
    """perp symbol → (notional, notional + in flight)."""
    out: dict[str, tuple[Decimal, ...]] = {}
    symbols = {s.asset: s for s in book.snapshot.assets}
    for symbol, notional in book.in_flight.items():
        if is_perp(symbol):
            state = symbols.get(base_of(symbol))
            now = state.perp_notional if state is not None else _ZERO
            out[symbol] = (now, now + notional)
    for state in book.snapshot.assets:
        if state.perp_qty != 0:
            symbol = _perp_symbol(book, state.asset)
            out.setdefault(symbol, (state.perp_notional,))
    return out


def _perp_symbol(book: _Book, asset: str) -> str:
    """The perp symbol of ``asset``: the order's own if it is that asset's perp, else the usual
    ``ASSET/QUOTE:QUOTE`` of the order's quote."""
    inst = book.instrument
    if inst.is_perp and inst.base == asset:
        return inst.symbol
    return perp_symbol(asset, quote_of(inst.symbol))


def _worst(leg: Decimal, flight: Decimal) -> Decimal:
    return max(abs(leg), abs(leg + flight))


def _legs(snapshot: PortfolioSnapshot) -> dict[Leg, Decimal]:
    legs: dict[Leg, Decimal] = {}
    for state in snapshot.assets:
        legs[(state.asset, False)] = state.spot_value
        legs[(state.asset, True)] = state.perp_notional
    return legs


def _flight_legs(in_flight: Mapping[str, Decimal]) -> dict[Leg, Decimal]:
    legs: dict[Leg, Decimal] = {}
    for symbol, notional in in_flight.items():
        key = (base_of(symbol), is_perp(symbol))
        legs[key] = legs.get(key, _ZERO) + notional
    return legs


def _plain(qty: Decimal) -> Decimal:
    """``1E+1`` → ``10``: quantities stay in plain notation in events and texts."""
    exponent = qty.as_tuple().exponent
    return qty.quantize(_ONE) if isinstance(exponent, int) and exponent > 0 else qty


def _money(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_HALF_EVEN))


def _ratio(value: Decimal) -> str:
    return str(value.quantize(_BP, rounding=ROUND_HALF_EVEN))


def _percent(value: Decimal) -> str:
    return f"{_money(value * 100)}%"
