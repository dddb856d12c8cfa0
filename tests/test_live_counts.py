"""The campaign's counts of duplicate orders, lost fills and journal gaps, on made-up journals and
exchange states (and a real SQLite journal with a record taken out)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import Message, OrderFilled
from ballast.engine.kernel.journal import Journal
from tests.conftest import START_NS
from tests.support.live_counts import duplicate_order_count, journal_gap_count, lost_fill_count
from tests.support.live_exchange import ExchangeState, JournalView


def submit(intent: str, coid: str) -> SubmitOrder:
    return SubmitOrder(
        ts_event=START_NS,
        ts_init=START_NS,
        intent_id=intent,
        client_order_id=coid,
        symbol="BTC/USDT",
        side="buy",
        order_type="market",
        qty=D("0.1"),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )


def fill(coid: str, trade: str, qty: str = "0.1", price: str = "60000") -> OrderFilled:
    return OrderFilled(
        ts_event=START_NS,
        ts_init=START_NS,
        client_order_id=coid,
        venue_order_id=f"v-{coid}",
        trade_id=trade,
        symbol="BTC/USDT",
        side="buy",
        qty=D(qty),
        price=D(price),
        fee=D(0),
        fee_asset="USDT",
        liquidity="taker",
    )


def journal(*messages: Message) -> JournalView:
    return JournalView(list(messages), gap_free=True, integrity="ok", count=len(messages))


def exchange(orders: list[str], trades: list[tuple[str, str, str, str]]) -> ExchangeState:
    """Orders by client order id; trades as (trade id, client order id, qty, price)."""
    data: dict[str, Any] = {
        "orders": [
            {"clientOrderId": c, "orderId": f"v-{c}", "symbol": "BTCUSDT", "status": "FILLED"}
            for c in orders
        ],
        "trades": [
            {"id": t, "clientOrderId": c, "orderId": f"v-{c}", "qty": q, "price": p}
            for t, c, q, p in trades
        ],
    }
    return ExchangeState.from_json(data)


def test_one_order_per_intent_is_no_duplicate() -> None:
    sent = journal(submit("i1", "bl-1"), submit("i2", "bl-2"))
    assert duplicate_order_count(sent, exchange(["bl-1", "bl-2", "other-9"], [])) == 0


def test_duplicates_count_each_order_beyond_one_per_intent() -> None:
    sent = journal(submit("i1", "bl-1"), submit("i2", "bl-2"), submit("i2", "bl-3"))
    # bl-1 received twice, intent i2 sent as two orders, bl-9 never sent by the journal
    state = exchange(["bl-1", "bl-1", "bl-2", "bl-3", "bl-9"], [])
    assert duplicate_order_count(sent, state) == 3


def test_fills_booked_once_as_the_exchange_made_them_are_not_lost() -> None:
    booked = journal(fill("bl-1", "t1"), fill("bl-1", "t2", qty="0.05"))
    state = exchange(["bl-1"], [("t1", "bl-1", "0.1", "60000"), ("t2", "bl-1", "0.05", "60000")])
    assert lost_fill_count(booked, state) == 0


def test_missing_wrong_and_doubled_fills_are_lost() -> None:
    booked = journal(
        fill("bl-1", "t1"),
        fill("bl-1", "t2", price="59999"),
        fill("bl-2", "t3"),
        fill("bl-2", "t3"),
    )
    state = exchange(
        ["bl-1", "bl-2", "bl-3"],
        [
            ("t1", "bl-1", "0.1", "60000"),  # booked as made
            ("t2", "bl-1", "0.1", "60000"),  # booked at another price
            ("t3", "bl-2", "0.1", "60000"),  # booked twice
            ("t4", "bl-3", "0.1", "60000"),  # not booked
            ("t5", "other-1", "0.1", "60000"),  # not ours
        ],
    )
    assert lost_fill_count(booked, state) == 3


async def test_journal_gaps_count_the_missing_seqs(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    assert journal_gap_count(path) == 0
    async with Journal(path) as writer:
        for n in range(6):
            writer.append(fill("bl-1", f"t{n}"))
        assert await writer.commit() == 6
    assert journal_gap_count(path) == 0
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq IN (2, 4)")
    assert journal_gap_count(path) == 2
