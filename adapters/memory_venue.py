"""InMemoryVenue: a small, exact, deterministic venue that ships beside the Venue interface.

It is the fake next to the real thing (the ccxt.pro venue) and the reference the venue contract
tests (tests/test_venue_contract.py) are written against. It is not the exchange simulator (no
order book depth, latency or partial fills): it fills at the price it was last given.

Model:
- two wallets, like Binance's spot and USD-M futures accounts: balances by (account, asset),
  ``free`` and ``locked``. Spot trades settle in the ``"spot"`` wallet; perp fees and realised PnL
  settle into the quote balance of the ``"futures"`` wallet (which may go negative: there is no
  margin check). With cash = every quote balance of both wallets, NAV = cash + Σ spot qty × price
  + Σ perp unrealised PnL, and NAV − NAV0 = price PnL − fees at every event;
- fees are fractions of notional from the instrument (maker for resting limit orders, taker for
  market orders and limit orders that cross on arrival), always charged in the quote asset;
- market orders fill at once at the last price given with :meth:`set_price`; limit orders that do
  not cross rest (spot funds locked) until a :meth:`set_price` crosses them, then fill at their
  limit price; ``post_only`` (or time in force ``GTX``) rejects an order that would cross; an
  ``IOC``/``FOK`` limit that would not fill at once is canceled;
- ``reduce_only`` rejects an order that would open or increase a position (a spot buy, a spot
  sell beyond the balance, a perp order in the position's direction or larger than it);
- every order is checked with :meth:`Instrument.violation`; a refusal is an ``OrderRejected``
  event, never an exception. A second submit with a known client order id is ignored (no new
  order, no events, no error): resends are idempotent.

Events, in order: ``OrderSubmitted`` → ``OrderAccepted`` → ``OrderFilled`` → ``BalanceUpdated``
for each changed asset → ``PositionUpdated`` for a perp whose position or mark changed. Timestamps
come from the injected clock; venue and trade ids are counters, so runs are reproducible.

Transport failures for retry tests: ``fail_next_submits`` makes the next N ``submit`` calls raise
:class:`VenueError`, after the order was recorded and processed (a timeout on the answer,
``fail_after_recording=True``) or before the venue saw it (``False``); ``fail_next_lookups``
does the same to ``order_status``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import (
    AccountKind,
    BalanceUpdated,
    Liquidity,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionUpdated,
)
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.order_state import VenueOrderState
from ballast.engine.trading.venue import OrderStatus, Venue, VenueError

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_COST_QUANTUM: Final = Decimal("1e-12")
_Key = tuple[AccountKind, str]
_Balances = dict[_Key, tuple[Decimal, Decimal]]


@dataclass(slots=True)
class _Order:
    cmd: SubmitOrder
    venue_order_id: str
    state: VenueOrderState = "open"
    filled_qty: Decimal = _ZERO
    avg_price: Decimal | None = None
    locked_asset: str = ""
    locked: Decimal = _ZERO

    def status(self) -> OrderStatus:
        return OrderStatus(
            client_order_id=self.cmd.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=self.cmd.symbol,
            side=self.cmd.side,
            qty=self.cmd.qty,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            state=self.state,
        )


@dataclass(slots=True)
class _Position:
    """A one-way perp position kept as a cost basis (``qty × entry``), so that unrealised PnL
    (``qty × mark − cost``) and realised PnL stay exact through weighted-average increases."""

    qty: Decimal = _ZERO
    cost: Decimal = _ZERO
    mark: Decimal = _ZERO

    @property
    def entry(self) -> Decimal:
        return self.cost / self.qty if self.qty else _ZERO

    @property
    def unrealized(self) -> Decimal:
        return self.qty * self.mark - self.cost if self.qty else _ZERO

    def trade(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill; return the realised PnL (non-zero only when it reduced or flipped).

        Increase: weighted entry. Reduce: entry kept (the cost basis of the rest rounded to 12
        decimal places, so wallet amounts keep few digits and stay exact). Close or flip: the old
        position is realised in full and the remainder opens at ``price``."""
        old, cost = self.qty, self.cost
        new = old + signed_qty
        if old == 0 or (old > 0) == (signed_qty > 0):
            new_cost = cost + signed_qty * price
        elif new == 0 or (new > 0) != (old > 0):
            new_cost = new * price
        else:
            new_cost = (cost * new / old).quantize(_COST_QUANTUM)
        self.qty, self.cost = new, new_cost
        return new_cost - cost - signed_qty * price


