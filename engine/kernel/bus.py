"""The message bus: in-process publish/subscribe by message type, on one event loop.

Ordering. ``publish`` journals the message first (assigning its ``seq``), then queues it for
dispatch. Dispatch is breadth-first: every subscriber of a message is called before the next
message is dispatched, and messages published by handlers are queued behind it. So every
subscriber sees messages in one global order, which is the journal's order.

Handlers are plain (synchronous) callables. A handler's exception is caught, counted, and
published as :class:`~ballast.engine.kernel.events.HandlerFailed`; the bus goes on.

Async consumers (anything that awaits I/O: order routing, metrics export) read from a
:class:`Mailbox`. When a mailbox lags behind its ``coalesce_after`` depth, market data is
coalesced per (type, symbol): a newer message replaces an older one still waiting, latest wins,
and the replaced one is counted. Account, order and every other message is never dropped or
reordered.

Gate. One gate (:meth:`Bus.set_gate`; a session installs
:class:`~ballast.engine.trading.market_gate.MarketGate`) judges every market data message when it is
dispatched, before any subscriber or mailbox sees it. A message the gate rejects stays in the
journal (what the feed said is a fact, and replay re-feeds it), but is delivered to no one: the
gate's verdict (a ``DataRejected``) is published in its place. So every consumer of market data sees
accepted data only, without a check of its own.

Back-pressure. Producers outside the bus (feeds, venues) use ``await bus.send(message)``, which
waits while the journal's backlog is above its high-water mark. ``await bus.publish_durable``
returns only once the message (and everything before it) is fsync'd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.events import HandlerFailed, MarketEvent, Message
from ballast.engine.kernel.journal import Journal
from ballast.engine.kernel.redaction import redact

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[Any], None]
_Route = tuple[tuple["Subscription", ...], tuple["Mailbox", ...], bool]
Gate = Callable[[int, MarketEvent], Message | None]
"""Judges one market data message (its seq, the message): None admits it, anything else is the
verdict published instead of delivering it."""


class Subscription:
    __slots__ = ("handler", "message_type", "name")

    def __init__(self, message_type: type[Message], handler: Handler, name: str) -> None:
        self.message_type = message_type
        self.handler = handler
        self.name = name


class Mailbox:
    """An ordered queue of (seq, message) for one async consumer.

    While the queue is at least ``coalesce_after`` deep, a new market message supersedes an older
    one of the same (type, symbol) still waiting: the older one is skipped, the newer keeps its
    place in the global order. ``coalesce_after=None`` never coalesces.
    """

    def __init__(self, name: str, *, coalesce_after: int | None = 1024) -> None:
        self.name = name
        self.coalesce_after = coalesce_after
        self._queue: deque[tuple[int, Message]] = deque()
        self._latest: dict[tuple[type[Message], str], int] = {}
        self._superseded: set[int] = set()
        self._ready = asyncio.Event()
        self.coalesced = 0
        self.max_depth = 0

    def __len__(self) -> int:
        return len(self._queue) - len(self._superseded)

    def put(self, seq: int, message: Message) -> None:
        if isinstance(message, MarketEvent):
            key = (type(message), getattr(message, "symbol", ""))
            older = self._latest.get(key)
            lagging = self.coalesce_after is not None and len(self) >= self.coalesce_after
            if older is not None and lagging:
                self._superseded.add(older)
                self.coalesced += 1
            self._latest[key] = seq
        self._queue.append((seq, message))
        self.max_depth = max(self.max_depth, len(self))
        self._ready.set()

    def get_nowait(self) -> tuple[int, Message] | None:
        """The next message still current, or None when empty."""
        while self._queue:
            seq, message = self._queue.popleft()
            if seq in self._superseded:
                self._superseded.discard(seq)
                continue
            if isinstance(message, MarketEvent):
                key = (type(message), getattr(message, "symbol", ""))
                if self._latest.get(key) == seq:
                    del self._latest[key]
            return seq, message
        self._ready.clear()
        return None

    async def get(self) -> tuple[int, Message]:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            await self._ready.wait()


class Bus:
    """Publish/subscribe on one event loop, journaling every message before dispatch."""

    def __init__(self, clock: Clock, journal: Journal | None = None) -> None:
        self.clock = clock
        self.journal = journal
        self._subs: dict[type[Message], list[Subscription]] = {}
        self._all: list[Subscription] = []
        self._routes: dict[type[Message], _Route] = {}
        self._mailboxes: list[tuple[Mailbox, tuple[type[Message], ...]]] = []
        self._queue: deque[tuple[int, Message]] = deque()
        self._dispatching = False
        self._gate: Gate | None = None
        self._seq = journal.last_seq if journal is not None else 0
        self.published = 0
        self.session_id = ""
        """Set by the session (and by replay, from SessionStarted): ids that must be unique across
        sessions, such as client order ids, are derived from it."""
        self.handler_errors = 0
        self.handler_errors_by_name: dict[str, int] = {}

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self, message_type: type[M], handler: Callable[[M], None], *, name: str | None = None
    ) -> Subscription:
        """Call ``handler`` for every message of ``message_type`` (and its subclasses)."""
        sub = Subscription(message_type, handler, name or _name_of(handler))
        self._subs.setdefault(message_type, []).append(sub)
        self._routes.clear()
        return sub

    def subscribe_all(self, handler: Handler, *, name: str | None = None) -> Subscription:
        sub = Subscription(Message, handler, name or _name_of(handler))
        self._all.append(sub)
        self._routes.clear()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for subs in (*self._subs.values(), self._all):
            if sub in subs:
                subs.remove(sub)
        self._routes.clear()

    def mailbox(
        self,
        types: Iterable[type[Message]],
        *,
        name: str,
        coalesce_after: int | None = 1024,
    ) -> Mailbox:
        """A queue fed with every message of ``types``, for an async consumer."""
        box = Mailbox(name, coalesce_after=coalesce_after)
        self._mailboxes.append((box, tuple(types)))
        self._routes.clear()
        return box

    def set_gate(self, gate: Gate | None) -> None:
        """Judge every market data message with ``gate`` before delivery (see the module
        docstring); None delivers everything."""
        self._gate = gate
        self._routes.clear()

    def _route(self, cls: type[Message]) -> _Route:
        subs: list[Subscription] = []
        for klass in cls.__mro__:
            subs.extend(self._subs.get(klass, ()))
        subs.extend(self._all)
        boxes = tuple(box for box, types in self._mailboxes if issubclass(cls, types))
        gated = self._gate is not None and issubclass(cls, MarketEvent)
        routed = (tuple(subs), boxes, gated)
        self._routes[cls] = routed
        return routed

    # ------------------------------------------------------------------ publishing

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def pending(self) -> int:
        """Messages published but not yet dispatched."""
        return len(self._queue)

    def publish(self, message: Message) -> int:
        """Journal ``message``, dispatch it (after anything queued before it), return its seq."""
        seq = self.journal.append(message) if self.journal is not None else self._seq + 1
        self._seq = seq
        self.published += 1
        self._queue.append((seq, message))
        if not self._dispatching:
            self._dispatch()
        return seq

    def republish(self, seq: int, message: Message) -> None:
        """Dispatch a recorded message under its recorded seq (replay only: no journal)."""
        if self.journal is not None:
            raise RuntimeError("republish is for replay buses, which have no journal")
        self._seq = seq
        self.published += 1
        self._queue.append((seq, message))
        if not self._dispatching:
            self._dispatch()

    @contextlib.contextmanager
    def replaying(self) -> Iterator[None]:
        """While inside, the bus has no journal: recorded messages are dispatched with
        :meth:`republish` and what handlers publish is not journaled (a resumed session catching
        up on its journal, :mod:`ballast.engine.app.catch_up`). The journal's seqs go on after
        it."""
        journal = self.journal
        self.journal = None
        try:
            yield
        finally:
            self.journal = journal
            self._seq = journal.last_seq if journal is not None else self._seq

    async def send(self, message: Message) -> int:
        """``publish`` for producers outside the bus: waits while the journal is backlogged, and
        yields to the loop once per journal batch so the group commit runs while a tight
        producer (a backtest, a replay) keeps publishing."""
        seq = self.publish(message)
        if self.paced(seq):
            await self.pace(seq)
        return seq

    def paced(self, seq: int) -> bool:
        """Whether the producer of ``seq`` must ``await pace(seq)`` (what ``send`` does after
        publishing): the journal is backlogged, or ``seq`` ends one of its batches. False without
        a journal. A producer publishing many messages checks this and awaits only when True."""
        journal = self.journal
        return journal is not None and (
            journal.backlog > journal.high_water or seq % journal.batch_size == 0
        )

    async def pace(self, seq: int) -> None:
        """Wait while the journal is backlogged, or yield to the loop once per journal batch."""
        journal = self.journal
        if journal is not None:
            if journal.backlog > journal.high_water:
                await journal.wait_writable()
            elif seq % journal.batch_size == 0:
                await asyncio.sleep(0)

    async def publish_durable(self, message: Message) -> int:
        """``publish``, then wait until the message is fsync'd in the journal."""
        seq = self.publish(message)
        await self.sync(seq)
        return seq

    async def sync(self, seq: int | None = None) -> None:
        """Wait until everything up to ``seq`` is durable (no-op without a journal)."""
        if self.journal is not None:
            await self.journal.sync(seq)

    def now(self) -> int:
        return self.clock.now_ns()

    def _dispatch(self) -> None:
        self._dispatching = True
        queue = self._queue
        routes = self._routes
        try:
            while queue:
                seq, message = queue.popleft()
                cls = type(message)
                subs, boxes, gated = routes.get(cls) or self._route(cls)
                if gated:  # a rejected message's verdict is published in its place
                    gate = self._gate
                    # gated: a MarketEvent (typing.cast would cost a call per message)
                    verdict = None if gate is None else gate(seq, message)  # type: ignore[arg-type]
                    if verdict is not None:
                        self.publish(verdict)
                        continue
                for box in boxes:
                    box.put(seq, message)
                for sub in subs:
                    try:
                        sub.handler(message)
                    except Exception as exc:  # isolate: one handler never kills the loop
                        self._handler_failed(sub, seq, message, exc)
        finally:
            self._dispatching = False

    def _handler_failed(
        self, sub: Subscription, seq: int, message: Message, exc: Exception
    ) -> None:
        self.handler_errors += 1
        self.handler_errors_by_name[sub.name] = self.handler_errors_by_name.get(sub.name, 0) + 1
        error = redact(f"{type(exc).__name__}: {exc}")[:500]
        log.error(
            "handler %s failed on %s seq=%d: %s", sub.name, type(message).__name__, seq, error
        )
        if isinstance(message, HandlerFailed):
            return  # never recurse on failures of failure handlers
        now = self.clock.now_ns()
        self.publish(
            HandlerFailed(
                ts_event=now,
                ts_init=now,
                handler=sub.name,
                event_type=type(message).__name__,
                seq=seq,
                error=error,
            )
        )


def _name_of(handler: Callable[..., Any]) -> str:
    owner = getattr(handler, "__self__", None)
    func = getattr(handler, "__name__", repr(handler))
    return f"{type(owner).__name__}.{func}" if owner is not None else str(func)
