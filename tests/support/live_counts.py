"""The live tests' should-be-zero figures as numbers, for the reliability campaign's table.

:mod:`tests.support.live_exchange` says what is wrong (lists of problems, for a readable
assertion); these count the same things from the engine's journal and the exchange's state, so a
test can :func:`~tests.support.reliability.record` what it measured before it asserts.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from tests.support.live_exchange import ExchangeState, JournalView


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