class InMemoryVenue(Venue):
    """A deterministic in-process venue; see the module docstring for its model."""

    name = "memory"

    def __init__(
        self,
        instruments: Sequence[Instrument],
        balances: Mapping[str, Decimal],
        clock: Clock,
        *,
        futures_balances: Mapping[str, Decimal] | None = None,
        prices: Mapping[str, Decimal] | None = None,
        fail_next_submits: int = 0,
        fail_after_recording: bool = True,
        fail_next_lookups: int = 0,
        perp_leverage: Decimal = _ONE,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.fail_next_submits = fail_next_submits
        self.fail_after_recording = fail_after_recording
        self.fail_next_lookups = fail_next_lookups
        self.perp_leverage = perp_leverage
        self.received: list[SubmitOrder] = []
        """Every submit that reached the venue, duplicates included."""
        self._instruments = {i.symbol: i for i in instruments}
        self._free: dict[_Key, Decimal] = {("spot", a): v for a, v in balances.items()}
        self._free |= {("futures", a): v for a, v in (futures_balances or {}).items()}
        self._locked: dict[_Key, Decimal] = {}
        self._prices: dict[str, Decimal] = dict(prices or {})
        self._orders: dict[str, _Order] = {}
        self._positions: dict[str, _Position] = {}
        self._trades = 0
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ test controls

    async def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the price (the mark, for a perp); fill resting limit orders it crosses."""
        async with self._lock:
            self._prices[symbol] = price
            events: list[Message] = []
            for order in [o for o in self._orders.values() if _rests_on(o, symbol)]:
                if _crosses(order.cmd, price):
                    assert order.cmd.price is not None
                    events += self._execute(order, order.cmd.price, "maker")
            position = self._positions.get(symbol)
            if events or (position is not None and position.qty):
                events += self._position_update(symbol)
            await self._emit_all(events)

    def price(self, symbol: str) -> Decimal | None:
        return self._prices.get(symbol)

    def orders(self) -> list[OrderStatus]:
        """Every order the venue recorded (rejected ones included), in arrival order."""
        return [o.status() for o in self._orders.values()]

    # ------------------------------------------------------------------ Venue

    async def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    async def submit(self, order: SubmitOrder) -> None:
        failing = self._take_failure()
        if failing and not self.fail_after_recording:
            raise VenueError(f"{self.name}: timeout sending {order.client_order_id} (not sent)")
        async with self._lock:
            self.received.append(order)
            if order.client_order_id not in self._orders:
                await self._emit_all(self._place(order))
        if failing:
            raise VenueError(
                f"{self.name}: timeout awaiting the answer for {order.client_order_id}"
            )

    async def cancel(self, order: CancelOrder) -> None:
        """Cancel a resting order. Unknown or finished orders are left alone (no event)."""
        async with self._lock:
            known = self._orders.get(order.client_order_id)
            if known is None or known.cmd.symbol != order.symbol or known.state != "open":
                return
            before = self._balances()
            self._unlock(known)
            known.state = "canceled"
            now = self.clock.now_ns()
            canceled = OrderCanceled(now, now, order.client_order_id, order.symbol, order.reason)
            await self._emit_all([canceled, *self._balance_updates(before)])

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        if self.fail_next_lookups > 0:
            self.fail_next_lookups -= 1
            raise VenueError(f"{self.name}: timeout looking up {client_order_id}")
        order = self._orders.get(client_order_id)
        if order is None or order.cmd.symbol != symbol:
            return None
        return order.status()

    async def open_orders(self) -> Sequence[OrderStatus]:
        return [
            o.status() for o in self._orders.values() if o.state in ("open", "partially_filled")
        ]

    async def account(self) -> Sequence[Message]:
        now = self.clock.now_ns()
        keys = sorted(set(self._free) | set(self._locked))
        balances: list[Message] = [self._balance_event(now, key) for key in keys]
        positions = [
            self._position_event(now, symbol, pos)
            for symbol, pos in sorted(self._positions.items())
            if pos.qty
        ]
        return balances + positions

    # ------------------------------------------------------------------ placing

    def _take_failure(self) -> bool:
        if self.fail_next_submits > 0:
            self.fail_next_submits -= 1
            return True
        return False

    def _place(self, cmd: SubmitOrder) -> list[Message]:
        now = self.clock.now_ns()
        order = _Order(cmd, f"m{len(self._orders) + 1}")
        self._orders[cmd.client_order_id] = order
        submitted = OrderSubmitted(
            ts_event=now,
            ts_init=now,
            client_order_id=cmd.client_order_id,
            intent_id=cmd.intent_id,
            symbol=cmd.symbol,
            side=cmd.side,
            order_type=cmd.order_type,
            qty=cmd.qty,
            price=cmd.price,
        )
        problem = self._refusal(cmd)
        if problem is not None:
            order.state = "rejected"
            return [submitted, OrderRejected(now, now, cmd.client_order_id, cmd.symbol, problem)]
        accepted = OrderAccepted(now, now, cmd.client_order_id, order.venue_order_id, cmd.symbol)
        return [submitted, accepted, *self._work(order)]

    def _work(self, order: _Order) -> list[Message]:
        """Fill an accepted order at once if it can, else rest it (or cancel an IOC/FOK)."""
        cmd = order.cmd
        price = self._prices.get(cmd.symbol)
        if price is not None and (cmd.order_type == "market" or _crosses(cmd, price)):
            return self._execute(order, price, "taker") + self._position_update(cmd.symbol)
        if cmd.time_in_force in ("IOC", "FOK"):
            order.state = "canceled"
            now = self.clock.now_ns()
            why = f"{cmd.time_in_force}: would not fill at once"
            return [OrderCanceled(now, now, cmd.client_order_id, cmd.symbol, why)]
        before = self._balances()
        self._lock_funds(order)
        return self._balance_updates(before)

    def _refusal(self, cmd: SubmitOrder) -> str | None:
        """Why the venue refuses ``cmd``, or None."""
        inst = self._instruments.get(cmd.symbol)
        if inst is None:
            return f"unknown symbol {cmd.symbol}"
        price = self._prices.get(cmd.symbol)
        return (
            _shape_problem(cmd, inst, price)
            or _post_only_problem(cmd, price)
            or self._reduce_only_problem(cmd, inst)
            or self._funds_problem(cmd, inst, price)
        )

    def _reduce_only_problem(self, cmd: SubmitOrder, inst: Instrument) -> str | None:
        if not cmd.reduce_only:
            return None
        if inst.is_perp:
            held = self._positions.get(cmd.symbol, _Position()).qty
        else:
            held = self._free.get(("spot", inst.base), _ZERO)
        reducing = (held > 0 and cmd.side == "sell") or (held < 0 and cmd.side == "buy")
        if not reducing or cmd.qty > abs(held):
            return f"reduce-only order would increase the position ({held} {inst.base})"
        return None

    def _funds_problem(
        self, cmd: SubmitOrder, inst: Instrument, price: Decimal | None
    ) -> str | None:
        if inst.is_perp:
            return None
        if cmd.side == "sell":
            have = self._free.get(("spot", inst.base), _ZERO)
            return None if have >= cmd.qty else f"insufficient {inst.base}: {have} < {cmd.qty}"
        need = self._quote_needed(cmd, inst, price)
        have = self._free.get(("spot", inst.quote), _ZERO)
        return None if have >= need else f"insufficient {inst.quote}: {have} < {need}"

    def _quote_needed(self, cmd: SubmitOrder, inst: Instrument, price: Decimal | None) -> Decimal:
        taker = cmd.order_type == "market" or (price is not None and _crosses(cmd, price))
        at = price if taker or cmd.price is None else cmd.price
        assert at is not None  # _shape_problem refused orders without any price
        return cmd.qty * at * (_ONE + (inst.taker_fee if taker else inst.maker_fee))

    # ------------------------------------------------------------------ executing

    def _execute(self, order: _Order, price: Decimal, liquidity: Liquidity) -> list[Message]:
        """Fill the rest of ``order`` at ``price``: settle the wallet and report it."""
        cmd = order.cmd
        inst = self._instruments[cmd.symbol]
        qty = cmd.qty - order.filled_qty
        fee = qty * price * (inst.maker_fee if liquidity == "maker" else inst.taker_fee)
        before = self._balances()
        self._unlock(order)
        if inst.is_perp:
            self._settle_perp(inst, cmd, qty, price, fee)
        else:
            self._settle_spot(inst, cmd, qty, price, fee)
        order.filled_qty, order.avg_price, order.state = cmd.qty, price, "filled"
        filled = self._fill_event(order, qty, price, fee, liquidity)
        return [filled, *self._balance_updates(before)]

    def _fill_event(
        self, order: _Order, qty: Decimal, price: Decimal, fee: Decimal, liquidity: Liquidity
    ) -> OrderFilled:
        self._trades += 1
        now = self.clock.now_ns()
        return OrderFilled(
            ts_event=now,
            ts_init=now,
            client_order_id=order.cmd.client_order_id,
            venue_order_id=order.venue_order_id,
            trade_id=f"t{self._trades}",
            symbol=order.cmd.symbol,
            side=order.cmd.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=self._instruments[order.cmd.symbol].quote,
            liquidity=liquidity,
        )

    def _settle_spot(
        self, inst: Instrument, cmd: SubmitOrder, qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        sign = 1 if cmd.side == "buy" else -1
        self._add(("spot", inst.base), sign * qty)
        self._add(("spot", inst.quote), -sign * qty * price - fee)

    def _settle_perp(
        self, inst: Instrument, cmd: SubmitOrder, qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        position = self._positions.setdefault(cmd.symbol, _Position(mark=price))
        realised = position.trade(qty if cmd.side == "buy" else -qty, price)
        self._add(("futures", inst.quote), realised - fee)

    def _lock_funds(self, order: _Order) -> None:
        cmd = order.cmd
        inst = self._instruments[cmd.symbol]
        if inst.is_perp or cmd.price is None:
            return
        if cmd.side == "buy":
            asset, amount = inst.quote, cmd.qty * cmd.price * (_ONE + inst.maker_fee)
        else:
            asset, amount = inst.base, cmd.qty
        key: _Key = ("spot", asset)
        self._add(key, -amount)
        self._locked[key] = self._locked.get(key, _ZERO) + amount
        order.locked_asset, order.locked = asset, amount

    def _unlock(self, order: _Order) -> None:
        if order.locked:
            asset = order.locked_asset
            key: _Key = ("spot", asset)
            self._locked[key] -= order.locked
            self._add(key, order.locked)
            order.locked = _ZERO

    def _add(self, key: _Key, amount: Decimal) -> None:
        self._free[key] = self._free.get(key, _ZERO) + amount

    # ------------------------------------------------------------------ reporting

    def _balances(self) -> _Balances:
        keys = set(self._free) | set(self._locked)
        return {k: (self._free.get(k, _ZERO), self._locked.get(k, _ZERO)) for k in keys}

    def _balance_updates(self, before: _Balances) -> list[Message]:
        now = self.clock.now_ns()
        after = self._balances()
        changed = sorted(a for a, v in after.items() if before.get(a) != v)
        return [self._balance_event(now, key) for key in changed]

    def _balance_event(self, now: int, key: _Key) -> BalanceUpdated:
        free, locked = self._free.get(key, _ZERO), self._locked.get(key, _ZERO)
        return BalanceUpdated(now, now, key[0], key[1], free, locked)

    def _position_update(self, symbol: str) -> list[Message]:
        position = self._positions.get(symbol)
        price = self._prices.get(symbol)
        if position is None or price is None:
            return []
        position.mark = price
        return [self._position_event(self.clock.now_ns(), symbol, position)]

    def _position_event(self, now: int, symbol: str, pos: _Position) -> PositionUpdated:
        margin = abs(pos.qty) * pos.mark / self.perp_leverage
        return PositionUpdated(
            now, now, symbol, pos.qty, pos.entry, pos.mark, pos.unrealized, margin, None
        )

    async def _emit_all(self, events: Sequence[Message]) -> None:
        for event in events:
            await self.emit(event)


def _rests_on(order: _Order, symbol: str) -> bool:
    return order.state == "open" and order.cmd.symbol == symbol


def _crosses(cmd: SubmitOrder, price: Decimal) -> bool:
    """Whether a limit order trades at ``price``: a buy limit at or above it, a sell at or below."""
    if cmd.price is None:
        return False
    return price <= cmd.price if cmd.side == "buy" else price >= cmd.price


def _shape_problem(cmd: SubmitOrder, inst: Instrument, price: Decimal | None) -> str | None:
    if cmd.order_type == "limit":
        if cmd.price is None:
            return "limit order without a price"
        return inst.violation(cmd.qty, cmd.price)
    problem = inst.violation(cmd.qty, None)
    if problem is not None:
        return problem
    if price is None:
        return f"no price for {cmd.symbol}"
    if cmd.qty * price < inst.min_notional:
        return f"notional {cmd.qty * price} is below minimum notional {inst.min_notional}"
    return None


def _post_only_problem(cmd: SubmitOrder, price: Decimal | None) -> str | None:
    if not (cmd.post_only or cmd.time_in_force == "GTX"):
        return None
    if cmd.order_type == "market":
        return "post-only market order"
    if price is not None and _crosses(cmd, price):
        return f"post-only order would cross (price {price})"
    return None
