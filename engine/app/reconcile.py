"""Reconciliation of a live venue's account with the journal's book, after a restart or a gap.

The journal's book is what the engine's own bookings explain: per asset the quantity held (all
wallets together, as the ledger counts it) and per perp the position quantity. It is rebuilt by
event sourcing, like every actor's state: :class:`ReconcileBook` folds the account and order
events of the journal (a resumed session's catch-up feeds them through the bus) and then the live
ones. Fills (:class:`~ballast.engine.kernel.events.OrderFilled`: quantity, price, fee, the perp's
realised PnL through the one cost basis of :mod:`ballast.engine.trading.position`) and funding
(:class:`~ballast.engine.kernel.events.FundingPaid`) always move it. A venue statement
(``BalanceUpdated``, ``PositionUpdated``) is adopted while the venue is trusted, so deposits and
withdrawals while running stay transfers, as the ledger books them; but inside a *window* it is
only recorded as the venue's view:

- a window opens when the venue's instruments are loaded (a session starts: on top of a past, a
  restart, the venue then catches up over REST on the fills the journal lacks and reports its
  account; without one, a fresh start, the venue's opening account is adopted and the check only
  confirms it, so the risk actor's hold at a session's start ends the same way), or when a user
  stream of the venue disconnects (a gap: the venue catches up after reconnecting; a market data
  gap is no account gap);
- when the venue says ``caught_up`` (:class:`~ballast.engine.kernel.events.VenueConnectionChanged`)
  inside a window, :class:`Reconciler` waits a short grace (a fill in flight on the WebSocket
  arrives), asks the venue for its account over REST (``Venue.account()``), publishes it (durable
  input events; an (account, asset) the venue no longer lists is stated as 0) and compares the
  book with the venue's view, exactly (``Decimal`` equality, up to the float rounding of a
  client that parses amounts as floats: :data:`FLOAT_DIGITS`). Facts still in flight on the
  streams make passing differences, so a difference counts once the next check, a grace later,
  finds it again (the same venue − journal);
- the venue's open orders are compared too: one the journal does not know (no ``SubmitOrder``
  of this engine, no order event of the venue about it: placed by hand on the account, or a
  journal that is not this account's) is a subject ``order:<client order id>``;
- agreement closes the window with :class:`~ballast.engine.kernel.events.ReconcileResolved`; what
  no fill or funding explains is one :class:`~ballast.engine.kernel.events.ReconcileMismatch` per
  subject (``balance:BTC``, ``position:BTC/USDT:USDT``, ``order:…``), and the window stays
  open: the risk actor vetoes every intent (``unreconciled``) until a later check agrees (one
  every ``recheck_s`` while a mismatch is open) or the operator accepts the venue's account
  (``ballast run --accept-venue-state``: the first check of the process records the differences
  as the detail of a ``ReconcileResolved``). A resolution adopts the venue's view as the book.

Only the window's ends are decided here, and they are journaled as input events (the REST account,
the mismatch, the resolution), so a later catch-up of the same journal rebuilds the same book and
``replay --verify`` feeds the risk actor the same verdicts. While a session catches up on its
journal (its :class:`~ballast.engine.app.catch_up.CatchUpClock` replaying) no check runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ballast.engine.app.catch_up import CatchUpClock
from ballast.engine.kernel.bus import Bus, Subscription
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.errors import JournalUnwritableError
from ballast.engine.kernel.events import (
    AccountKind,
    BalanceUpdated,
    FundingPaid,
    InstrumentsLoaded,
    Message,
    OrderEvent,
    OrderFilled,
    PositionUpdated,
    ReconcileMismatch,
    ReconcileResolved,
    VenueConnectionChanged,
)
from ballast.engine.kernel.instruments import base_of, is_perp, quote_of, settle_of
from ballast.engine.kernel.redaction import redact
from ballast.engine.trading.position import Position
from ballast.engine.trading.venue import Venue, VenueError

log = logging.getLogger(__name__)

_ZERO: Final = Decimal(0)
_READ_RETRY_S: Final = 0.5
"""A check whose read of the venue failed (a 5xx, a timeout) is tried again after this, doubling
up to ``recheck_s``: trading stays held meanwhile."""
_MAX_DETAIL: Final = 2000


@dataclass(frozen=True, slots=True)
class Difference:
    """One subject on which the journal's book and the venue disagree."""

    subject: str
    journal_value: Decimal
    venue_value: Decimal
    detail: str = "no fill or funding the venue reports explains the difference"

    @property
    def delta(self) -> Decimal:
        return self.venue_value - self.journal_value

    def describe(self) -> str:
        return f"{self.subject} journal {self.journal_value} venue {self.venue_value}"


