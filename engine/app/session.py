"""An engine session: journal + bus + clock + actors, with an explicit lifecycle.

Backtest, paper, live and replay differ only in what is injected here (clock, journal, venue,
actor factory), never in global mode flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from ballast.engine import __version__
from ballast.engine.app.catch_up import CatchUpClock, GatedVenue, catch_up
from ballast.engine.app.pipeline import pipeline_actors
from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock, SimulatedClock
from ballast.engine.kernel.config import Config, config_to_json
from ballast.engine.kernel.errors import ConfigError, JournalUnwritableError
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    JournalWriteChanged,
    Message,
    OrderSubmitted,
    SessionStarted,
    SessionStopped,
)
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.kernel.plugins import load_object
from ballast.engine.kernel.redaction import redact
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.venue import Venue

log = logging.getLogger(__name__)

ActorFactory = Callable[[Config, Bus, Clock], Sequence[Actor]]


def _session_id(config: Config, clock: Clock) -> str:
    """Random on a live clock; on a simulated clock derived from the config and the start time,
    so the same backtest writes the same journal."""
    if isinstance(clock, SimulatedClock):
        seed = f"{config_to_json(config)}@{clock.now_ns()}".encode()
        return hashlib.sha256(seed).hexdigest()[:12]
    return uuid.uuid4().hex[:12]


def user_actors(config: Config, bus: Bus, clock: Clock) -> list[Actor]:
    """Actors named in ``engine.actors`` as ``module:Class``.

    A class with a ``from_config(config, bus, clock)`` classmethod is built through it, any other
    is called as ``Class(bus, clock)``.
    """
    return [
        _user_actor(spec, f"engine.actors[{index}]", config, bus, clock)
        for index, spec in enumerate(config.engine.actors)
    ]


def _user_actor(spec: str, key: str, config: Config, bus: Bus, clock: Clock) -> Actor:
    """Build one ``module:Class`` actor; every problem is a ConfigError naming ``key``."""
    cls = load_object(spec, key=key)
    factory = getattr(cls, "from_config", None)
    if factory is None and not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigError(
            key, f"{spec!r} is {cls!r}, not an Actor (ballast.engine.kernel.actor.Actor)"
        )
    try:
        actor = factory(config, bus, clock) if factory is not None else cls(bus, clock)
    except Exception as exc:  # a plug-in's constructor judged its config
        raise ConfigError(
            key, redact(f"{spec} failed to build: {type(exc).__name__}: {exc}")
        ) from None
    if not isinstance(actor, Actor):
        raise ConfigError(key, f"{spec} did not build an Actor (ballast.engine.kernel.actor.Actor)")
    return actor


def build_actors(
    config: Config, bus: Bus, clock: Clock, venue: Venue | None, extra: ActorFactory
) -> list[Actor]:
    """The trading pipeline (when a venue is given), then the extra actors, on a bus whose market
    data has passed the market gate first (:mod:`ballast.engine.trading.market_gate`)."""
    MarketGate.from_config(config, clock).install(bus)
    actors: list[Actor] = []
    if venue is not None:
        actors.extend(pipeline_actors(config, bus, clock, venue))
    actors.extend(extra(config, bus, clock))
    return actors


class Session:
    """``async with Session(config, clock, journal) as session:`` runs actors on a bus."""

    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        journal: Journal | None,
        venue: Venue | None = None,
        actors: ActorFactory = user_actors,
        session_id: str | None = None,
        resume_from: int = 0,
        source: Config | None = None,
        account_on_resume: bool = True,
        venue_filter: Callable[[Message], bool] | None = None,
    ) -> None:
        """``resume_from`` > 0: the journal's records up to that seq are this session's past; its
        actors catch up on them before going live (:mod:`ballast.engine.app.catch_up`; the clock
        must be a
        :class:`~ballast.engine.app.catch_up.CatchUpClock`). ``source``: the configuration
        ``config`` was derived from by the command (recorded beside it when they differ).
        ``account_on_resume`` False: a resumed session does not publish the venue's account
        before :meth:`Venue.start`; the venue reports it after its catch-up fills (a live venue),
        so the ledger books the fills the journal lacks first, then the statement.
        ``venue_filter``: False drops a venue event before it is journaled (a fact the journal
        already holds, reported again by a live venue's catch-up)."""
        self.config = config
        self.clock = clock
        self.journal = journal
        self.venue = venue
        self.bus = Bus(clock, journal)
        self.session_id = session_id or _session_id(config, clock)
        self.bus.session_id = self.session_id
        self._factory = actors
        self.actors: list[Actor] = []
        self.resume_from = resume_from
        self.source = source
        self.account_on_resume = account_on_resume
        self.venue_filter = venue_filter
        self.market_muted = False
        """Set by :meth:`mute_market` when a graceful stop begins."""
        self.stop_reason = "completed"
        """Recorded in SessionStopped: ``completed``, ``max_runtime``, ``signal:SIGTERM``, … (set
        by whoever ends the session); an exception leaving the session records ``error: …``."""
        if resume_from and not isinstance(clock, CatchUpClock):
            raise TypeError("a resumed session needs a CatchUpClock")
        if journal is not None:
            journal.state_observers.append(self._journal_state)

    def _journal_state(self, error: str | None) -> None:
        """The journal became unwritable (``error``) or writable again (None): a
        ``JournalWriteChanged`` for the actors (the risk actor vetoes every intent meanwhile)."""
        journal = self.journal
        if journal is None or self.bus.journal is None:
            return  # not while catching up on the journal's past
        now = self.clock.now_ns()
        self.bus.publish(
            JournalWriteChanged(
                now,
                now,
                path=str(journal.path),
                writable=error is None,
                error=error or "",
                failures=journal.write_failures,
            )
        )

    async def __aenter__(self) -> Self:
        now = self.clock.now_ns()
        await self.bus.publish_durable(
            SessionStarted(
                ts_event=now,
                ts_init=now,
                session_id=self.session_id,
                version=__version__,
                clock=self.clock.kind,
                config_json=config_to_json(self.config),
                venue=self.venue.name if self.venue is not None else "",
                resumed_from_seq=self.resume_from,
                source_config_json=self._source_json(),
            )
        )
        try:
            # The instruments are fetched before the actors go live (a live venue's REST may
            # wait, for request weight): the session's InstrumentsLoaded is then its first input,
            # before any timer of a resumed session fires (the risk actor holds intents from it
            # until the venue caught up and reconciled).
            instruments = await self.venue.instruments() if self.venue is not None else None
            if self.resume_from:
                await self._resume()
            else:
                self.actors = build_actors(
                    self.config, self.bus, self.clock, self.venue, self._factory
                )
                for actor in self.actors:
                    await actor.start()
            if self.venue is not None and instruments is not None:
                await self._load_venue(self.venue, instruments)
            if self.resume_from:
                for actor in self.actors:
                    await actor.on_resume()
        except BaseException as exc:  # stop what started and record why, then re-raise
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        log.info("session %s started with %d actors", self.session_id, len(self.actors))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if e is not None:
            self.stop_reason = f"error: {type(e).__name__}"
        for actor in reversed(self.actors):
            await actor.stop()
        if self.journal is not None:
            with contextlib.suppress(ValueError):
                self.journal.state_observers.remove(self._journal_state)
        now = self.clock.now_ns()
        if self.journal is None or not self.journal.failed:
            stopped = SessionStopped(
                ts_event=now, ts_init=now, session_id=self.session_id, reason=self.stop_reason
            )
            try:
                await self.bus.publish_durable(stopped)
            except JournalUnwritableError as exc:  # closing the journal tries a last time
                log.error("session %s stopped; %s", self.session_id, exc)

    def _source_json(self) -> str:
        if self.source is None:
            return ""
        source = config_to_json(self.source)
        return "" if source == config_to_json(self.config) else source

    async def _resume(self) -> None:
        """Build the actors, catch them up on the journal's records up to ``resume_from`` (on the
        records' time, silent, nothing journaled), then go live and let them reconcile."""
        assert self.journal is not None
        assert isinstance(self.clock, CatchUpClock)
        gate = GatedVenue(self.venue) if self.venue is not None else None
        self.actors = build_actors(self.config, self.bus, self.clock, gate, self._factory)
        async with JournalReader(self.journal.path) as reader:
            first = await reader.messages(end_seq=1)
            with self.bus.replaying():
                self.clock.replay_from(first[0].ts_init if first else self.clock.now_ns())
                for actor in self.actors:
                    await actor.start()
                caught = await catch_up(
                    self.bus, self.actors, self.clock, reader.records(end_seq=self.resume_from)
                )
                self.bus.session_id = self.session_id
        self.clock.go_live()
        if gate is not None:
            gate.open()
        log.info(
            "session %s caught up on %d inputs of %d records",
            self.session_id,
            caught.inputs,
            caught.records,
        )

    async def _load_venue(self, venue: Venue, instruments: Mapping[str, Instrument]) -> None:
        """Attach the venue and publish what it knows before any market data: its instruments,
        then the account (so the portfolio starts from the venue's balances), then start it
        (:meth:`Venue.start`: a live venue's streams and REST catch-up). A resumed session with
        ``account_on_resume`` False leaves the account to ``start()``, which reports it after the
        fills the journal lacks. The actors' ``on_resume`` (the router's order lookups) runs
        after this, so it sees the caught-up fills."""
        venue.attach(self._venue_sink, market_now=self._venue_market_now)
        now = self.clock.now_ns()
        self.bus.publish(
            InstrumentsLoaded(
                now, now, venue.name, tuple(instruments[s] for s in sorted(instruments))
            )
        )
        if not self.resume_from or self.account_on_resume:
            for event in await venue.account():
                await self.bus.publish_durable(event)
        await venue.start()

    def mute_market(self) -> None:
        """From now on the venue's market data is dropped (neither journaled nor delivered): a
        stopping session makes no new decisions on new prices, while the orders it is sending
        still get their answers (order and account events go on)."""
        self.market_muted = True

    async def _venue_sink(self, event: Message) -> int:
        """Order and account events are durable before anything acts on them (a fill is never
        acknowledged before it is on disk); market data is group-committed (or dropped once
        :meth:`mute_market` was called)."""
        if self.venue_filter is not None and not self.venue_filter(event):
            return self.bus.last_seq
        if event.stream in ("order", "account") and not isinstance(event, OrderSubmitted):
            seq = self.bus.publish(event)
            # An unwritable journal (disk full) keeps the event pending in order and writes it
            # when it can; meanwhile nothing is sent (the risk actor vetoes every intent) and a
            # restart catches the venue's fills up over REST from the last one written.
            with contextlib.suppress(JournalUnwritableError):
                await self.bus.sync(seq)
            return seq
        if self.market_muted and event.stream == "market":
            return self.bus.last_seq
        bus = self.bus
        seq = bus.publish(event)  # bus.send, without its coroutine when it would not wait
        if bus.journal is not None and bus.paced(seq):
            await bus.pace(seq)
        return seq

    def _venue_market_now(self, event: Message) -> bool:
        """:meth:`_venue_sink` for market data, synchronous: False (not taken) when the journal
        is backlogged, so the venue awaits the sink, which waits for it. Market data only: an
        order or account event is made durable before anything acts on it (the async sink)."""
        if event.stream != "market":
            return False
        if self.venue_filter is not None and not self.venue_filter(event):
            return True
        if self.market_muted:
            return True
        bus = self.bus
        journal = bus.journal
        if journal is not None and journal.backlog > journal.high_water:
            return False
        bus.publish(event)
        return True

    @property
    def busy(self) -> bool:
        """Whether a message is pending or an actor has background work: ``await idle()`` would
        wait (a driver checks this first, to skip the await when it would return at once)."""
        if self.bus.pending:
            return True
        for actor in self.actors:  # noqa: SIM110 - no generator per call (once per event)
            if actor._tasks:
                return True
        return False

    async def idle(self) -> None:
        """Wait until no message is pending and no actor has background work."""
        while True:
            busy = [actor for actor in self.actors if actor._tasks]
            if not busy and self.bus.pending == 0:
                return
            for actor in busy:
                await actor.idle()
            await asyncio.sleep(0)
