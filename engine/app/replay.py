"""Replay: re-feed a journal's recorded inputs through freshly built actors.

Inputs (market data, account and venue order events, timer firings) are published again, in seq
order, on a simulated clock set to each input's original ``ts_init`` and whose own timers never
fire (the journal already holds every TimerFired). With ``verify``, every output the actors emit
(decisions, commands, failures) is compared, in order, with the outputs the journal recorded;
timestamps are left out of the comparison because a live clock moves between an input and the
outputs it causes. The first difference stops the replay and is reported with its seq.

A journal may hold several sessions; each SessionStarted rebuilds the actors from the
configuration that session recorded, and each SessionStopped stops them (what they publish while
stopping is compared too). A session without SessionStopped was cut by a killed process: output
its last inputs caused may never have been committed, so extra output at its end is no divergence.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ballast.adapters.silent_venue import SilentVenue
from ballast.engine.app.catch_up import catch_up
from ballast.engine.app.session import ActorFactory, build_actors, user_actors
from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.codec import to_json_dict
from ballast.engine.kernel.config import Config, config_from_json
from ballast.engine.kernel.config_diff import differing, shown, with_keys
from ballast.engine.kernel.events import Message, SessionStarted, SessionStopped
from ballast.engine.kernel.journal import JournalReader


@dataclass(frozen=True)
class Divergence:
    """The first place where replayed output differs from recorded output."""

    seq: int
    """Seq of the recorded output that was not matched (or of the last record, for extra output)."""
    expected: Message | None
    actual: Message | None

    def describe(self) -> str:
        exp = "nothing" if self.expected is None else _show(self.expected)
        act = "nothing" if self.actual is None else _show(self.actual)
        return f"divergence at seq {self.seq}:\n  recorded: {exp}\n  replayed: {act}"


@dataclass(frozen=True)
class ReplayResult:
    records: int
    inputs: int
    outputs_compared: int
    sessions: int
    seconds: float
    divergence: Divergence | None

    @property
    def ok(self) -> bool:
        return self.divergence is None


def _show(message: Message) -> str:
    body = msgspec.json.encode(to_json_dict(message)).decode()
    return f"{type(message).__name__} {body}"


def _comparable(message: Message) -> Message:
    return msgspec.structs.replace(message, ts_event=0, ts_init=0)


class _Replayer:
    def __init__(
        self, path: Path, factory: ActorFactory, config: Config | None, verify: bool
    ) -> None:
        self.path = path
        self.note: Callable[[str], None] = lambda _: None
        self.factory = factory
        self.config_override = config
        self.verify = verify
        self.clock = SimulatedClock(timers=False)
        self.bus: Bus | None = None
        self.actors: list[Actor] = []
        self.produced: deque[Message] = deque()
        self.recorded: deque[tuple[int, Message]] = deque()
        self.compared = 0
        self.inputs = 0
        self.sessions = 0
        self.stopped = False
        self.divergence: Divergence | None = None

    async def start_session(self, started: SessionStarted) -> None:
        await self.stop_session()
        config = self._config_for(started)
        if started.resumed_from_seq:
            await self._resume_session(started, config)
            return
        self.bus = Bus(self.clock)
        self.bus.session_id = started.session_id
        self.bus.subscribe_all(self._capture, name="replay.capture")
        self.clock.set_time(started.ts_init)
        self.stopped = False
        venue = SilentVenue() if started.venue else None  # venue facts are re-fed from the journal
        self.actors = build_actors(config, self.bus, self.clock, venue, self.factory)
        for actor in self.actors:
            await actor.start()
        self.sessions += 1

    def _config_for(self, started: SessionStarted) -> Config:
        """The session's recorded (effective) configuration; with a given one, the recorded one
        with every key the given one changes, each named in a note. A key the recording command
        derived (``source_config_json``: a backtest widens ``risk.stale_after_s``) keeps its
        recorded value when the given configuration has the value it was derived from."""
        recorded = config_from_json(started.config_json) if started.config_json else Config()
        given = self.config_override
        if given is None:
            return recorded
        source = config_from_json(started.source_config_json or started.config_json or "{}")
        changed = differing(given, source)
        session = started.session_id
        for key in changed:
            self.note(
                f"config: session {session}: {key}: recorded {shown(source, key)}, "
                f"given {shown(given, key)}: replayed with the given value"
            )
        for key in differing(recorded, source):
            if key not in changed:
                self.note(
                    f"config: session {session}: {key}: recorded {shown(recorded, key)}, derived "
                    f"by the command from {shown(source, key)} (the given value): kept"
                )
        return with_keys(recorded, given, changed)

    async def _resume_session(self, started: SessionStarted, config: Config) -> None:
        """A session that resumed the journal's state: its actors caught up on every earlier
        record (silently) before going live, as
        :meth:`ballast.engine.app.session.Session._resume` did."""
        async with JournalReader(self.path) as reader:
            first = await reader.messages(end_seq=1)
            self.clock = SimulatedClock(first[0].ts_init if first else 0, timers=False)
            self.bus = Bus(self.clock)
            venue = SilentVenue() if started.venue else None
            self.actors = build_actors(config, self.bus, self.clock, venue, self.factory)
            for actor in self.actors:
                await actor.start()
            records = reader.records(end_seq=started.resumed_from_seq)
            await catch_up(self.bus, self.actors, self.clock, records)
        self.bus.session_id = started.session_id
        self.bus.subscribe_all(self._capture, name="replay.capture")
        self.clock.set_time(started.ts_init)
        self.stopped = False
        self.sessions += 1
        # No on_resume: what the actors learned from the venue then is journaled, and re-fed.

    async def stop_session(self) -> None:
        for actor in reversed(self.actors):
            await actor.stop()
        self.actors = []

    def _capture(self, message: Message) -> None:
        if self.verify and type(message).role == "output":
            self.produced.append(message)

    async def feed(self, seq: int, message: Message) -> None:
        if self.bus is None:  # a journal must start with SessionStarted; tolerate a bare one
            await self.start_session(
                SessionStarted(message.ts_event, message.ts_init, "replay", "", "", "{}")
            )
        assert self.bus is not None
        self.clock.set_time(message.ts_init)
        self.bus.republish(seq, message)
        for actor in self.actors:
            if actor._tasks:
                await actor.idle()
        self.inputs += 1

    def compare(self) -> None:
        while self.produced and self.recorded:
            actual = self.produced.popleft()
            seq, expected = self.recorded.popleft()
            self.compared += 1
            if _comparable(actual) != _comparable(expected):
                self.divergence = Divergence(seq, expected, actual)
                return

    def finish(self, last_seq: int) -> None:
        self.compare()
        if self.divergence is not None:
            return
        if self.recorded:
            seq, expected = self.recorded[0]
            self.divergence = Divergence(seq, expected, None)
        elif self.produced and self.stopped:
            # A session without SessionStopped was cut (killed process): output its last inputs
            # caused may never have been committed, so only a cleanly stopped one can have extra.
            self.divergence = Divergence(last_seq, None, self.produced[0])


async def replay(
    path: str | Path,
    *,
    verify: bool = False,
    actors: ActorFactory = user_actors,
    config: Config | None = None,
    notes: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Replay ``path``; with ``verify``, stop at the first divergence and report it.

    Each session replays with the configuration it recorded. With ``config``, every key where
    ``config`` differs from what the session's command was given is replayed with ``config``'s
    value, and each such key (and each key the command derived, kept) is passed to ``notes`` as
    one line before the session replays."""
    started = time.perf_counter()
    rp = _Replayer(Path(path), actors, config, verify)
    if notes is not None:
        rp.note = notes
    records = 0
    last_seq = 0
    async with JournalReader(path) as reader:
        async for rec in reader.records():
            records += 1
            last_seq = rec.seq
            message = rec.message
            role = type(message).role
            if isinstance(message, SessionStarted):
                if verify:
                    rp.finish(rec.seq)
                    if rp.divergence is not None:
                        break
                await rp.stop_session()  # a killed session: what its actors say now was never said
                rp.produced.clear()
                await rp.start_session(message)
            elif isinstance(message, SessionStopped):
                rp.clock.set_time(message.ts_init)
                await rp.stop_session()  # outputs published while stopping were recorded before
                rp.stopped = True
            elif role == "input":
                await rp.feed(rec.seq, message)
            elif role == "output" and verify:
                rp.recorded.append((rec.seq, message))
            if verify:
                rp.compare()
                if rp.divergence is not None:
                    break
    if verify and rp.divergence is None:
        rp.finish(last_seq)
    await rp.stop_session()
    return ReplayResult(
        records=records,
        inputs=rp.inputs,
        outputs_compared=rp.compared,
        sessions=rp.sessions,
        seconds=time.perf_counter() - started,
        divergence=rp.divergence if verify else None,
    )