MAX_TIES: Final = 12
"""The ties of an asset whose subsets may explain a difference (the latest ones): 4,096 sums."""

FLOAT_DIGITS: Final = Decimal("1e-14")
"""Relative difference below which a venue's figure equals the journal's: a client that
parses amounts as binary floats (ccxt's unified balances) states ~16 significant digits."""


def same(journal: Decimal, venue: Decimal) -> bool:
    """Equal, up to the float rounding of the venue's figure (:data:`FLOAT_DIGITS`)."""
    if journal == venue:
        return True
    return abs(journal - venue) <= FLOAT_DIGITS * max(abs(venue), abs(journal))


def is_user_channel(channel: str) -> bool:
    """A venue channel carrying the account (orders, fills, balances): its gap is caught up over
    REST after the reconnect (``user:spot``, ``user:futures``); market data channels are not."""
    return channel.startswith("user")


class ReconcileBook:
    """The journal's book and the venue's view (module docstring). Pure and synchronous.

    Order of facts. A venue may state a balance that already holds a fill or a funding payment
    before that event reaches the engine (another socket, a REST lookup after the stream's
    notice). An event whose venue time (``ts_event``) is before the last adopted statement of
    the wallet it settles in is taken as already in it; the wallet of a perp's cash is
    ``"futures"`` when the venue keeps a separate futures wallet of that asset (a non-zero
    statement), else ``"spot"`` (a unified account). An event at the *same* venue time as that
    statement (venues stamp to the millisecond: two funding payments settled together, each
    followed by its statement, or two fills of one instant) may or may not be in it; it is taken
    as in it, and kept as a **tie**: when the book and the venue differ on that asset by exactly
    the sum of some of its ties (at most :data:`MAX_TIES` are tried), the ties explain the
    difference (the statement held some of them, not all). A later statement clears the ties
    it supersedes. A statement older than the one held for its wallet (a REST read answered
    before the stream's latest, delivered after it) is not the venue's view and is dropped; and
    adopting a statement keeps on top of it the events already booked that are later than it
    (facts delivered before the statement that it does not hold: a payment that arrived while
    a check's resolution was on its way), the perp fills alike for a position.

    Perp positions are the fills' own: the sum of the fills since the opening statement
    (exactly once each, whatever order the streams deliver them in); a position statement is
    adopted only at the opening (before the venue's first ``caught_up``) and at a resolution.
    """

    def __init__(self) -> None:
        self.holdings: dict[str, Decimal] = {}
        """Asset → quantity the bookings explain (all wallets)."""
        self.positions: dict[str, Position] = {}
        """Perp symbol → position the fills explain."""
        self.reported: dict[tuple[AccountKind, str], Decimal] = {}
        """The venue's latest statement per (account, asset)."""
        self.reported_at: dict[tuple[AccountKind, str], int] = {}
        self.adopted_at: dict[tuple[AccountKind, str], int] = {}
        """Venue time of the last statement adopted into the book, per (account, asset)."""
        self.reported_positions: dict[str, tuple[Decimal, Decimal]] = {}
        """The venue's latest statement per perp symbol: (quantity, entry price)."""
        self.reported_positions_at: dict[str, int] = {}
        self.recent: dict[tuple[AccountKind, str], list[tuple[int, Decimal]]] = {}
        """(wallet, asset) → (venue time, delta) of the events booked after the last adopted
        statement: an adoption keeps those later than the statement on top of it."""
        self.recent_trades: dict[str, list[tuple[int, Decimal, Decimal]]] = {}
        """Perp symbol → (venue time, signed quantity, price) of the fills since the opening (or
        the last adopted statement): an adoption keeps those later than the statement."""
        self.opened = False
        """The venue caught up once: position statements are no longer adopted (the opening
        account of a fresh start is)."""
        self.window = False
        """True between a session start or a gap and the resolution of the check after it."""
        self.opening = False
        """The window of a fresh start (no past): the venue's statements are adopted."""
        self.stale = False
        """A window opened and the venue has not said ``caught_up`` since: a resolution then
        (of a check that began before a new gap) does not close the window."""
        self.open: dict[str, ReconcileMismatch] = {}
        """Mismatches not yet resolved, by subject."""
        self.has_past = False
        self.known_orders: set[str] = set()
        """Client order ids the journal knows (sent by this engine, or reported by the venue)."""
        self.ties: dict[tuple[AccountKind, str], list[Decimal]] = {}
        """(wallet, asset) → the deltas of the events taken as in the last adopted statement
        because they have its venue time (one sum per event): see the class docstring."""
        self._event: dict[tuple[AccountKind, str], Decimal] = {}
        """The tie deltas of the event being folded, summed per (wallet, asset)."""

    # ------------------------------------------------------------------ events

    def apply(self, message: Message) -> None:
        """Fold one event (others are ignored)."""
        self._fold(message)
        for key, delta in self._event.items():
            self.ties.setdefault(key, []).append(delta)
        self._event.clear()

    def _fold(self, message: Message) -> None:
        if isinstance(message, SubmitOrder | OrderEvent):
            self.known_orders.add(getattr(message, "client_order_id", ""))
        if isinstance(message, OrderFilled):
            self.fill(message)
        elif isinstance(message, FundingPaid):
            self._book(
                self._wallet(message.asset, perp=True),
                message.asset,
                message.amount,
                message.ts_event,
            )
        elif isinstance(message, BalanceUpdated):
            self.balance(message)
        elif isinstance(message, PositionUpdated):
            self.position(message)
        elif isinstance(message, InstrumentsLoaded):
            # a session starts: the venue catches up, then we compare (a restart) or confirm
            # its opening account (a fresh start)
            self.window = self.stale = True
            self.opening = not self.has_past
        elif isinstance(message, VenueConnectionChanged):
            if message.state == "disconnected" and is_user_channel(message.channel):
                if self.has_past:
                    self.window = self.stale = True
                    self.opening = False
            elif message.state == "caught_up":
                self.opened = True
                self.stale = False
        elif isinstance(message, ReconcileMismatch):
            self.open[message.subject] = message
        elif isinstance(message, ReconcileResolved):
            self.resolve()

    def fill(self, fill: OrderFilled) -> None:
        self.has_past = True
        signed = fill.qty if fill.side == "buy" else -fill.qty
        ts = fill.ts_event
        perp = is_perp(fill.symbol)
        if perp:
            self.recent_trades.setdefault(fill.symbol, []).append((ts, signed, fill.price))
            position = self.positions.setdefault(fill.symbol, Position())
            settle = settle_of(fill.symbol)
            self._book(
                self._wallet(settle, perp=True), settle, position.trade(signed, fill.price), ts
            )
        else:
            base, quote = base_of(fill.symbol), quote_of(fill.symbol)
            self._book("spot", base, signed, ts)
            self._book("spot", quote, -signed * fill.price, ts)
        if fill.fee:
            wallet = self._wallet(fill.fee_asset, perp=perp)
            self._book(wallet, fill.fee_asset, -fill.fee, ts)

    def balance(self, event: BalanceUpdated) -> None:
        self.has_past = True
        key = (event.account, event.asset)
        if event.ts_event < self.reported_at.get(key, -1):
            return  # an older view than the one held (a REST read overtaken by the stream)
        self.reported[key] = event.free + event.locked
        self.reported_at[key] = event.ts_event
        booked = self.recent.get(key)
        if booked:  # those before it are in it, and in any later statement
            booked[:] = [b for b in booked if b[0] >= event.ts_event]
        if not self.window or self.opening:
            self._adopt_at(key, event.ts_event)
            self._adopt_balance(event.asset)

    def position(self, event: PositionUpdated) -> None:
        self.has_past = True
        if event.ts_event < self.reported_positions_at.get(event.symbol, -1):
            return  # an older view than the one held
        self.reported_positions[event.symbol] = (event.qty, event.entry_price)
        self.reported_positions_at[event.symbol] = event.ts_event
        trades = self.recent_trades.get(event.symbol)
        if trades:  # those before it are in it, and in any later statement
            trades[:] = [t for t in trades if t[0] >= event.ts_event]
        if not self.opened and (not self.window or self.opening):
            self._adopt_position(event.symbol)  # the opening

    def resolve(self) -> None:
        """The venue's view becomes the book (a check agreed, or the operator accepted it)."""
        self.open.clear()
        self.window = self.stale  # a gap since the check began: the next caught_up checks again
        self.opening = False
        for key, ts in self.reported_at.items():
            self._adopt_at(key, ts)
        for asset in {asset for _, asset in self.reported}:
            self._adopt_balance(asset)
        for symbol in self.reported_positions:
            self._adopt_position(symbol)

    def _adopt_at(self, key: tuple[AccountKind, str], ts_event: int) -> None:
        """A statement of ``key`` at ``ts_event`` is adopted: it holds the earlier ties."""
        if ts_event != self.adopted_at.get(key):
            self.ties.pop(key, None)
        self.adopted_at[key] = ts_event
        later: list[tuple[int, Decimal]] = []
        for ts, delta in self.recent.pop(key, ()):
            if ts > ts_event:
                later.append((ts, delta))
            elif ts == ts_event:  # booked, now taken as in the statement: a tie
                self.ties.setdefault(key, []).append(delta)
        if later:
            self.recent[key] = later

    def _adopt_balance(self, asset: str) -> None:
        """The asset's holding becomes the venue's statements, plus the events booked that are
        later than the statement of their wallet (they arrived before it, it does not hold
        them)."""
        later = (d for (_, a), booked in self.recent.items() if a == asset for _, d in booked)
        self.holdings[asset] = self.venue_balance(asset) + sum(later, _ZERO)

    def _adopt_position(self, symbol: str) -> None:
        """The perp's position becomes the venue's statement, plus the fills later than it."""
        qty, entry = self.reported_positions[symbol]
        stated_at = self.reported_positions_at.get(symbol, -1)
        later = [t for t in self.recent_trades.pop(symbol, ()) if t[0] > stated_at]
        position = Position()
        position.qty, position.cost = qty, qty * entry
        for _, signed, price in later:
            position.trade(signed, price)
        current = self.positions.setdefault(symbol, Position())
        if current.qty != position.qty:  # the same quantity keeps the fills' exact cost basis
            current.qty, current.cost = position.qty, position.cost
        if later:
            self.recent_trades[symbol] = later

    def _wallet(self, asset: str, *, perp: bool) -> AccountKind:
        """Where a perp's cash settles: the futures wallet if the venue keeps one for it."""
        return "futures" if perp and self.reported.get(("futures", asset)) else "spot"

    def _book(self, wallet: AccountKind, asset: str, delta: Decimal, ts_event: int) -> None:
        """Add ``delta`` unless the last adopted statement of the wallet already holds it."""
        self.has_past = True
        adopted = self.adopted_at.get((wallet, asset), -1)
        if ts_event == adopted:
            key = (wallet, asset)
            self._event[key] = self._event.get(key, _ZERO) + delta
        if ts_event <= adopted:
            return
        self.holdings[asset] = self.holdings.get(asset, _ZERO) + delta
        self.recent.setdefault((wallet, asset), []).append((ts_event, delta))

    # ------------------------------------------------------------------ views

    def venue_balance(self, asset: str) -> Decimal:
        return sum((v for (_, a), v in self.reported.items() if a == asset), _ZERO)

    def differences(self) -> list[Difference]:
        """Every subject where the book and the venue's view differ, sorted."""
        out: list[Difference] = []
        assets = set(self.holdings) | {asset for _, asset in self.reported}
        for asset in sorted(assets):
            mine, theirs = self.holdings.get(asset, _ZERO), self.venue_balance(asset)
            if not same(mine, theirs) and not self._ties_explain(asset, mine, theirs):
                out.append(Difference(f"balance:{asset}", mine, theirs))
        for symbol in sorted(set(self.positions) | set(self.reported_positions)):
            position = self.positions.get(symbol)
            mine = position.qty if position is not None else _ZERO
            theirs = self.reported_positions.get(symbol, (_ZERO, _ZERO))[0]
            if not same(mine, theirs):
                out.append(Difference(f"position:{symbol}", mine, theirs))
        return out

    def _ties_explain(self, asset: str, mine: Decimal, theirs: Decimal) -> bool:
        """Some of the asset's ties (class docstring), added to the book, give the venue's
        figure: the last statement did not hold them."""
        ties = [d for (_, a), deltas in sorted(self.ties.items()) if a == asset for d in deltas]
        ties = ties[-MAX_TIES:]
        sums = {_ZERO}
        for delta in ties:
            sums |= {total + delta for total in sums}
        return any(total and same(mine + total, theirs) for total in sums)

    def missing_from(self, statements: Iterable[Message]) -> list[tuple[AccountKind, str] | str]:
        """The (account, asset) balances and perp symbols the venue stated as non-zero before
        but does not list in ``statements`` (a complete account): they are 0 now."""
        balances = {(e.account, e.asset) for e in statements if isinstance(e, BalanceUpdated)}
        positions = {e.symbol for e in statements if isinstance(e, PositionUpdated)}
        out: list[tuple[AccountKind, str] | str] = [
            key for key, value in sorted(self.reported.items()) if value and key not in balances
        ]
        out += [
            s for s, (q, _) in sorted(self.reported_positions.items()) if q and s not in positions
        ]
        return out


