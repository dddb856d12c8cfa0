"""What a paper run's journal says of its past: the book, the feed position, where it ends.

``ballast run`` reads its journal once before starting. Every record goes through two folds: the
simulated exchange's (:class:`~ballast.adapters.sim.recovery.BookRebuild`, which rebuilds the venue
the run trades against, balances, positions, open orders and id counters, and checks it reproduces
what the journal recorded) and the feed's (:class:`~ballast.engine.app.paper_feed.FeedPosition`).
The session's actors catch up on the same records later, from the journal itself
(:mod:`ballast.engine.app.catch_up`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ballast.adapters.sim.recovery import BookRebuild
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.paper_feed import FeedPosition, FeedResume
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import SessionStarted
from ballast.engine.kernel.journal import JournalReader, damaged

PAPER_CLOCK = "LiveClock"


@dataclass(frozen=True, slots=True)
class PaperPast:
    last_seq: int
    """The journal's last seq: the session resumes from it."""
    sessions: int
    feed: FeedResume | None
    """Where the feed stopped; None if it never sent a bar."""
    book_inputs: int
    """Exchange inputs the book was rebuilt from (market data, orders, cancels, funding)."""
    last_session: SessionStarted | None = None
    """The journal's last session (its id and the configuration it ran with)."""


async def paper_past(path: Path, venue: SimulatedVenue) -> PaperPast | None:
    """Rebuild ``venue``'s exchange (a fresh one) from the paper sessions of the journal at
    ``path``; None when there is none (no file, or no session yet). A journal holding a session
    that was not a paper run on this venue (a backtest) is refused: its book is not this one."""
    if not _has_content(path):
        return None
    book = BookRebuild(venue.exchange)
    feed = FeedPosition()
    last_seq = sessions = 0
    last: SessionStarted | None = None
    async with JournalReader(path) as reader:
        verdict = await reader.integrity_check()
        if verdict != "ok":  # refused as the writer would, with how to salvage it
            raise damaged(path, f"quick_check: {verdict}")
        async for rec in reader.records():
            message = rec.message
            if isinstance(message, SessionStarted):
                _check_paper(path, message, venue.name)
                sessions += 1
                last = message
            book.apply(rec.seq, message)
            feed.apply(message)
            last_seq = rec.seq
    book.finish()
    if sessions == 0:
        return None
    return PaperPast(last_seq, sessions, feed.resume, book.applied, last)


def _has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _check_paper(path: Path, started: SessionStarted, venue: str) -> None:
    if started.clock == PAPER_CLOCK and started.venue == venue:
        return
    raise BallastError(
        f"{path}: holds session {started.session_id} (clock {started.clock}, venue "
        f"{started.venue or 'none'}), not a paper run on venue {venue}: a paper run resumes "
        "only its own sessions; use another journal"
    )
