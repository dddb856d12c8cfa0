"""Facts: everything that happened, in past tense.

Every event is a frozen, tagged, ``array_like`` ``msgspec.Struct``. Each class names its wire tag
(``tag="QuoteTick"``): a journal stores the tag, not the class name, so a class may be renamed but
its tag never changes (tests/test_wire_tags.py). The first two fields of every event are
``ts_event`` (when it happened at its origin: venue time, bar close, timer deadline) and
``ts_init`` (when this process created the object), both integer nanoseconds since the Unix epoch.

Schema evolution rules (the journal must keep decoding old files):
- a new field gets a default and goes last;
- an existing field never changes type, position or meaning, and is never removed;
- a new event type is a new class, with its own explicit tag, added to its stream's union;
- a code set (a ``Literal`` alias below) may gain values, never lose or rename one.

Any other change (a field removed or retyped, a code renamed, an event split in two) needs an
upcaster that turns the older records into the new shape: :mod:`ballast.engine.kernel.upcast`.

Each class carries two class-level attributes that are not encoded:
``stream`` (market, account, order, decision, system, command) and ``role``:
``input`` (comes from outside the actors: venues, feeds, timers; replay re-feeds these),
``output`` (emitted by actors: replay --verify compares these) or ``meta`` (session bookkeeping).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.order_state import ReportedOrderState

Stream = Literal["market", "account", "order", "decision", "system", "command"]
Role = Literal["input", "output", "meta"]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTX"]
Liquidity = Literal["maker", "taker", "liquidation"]
AccountKind = Literal["spot", "futures"]

# Closed sets of codes carried by events. Each is defined here once and used by its producers.
# msgspec validates a Literal on decode: a value may be added to a set, never removed or renamed
# (a journal holding it would no longer decode) unless an upcaster maps it
# (:mod:`ballast.engine.kernel.upcast`).
Regime = Literal["calm", "normal", "stressed"]
"""The market regime (:mod:`ballast.engine.trading.regime`)."""
Mode = Literal["spot", "overlay", "auto"]
"""How the rebalancer executes a target: spot only, a perp overlay, or the cheaper of the two."""
RebalanceTrigger = Literal["band", "budget", "kill_switch", "deleverage"]
"""Why the rebalancer decided: a band check at a snapshot, a contracted risk budget, the kill
switch, or a deleveraging request."""
SnapshotTrigger = Literal["price", "balance", "position", "funding", "fill", "neutral"]
"""What made the portfolio value itself (``neutral``: the dry run's all-cash snapshot)."""
AssetAction = Literal[
    "hold",
    "buy spot",
    "sell spot",
    "perp",
    "buy spot+perp",
    "sell spot+perp",
    "perp long",
    "perp short",
    "cover perp short",
    "perp buy",
    "perp sell",
    "perp+spot buy",
    "perp+spot sell",
    "unwind perp",
    "unwind",
    "unwind short",
    "deleverage",
]
"""What the planner concluded for one asset (:mod:`ballast.engine.trading.planner`)."""
VetoReason = Literal[
    "kill_switch",
    "unknown_instrument",
    "no_portfolio",
    "stale_data",
    "price_sanity",
    "precision",
    "min_notional",
    "reduce_only",
    "reduce_in_flight",
    "max_order_notional",
    "max_asset_weight",
    "max_net_leverage",
    "max_gross_leverage",
    "max_margin_usage",
    "liquidation_distance",
    "max_daily_turnover",
    "unreconciled",
    "read_only",
    "journal_unwritable",
]
"""Why the pre-trade check refused an intent (:mod:`ballast.engine.trading.pretrade`);
``read_only``: the risk actor of a read-only engine (``[security] read_only``) refuses every
intent the check approved."""
DeleverageReason = Literal["liquidation_distance", "margin_usage", "net_leverage"]
"""Which limit a :class:`DeleverageRequired` brings back (:mod:`ballast.engine.trading.risk`)."""
KillSwitchReason = Literal["drawdown", "liquidation_distance", "handler_failed", "key_refused"]
"""Why the risk actor tripped the kill switch (:mod:`ballast.engine.trading.risk`)."""
KEY_REFUSED: Final = "authentication refused: "
"""How the reason of an ``OrderRejected`` starts when the venue refused the API key itself
(invalid, not allowed from this IP, or without the permission for the order): every order would
be refused the same way, so the risk actor halts trading (``key_refused``)."""
DataRejectReason = Literal[
    "non_positive_price",
    "crossed_quote",
    "out_of_order",
    "price_jump",
    "implausible_funding_rate",
    "future_timestamp",
    "unconfirmed_first",
]
"""Why a market data point was rejected (:mod:`ballast.engine.trading.market_guard`)."""
LinkState = Literal["connected", "disconnected", "caught_up"]
"""A live venue stream's connection state (:class:`VenueConnectionChanged`)."""


class Message(msgspec.Struct, frozen=True, tag=True, array_like=True, gc=False):
    """Base of events and commands. Its two fields never change.

    ``gc=False`` (inherited by every message): messages are immutable facts that never reference
    each other in a cycle, so the cyclic garbage collector need not track them. Replay and
    backtests create millions; tracking them made each collection walk them all.
    """

    stream: ClassVar[Stream]
    role: ClassVar[Role]

    ts_event: int
    ts_init: int


# --------------------------------------------------------------------------- market data (input)


class MarketEvent(Message, frozen=True, tag=True, array_like=True):
    """Market data. May be coalesced per symbol for a lagging consumer (latest wins)."""

    stream: ClassVar[Stream] = "market"
    role: ClassVar[Role] = "input"


class QuoteTick(MarketEvent, frozen=True, tag="QuoteTick", array_like=True):
    """Best bid/ask of one instrument."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: Decimal
    ask_size: Decimal


class TradeTick(MarketEvent, frozen=True, tag="TradeTick", array_like=True):
    """One public trade."""

    symbol: str
    price: Decimal
    size: Decimal
    aggressor: Side | None
    trade_id: str


class Bar(MarketEvent, frozen=True, tag="Bar", array_like=True):
    """An OHLCV bar. ``ts_event`` is the bar's close time (when its values became known)."""

    symbol: str
    interval_s: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class MarkPriceUpdated(MarketEvent, frozen=True, tag="MarkPriceUpdated", array_like=True):
    """Mark and index price of a perpetual, with its current funding rate."""

    symbol: str
    mark: Decimal
    index: Decimal
    funding_rate: Decimal
    next_funding_ns: int


# ------------------------------------------------------------------------------ account (input)


class AccountEvent(Message, frozen=True, tag=True, array_like=True):
    """Balances, positions and funding as reported by a venue. Never dropped or reordered."""

    stream: ClassVar[Stream] = "account"
    role: ClassVar[Role] = "input"


class BalanceUpdated(AccountEvent, frozen=True, tag="BalanceUpdated", array_like=True):
    """Wallet balance of one asset in one account (absolute values, not deltas)."""

    account: AccountKind
    asset: str
    free: Decimal
    locked: Decimal


class PositionUpdated(AccountEvent, frozen=True, tag="PositionUpdated", array_like=True):
    """A perpetual position as the venue sees it. ``qty`` is signed: negative is short."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    margin: Decimal
    liquidation_price: Decimal | None


class FundingPaid(AccountEvent, frozen=True, tag="FundingPaid", array_like=True):
    """A funding settlement. ``amount`` is signed from the account's view: > 0 received, < 0 paid.

    amount = -position_qty * mark_price * rate (rate > 0: longs pay shorts).
    """

    symbol: str
    position_qty: Decimal
    mark_price: Decimal
    rate: Decimal
    amount: Decimal
    asset: str


# ------------------------------------------------------------------------------- order lifecycle


class OrderEvent(Message, frozen=True, tag=True, array_like=True):
    """An order's life. Never dropped or reordered."""

    stream: ClassVar[Stream] = "order"
    role: ClassVar[Role] = "input"


class OrderSubmitted(OrderEvent, frozen=True, tag="OrderSubmitted", array_like=True):
    """The venue adapter sent the order out of the process (after its SubmitOrder was durable).

    An input: it reports the outcome of I/O, so replay re-feeds it instead of re-deriving it.
    """

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None


class OrderAccepted(OrderEvent, frozen=True, tag="OrderAccepted", array_like=True):
    """The venue acknowledged the order."""

    client_order_id: str
    venue_order_id: str
    symbol: str


class OrderRejected(OrderEvent, frozen=True, tag="OrderRejected", array_like=True):
    """The venue (or the transport to it) refused the order."""

    client_order_id: str
    symbol: str
    reason: str


class OrderCanceled(OrderEvent, frozen=True, tag="OrderCanceled", array_like=True):
    """The order left the book without (further) fills."""

    client_order_id: str
    symbol: str
    reason: str


class OrderStatusReported(OrderEvent, frozen=True, tag="OrderStatusReported", array_like=True):
    """The venue's answer to a lookup of one order by client order id (reconciliation, or the
    check before any resend). ``state`` is open, partially_filled, filled, canceled, rejected or
    unknown (the venue never received it)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    state: ReportedOrderState


class OrderFilled(OrderEvent, frozen=True, tag="OrderFilled", array_like=True):
    """One execution. ``fee`` is positive when paid, in ``fee_asset``."""

    client_order_id: str
    venue_order_id: str
    trade_id: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity


# ------------------------------------------------------------------------ decisions (output)


class AssetState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One asset inside a portfolio snapshot. Values in the quote currency.

    ``perp_funding`` is the funding this asset's perp position received (> 0) or paid (< 0) so far.
    """

    asset: str
    spot_qty: Decimal
    spot_price: Decimal
    spot_value: Decimal
    perp_qty: Decimal
    perp_price: Decimal
    perp_notional: Decimal
    perp_entry_price: Decimal
    perp_unrealized_pnl: Decimal
    perp_funding: Decimal
    perp_liquidation_price: Decimal | None
    net_exposure: Decimal
    weight: Decimal
    spot_weight: Decimal


class AssetDecision(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the rebalancer saw and concluded for one asset."""

    asset: str
    weight: Decimal
    target: Decimal
    band_low: Decimal
    band_high: Decimal
    action: AssetAction


class OrderIntent(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A trade the engine wants to make, before risk approval. ``qty`` is in base units."""

    intent_id: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    price: Decimal | None
    reduce_only: bool
    reason: str


class DecisionEvent(Message, frozen=True, tag=True, array_like=True):
    """Something an actor concluded. Replay --verify compares these."""

    stream: ClassVar[Stream] = "decision"
    role: ClassVar[Role] = "output"


class PortfolioSnapshot(DecisionEvent, frozen=True, tag="PortfolioSnapshot", array_like=True):
    """Valued portfolio: NAV, exposures, leverage and PnL attribution.

    NAV = cash + Σ spot value + Σ perp unrealised PnL, and at every event
    NAV − initial NAV = price_pnl + funding_pnl − fees_paid + transfers.
    Gross leverage = Σ (|spot value| + |perp notional|) / NAV; net = Σ |net exposure| / NAV (the
    mandate's measure; journals written before issue 16 hold the signed sum).
    """

    trigger: SnapshotTrigger
    nav: Decimal
    cash: Decimal
    gross_leverage: Decimal
    net_leverage: Decimal
    margin_used: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    price_pnl: Decimal
    funding_pnl: Decimal
    fees_paid: Decimal
    transfers: Decimal
    peak_nav: Decimal
    drawdown: Decimal
    assets: tuple[AssetState, ...]


class RiskBudgetChanged(DecisionEvent, frozen=True, tag="RiskBudgetChanged", array_like=True):
    """The regime or the budget derived from it changed. Bands are fractions of NAV.

    ``max_net_leverage`` is the mandate's cap on Σ |net exposure| / NAV in force (None in journals
    written before it existed); ``max_gross_leverage`` the exchange-side cap on gross notional.
    """

    regime: Regime
    volatility: Decimal
    band_abs: Decimal | None
    band_rel: Decimal | None
    max_gross_leverage: Decimal
    overlay_scale: Decimal
    allow_overlay_longs: bool
    reason: str
    max_net_leverage: Decimal | None = None


class DeleverageRequired(DecisionEvent, frozen=True, tag="DeleverageRequired", array_like=True):
    """The risk actor's request for a reducing trade, published at a portfolio snapshot (or a mark)
    when a limit is breached at the current marks, before the exchange would liquidate.

    Meaning: trade ``notional`` (quote currency, > 0, at the current mark, rounded up to the cent)
    of ``asset`` in
    direction ``side`` so that the breached measure comes back ``deleverage_buffer`` inside its
    limit. ``symbol`` is the instrument to trade: the perp (a reduce-only order) when ``reason`` is
    ``liquidation_distance`` or ``margin_usage``; empty for ``net_leverage``, where a spot sale or
    a perp order in ``side`` both reduce the net exposure (the rebalancer chooses). ``measure`` is
    the breached value (distance to liquidation, margin usage, net leverage), ``limit`` the
    threshold it crossed, ``target`` the value the trade aims at. At most one per asset per
    snapshot time (liquidation first, then margin, then net leverage); published again at a later
    snapshot while the breach lasts and no approved order of that asset is in flight.
    """

    reason: DeleverageReason
    asset: str
    symbol: str
    side: Side
    notional: Decimal
    measure: Decimal
    limit: Decimal
    target: Decimal
    detail: str


class RebalanceDecided(DecisionEvent, frozen=True, tag="RebalanceDecided", array_like=True):
    """A rebalance decision with its inputs and reasoning."""

    decision_id: str
    trigger: RebalanceTrigger
    mode: Mode
    regime: Regime
    reasoning: str
    assets: tuple[AssetDecision, ...]
    intents: tuple[OrderIntent, ...]


class IntentApproved(DecisionEvent, frozen=True, tag="IntentApproved", array_like=True):
    """The pre-trade check passed an intent, possibly cut down (``cut_reason`` says why)."""

    intent: OrderIntent
    cut_reason: str


class OrderVetoed(DecisionEvent, frozen=True, tag="OrderVetoed", array_like=True):
    """The pre-trade check refused an intent."""

    intent_id: str
    symbol: str
    reason: VetoReason
    detail: str


class DataStale(DecisionEvent, frozen=True, tag="DataStale", array_like=True):
    """No fresh market data for a symbol within its threshold."""

    symbol: str
    last_ts_ns: int
    age_ns: int
    threshold_ns: int


class DataRejected(DecisionEvent, frozen=True, tag="DataRejected", array_like=True):
    """An absurd market data point was rejected and not traded on."""

    symbol: str
    reason: DataRejectReason
    detail: str
    seq: int = 0
    """Journal seq of the rejected market data record (0: not known, as in older journals)."""


class KillSwitchTriggered(DecisionEvent, frozen=True, tag="KillSwitchTriggered", array_like=True):
    """Stop opening risk, flatten the overlay. ``reason`` is a short code, ``detail`` the why."""

    reason: KillSwitchReason
    detail: str


class KillSwitchReset(DecisionEvent, frozen=True, tag="KillSwitchReset", array_like=True):
    """An operator cleared the kill switch."""

    by: str


# ----------------------------------------------------------------------------------- system


class SystemEvent(Message, frozen=True, tag=True, array_like=True):
    stream: ClassVar[Stream] = "system"
    role: ClassVar[Role] = "output"


class TimerFired(SystemEvent, frozen=True, tag="TimerFired", array_like=True):
    """A clock timer's deadline passed. ``ts_event`` is the deadline."""

    role: ClassVar[Role] = "input"

    name: str


class InstrumentsLoaded(SystemEvent, frozen=True, tag="InstrumentsLoaded", array_like=True):
    """The instruments (with exchange filters) a venue offers, as loaded at session start."""

    role: ClassVar[Role] = "input"

    venue: str
    instruments: tuple[Instrument, ...]


class HandlerFailed(SystemEvent, frozen=True, tag="HandlerFailed", array_like=True):
    """A bus handler raised while handling event ``seq``; the bus went on."""

    handler: str
    event_type: str
    seq: int
    error: str


class StrategyFailed(SystemEvent, frozen=True, tag="StrategyFailed", array_like=True):
    """A strategy plug-in raised and was halted."""

    strategy: str
    error: str


class SessionStarted(SystemEvent, frozen=True, tag="SessionStarted", array_like=True):
    """First record of a session: what ran, with which (secret-free) configuration."""

    role: ClassVar[Role] = "meta"

    session_id: str
    version: str
    clock: str
    config_json: str
    venue: str = ""
    """Name of the venue the trading pipeline ran against; empty for a session without one."""
    resumed_from_seq: int = 0
    """Non-zero: the session resumed the state the journal held up to this seq (its actors were
    caught up on every earlier input, :mod:`ballast.engine.app.catch_up`); 0: a fresh start."""
    source_config_json: str = ""
    """The configuration ``config_json`` was derived from by the command that ran (a backtest
    widens ``risk.stale_after_s`` to its bar interval); empty when they are the same."""


class SessionStopped(SystemEvent, frozen=True, tag="SessionStopped", array_like=True):
    """Last record of a session. ``reason``: ``completed`` (the run was over), ``max_runtime``,
    ``signal:SIGTERM``, ``signal:SIGINT`` or ``error: <exception type>`` (not a closed set, so a
    ``str``)."""

    role: ClassVar[Role] = "meta"

    session_id: str
    reason: str


class FeedAdvanced(SystemEvent, frozen=True, tag="FeedAdvanced", array_like=True):
    """A paper feed is about to send the market events of one data time (``data_ts_ns``, the
    bars' own time; the events themselves are re-stamped to the wall clock), after the funding
    settlements due before it. A restart resumes the feed from the last one (see
    :mod:`ballast.engine.app.paper_feed`). Bookkeeping: replay ignores it."""

    role: ClassVar[Role] = "meta"

    data_ts_ns: int
    events: int
    """How many market events that data time has."""


class VenueConnectionChanged(
    SystemEvent, frozen=True, tag="VenueConnectionChanged", array_like=True
):
    """A live venue's stream went up or down, or caught up over REST after a gap.

    ``channel`` names the subscription (``"quotes:spot"``, ``"user:futures"``, ...). A drop is
    ``disconnected`` with the error in ``reason`` and the reconnect ``attempt`` it is waiting for
    (1, 2, ...); ``connected`` once it is subscribed again; ``caught_up`` when the REST catch-up
    after the gap is done (``reason`` says what it found: fills, orders, balances). An input: a
    fact the venue reported, replayed to the actors like market data."""

    role: ClassVar[Role] = "input"

    venue: str
    channel: str
    state: LinkState
    reason: str = ""
    attempt: int = 0


class VenueMessageRejected(SystemEvent, frozen=True, tag="VenueMessageRejected", array_like=True):
    """A live venue received a stream message it could not read (malformed JSON, a field missing
    or of the wrong type, a handler that failed on it) and dropped it. ``channel``: ``"market"``
    or the user channel (``"user:spot"``, ``"user:futures"``); on a user channel the venue then
    catches up over REST (a ``caught_up`` names why). ``reason``: ``malformed_json``,
    ``unreadable``; ``detail``: the error and the start of the message. An input: a fact the
    venue reported."""

    role: ClassVar[Role] = "input"

    venue: str
    channel: str
    reason: str
    detail: str


class ReconcileMismatch(SystemEvent, frozen=True, tag="ReconcileMismatch", array_like=True):
    """After a restart or a gap, the venue's account disagrees with the journal's and no fill,
    order or funding the venue reports explains it. Trading stays halted until a later
    reconciliation agrees (:class:`ReconcileResolved`). ``subject``: ``balance:BTC``,
    ``position:BTC/USDT:USDT``, ``order:<client order id>``."""

    role: ClassVar[Role] = "input"

    venue: str
    subject: str
    journal_value: str
    venue_value: str
    detail: str


class ReconcileResolved(SystemEvent, frozen=True, tag="ReconcileResolved", array_like=True):
    """A reconciliation found the venue and the journal in agreement again: trading may resume."""

    role: ClassVar[Role] = "input"

    venue: str
    detail: str


class JournalWriteChanged(SystemEvent, frozen=True, tag="JournalWriteChanged", array_like=True):
    """The journal's writer could not write (``writable`` False: disk full, a read-only file or
    file system, an I/O error; ``error`` is what the OS or SQLite said) or writes again
    (``writable`` True; ``failures``: the refused writes since the session opened it). While it
    cannot write, no intent passes the risk check (``journal_unwritable``): nothing could be made
    durable before it is sent. Recorded when the journal accepts writes again, at the place it
    was published (the records between were written with it). An input: a fact about the
    engine's disk, replayed to the actors like a venue's connection change."""

    role: ClassVar[Role] = "input"

    path: str
    writable: bool
    error: str = ""
    failures: int = 0


MarketData = QuoteTick | TradeTick | Bar | MarkPriceUpdated
AccountData = BalanceUpdated | PositionUpdated | FundingPaid
OrderData = (
    OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderCanceled
    | OrderStatusReported
    | OrderFilled
)
DecisionData = (
    PortfolioSnapshot
    | RiskBudgetChanged
    | RebalanceDecided
    | IntentApproved
    | OrderVetoed
    | DataStale
    | DataRejected
    | KillSwitchTriggered
    | KillSwitchReset
    | DeleverageRequired
)
SystemData = (
    TimerFired
    | InstrumentsLoaded
    | HandlerFailed
    | StrategyFailed
    | SessionStarted
    | SessionStopped
    | FeedAdvanced
    | VenueConnectionChanged
    | VenueMessageRejected
    | ReconcileMismatch
    | ReconcileResolved
    | JournalWriteChanged
)
Event = MarketData | AccountData | OrderData | DecisionData | SystemData