_TYPES: Final = (  # each message type once (a subscription covers the subclasses)
    SubmitOrder,
    OrderEvent,
    FundingPaid,
    BalanceUpdated,
    PositionUpdated,
    InstrumentsLoaded,
    VenueConnectionChanged,
    ReconcileMismatch,
    ReconcileResolved,
)


class Reconciler:
    """Runs the checks of the module docstring on a session's bus against its live venue.

    :meth:`install` before the session starts (so it catches up on the journal with the actors);
    :meth:`close` when the session stops.
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        venue: Venue,
        *,
        accept_venue_state: bool = False,
        grace_s: float = 0.5,
        recheck_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.venue = venue
        self.accept_venue_state = accept_venue_state
        self.grace_s = grace_s
        self.recheck_s = recheck_s
        self.book = ReconcileBook()
        self.checks = 0
        self._pending: dict[str, Decimal] = {}
        """Subject → venue − journal of the differences the last check found."""
        self._task: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []

    def install(self) -> None:
        for message_type in _TYPES:
            self._subs.append(self.bus.subscribe(message_type, self.on_event, name="Reconciler"))

    @property
    def replaying(self) -> bool:
        return isinstance(self.clock, CatchUpClock) and self.clock.replaying

    def on_event(self, message: Message) -> None:
        self.book.apply(message)
        if (
            isinstance(message, VenueConnectionChanged)
            and message.state == "caught_up"
            and self.book.window
            and not self.replaying
            and (self._task is None or self._task.done())
        ):
            self._task = asyncio.create_task(self._run(), name="reconcile")

    async def close(self) -> None:
        for sub in self._subs:
            self.bus.unsubscribe(sub)
        self._subs.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _unknown_orders(self) -> list[Difference]:
        """The venue's open orders the journal does not know (``order:<client order id>``):
        not this engine's, so not in its book (an order placed by hand on the account, or a
        journal that is not this account's)."""
        out: list[Difference] = []
        for order in await self.venue.open_orders():
            if order.client_order_id in self.book.known_orders:
                continue
            out.append(
                Difference(
                    f"order:{order.client_order_id}",
                    _ZERO,
                    order.qty - order.filled_qty,
                    f"an open order the journal does not know: {order.side} {order.qty} "
                    f"{order.symbol} ({order.state}, venue id {order.venue_order_id})",
                )
            )
        return out

    async def _run(self) -> None:
        """Check after the grace; a difference is confirmed by a second check after the grace
        (the same difference again), then checked every ``recheck_s`` while it is open."""
        delay = self.grace_s
        failures = 0
        while self.book.window and not self.book.stale:
            await asyncio.sleep(delay)
            try:
                await self.check()
            except VenueError as exc:
                log.warning("reconcile: cannot read the venue's account: %s", redact(str(exc)))
                # a failed read is no difference: tried again soon, backing off to recheck_s
                failures += 1
                first = max(self.grace_s, _READ_RETRY_S)
                delay = min(self.recheck_s, first * 2 ** min(failures - 1, 16))
                continue
            except JournalUnwritableError as exc:  # checked again once the disk takes writes
                log.warning("reconcile: %s", exc)
                delay = self.recheck_s
                continue
            failures = 0
            delay = self.recheck_s if self.book.open or not self._pending else self.grace_s

    async def check(self) -> list[Difference]:
        """One check: the venue's account over REST, published, compared; the verdict published
        (see the module docstring). A difference seen for the first time is only noted: facts
        in flight on the streams (a statement that already holds a fill not yet delivered) make
        passing ones, so a mismatch is published when the next check finds the same difference
        (venue − journal) again. Returns the differences found."""
        statements = list(await self.venue.account())
        now = self.clock.now_ns()
        for event in statements:
            await self.bus.publish_durable(event)
        for gone in self.book.missing_from(statements):
            if isinstance(gone, tuple):
                zero: Message = BalanceUpdated(now, now, gone[0], gone[1], _ZERO, _ZERO)
            else:
                zero = PositionUpdated(now, now, gone, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, None)
            await self.bus.publish_durable(zero)
        self.checks += 1
        differences = self.book.differences() + await self._unknown_orders()
        name = self.venue.name
        seen, self._pending = self._pending, {d.subject: d.delta for d in differences}
        if not differences:
            detail = "the venue's account agrees with the journal"
            if self.book.open:
                detail += f" again ({', '.join(sorted(self.book.open))})"
            await self.bus.publish_durable(ReconcileResolved(now, now, name, detail))
            return differences
        if self.accept_venue_state and self.checks == 1:
            listed = "; ".join(d.describe() for d in differences)
            detail = f"operator accepted the venue's account (--accept-venue-state): {listed}"
            log.warning("reconcile: %s", detail)
            self.book.known_orders.update(
                d.subject.removeprefix("order:")
                for d in differences
                if d.subject.startswith("order:")
            )
            await self.bus.publish_durable(ReconcileResolved(now, now, name, detail[:_MAX_DETAIL]))
            return differences
        for difference in differences:
            subject = difference.subject
            if seen.get(subject) != difference.delta and subject not in self.book.open:
                log.info("reconcile: %s differs; checking again", difference.describe())
                continue  # not confirmed yet
            known = self.book.open.get(subject)
            if known is not None and (known.journal_value, known.venue_value) == (
                str(difference.journal_value),
                str(difference.venue_value),
            ):
                continue  # still open as published
            log.error(
                "reconcile: %s does not reconcile: no fill or funding explains it; trading "
                "halted until it does (or restart with --accept-venue-state)",
                difference.describe(),
            )
            await self.bus.publish_durable(
                ReconcileMismatch(
                    now,
                    now,
                    name,
                    subject,
                    str(difference.journal_value),
                    str(difference.venue_value),
                    difference.detail,
                )
            )
        return differences
