"""LoopbackCore: the simulated exchange core with Binance's bookkeeping around it.

One :class:`~ballast.adapters.sim.exchange.SimExchange` (the model the backtester uses; nothing
here decides a price, a fill or a refusal), the clock the exchange lives on, and what Binance
keeps besides: numeric order and trade ids, every order received with its Binance status, every
trade, income records (``FUNDING_FEE``), funding-rate history, the latest quote and mark of each
symbol. Listeners (the server's streams) get an :data:`Update` for everything that happens,
synchronously, in the order it happened.

**Account model.** The simulated exchange is one unified cross-margin account: the USDT balance
pays for spot and margins the perps. Binance has two wallets (spot and USDⓈ-M). So that an engine
summing statements per (account, asset) never counts USDT twice, the loopback exchange reports
every wallet balance (USDT included) as the SPOT account (``GET /api/v3/account``,
``outboundAccountPosition`` on the spot user stream, also for the USDT change of a perp fill or a
funding payment), and the USDⓈ-M account with positions only: ``GET /fapi/v3/account`` has no
asset rows, ``ACCOUNT_UPDATE`` carries ``B: []`` and the positions in ``P``. Fees are in USDT for
every fill (the core's convention), perps included.

**Times.** Market data is restamped with the core clock's time when it is taken in (the exchange
lives on its clock, whatever the data's own timestamps); every ``E``/``T``/``time`` is that clock's
now in milliseconds.

**Ids.** The exchange's ``sim-N`` order ids are Binance order id ``N``, ``t-N`` trade ids trade id
``N``; liquidation orders (``liquidation-n``) get order id ``LIQUIDATION_ORDER_IDS + n``,
rejected orders ``REJECTED_ORDER_IDS + n``.

**Idempotency.** A client order id the exchange has seen is refused and creates nothing: a
duplicate of an accepted order as a duplicate, a resend of a REJECTED one with its rejection
again (the simulated exchange records every order it receives, so a rejected id cannot be
evaluated anew as Binance would). Rejected orders keep their record (status ``REJECTED``, order id
``REJECTED_ORDER_IDS + n``) and ``GET order`` by client order id finds them, so an engine that
looks up an intent it never heard back from learns it was rejected instead of "not found";
open-order and order-history lists leave them out, like Binance.

**Durability** (``state_path``): see :mod:`ballast.adapters.loopback.state`. Construction replays
the log, so a core built on an existing file continues where the last one stopped, given the
same instruments and :class:`~ballast.adapters.sim.config.SimConfig`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final, Literal

import msgspec

from ballast.adapters.loopback.state import (
    CancelInput,
    FundingInput,
    Input,
    InputLog,
    LeverageInput,
    MarketInput,
    SubmitInput,
)
from ballast.adapters.sim.config import SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, Clock
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import (
    BalanceUpdated,
    FundingPaid,
    MarketData,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PositionUpdated,
    QuoteTick,
)
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.trading.position import Position

_ZERO: Final = Decimal(0)
LIQUIDATION_ORDER_IDS: Final = 1_000_000_000
REJECTED_ORDER_IDS: Final = 2_000_000_000

OrderState = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"]
ExecType = Literal["NEW", "TRADE", "CANCELED", "EXPIRED"]


class LoopbackError(Exception):
    """A request the core refuses: ``kind`` says which (the server maps it to Binance's code)."""

    def __init__(self, kind: Literal["duplicate", "unknown", "rejected"], detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(slots=True)
class OrderRecord:
    """One order as Binance reports it."""

    cmd: SubmitOrder
    time_ms: int
    order_id: int = 0
    status: OrderState = "NEW"
    update_ms: int = 0
    executed_qty: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    reason: str = ""
    trade_ids: list[int] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.cmd.symbol

    @property
    def client_order_id(self) -> str:
        return self.cmd.client_order_id

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class TradeRecord:
    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    realized_pnl: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class IncomeRecord:
    tran_id: int
    symbol: str
    income_type: str
    income: Decimal
    asset: str
    time_ms: int
    trade_id: str = ""


@dataclass(frozen=True, slots=True)
class FundingRateRecord:
    symbol: str
    rate: Decimal
    mark: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    event: MarketData
    update_id: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order changed: ``record`` is live (format it at once), ``trade`` the fill, if any."""

    record: OrderRecord
    exec_type: ExecType
    trade: TradeRecord | None
    time_ms: int


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    balances: tuple[tuple[str, Decimal, Decimal], ...]  # (asset, free, locked)
    time_ms: int


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    position: PositionUpdated
    reason: str  # ORDER, FUNDING_FEE, ...
    time_ms: int


Update = MarketUpdate | OrderUpdate | BalanceUpdate | PositionUpdate
Listener = Callable[[Update], None]


class LoopbackCore:
    """One SimExchange + its clock + subscribers of public market data and user events."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        config: SimConfig,
        clock: Clock,
        *,
        state_path: Path | None = None,
    ) -> None:
        self.clock = clock
        self.config = config
        self.instruments = {i.symbol: i for i in instruments}
        self.exchange = SimExchange(instruments, config)
        """The exchange model, for queries only: feed it through the core."""
        self.orders: dict[str, OrderRecord] = {}
        """Every order received, by client order id (rejected ones included)."""
        self.orders_by_id: dict[int, OrderRecord] = {}
        self.trades: list[TradeRecord] = []
        self.income: list[IncomeRecord] = []
        self.funding_rates: list[FundingRateRecord] = []
        self.marks: dict[str, MarkPriceUpdated] = {}
        self.quotes: dict[str, QuoteTick] = {}
        self.leverage_set: dict[str, Decimal] = {}
        self._positions: dict[str, Position] = {}  # realised PnL per perp fill
        self._listeners: list[Listener] = []
        self._update_ids = itertools.count(1)
        self._tran_ids = itertools.count(1)
        self._rejected_ids = itertools.count(1)
        self._replaying = False
        self._log: InputLog | None = None
        if state_path is not None:
            self._log = InputLog(state_path)
            try:
                self._replay(self._log)
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def inputs_logged(self) -> int:
        return 0 if self._log is None else self._log.count

    def _replay(self, log: InputLog) -> None:
        self._replaying = True
        try:
            for item in log.read():
                self._apply_input(item)
        finally:
            self._replaying = False

    def _apply_input(self, item: Input) -> None:
        if isinstance(item, MarketInput):
            self._market(item.event)
        elif isinstance(item, SubmitInput):
            self._submit(item.cmd, item.ts_ns)
        elif isinstance(item, CancelInput):
            self._cancel(item.symbol, item.client_order_id, item.ts_ns)
        elif isinstance(item, FundingInput):
            self._funding(item.symbol, item.rate, item.mark, item.ts_ns)
        else:
            self._leverage(item.symbol, item.leverage)

    def _record(self, item: Input) -> None:
        if self._log is not None and not self._replaying:
            self._log.append(item)

    # ------------------------------------------------------------------ listeners

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every update from now on; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _publish(self, update: Update) -> None:
        if self._replaying:
            return
        for listener in list(self._listeners):
            listener(update)

    # ------------------------------------------------------------------ queries

    def now_ms(self) -> int:
        return self.clock.now_ns() // NS_PER_MILLISECOND

    def order(
        self, symbol: str, *, order_id: int | None = None, client_id: str | None = None
    ) -> OrderRecord | None:
        """The order of ``symbol`` with that id, rejected ones included (see the module
        docstring: a looked-up client order id must agree with the duplicate check)."""
        record = (
            self.orders_by_id.get(order_id)
            if order_id is not None
            else self.orders.get(client_id or "")
        )
        return None if record is None or record.symbol != symbol else record

    def open_orders(self, symbol: str | None = None) -> list[OrderRecord]:
        return [
            r for r in self.orders.values() if r.is_open and (symbol is None or r.symbol == symbol)
        ]

    def last_price(self, symbol: str) -> Decimal | None:
        return self.exchange.last_price(symbol)

    # ------------------------------------------------------------------ inputs

    async def on_market(self, event: MarketData) -> None:
        """Take a QuoteTick / Bar / TradeTick / MarkPriceUpdated in (restamped with the clock's
        now), publish it, then the user events it caused (fills, liquidations)."""
        now = self.clock.now_ns()
        event = msgspec.structs.replace(event, ts_event=now, ts_init=now)
        self._record(MarketInput(event))
        self._market(event)

    def _market(self, event: MarketData) -> None:
        if isinstance(event, QuoteTick):
            self.quotes[event.symbol] = event
        elif isinstance(event, MarkPriceUpdated):
            self.marks[event.symbol] = event
        caused = self.exchange.on_market(event)
        self._publish(MarketUpdate(event, next(self._update_ids)))
        self._apply(caused, event.ts_event)

    async def submit(self, cmd: SubmitOrder) -> OrderRecord:
        """Place an order now; returns its record (NEW, FILLED, EXPIRED...). Raises
        :class:`LoopbackError` ``duplicate`` (client order id seen) or ``rejected`` (the core
        refused it: the detail is its reason; the refused order is recorded, status REJECTED)."""
        known = self.orders.get(cmd.client_order_id)
        if known is not None and known.status == "REJECTED":
            raise LoopbackError("rejected", known.reason)  # the same answer again, nothing new
        if known is not None:
            raise LoopbackError("duplicate", f"client order id {cmd.client_order_id} is known")
        now = self.clock.now_ns()
        self._record(SubmitInput(cmd, now))
        record = self._submit(cmd, now)
        if record.status == "REJECTED":
            raise LoopbackError("rejected", record.reason)
        return record

    def _submit(self, cmd: SubmitOrder, now: int) -> OrderRecord:
        record = OrderRecord(cmd, now // NS_PER_MILLISECOND, update_ms=now // NS_PER_MILLISECOND)
        self.orders[cmd.client_order_id] = record
        self._apply(self.exchange.submit(cmd, now), now)
        return record

    async def cancel(self, symbol: str, client_order_id: str) -> OrderRecord:
        """Cancel an open order; raises :class:`LoopbackError` ``unknown`` if it is not open."""
        record = self.orders.get(client_order_id)
        if record is None or record.symbol != symbol or not record.is_open:
            raise LoopbackError("unknown", "Unknown order sent.")
        now = self.clock.now_ns()
        self._record(CancelInput(symbol, client_order_id, now))
        self._cancel(symbol, client_order_id, now)
        return record

    def _cancel(self, symbol: str, client_order_id: str, now: int) -> None:
        cmd = CancelOrder(now, now, client_order_id, symbol, "canceled by user")
        self._apply(self.exchange.cancel(cmd, now), now, user_cancel=client_order_id)

    async def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int) -> None:
        """Pay funding of ``symbol`` (``−qty × mark × rate``): income record ``FUNDING_FEE``,
        ``ACCOUNT_UPDATE`` reason ``FUNDING_FEE`` and the USDT balance on the spot stream."""
        self._record(FundingInput(symbol, rate, mark, ts_ns))
        self._funding(symbol, rate, mark, ts_ns)

    def _funding(self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int) -> None:
        self.funding_rates.append(
            FundingRateRecord(symbol, rate, mark, ts_ns // NS_PER_MILLISECOND)
        )
        self._apply(self.exchange.settle_funding(symbol, rate, mark, ts_ns), ts_ns)

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        self._record(LeverageInput(symbol, leverage, self.clock.now_ns()))
        self._leverage(symbol, leverage)

    def _leverage(self, symbol: str, leverage: Decimal) -> None:
        self.exchange.set_leverage(symbol, leverage)
        self.leverage_set[symbol] = leverage

    # ------------------------------------------------------------------ bookkeeping

    def _apply(self, events: Sequence[Message], now: int, *, user_cancel: str = "") -> None:
        """Turn the exchange's events into records and updates, in order. Balances are gathered
        and published after the order update they belong to."""
        now_ms = now // NS_PER_MILLISECOND
        balances: dict[str, tuple[str, Decimal, Decimal]] = {}

        def flush() -> None:
            if balances:
                self._publish(BalanceUpdate(tuple(balances.values()), now_ms))
                balances.clear()

        for event in events:
            if isinstance(event, BalanceUpdated):
                balances[event.asset] = (event.asset, event.free, event.locked)
                continue
            flush()
            if isinstance(event, OrderAccepted):
                record = self.orders[event.client_order_id]
                record.order_id = _order_id(event.venue_order_id)
                self.orders_by_id[record.order_id] = record
                self._publish(OrderUpdate(record, "NEW", None, now_ms))
            elif isinstance(event, OrderRejected):
                refused = self.orders.get(event.client_order_id)
                if refused is not None and refused.order_id == 0:
                    refused.status, refused.reason = "REJECTED", event.reason
                    refused.order_id = REJECTED_ORDER_IDS + next(self._rejected_ids)
                    self.orders_by_id[refused.order_id] = refused
            elif isinstance(event, OrderCanceled):
                record = self.orders[event.client_order_id]
                user = event.client_order_id == user_cancel
                record.status = "CANCELED" if user else "EXPIRED"
                record.reason, record.update_ms = event.reason, now_ms
                self._publish(OrderUpdate(record, record.status, None, now_ms))
            elif isinstance(event, OrderFilled):
                record, trade = self._fill(event, now_ms)
                self._publish(OrderUpdate(record, "TRADE", trade, now_ms))
            elif isinstance(event, PositionUpdated):
                self._publish(PositionUpdate(event, "ORDER", now_ms))
            elif isinstance(event, FundingPaid):
                self.income.append(
                    IncomeRecord(
                        next(self._tran_ids),
                        event.symbol,
                        "FUNDING_FEE",
                        event.amount,
                        event.asset,
                        now_ms,
                    )
                )
                held = _position_now(self.exchange, event.symbol, now)  # funding leaves it as is
                self._publish(PositionUpdate(held, "FUNDING_FEE", now_ms))
        flush()

    def _fill(self, event: OrderFilled, now_ms: int) -> tuple[OrderRecord, TradeRecord]:
        record = self.orders.get(event.client_order_id)
        if record is None:  # a liquidation: the exchange's own order
            cmd = SubmitOrder(
                ts_event=event.ts_event,
                ts_init=event.ts_event,
                intent_id="liquidation",
                client_order_id=event.client_order_id,
                symbol=event.symbol,
                side=event.side,
                order_type="market",
                qty=event.qty,
                price=None,
                reduce_only=True,
                post_only=False,
                time_in_force="IOC",
            )
            record = OrderRecord(cmd, now_ms)
            record.order_id = LIQUIDATION_ORDER_IDS + int(event.client_order_id.rpartition("-")[2])
            self.orders[event.client_order_id] = record
            self.orders_by_id[record.order_id] = record
        realized = _ZERO
        if self.instruments[event.symbol].is_perp:
            signed = event.qty if event.side == "buy" else -event.qty
            realized = self._positions.setdefault(event.symbol, Position()).trade(
                signed, event.price
            )
        trade = TradeRecord(
            trade_id=_trade_id(event.trade_id),
            order_id=record.order_id,
            client_order_id=event.client_order_id,
            symbol=event.symbol,
            side=event.side,
            price=event.price,
            qty=event.qty,
            quote_qty=event.qty * event.price,
            commission=event.fee,
            commission_asset=event.fee_asset,
            maker=event.liquidity == "maker",
            realized_pnl=realized,
            time_ms=now_ms,
        )
        self.trades.append(trade)
        record.trade_ids.append(trade.trade_id)
        record.executed_qty += event.qty
        record.cum_quote += trade.quote_qty
        record.avg_price = record.cum_quote / record.executed_qty
        if record.executed_qty >= record.cmd.qty:
            record.status = "FILLED"
        else:  # one trade of several (a split fill)
            record.status = "PARTIALLY_FILLED"
        record.update_ms = now_ms
        return record, trade


def _position_now(exchange: SimExchange, symbol: str, now: int) -> PositionUpdated:
    """The position of ``symbol`` as the exchange holds it now."""
    mark = exchange.mark_price(symbol) or _ZERO
    return PositionUpdated(
        ts_event=now,
        ts_init=now,
        symbol=symbol,
        qty=exchange.position_qty(symbol),
        entry_price=exchange.entry_price(symbol),
        mark_price=mark,
        unrealized_pnl=exchange.unrealized_pnl(symbol),
        margin=_ZERO,
        liquidation_price=exchange.liquidation_price(symbol),
    )


def _order_id(venue_order_id: str) -> int:
    """``sim-12`` → 12."""
    return int(venue_order_id.rpartition("-")[2])


def _trade_id(trade_id: str) -> int:
    """``t-7`` → 7."""
    return int(trade_id.rpartition("-")[2])
