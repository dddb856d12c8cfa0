"""The live tests' should-be-zero figures as numbers, for the reliability campaign's table.

:mod:`tests.support.live_exchange` says what is wrong (lists of problems, for a readable
assertion); these count the same things from the engine's journal and the exchange's state, so a
test can :func:`~tests.support.reliability.record` what it measured before it asserts.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from tests.support.live_exchange import Exchange, ExchangeState, JournalView, read_journal
from tests.support.reliability import record


def duplicate_order_count(journal: JournalView, state: ExchangeState) -> int:
    """Orders of ours at the exchange beyond one per intent the journal sent: a client order id
    received twice, an order the journal never sent, a second order for one intent each count."""
    ours = state.ours()
    sent = {s.client_order_id: s.intent_id for s in journal.submits}
    intents = {sent[o.client_order_id] for o in ours if o.client_order_id in sent}
    return len(ours) - len(intents)


def lost_fill_count(journal: JournalView, state: ExchangeState) -> int:
    """Trades of ours at the exchange that the journal does not hold as the same fill (trade id,
    client order id, quantity and price) exactly once."""
    ours = {o.order_id: o.client_order_id for o in state.ours()}
    booked: dict[str, list[tuple[str, object, object]]] = {}
    for fill in journal.fills:
        booked.setdefault(fill.trade_id, []).append((fill.client_order_id, fill.qty, fill.price))
    lost = 0
    for trade in state.trades:
        coid = trade.client_order_id or ours.get(trade.order_id, "")
        if not coid.startswith("bl-"):
            continue
        if booked.get(trade.trade_id) != [(coid, trade.qty, trade.price)]:
            lost += 1
    return lost


def journal_gap_count(path: Path) -> int:
    """Sequence numbers missing between the journal's first and last record (read-only)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        count, first, last = conn.execute(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM events"
        ).fetchone()
    return 0 if first is None else int(last) - int(first) + 1 - int(count)


def tracebacks(text: str) -> list[str]:
    """The last line of each traceback in a log (what was raised)."""
    found = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = next(
                (j for j in range(index + 1, len(lines)) if not lines[j].startswith((" ", "\t"))),
                len(lines) - 1,
            )
            found.append(lines[end].strip())
    return found


async def measured(journal_path: Path, exchange: Exchange, logs: Iterable[Path]) -> dict[str, int]:
    """What the journal, the exchange and the engines' logs show now: duplicate orders, lost
    fills, journal gaps and tracebacks (``crashes``). When the exchange or the journal cannot be
    read (a test that failed on it), the tracebacks alone."""
    counts = {"crashes": sum(len(tracebacks(log.read_text(errors="replace"))) for log in logs)}
    try:
        state = await exchange.state()
        journal = await read_journal(journal_path)
        gaps = journal_gap_count(journal_path)
    except (AssertionError, KeyError, OSError, sqlite3.Error, ValueError):
        return counts
    counts["duplicate_orders"] = duplicate_order_count(journal, state)
    counts["lost_fills"] = lost_fill_count(journal, state)
    counts["journal_gaps"] = gaps
    return counts


@contextlib.asynccontextmanager
async def recorded(
    part: str, journal_path: Path, exchange: Exchange, logs: str = "engine*.log"
) -> AsyncIterator[dict[str, int]]:
    """Record ``part`` on the way out, even when the test failed inside: the counts the test put
    into the dict it gets (e.g. ``kills``, ``faults.ws_drop``) and :func:`measured`'s, the
    engines' logs being ``logs`` beside the journal."""
    counts: dict[str, int] = {}
    try:
        yield counts
    finally:
        found = await measured(journal_path, exchange, journal_path.parent.glob(logs))
        record(part, **counts, **found)
