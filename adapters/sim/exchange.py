"""The simulated exchange core: one pure, synchronous model of a Binance-like venue.

Every method takes a command or market data (and the time, for commands) and RETURNS the events a
real venue would produce, in order; nothing is published, nothing awaits. The backtester feeds it
directly; a venue front end (paper trading, the loopback venue) wraps it. All amounts are exact
``Decimal``; ids are counters; every event is stamped ``ts_event = ts_init =`` the time given (the
``now_ns`` of a command, the ``ts_event`` of market data).

**Account.** One unified cross-margin account in ``quote_asset`` (USDT): the USDT balance pays for
spot and is the margin of every perp position; spot balances per asset; one perp position per
symbol (one-way mode; entry price and realised PnL: :mod:`ballast.engine.trading.position`).
Only USDT counts as margin collateral (spot holdings do not). Definitions:

- margin balance = USDT wallet balance (free + locked) + Σ perp unrealised PnL at mark;
- position initial margin = ``|qty| × mark / leverage``; open-order initial margin = ``qty ×
  order price / leverage`` of open perp orders that are not reduce-only;
- available margin = margin balance − position IM − open-order IM − USDT locked by spot orders;
- maintenance margin = Σ ``notional × mmr − maint_amount`` of each position's bracket;
- spendable USDT (spot buys) = min(free USDT, available margin): unrealised profit can margin
  perps but cannot be spent as cash, and a spot buy may not eat margin the perps need;
- account value (NAV) = USDT + Σ spot qty × spot last price + Σ perp unrealised PnL.

**Prices** (:mod:`ballast.adapters.sim.market`): last price per symbol (bar close, quote mid or
trade); perp mark = the latest ``MarkPriceUpdated``, else the last price.

**Orders.** ``submit`` checks, in order: known symbol; precision with
:meth:`Instrument.violation` (lot, min qty, tick, min notional at the limit price, or for market
orders at the last price); reduce-only (a perp order must shrink the position without flipping
it; a spot reduce-only buy is refused); post-only (``post_only`` or time in force ``GTX``: a
market order or a limit that would cross is refused, Binance's "would immediately match");
funds (spot buy: qty × expected price × (1 + fee rate) <= spendable USDT; spot sell: free base
>= qty; perp: the initial margin the order adds, at its price, <= available margin). A refusal is
``OrderSubmitted, OrderRejected(reason)``; a known client order id is ignored (no new order, no
events: resends are idempotent). Accepted: ``OrderSubmitted, OrderAccepted`` (venue ids
``sim-1``, ``sim-2``, …) then, at once:

- market order: fills at the last price ± slippage (buys pay more), rounded to the tick against
  the trader, taker fee; with a fill latency it waits for the first price update stamped at or
  after submit + ``fill_ns`` and fills at that update's price (funds re-checked: canceled if
  short);
- limit order that crosses (buy limit >= best ask, sell limit <= best bid; the last price when no
  quote is current): fills at once as taker at the slipped price capped at the limit;
- ``IOC``/``FOK`` limit that does not cross: canceled;
- otherwise it rests. A resting spot order locks its funds (buy: qty × limit × (1 + maker fee) in
  USDT; sell: qty of the base). It fills completely, at its limit price (never better), with the
  maker fee, when a later update touches it: a bar's low <= limit (buy) / high >= limit (sell), a
  quote's ask <= limit / bid >= limit, a trade at or through the limit. Resting orders are
  checked in submission order after each bar/quote/trade of their symbol. A reduce-only order
  that would no longer reduce when it fills is canceled instead.

**Fill events**: ``OrderFilled`` (trade ids ``t-1``, ``t-2``, …; fee positive, in USDT for every
fill: perps, spot sells and spot buys — Binance charges spot buys in the base asset by default,
but many accounts pay in quote or BNB; the portfolio ledger supports both, this model keeps the
base quantity exact), then ``BalanceUpdated`` for each changed asset (absolute free/locked,
account ``"spot"``; base asset first, then USDT, reported once per fill, also for perps), then
``PositionUpdated`` for perps (signed qty, entry, mark, unrealised PnL, initial margin used,
liquidation price estimate).

**Split fills** (off unless :attr:`SimExchange.split_fills` is set; the loopback exchange's
``partial_fill`` fault): a taker fill of a market order is made of several trades at the same
price, each with its own trade id, fee and events, the quantity cut in lot-size multiples (the
last piece takes the rest). Backtests never set it.

**Funding**: :meth:`settle_funding` pays ``−qty × mark × rate`` (rate > 0: longs pay) to USDT.

**Liquidation**: after every market data update and funding settlement,
:meth:`check_liquidation` liquidates every perp position when margin balance <= maintenance
margin (Binance liquidates when the margin ratio reaches 100 %): open perp orders are canceled,
each position is closed at its mark (bankruptcy simplified to the mark) and charged
``liquidation_fee_rate × notional`` in full, even beyond the margin left (Binance takes at most
what is left and its insurance fund absorbs the rest; here the wallet can end below zero); per
position, events ``OrderFilled`` (liquidity ``"liquidation"``, client order id ``liquidation-<n>``),
``BalanceUpdated``, ``PositionUpdated`` (qty 0). Liquidation is evaluated at the mark after each
update, not at a bar's intrabar extremes. The check is skipped, with the same outcome, while no
position is open or nothing it depends on (the USDT balance, the positions, the marks of the open
positions) has changed since a check that found the account above maintenance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

from ballast.adapters.sim.account import Wallet
from ballast.adapters.sim.config import SimConfig
from ballast.adapters.sim.fees import FeeLiquidity
from ballast.adapters.sim.margin import MarginTable, PerpHolding, account_liquidation_price
from ballast.adapters.sim.market import MarketBoard, Touch, touch_of
from ballast.adapters.sim.orders import SimOrder, order_submitted, shape_problem
from ballast.adapters.sim.slippage import slippage_model, slipped
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    FundingPaid,
    Liquidity,
    MarketData,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    QuoteTick,
    Side,
    TradeTick,
)
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.trading.position import Position
from ballast.engine.trading.venue import OrderStatus

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
POST_ONLY_REJECT: Final = "post-only order would immediately match and take"
UNKNOWN_ORDER: Final = "unknown order"


class SimExchange:
    """The exchange model; see the module docstring for every convention."""

    def __init__(self, instruments: Iterable[Instrument], config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self.quote = self.config.quote_asset
        self._instruments = {i.symbol: i for i in instruments}
        self._fees = self.config.fees
        self._slippage = slippage_model(self.config.slippage)
        self._margin = MarginTable(
            self.config.brackets,
            self.config.generic_brackets,
            self.config.leverage,
            self.config.default_leverage,
        )
        self._market = MarketBoard(self.config.slippage.window)
        self._wallet = Wallet(self.config.balances)
        self._positions: dict[str, Position] = {}
        self._open_symbols: list[str] = []
        """The symbols of the open positions, sorted (kept by :meth:`_settle_perp`)."""
        self._solvent = False
        """True when the last liquidation check found margin balance > maintenance margin and
        nothing it depends on (USDT wallet balance, positions, the marks of open positions) has
        changed since: the next check needs no arithmetic."""
        self._orders: dict[str, SimOrder] = {}
        self._open: dict[str, SimOrder] = {}
        self._accepted = 0
        self._trades = 0
        self._liquidations = 0
        self.split_fills: Callable[[SubmitOrder], int] | None = None
        """How many trades a market order's taker fill is cut into (None or 1: one)."""

    # ------------------------------------------------------------------------------- queries

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    def free(self, asset: str) -> Decimal:
        return self._wallet.free(asset)

    def locked(self, asset: str) -> Decimal:
        return self._wallet.locked(asset)

    def balance(self, asset: str) -> Decimal:
        """Wallet balance of ``asset``: free + locked."""
        return self._wallet.total(asset)

    def position_qty(self, symbol: str) -> Decimal:
        return self._position(symbol).qty

    def entry_price(self, symbol: str) -> Decimal:
        return self._position(symbol).entry_price

    def last_price(self, symbol: str) -> Decimal | None:
        return self._market.price(symbol)

    def mark_price(self, symbol: str) -> Decimal | None:
        return self._market.mark(symbol)

    def unrealized_pnl(self, symbol: str) -> Decimal:
        """At mark; 0 while flat or never marked."""
        mark = self._market.mark(symbol)
        return _ZERO if mark is None else self._unrealized(symbol, mark)

    def leverage(self, symbol: str) -> Decimal:
        return self._margin.leverage(symbol)

    def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Binance's "change initial leverage"; applies to margin checks from now on."""
        self._margin.set_leverage(symbol, leverage)

    def margin_balance(self) -> Decimal:
        upnl = sum((self.unrealized_pnl(s) for s in self._open_positions()), _ZERO)
        return self._wallet.total(self.quote) + upnl

    def position_margin(self) -> Decimal:
        """Initial margin of the open positions, at mark."""
        return sum((self._position_im(s) for s in self._open_positions()), _ZERO)

    def order_margin(self, exclude: str | None = None) -> Decimal:
        """Initial margin of open perp orders that are not reduce-only."""
        total = _ZERO
        for order in self._open.values():
            cmd = order.cmd
            if cmd.client_order_id == exclude or cmd.reduce_only or not self._is_perp(cmd.symbol):
                continue
            price = _limit(cmd) or self._market.price(cmd.symbol)
            total += self._margin.initial(cmd.symbol, cmd.qty * (price or _ZERO))
        return total

    def available_margin(self, exclude: str | None = None) -> Decimal:
        used = self.position_margin() + self.order_margin(exclude)
        return self.margin_balance() - used - self._wallet.locked(self.quote)

    def maintenance_margin(self) -> Decimal:
        return sum((self._position_mm(s) for s in self._open_positions()), _ZERO)

    def account_value(self) -> Decimal:
        """NAV: USDT + Σ other assets × their spot last price (0 if never priced) + Σ upnl."""
        value = self._wallet.total(self.quote)
        for asset in self._wallet.assets():
            if asset != self.quote:
                price = self._market.price(f"{asset}/{self.quote}") or _ZERO
                value += self._wallet.total(asset) * price
        return value + sum((self.unrealized_pnl(s) for s in self._open_positions()), _ZERO)

    def liquidation_price(self, symbol: str) -> Decimal | None:
        """Estimated mark at which the account gets liquidated through this position, every other
        position and balance held as they are
        (:func:`ballast.engine.trading.margin.account_liquidation_price`). Rounded to the tick so
        that a mark AT the returned price liquidates and a mark one tick better does not (longs:
        down, shorts: up). None if flat or never liquidated."""
        return account_liquidation_price(
            symbol,
            self.perp_holdings(),
            self._wallet.total(self.quote),
            self._margin,
            self._instruments[symbol].tick_size,
        )

    def perp_holdings(self) -> list[PerpHolding]:
        """The open perp positions with their cost basis and current mark (0 if never marked)."""
        return [
            PerpHolding(s, p.qty, p.cost, self._market.mark(s) or _ZERO)
            for s, p in sorted(self._positions.items())
            if p.qty
        ]

    def order_status(self, client_order_id: str) -> OrderStatus | None:
        order = self._orders.get(client_order_id)
        return None if order is None else order.status()

    def open_orders(self) -> list[OrderStatus]:
        return [order.status() for order in self._open.values()]

    def account_events(self, now_ns: int) -> list[Message]:
        """The whole account: BalanceUpdated for every asset, PositionUpdated per open position."""
        assets = sorted(set(self._wallet.assets()) | {self.quote})
        balances: list[Message] = [self._balance_event(a, now_ns) for a in assets]
        positions = [self._position_event(s, now_ns) for s in self._open_positions()]
        return balances + positions

    # --------------------------------------------------------------------------- market data

    def on_bar(self, bar: Bar) -> list[Message]:
        return self.on_market(bar)

    def on_quote(self, quote: QuoteTick) -> list[Message]:
        return self.on_market(quote)

    def on_trade(self, trade: TradeTick) -> list[Message]:
        return self.on_market(trade)

    def on_mark(self, mark: MarkPriceUpdated) -> list[Message]:
        return self.on_market(mark)

    def on_market(self, event: MarketData) -> list[Message]:
        """Update prices; fill due market orders and touched resting orders of the symbol (in
        submission order); then check for liquidation. Events are stamped ``event.ts_event``."""
        touches = self._market.update(event)
        now = event.ts_event
        if event.symbol in self._open_symbols:
            self._solvent = False  # its mark may have moved
        events: list[Message] = []
        touch = touch_of(event) if touches and self._open else None
        if touch is not None:
            for order in [o for o in self._open.values() if o.cmd.symbol == event.symbol]:
                events += self._on_touch(order, touch, now)
        if self._solvent or not self._open_symbols:
            return events  # what check_liquidation would find: nothing
        return events + self.check_liquidation(now)

    def _on_touch(self, order: SimOrder, touch: Touch, now: int) -> list[Message]:
        if not order.fillable_at(now):
            return []
        cmd = order.cmd
        if cmd.order_type == "market":
            return self._take(order, now)
        assert cmd.price is not None  # limit orders always carry one (refused otherwise)
        touched = touch.buy_at <= cmd.price if cmd.side == "buy" else touch.sell_at >= cmd.price
        return self._fill(order, cmd.price, "maker", now) if touched else []

    # -------------------------------------------------------------------------------- orders

    def submit(self, cmd: SubmitOrder, now_ns: int) -> list[Message]:
        """Place an order (see the module docstring); returns its events."""
        if cmd.client_order_id in self._orders:
            return []
        order = SimOrder(cmd, now_ns, now_ns + self.config.latency.fill_ns)
        self._orders[cmd.client_order_id] = order
        submitted = order_submitted(cmd, now_ns)
        problem = self._refusal(cmd)
        if problem is not None:
            order.state = "rejected"
            return [
                submitted,
                OrderRejected(now_ns, now_ns, cmd.client_order_id, cmd.symbol, problem),
            ]
        self._accepted += 1
        order.venue_order_id = f"sim-{self._accepted}"
        self._open[cmd.client_order_id] = order
        accepted = OrderAccepted(
            now_ns, now_ns, cmd.client_order_id, order.venue_order_id, cmd.symbol
        )
        return [submitted, accepted, *self._work(order, now_ns)]

    def cancel(self, cmd: CancelOrder, now_ns: int) -> list[Message]:
        """Cancel an open order: ``OrderCanceled`` (+ ``BalanceUpdated`` if funds were locked), or
        ``OrderRejected("unknown order")`` for an id that is unknown, of another symbol, or no
        longer open (Binance answers -2011 "Unknown order sent" for those too)."""
        order = self._open.get(cmd.client_order_id)
        if order is None or order.cmd.symbol != cmd.symbol:
            return [OrderRejected(now_ns, now_ns, cmd.client_order_id, cmd.symbol, UNKNOWN_ORDER)]
        return self._cancel(order, cmd.reason, now_ns)

    def _work(self, order: SimOrder, now: int) -> list[Message]:
        """What an accepted order does at once: fill, rest, or cancel (IOC/FOK)."""
        cmd = order.cmd
        if cmd.order_type == "market":
            return self._take(order, now) if order.live_ns <= now else []
        if self._crosses(cmd):
            return self._take(order, now)
        if cmd.time_in_force in ("IOC", "FOK"):
            return self._cancel(order, f"{cmd.time_in_force}: would not fill at once", now)
        return self._rest(order, now)

    def _take(self, order: SimOrder, now: int) -> list[Message]:
        """Fill as taker at the slipped price, if the order is still allowed."""
        cmd = order.cmd
        inst = self._instruments[cmd.symbol]
        problem = self._reduce_only_problem(cmd, inst) or self._funds_problem(
            cmd, inst, exclude=cmd.client_order_id
        )
        if problem is not None:
            return self._cancel(order, problem, now)
        return self._fill(order, self._taker_price(cmd, inst), "taker", now)

    def _rest(self, order: SimOrder, now: int) -> list[Message]:
        """Put a limit order on the book; a spot order locks its funds."""
        cmd = order.cmd
        inst = self._instruments[cmd.symbol]
        if inst.is_perp or cmd.price is None:
            return []
        if cmd.side == "buy":
            rate = self._fees.rate(cmd.symbol, inst.kind, "maker")
            order.locked_asset, order.locked = self.quote, cmd.qty * cmd.price * (_ONE + rate)
        else:
            order.locked_asset, order.locked = inst.base, cmd.qty
        self._wallet.lock(order.locked_asset, order.locked)
        self._solvent = False
        return [self._balance_event(order.locked_asset, now)]

    def _cancel(self, order: SimOrder, reason: str, now: int) -> list[Message]:
        cmd = order.cmd
        order.state = "canceled"
        self._open.pop(cmd.client_order_id, None)
        events: list[Message] = [OrderCanceled(now, now, cmd.client_order_id, cmd.symbol, reason)]
        asset = self._release(order)
        if asset:
            events.append(self._balance_event(asset, now))
        return events

    def _release(self, order: SimOrder) -> str:
        """Unlock what the order locked; return the asset (empty if nothing was locked)."""
        if not order.locked:
            return ""
        self._wallet.unlock(order.locked_asset, order.locked)
        self._solvent = False
        order.locked = _ZERO
        return order.locked_asset

    # ------------------------------------------------------------------------------- pricing

    def _taker_price(self, cmd: SubmitOrder, inst: Instrument) -> Decimal:
        """Last price ± slippage, on the tick against the taker, capped at a limit price."""
        market = self._market.get(cmd.symbol)
        last = market.last
        assert last is not None  # orders without a price to fill at are refused
        raw = slipped(cmd.side, last, self._slippage.amount(market, last))
        price = _adverse_tick(raw, inst.tick_size, cmd.side)
        limit = _limit(cmd)
        if limit is not None:
            price = min(price, limit) if cmd.side == "buy" else max(price, limit)
        return price

    def _crosses(self, cmd: SubmitOrder) -> bool:
        """Whether the order would match at once (a market order always does) against the best
        price: ask for buys, bid for sells (the last price when no quote is current)."""
        market = self._market.get(cmd.symbol)
        limit = _limit(cmd)
        if limit is None:
            return True
        if cmd.side == "buy":
            return market.best_ask is not None and limit >= market.best_ask
        return market.best_bid is not None and limit <= market.best_bid

    def _expected(self, cmd: SubmitOrder, inst: Instrument) -> tuple[Decimal, FeeLiquidity]:
        """Price and liquidity the order would get if it filled now (taker) or when it rests."""
        if cmd.order_type == "market" or self._crosses(cmd):
            return self._taker_price(cmd, inst), "taker"
        assert cmd.price is not None
        return cmd.price, "maker"

    # ---------------------------------------------------------------------------- refusals

    def _refusal(self, cmd: SubmitOrder) -> str | None:
        inst = self._instruments.get(cmd.symbol)
        if inst is None:
            return f"unknown symbol {cmd.symbol}"
        return (
            shape_problem(cmd, inst, self._market.price(cmd.symbol))
            or self._reduce_only_problem(cmd, inst)
            or self._post_only_problem(cmd)
            or self._funds_problem(cmd, inst)
        )

    def _reduce_only_problem(self, cmd: SubmitOrder, inst: Instrument) -> str | None:
        if not cmd.reduce_only:
            return None
        if not inst.is_perp:
            return None if cmd.side == "sell" else "reduce-only order would increase the position"
        held = self._position(cmd.symbol).qty
        opposite = held != 0 and (held > 0) == (cmd.side == "sell")
        if opposite and cmd.qty <= abs(held):
            return None
        return f"reduce-only order would increase or flip the position (position {held})"

    def _post_only_problem(self, cmd: SubmitOrder) -> str | None:
        post_only = cmd.post_only or cmd.time_in_force == "GTX"
        if post_only and (cmd.order_type == "market" or self._crosses(cmd)):
            return POST_ONLY_REJECT
        return None

    def _funds_problem(
        self, cmd: SubmitOrder, inst: Instrument, exclude: str | None = None
    ) -> str | None:
        if inst.is_perp:
            return self._margin_problem(cmd, inst, exclude)
        if cmd.side == "sell":
            have = self._wallet.free(inst.base)
            if have >= cmd.qty:
                return None
            return f"insufficient balance: {cmd.qty} {inst.base} needed, {have} free"
        price, liquidity = self._expected(cmd, inst)
        need = cmd.qty * price * (_ONE + self._fees.rate(cmd.symbol, inst.kind, liquidity))
        spendable = min(self._wallet.free(self.quote), self.available_margin(exclude))
        if need <= spendable:
            return None
        return f"insufficient balance: {need} {self.quote} needed, {spendable} spendable"

    def _margin_problem(
        self, cmd: SubmitOrder, inst: Instrument, exclude: str | None
    ) -> str | None:
        """The initial margin the order adds (growth of |position| × price / leverage) must fit
        in the available margin. Orders that only shrink the position need none."""
        held = self._position(cmd.symbol).qty
        after = held + _signed(cmd.side, cmd.qty)
        growth = abs(after) - abs(held)
        if growth <= 0:
            return None
        price, _ = self._expected(cmd, inst)
        need = self._margin.initial(cmd.symbol, growth * price)
        available = self.available_margin(exclude)
        if need <= available:
            return None
        return (
            f"insufficient margin: {need} {self.quote} initial margin needed, {available} available"
        )

    # ------------------------------------------------------------------------------- filling

    def _fill(
        self, order: SimOrder, price: Decimal, liquidity: FeeLiquidity, now: int
    ) -> list[Message]:
        cmd = order.cmd
        inst = self._instruments[cmd.symbol]
        if liquidity == "maker" and self._reduce_only_problem(cmd, inst) is not None:
            return self._cancel(order, "reduce-only order would no longer reduce", now)
        self._release(order)
        self._close_filled(order, price)
        events: list[Message] = []
        for qty in self._pieces(order, inst, liquidity):
            fee = self._fees.fee(cmd.symbol, inst.kind, liquidity, qty * price)
            events.append(self._fill_event(order, price, fee, liquidity, now, qty=qty))
            if inst.is_perp:
                self._settle_perp(cmd.symbol, _signed(cmd.side, qty), price, fee)
                events += [
                    self._balance_event(self.quote, now),
                    self._position_event(cmd.symbol, now),
                ]
            else:
                self._settle_spot(inst, cmd.side, qty, price, fee)
                events += [
                    self._balance_event(inst.base, now),
                    self._balance_event(self.quote, now),
                ]
        return events

    def _pieces(self, order: SimOrder, inst: Instrument, liquidity: FeeLiquidity) -> list[Decimal]:
        """The quantities of the trades one fill is made of (see Split fills)."""
        cmd = order.cmd
        if self.split_fills is None or liquidity != "taker" or cmd.order_type != "market":
            return [cmd.qty]
        count = self.split_fills(cmd)
        piece = inst.round_qty(cmd.qty / count) if count > 1 else _ZERO
        if piece <= 0:
            return [cmd.qty]
        pieces = [piece] * (count - 1)
        return [*pieces, cmd.qty - sum(pieces, _ZERO)]

    def _close_filled(self, order: SimOrder, price: Decimal) -> None:
        order.state, order.filled_qty, order.avg_price = "filled", order.cmd.qty, price
        self._open.pop(order.cmd.client_order_id, None)

    def _settle_spot(
        self, inst: Instrument, side: Side, qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        signed = _signed(side, qty)
        self._wallet.add(inst.base, signed)
        self._wallet.add(self.quote, -signed * price - fee)
        self._solvent = False

    def _settle_perp(self, symbol: str, signed_qty: Decimal, price: Decimal, fee: Decimal) -> None:
        realized = self._positions.setdefault(symbol, Position()).trade(signed_qty, price)
        self._wallet.add(self.quote, realized - fee)
        self._open_symbols = sorted(s for s, p in self._positions.items() if p.qty)
        self._solvent = False

    # ------------------------------------------------------------------- funding, liquidation

    def settle_funding(
        self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int
    ) -> list[Message]:
        """Settle one funding payment: ``amount = −qty × mark × rate`` (rate > 0: longs pay,
        shorts receive) to USDT. Events: ``FundingPaid``, ``BalanceUpdated`` (then liquidation
        events if the payment pushed the account under maintenance). Flat: no events."""
        qty = self._position(symbol).qty
        if qty == 0:
            return []
        amount = -qty * mark * rate
        self._wallet.add(self.quote, amount)
        self._solvent = False
        paid = FundingPaid(ts_ns, ts_ns, symbol, qty, mark, rate, amount, self.quote)
        return [paid, self._balance_event(self.quote, ts_ns), *self.check_liquidation(ts_ns)]

    def check_liquidation(self, ts_ns: int) -> list[Message]:
        """Liquidate every perp position if margin balance <= maintenance margin (see module
        docstring); otherwise no events."""
        symbols = self._open_positions()
        if not symbols or self._solvent:
            return []
        if self.margin_balance() > self.maintenance_margin():
            self._solvent = True
            return []
        events: list[Message] = []
        for order in [o for o in self._open.values() if self._is_perp(o.cmd.symbol)]:
            events += self._cancel(order, "liquidation", ts_ns)
        for symbol in symbols:
            events += self._liquidate(symbol, ts_ns)
        return events

    def _liquidate(self, symbol: str, now: int) -> list[Message]:
        position = self._position(symbol)
        mark = self._market.mark(symbol)
        assert mark is not None  # a position exists only after a priced fill
        self._liquidations += 1
        client_id = f"liquidation-{self._liquidations}"
        side: Side = "sell" if position.qty > 0 else "buy"
        cmd = SubmitOrder(
            ts_event=now,
            ts_init=now,
            intent_id="liquidation",
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            order_type="market",
            qty=abs(position.qty),
            price=None,
            reduce_only=True,
            post_only=False,
            time_in_force="IOC",
        )
        order = SimOrder(cmd, now, now, venue_order_id=client_id)
        self._orders[client_id] = order
        fee = cmd.qty * mark * self.config.liquidation_fee_rate
        self._close_filled(order, mark)
        fill = self._fill_event(order, mark, fee, "liquidation", now)
        self._settle_perp(symbol, -position.qty, mark, fee)
        return [fill, self._balance_event(self.quote, now), self._position_event(symbol, now)]

    # ------------------------------------------------------------------------------ reporting

    def _fill_event(
        self,
        order: SimOrder,
        price: Decimal,
        fee: Decimal,
        liquidity: Liquidity,
        now: int,
        *,
        qty: Decimal | None = None,
    ) -> OrderFilled:
        self._trades += 1
        cmd = order.cmd
        return OrderFilled(
            ts_event=now,
            ts_init=now,
            client_order_id=cmd.client_order_id,
            venue_order_id=order.venue_order_id,
            trade_id=f"t-{self._trades}",
            symbol=cmd.symbol,
            side=cmd.side,
            qty=cmd.qty if qty is None else qty,
            price=price,
            fee=fee,
            fee_asset=self.quote,
            liquidity=liquidity,
        )

    def _balance_event(self, asset: str, now: int) -> BalanceUpdated:
        return BalanceUpdated(
            now, now, "spot", asset, self._wallet.free(asset), self._wallet.locked(asset)
        )

    def _position_event(self, symbol: str, now: int) -> PositionUpdated:
        position = self._position(symbol)
        mark = self._market.mark(symbol) or _ZERO
        return PositionUpdated(
            ts_event=now,
            ts_init=now,
            symbol=symbol,
            qty=position.qty,
            entry_price=position.entry_price,
            mark_price=mark,
            unrealized_pnl=self._unrealized(symbol, mark),
            margin=self._position_im(symbol),
            liquidation_price=self.liquidation_price(symbol),
        )

    # -------------------------------------------------------------------------------- helpers

    def _position(self, symbol: str) -> Position:
        position = self._positions.get(symbol)
        return position if position is not None else Position()

    def _unrealized(self, symbol: str, mark: Decimal) -> Decimal:
        """A flat position reports an unrealised PnL of 0 (whatever its cost basis's digits)."""
        position = self._position(symbol)
        return position.unrealized(mark) if position.qty else _ZERO

    def _open_positions(self) -> list[str]:
        """The symbols of the open positions, sorted (a list the caller must not change)."""
        return self._open_symbols

    def _is_perp(self, symbol: str) -> bool:
        inst = self._instruments.get(symbol)
        return inst is not None and inst.is_perp

    def _position_im(self, symbol: str) -> Decimal:
        mark = self._market.mark(symbol) or _ZERO
        return self._margin.initial(symbol, self._position(symbol).qty * mark)

    def _position_mm(self, symbol: str) -> Decimal:
        mark = self._market.mark(symbol) or _ZERO
        return self._margin.maintenance(symbol, self._position(symbol).qty * mark)


def _limit(cmd: SubmitOrder) -> Decimal | None:
    """The limit price of a limit order; None for a market order (a price sent with a market
    order is informational and ignored)."""
    return cmd.price if cmd.order_type == "limit" else None


def _signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side == "buy" else -qty


def _adverse_tick(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """``price`` on the tick, rounded against the taker (buys up, sells down), at least 1 tick;
    as it is with no tick (0: exact precision)."""
    if not tick:
        return price
    rounding = ROUND_CEILING if side == "buy" else ROUND_FLOOR
    on_tick = (price / tick).to_integral_value(rounding=rounding) * tick
    return max(on_tick, tick)
