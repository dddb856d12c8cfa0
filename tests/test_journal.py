"""The SQLite journal: seq assignment, group commit, durability, back-pressure, reading, schema."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_MILLISECOND, NS_PER_SECOND
from ballast.engine.kernel.codec import MESSAGE_TYPES, encode
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.errors import (
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalLockedError,
    JournalSchemaError,
)
from ballast.engine.kernel.events import (
    AssetDecision,
    AssetState,
    BalanceUpdated,
    Bar,
    DataRejected,
    DataStale,
    DeleverageRequired,
    FeedAdvanced,
    FundingPaid,
    HandlerFailed,
    InstrumentsLoaded,
    IntentApproved,
    JournalWriteChanged,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    PortfolioSnapshot,
    PositionUpdated,
    QuoteTick,
    RebalanceDecided,
    ReconcileMismatch,
    ReconcileResolved,
    RiskBudgetChanged,
    SessionStarted,
    SessionStopped,
    StrategyFailed,
    TimerFired,
    TradeTick,
    VenueConnectionChanged,
    VenueMessageRejected,
)
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.journal import KIND_KEY, SCHEMA_VERSION, Journal, JournalReader, Record
from ballast.engine.kernel.journal_lock import JournalLock, lock_path
from tests.conftest import START_NS
from tests.support.waiting import eventually

# Never flushes on its own within a test: commits happen only when the test asks (or on close).
IDLE = 3600.0


def quote(i: int, *, symbol: str = "BTC/USDT", ts_event: int | None = None) -> QuoteTick:
    ts = START_NS + i * 1_000 if ts_event is None else ts_event
    return QuoteTick(
        ts,
        ts + 7,
        symbol=symbol,
        bid=Decimal("37000.10") + i,
        ask=Decimal("37000.20") + i,
        bid_size=Decimal("0.5"),
        ask_size=Decimal("1.25"),
    )


def quotes(n: int) -> list[QuoteTick]:
    return [quote(i) for i in range(1, n + 1)]


def raw_sql(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Edit a journal file behind Ballast's back, with the standard library."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(sql, params)
        conn.commit()


async def open_reader(path: Path) -> None:
    async with JournalReader(path):
        pass


async def collect_seqs(reader: JournalReader, into: list[int]) -> None:
    async for rec in reader.records():
        into.append(rec.seq)


async def read_all(path: Path, **filters: object) -> list[Record]:
    async with JournalReader(path) as reader:
        return [rec async for rec in reader.records(**filters)]  # type: ignore[arg-type]


def intent(intent_id: str = "int-1") -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id,
        symbol="ETH/USDT:USDT",
        side="sell",
        qty=Decimal("1.2500"),
        order_type="limit",
        price=Decimal("2000.01"),
        reduce_only=True,
        reason="overlay above band",
    )


def one_of_each(ts: int = START_NS) -> list[Message]:
    """One realistic instance of every journaled message type."""
    t = ts
    messages: list[Message] = [
        quote(1, ts_event=t),
        TradeTick(
            t, t + 1, "BTC/USDT", Decimal("37001.5"), Decimal("0.00012"), "buy", "trade-98765"
        ),
        TradeTick(t, t + 1, "BTC/USDT", Decimal("37001.5"), Decimal("3"), None, "trade-98766"),
        Bar(
            t,
            t + 2,
            symbol="SOL/USDT",
            interval_s=3600,
            open=Decimal("60.10"),
            high=Decimal("61.00"),
            low=Decimal("59.95"),
            close=Decimal("60.50"),
            volume=Decimal("123456.789"),
        ),
        MarkPriceUpdated(
            t,
            t + 3,
            symbol="BTC/USDT:USDT",
            mark=Decimal("37010.12345678"),
            index=Decimal("37009.9"),
            funding_rate=Decimal("-0.000125"),
            next_funding_ns=t + 8 * NS_PER_HOUR,
        ),
        BalanceUpdated(t, t + 4, "spot", "USDT", Decimal("10000.000001"), Decimal("0")),
        PositionUpdated(
            t,
            t + 5,
            symbol="ETH/USDT:USDT",
            qty=Decimal("-1.5"),
            entry_price=Decimal("2010.5"),
            mark_price=Decimal("2000.25"),
            unrealized_pnl=Decimal("15.375"),
            margin=Decimal("300.0375"),
            liquidation_price=None,
        ),
        FundingPaid(
            t,
            t + 6,
            symbol="ETH/USDT:USDT",
            position_qty=Decimal("-1.5"),
            mark_price=Decimal("2000.25"),
            rate=Decimal("0.0001"),
            amount=Decimal("0.30003750"),
            asset="USDT",
        ),
        OrderSubmitted(
            t, t + 7, "cid-1", "int-1", "ETH/USDT:USDT", "sell", "limit", Decimal("1.25"), None
        ),
        OrderAccepted(t, t + 8, "cid-1", "venue-123", "ETH/USDT:USDT"),
        OrderRejected(t, t + 9, "cid-2", "ETH/USDT:USDT", "insufficient margin"),
        OrderCanceled(t, t + 10, "cid-3", "ETH/USDT:USDT", "expired"),
        OrderFilled(
            t,
            t + 11,
            client_order_id="cid-1",
            venue_order_id="venue-123",
            trade_id="fill-1",
            symbol="ETH/USDT:USDT",
            side="sell",
            qty=Decimal("0.75"),
            price=Decimal("2000.01"),
            fee=Decimal("0.000600003"),
            fee_asset="USDT",
            liquidity="maker",
        ),
        OrderStatusReported(
            t,
            t + 28,
            client_order_id="cid-1",
            venue_order_id="venue-123",
            symbol="ETH/USDT:USDT",
            side="sell",
            qty=Decimal("1.25"),
            filled_qty=Decimal("0.75"),
            avg_price=Decimal("2000.01"),
            state="partially_filled",
        ),
        PortfolioSnapshot(
            t,
            t + 12,
            trigger="price",
            nav=Decimal("25000.123456789012345678901234"),
            cash=Decimal("10000"),
            gross_leverage=Decimal("1.05"),
            net_leverage=Decimal("0.95"),
            margin_used=Decimal("300.0375"),
            realized_pnl=Decimal("-12.5"),
            unrealized_pnl=Decimal("15.375"),
            price_pnl=Decimal("2.875"),
            funding_pnl=Decimal("0.30003750"),
            fees_paid=Decimal("0.000600003"),
            transfers=Decimal("0"),
            peak_nav=Decimal("25100"),
            drawdown=Decimal("0.003978"),
            assets=(
                AssetState(
                    asset="BTC",
                    spot_qty=Decimal("0.2"),
                    spot_price=Decimal("37000"),
                    spot_value=Decimal("7400"),
                    perp_qty=Decimal("0"),
                    perp_price=Decimal("37010.12345678"),
                    perp_notional=Decimal("0"),
                    perp_entry_price=Decimal("0"),
                    perp_unrealized_pnl=Decimal("0"),
                    perp_funding=Decimal("0"),
                    perp_liquidation_price=None,
                    net_exposure=Decimal("7400"),
                    weight=Decimal("0.296"),
                    spot_weight=Decimal("0.296"),
                ),
                AssetState(
                    asset="ETH",
                    spot_qty=Decimal("5"),
                    spot_price=Decimal("2000"),
                    spot_value=Decimal("10000"),
                    perp_qty=Decimal("-1.5"),
                    perp_price=Decimal("2000.25"),
                    perp_notional=Decimal("-3000.375"),
                    perp_entry_price=Decimal("2010.5"),
                    perp_unrealized_pnl=Decimal("15.375"),
                    perp_funding=Decimal("0.30003750"),
                    perp_liquidation_price=Decimal("2950.1"),
                    net_exposure=Decimal("6999.625"),
                    weight=Decimal("0.28"),
                    spot_weight=Decimal("0.4"),
                ),
            ),
        ),
        RiskBudgetChanged(
            t,
            t + 13,
            regime="stressed",
            volatility=Decimal("0.8312"),
            band_abs=Decimal("0.02"),
            band_rel=None,
            max_gross_leverage=Decimal("1.5"),
            overlay_scale=Decimal("0.5"),
            allow_overlay_longs=False,
            reason="realized vol above 80%",
        ),
        RebalanceDecided(
            t,
            t + 14,
            decision_id="dec-1",
            trigger="band",
            mode="auto",
            regime="calm",
            reasoning="ETH weight 0.28 above band 0.27",
            assets=(
                AssetDecision(
                    asset="ETH",
                    weight=Decimal("0.28"),
                    target=Decimal("0.25"),
                    band_low=Decimal("0.23"),
                    band_high=Decimal("0.27"),
                    action="sell spot",
                ),
            ),
            intents=(intent("int-1"), intent("int-2")),
        ),
        IntentApproved(t, t + 15, intent("int-1"), cut_reason=""),
        OrderVetoed(t, t + 16, "int-2", "ETH/USDT:USDT", "max_order_notional", "3000 > 2500"),
        DataStale(
            t, t + 17, "SOL/USDT", t - NS_PER_SECOND, NS_PER_SECOND, 500 * NS_PER_MILLISECOND
        ),
        DataRejected(t, t + 18, "SOL/USDT", "price_jump", "60.5 -> 6050"),
        KillSwitchTriggered(t, t + 19, "drawdown", "NAV down 12% in 1h"),
        KillSwitchReset(t, t + 20, by="operator@example"),
        DeleverageRequired(
            t,
            t + 20,
            reason="liquidation_distance",
            asset="BTC",
            symbol="BTC/USDT:USDT",
            side="buy",
            notional=Decimal("12345.6789"),
            measure=Decimal("0.1888"),
            limit=Decimal("0.2"),
            target=Decimal("0.22"),
            detail="BTC perp qty -1 mark 67000 liquidation 79651.8: distance 0.1888 < 0.2",
        ),
        TimerFired(t, t + 21, name="rebalance"),
        InstrumentsLoaded(
            t,
            t + 29,
            venue="paper",
            instruments=(
                Instrument(
                    symbol="BTC/USDT",
                    kind="spot",
                    base="BTC",
                    quote="USDT",
                    tick_size=Decimal("0.01"),
                    lot_size=Decimal("0.00001"),
                    min_qty=Decimal("0.00001"),
                    min_notional=Decimal("5"),
                ),
                Instrument(
                    symbol="ETH/USDT:USDT",
                    kind="perp",
                    base="ETH",
                    quote="USDT",
                    tick_size=Decimal("0.01"),
                    lot_size=Decimal("0.001"),
                    min_qty=Decimal("0.001"),
                    min_notional=Decimal("20"),
                    maker_fee=Decimal("0.0002"),
                    taker_fee=Decimal("0.0005"),
                ),
            ),
        ),
        HandlerFailed(t, t + 22, "Valuer.on_quote", "QuoteTick", 42, "ZeroDivisionError: x"),
        StrategyFailed(t, t + 23, "overlay", "KeyError: 'ETH'"),
        SessionStarted(t, t + 24, "sess-1", "0.1.0", "simulated", '{"mode": "paper"}'),
        SessionStopped(t, t + 25, "sess-1", "signal"),
        FeedAdvanced(t, t + 25, t - NS_PER_HOUR, 6),
        VenueConnectionChanged(t, t + 25, "binance", "user:futures", "disconnected", "EOF", 2),
        ReconcileMismatch(t, t + 25, "binance", "balance:BTC", "1.5", "1.25", "unexplained"),
        ReconcileResolved(t, t + 25, "binance", "balances and positions agree"),
        JournalWriteChanged(t, t + 25, "var/journal.db", False, "SQLITE_FULL: disk full", 3),
        VenueMessageRejected(
            t, t + 25, "binance", "user:spot", "malformed_json", 'JSONDecodeError: {"e":'
        ),
        SubmitOrder(
            t,
            t + 26,
            intent_id="int-1",
            client_order_id="cid-1",
            symbol="ETH/USDT:USDT",
            side="sell",
            order_type="limit",
            qty=Decimal("1.25"),
            price=Decimal("2000.01"),
            reduce_only=True,
            post_only=True,
            time_in_force="GTX",
        ),
        CancelOrder(t, t + 27, "cid-1", "ETH/USDT:USDT", "replaced"),
    ]
    return messages


def decimals_as_text(message: msgspec.Struct) -> object:
    """Every field, with decimals as their exact text (so 1.10 and 1.1 differ)."""
    return msgspec.to_builtins(message, builtin_types=())


# --------------------------------------------------------------------------- seq assignment


async def test_append_assigns_gap_free_seq_from_one(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db", flush_interval_s=IDLE) as journal:
        assert journal.opened_at_seq == 0
        assert journal.last_seq == 0
        seqs = [journal.append(m) for m in quotes(50)]
        assert seqs == list(range(1, 51))
        assert journal.last_seq == 50
    records = await read_all(tmp_path / "j.db")
    assert [r.seq for r in records] == list(range(1, 51))
    assert [r.message for r in records] == quotes(50)


async def test_reopen_continues_after_last_seq(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for m in quotes(10):
            journal.append(m)
    async with Journal(path) as journal:
        assert journal.opened_at_seq == 10
        assert journal.last_seq == journal.committed_seq == journal.durable_seq == 10
        assert journal.append(quote(11)) == 11
        assert journal.append(quote(12)) == 12
    async with Journal(path) as journal:
        assert journal.opened_at_seq == 12
    records = await read_all(path)
    assert [r.seq for r in records] == list(range(1, 13))
    assert [r.message for r in records] == quotes(12)


async def test_reopen_of_empty_journal_starts_at_one(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path):
        pass
    async with Journal(path) as journal:
        assert journal.opened_at_seq == 0
        assert journal.append(quote(1)) == 1


async def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "j.db"
    async with Journal(path) as journal:
        journal.append(quote(1))
    assert [r.seq for r in await read_all(path)] == [1]


# --------------------------------------------------------------------------- commit, round trip


async def test_commit_makes_records_visible_to_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE) as journal:
        for m in quotes(5):
            journal.append(m)
        assert journal.committed_seq == 0
        assert journal.backlog == 5
        async with JournalReader(path) as reader:
            assert await reader.last_seq() == 0
            assert await journal.commit() == 5
            assert journal.committed_seq == 5
            assert journal.backlog == 0
            assert await reader.last_seq() == 5
            assert await reader.messages() == quotes(5)
            # A commit is a group commit: one transaction for the whole batch.
            assert journal.commits == 1
            # Commit with nothing pending changes nothing.
            assert await journal.commit() == 5
            assert journal.commits == 1


async def test_every_message_type_round_trips_exactly(tmp_path: Path) -> None:
    messages = one_of_each()
    assert {type(m).__name__ for m in messages} == set(MESSAGE_TYPES)

    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for m in messages:
            journal.append(m)
        await journal.commit()
    records = await read_all(path)

    assert [r.seq for r in records] == list(range(1, len(messages) + 1))
    for rec, original in zip(records, messages, strict=True):
        assert rec.message == original
        assert type(rec.message) is type(original)
        assert rec.type == type(original).__name__
        assert rec.ts_event == original.ts_event
        assert rec.ts_init == original.ts_init
        # Decimals come back digit for digit, not merely numerically equal.
        assert decimals_as_text(rec.message) == decimals_as_text(original)
        assert encode(rec.message) == encode(original)


class Stray(msgspec.Struct, frozen=True, tag="Stray", array_like=True):
    """Shaped like a message, but not in the codec's union: no journal could read it back."""

    ts_event: int
    ts_init: int


async def test_a_message_outside_the_union_is_refused_before_it_takes_a_seq(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        with pytest.raises(JournalError, match="Stray is not in the codec's message union"):
            journal.append(cast(Message, Stray(START_NS, START_NS)))
        assert journal.append(TimerFired(START_NS, START_NS, "check")) == 1
        await journal.commit()
    assert [rec.seq for rec in await read_all(path)] == [1]


async def test_decimals_keep_their_exact_digits(tmp_path: Path) -> None:
    values = [
        Decimal("1.10"),
        Decimal("0.000000000000000000000000001"),
        Decimal("-123456789012345678901234567890.123456789"),
        Decimal("1E+3"),
        Decimal("0E-8"),
    ]
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for i, v in enumerate(values):
            journal.append(BalanceUpdated(START_NS + i, START_NS + i, "futures", "USDT", v, -v))
    records = await read_all(path)
    got = [(r.message.free, r.message.locked) for r in records]  # type: ignore[attr-defined]
    assert [(str(a), str(b)) for a, b in got] == [(str(v), str(-v)) for v in values]


# --------------------------------------------------------------------------- durability


async def test_sync_makes_everything_durable(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db", flush_interval_s=IDLE) as journal:
        for m in quotes(7):
            journal.append(m)
        assert journal.durable_seq == 0
        assert await journal.sync() == 7
        assert journal.durable_seq == journal.committed_seq == journal.last_seq == 7
        assert journal.backlog == 0


async def test_a_durable_write_on_the_loops_thread(tmp_path: Path) -> None:
    """durable_on_loop: the fsync'd batch is written without the hand-over to SQLite's thread;
    group commits still go there; a reader sees both, in order."""
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE, durable_on_loop=True) as journal:
        for m in quotes(5):
            journal.append(m)
        await journal.commit()  # a group commit: on SQLite's thread
        journal.append(quote(6))
        journal.append(quote(7))
        assert await journal.sync() == 7
        assert (journal.committed_seq, journal.durable_seq, journal.commits) == (7, 7, 2)
        await journal.set_meta("note", "after a write on the loop")
    assert [r.seq for r in await read_all(path)] == list(range(1, 8))


async def test_a_durable_write_on_the_loops_thread_takes_no_loop_iteration(
    tmp_path: Path,
) -> None:
    """The order path's latency: with durable_on_loop and the writer idle, ``sync`` writes and
    fsyncs inline and returns without a loop iteration (no task on either side of the write),
    so nothing queued on the loop runs in between; with a group commit in flight on SQLite's
    thread it waits for it, then writes after it, in order."""
    path = tmp_path / "j.db"
    loop = asyncio.get_running_loop()
    async with Journal(path, flush_interval_s=IDLE, durable_on_loop=True) as journal:
        journal.append(quote(1))
        ran: list[int] = []
        loop.call_soon(ran.append, 1)
        assert await journal.sync() == 1
        assert ran == []  # the callback queued before the sync has not run yet
        assert (journal.durable_seq, journal.commits) == (1, 1)
        await asyncio.sleep(0)
        assert ran == [1]

        for i in (2, 3, 4):
            journal.append(quote(i))
        group = asyncio.ensure_future(journal.commit())  # on SQLite's thread, holding the lock
        await asyncio.sleep(0)
        journal.append(quote(5))
        assert await journal.sync() == 5
        await group
        assert (journal.committed_seq, journal.durable_seq) == (5, 5)
    assert [r.seq for r in await read_all(path)] == list(range(1, 6))


async def test_sync_of_an_already_durable_seq_is_a_no_op(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db", flush_interval_s=IDLE) as journal:
        for m in quotes(3):
            journal.append(m)
        assert await journal.sync() == 3
        commits = journal.commits
        journal.append(quote(4))
        journal.append(quote(5))

        assert await journal.sync(2) == 3
        assert await journal.sync(3) == 3
        # Nothing was written: the two newer records are still waiting.
        assert journal.commits == commits
        assert journal.committed_seq == 3
        assert journal.backlog == 2

        assert await journal.sync(4) >= 4  # a pending seq is written and fsync'd
        assert journal.durable_seq >= 4


async def test_sync_after_a_plain_commit_makes_it_durable(tmp_path: Path) -> None:
    async with Journal(tmp_path / "j.db", flush_interval_s=IDLE) as journal:
        for m in quotes(4):
            journal.append(m)
        await journal.commit()
        assert (journal.committed_seq, journal.durable_seq) == (4, 0)
        assert await journal.sync() == 4
        assert journal.commits == 1  # nothing left to insert, only the fsync


async def test_close_commits_and_syncs_pending_records(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = await Journal(path, flush_interval_s=IDLE).open()
    for m in quotes(9):
        journal.append(m)
    await journal.close()
    assert journal.durable_seq == 9
    await journal.close()  # safe to call twice
    assert [r.message for r in await read_all(path)] == quotes(9)


async def test_a_simulation_journal_waits_for_the_disk_only_at_close(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = await Journal(path, flush_interval_s=IDLE, durable_sync=False).open()
    for m in quotes(9):
        journal.append(m)
    assert await journal.sync(5) == 0  # returns at once: nothing written yet
    assert journal.committed_seq == 0
    await journal.commit()  # the group commit works as usual
    assert (journal.committed_seq, journal.durable_seq) == (9, 0)
    journal.append(quotes(10)[-1])
    await journal.close()
    assert journal.durable_seq == 10
    assert [r.message for r in await read_all(path)] == quotes(10)


@pytest.mark.parametrize("yields", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("method", ["sync", "commit"])
async def test_cancelling_a_waiting_caller_loses_nothing(
    tmp_path: Path, method: str, yields: int
) -> None:
    """A caller of sync()/commit() that is cancelled (shutdown, a timeout) while its batch is
    being written must not take the batch with it: no gap, no open transaction, no dead journal.
    """
    path = tmp_path / "j.db"
    n = 3000
    async with Journal(path, flush_interval_s=IDLE, batch_size=10**9) as journal:
        for m in quotes(n):
            journal.append(m)
        waiter = asyncio.create_task(getattr(journal, method)())
        for _ in range(yields):  # let the write get under way, then cancel its caller
            await asyncio.sleep(0)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter

        assert not journal.failed
        assert journal.append(quote(n + 1)) == n + 1
        assert await journal.sync() == n + 1
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        assert (stats.count, stats.last_seq, stats.gap_free) == (n + 1, n + 1, True)
        assert await reader.messages() == quotes(n + 1)


# --------------------------------------------------------------------------- background flusher


async def test_flusher_commits_after_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=0.01, batch_size=10_000) as journal:
        for m in quotes(3):
            journal.append(m)
        assert journal.committed_seq == 0  # append itself never writes
        await eventually(lambda: journal.committed_seq == 3, what="flusher commits")
        assert journal.durable_seq == 0  # a group commit is not an fsync
        async with JournalReader(path) as reader:
            assert await reader.messages() == quotes(3)


async def test_flusher_commits_when_batch_size_is_reached(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE, batch_size=5) as journal:
        for m in quotes(5):
            journal.append(m)
        await eventually(lambda: journal.committed_seq == 5, what="batch-size commit")
        assert journal.commits == 1
        async with JournalReader(path) as reader:
            assert await reader.last_seq() == 5

        # Ten more: two batches' worth, however the flusher groups them.
        for i in range(6, 16):
            journal.append(quote(i))
        await eventually(lambda: journal.committed_seq == 15, what="second batch")
    assert [r.message for r in await read_all(path)] == quotes(15)


# --------------------------------------------------------------------------- back-pressure


async def test_wait_writable_returns_once_the_backlog_drains(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE, batch_size=10_000, high_water=8) as j:
        for m in quotes(50):
            j.append(m)
        assert j.backlog == 50
        await j.wait_writable()
        assert j.backlog <= j.high_water
        assert j.committed_seq == 50
        await j.wait_writable()  # below the mark: returns at once
    assert [r.message for r in await read_all(path)] == quotes(50)


async def test_back_pressured_producers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    async def produce(journal: Journal, symbol: str, n: int) -> list[int]:
        seqs = []
        for i in range(1, n + 1):
            await journal.wait_writable()
            seqs.append(journal.append(quote(i, symbol=symbol)))
            assert journal.backlog <= journal.high_water + 1
        return seqs

    async with Journal(path, flush_interval_s=IDLE, batch_size=10_000, high_water=4) as j:
        seqs_a, seqs_b = await asyncio.gather(
            produce(j, "BTC/USDT", 400), produce(j, "ETH/USDT", 400)
        )

    assert sorted(seqs_a + seqs_b) == list(range(1, 801))
    records = await read_all(path)
    assert [r.seq for r in records] == list(range(1, 801))
    for symbol, seqs in (("BTC/USDT", seqs_a), ("ETH/USDT", seqs_b)):
        mine = [r for r in records if r.message.symbol == symbol]  # type: ignore[attr-defined]
        assert [r.seq for r in mine] == seqs
        assert [r.message for r in mine] == [quote(i, symbol=symbol) for i in range(1, 401)]


# --------------------------------------------------------------------------- reading


@pytest.fixture
async def hundred(tmp_path: Path) -> Path:
    """100 records: ts_event = START_NS + 10*seq; every 10th is a TimerFired, the rest quotes."""
    path = tmp_path / "hundred.db"
    async with Journal(path) as journal:
        for seq in range(1, 101):
            ts = START_NS + 10 * seq
            if seq % 10 == 0:
                journal.append(TimerFired(ts, ts, name=f"t{seq}"))
            else:
                journal.append(quote(seq, ts_event=ts))
    return path


async def test_records_by_seq_range(hundred: Path) -> None:
    assert [r.seq for r in await read_all(hundred, start_seq=95)] == [95, 96, 97, 98, 99, 100]
    assert [r.seq for r in await read_all(hundred, end_seq=3)] == [1, 2, 3]
    assert [r.seq for r in await read_all(hundred, start_seq=40, end_seq=42)] == [40, 41, 42]
    assert [r.seq for r in await read_all(hundred, start_seq=42, end_seq=42)] == [42]
    assert await read_all(hundred, start_seq=43, end_seq=42) == []
    assert await read_all(hundred, start_seq=101) == []


async def test_records_by_time_range_are_half_open(hundred: Path) -> None:
    since, until = START_NS + 10 * 20, START_NS + 10 * 25
    got = await read_all(hundred, since_ns=since, until_ns=until)
    assert [r.seq for r in got] == [20, 21, 22, 23, 24]  # since included, until excluded
    assert all(since <= r.ts_event < until for r in got)
    assert [r.seq for r in await read_all(hundred, since_ns=START_NS + 10 * 98)] == [98, 99, 100]
    assert [r.seq for r in await read_all(hundred, until_ns=START_NS + 10 * 3)] == [1, 2]
    assert await read_all(hundred, since_ns=until, until_ns=until) == []


async def test_records_by_type_and_combined_filters(hundred: Path) -> None:
    timers = await read_all(hundred, types={"TimerFired"})
    assert [r.seq for r in timers] == list(range(10, 101, 10))
    assert all(isinstance(r.message, TimerFired) for r in timers)
    both = await read_all(hundred, types=["TimerFired", "QuoteTick"])
    assert [r.seq for r in both] == list(range(1, 101))
    assert await read_all(hundred, types={"OrderFilled"}) == []

    combined = await read_all(
        hundred, types={"TimerFired"}, start_seq=25, end_seq=80, since_ns=START_NS + 10 * 35
    )
    assert [r.seq for r in combined] == [40, 50, 60, 70, 80]


async def test_messages_returns_the_decoded_messages(hundred: Path) -> None:
    async with JournalReader(hundred) as reader:
        messages = await reader.messages(types={"TimerFired"}, end_seq=30)
    assert messages == [
        TimerFired(START_NS + 10 * s, START_NS + 10 * s, f"t{s}") for s in (10, 20, 30)
    ]


async def test_tail_returns_last_n_oldest_first(hundred: Path) -> None:
    async with JournalReader(hundred) as reader:
        assert [r.seq for r in await reader.tail(3)] == [98, 99, 100]
        assert [r.seq for r in await reader.tail(3, types={"TimerFired"})] == [80, 90, 100]
        assert [r.seq for r in await reader.tail(2, types={"QuoteTick"})] == [98, 99]
        assert [r.seq for r in await reader.tail(500)] == list(range(1, 101))
        assert await reader.tail(0) == []
        last = (await reader.tail(1))[0]
        assert last.message == TimerFired(START_NS + 1000, START_NS + 1000, "t100")


async def test_stats(hundred: Path) -> None:
    async with JournalReader(hundred) as reader:
        stats = await reader.stats()
    assert stats.count == 100
    assert stats.by_type == {"QuoteTick": 90, "TimerFired": 10}
    assert list(stats.by_type) == sorted(stats.by_type)
    assert stats.gap_free
    assert (stats.first_seq, stats.last_seq) == (1, 100)
    assert (stats.first_ts_event, stats.last_ts_event) == (START_NS + 10, START_NS + 1000)
    assert stats.schema_version == SCHEMA_VERSION
    assert stats.created_by.startswith("ballast ")
    assert stats.size_bytes > 0
    assert stats.path == str(hundred)


async def test_stats_of_an_empty_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path):
        pass
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        assert await reader.last_seq() == 0
        assert await reader.tail(5) == []
    assert stats.count == 0
    assert stats.first_seq is None
    assert stats.last_seq is None
    assert stats.by_type == {}
    assert stats.gap_free


async def test_stats_reports_a_gap(hundred: Path) -> None:
    raw_sql(hundred, "DELETE FROM events WHERE seq = 50")
    async with JournalReader(hundred) as reader:
        stats = await reader.stats()
    assert stats.count == 99
    assert not stats.gap_free


async def test_integrity_check(hundred: Path) -> None:
    async with JournalReader(hundred) as reader:
        assert await reader.integrity_check() == "ok"


@pytest.mark.parametrize("chunk", [1, 7, 10, 99, 100, 101])
async def test_reading_across_chunk_boundaries(hundred: Path, chunk: int) -> None:
    async with JournalReader(hundred, chunk=chunk) as reader:
        everything = [r async for r in reader.records()]
        middle = [r async for r in reader.records(start_seq=6, end_seq=93)]
        timers = [r async for r in reader.records(types={"TimerFired"})]
    assert [r.seq for r in everything] == list(range(1, 101))
    assert [r.seq for r in middle] == list(range(6, 94))
    assert [r.seq for r in timers] == list(range(10, 101, 10))


async def test_reading_can_stop_early(hundred: Path) -> None:
    async with JournalReader(hundred, chunk=7) as reader:
        records = reader.records()
        first = [await anext(records) for _ in range(10)]
        await records.aclose()
        assert [r.seq for r in first] == list(range(1, 11))
        # The reader is still usable afterwards.
        assert [r.seq for r in await reader.tail(1)] == [100]


async def test_breaking_out_of_records_then_closing_is_clean(hundred: Path) -> None:
    async with JournalReader(hundred, chunk=7) as reader:
        seqs = []
        async for rec in reader.records():  # a prefetch of the next chunk is under way
            seqs.append(rec.seq)
            if rec.seq == 10:
                break
        assert seqs == list(range(1, 11))
        assert [r.seq for r in await reader.tail(2)] == [99, 100]
    gc.collect()  # finalizes the abandoned generator: no warning, no error
    await asyncio.sleep(0)
    async with JournalReader(hundred, chunk=7) as reader:
        assert (await reader.stats()).count == 100


async def test_reader_sees_records_committed_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE) as journal:
        journal.append(quote(1))
        await journal.commit()
        async with JournalReader(path, chunk=3) as reader:
            assert [r.seq for r in await reader.tail(10)] == [1]
            for m in quotes(20)[1:]:
                journal.append(m)
            await journal.commit()
            assert [r.seq async for r in reader.records()] == list(range(1, 21))


async def test_set_meta_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        await journal.set_meta("session_id", "sess-42")
        assert journal.meta["session_id"] == "sess-42"
        assert journal.meta["schema_version"] == str(SCHEMA_VERSION)
    async with JournalReader(path) as reader:
        assert reader.meta["session_id"] == "sess-42"


# --------------------------------------------------------------------------- refusing bad files


async def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        journal.append(quote(1))
    newer = SCHEMA_VERSION + 1
    raw_sql(path, "UPDATE ballast_meta SET value = ? WHERE key = 'schema_version'", (str(newer),))

    with pytest.raises(JournalSchemaError) as from_writer:
        await Journal(path).open()
    with pytest.raises(JournalSchemaError) as from_reader:
        async with JournalReader(path):
            pass
    for exc in (from_writer.value, from_reader.value):
        message = str(exc)
        assert f"version {newer}" in message
        assert f"up to {SCHEMA_VERSION}" in message
        assert "upgrade" in message.lower()
        assert str(path) in message

    # The refused writer did not touch the file.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)


async def test_journal_without_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path):
        pass
    raw_sql(path, "DELETE FROM ballast_meta WHERE key = 'schema_version'")
    with pytest.raises(JournalSchemaError, match="schema version"):
        await Journal(path).open()
    with pytest.raises(JournalSchemaError, match="schema version"):
        await open_reader(path)


async def test_sqlite_file_with_other_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw_sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")

    with pytest.raises(JournalError, match="not a Ballast journal"):
        await Journal(path).open()
    with pytest.raises(JournalError, match="not a Ballast journal"):
        await open_reader(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"customers"}  # the writer did not add its schema to someone else's file


@pytest.mark.parametrize(
    "content",
    [b"this is not a database, just text\n" * 200, bytes(range(256)) * 40],
    ids=["text", "binary"],
)
async def test_non_sqlite_file_is_refused_with_a_journal_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(content)
    for attempt in ("writer", "reader"):
        with pytest.raises(JournalError) as caught:
            await (Journal(path).open() if attempt == "writer" else open_reader(path))
        assert not isinstance(caught.value, sqlite3.Error)
        assert str(path) in str(caught.value)
    assert path.read_bytes() == content


def open_connections() -> int:
    """SQLite connection worker threads (aiosqlite runs one per open connection)."""
    return sum("_connection_worker_thread" in t.name for t in threading.enumerate())


@pytest.mark.parametrize("attempt", ["writer", "reader"])
@pytest.mark.parametrize("bad_file", ["garbage", "other-tables", "newer-schema"])
async def test_a_refused_file_leaves_no_connection_open(
    tmp_path: Path, attempt: str, bad_file: str
) -> None:
    path = tmp_path / "bad.db"
    if bad_file == "garbage":
        path.write_bytes(b"not a database\n" * 500)
    elif bad_file == "other-tables":
        raw_sql(path, "CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    else:
        async with Journal(path):
            pass
        raw_sql(path, "UPDATE ballast_meta SET value = '999' WHERE key = 'schema_version'")
    before = open_connections()
    with pytest.raises(JournalError):
        await (Journal(path).open() if attempt == "writer" else open_reader(path))
    await eventually(lambda: open_connections() == before, what="connection thread stopped")


async def test_reading_a_missing_file_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(JournalError, match="no such journal"):
        await open_reader(path)
    assert not path.exists()  # reading never creates a journal


@pytest.mark.parametrize(
    "payload",
    [b"\xc1 garbage bytes \xff\x00", msgspec.msgpack.encode(["NoSuchEvent", 1, 2]), b""],
    ids=["not-msgpack", "unknown-tag", "empty"],
)
async def test_corrupt_payload_raises_naming_the_seq(hundred: Path, payload: bytes) -> None:
    raw_sql(hundred, "UPDATE events SET payload = ? WHERE seq = 37", (payload,))

    seen: list[int] = []
    async with JournalReader(hundred, chunk=10) as reader:
        with pytest.raises(JournalCorruptError, match=r"seq 37\b"):
            await collect_seqs(reader, seen)
        with pytest.raises(JournalCorruptError, match=r"seq 37\b"):
            await reader.tail(70)
        # Records around the damaged one are still readable.
        assert [r.seq async for r in reader.records(start_seq=38)] == list(range(38, 101))
        assert [r.seq for r in await reader.tail(63)] == list(range(38, 101))
    assert seen == list(range(1, 37))


# --------------------------------------------------------------------------- closed journal


async def test_append_after_close_raises(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    with pytest.raises(JournalClosedError):
        journal.append(quote(1))  # never opened
    await journal.open()
    journal.append(quote(1))
    await journal.close()
    with pytest.raises(JournalClosedError):
        journal.append(quote(2))
    with pytest.raises(JournalClosedError):
        await journal.set_meta("k", "v")
    assert [r.seq for r in await read_all(tmp_path / "j.db")] == [1]


async def test_reader_used_outside_its_context_raises(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path):
        pass
    reader = JournalReader(path)
    with pytest.raises(JournalError, match="not open"):
        await reader.stats()


async def test_a_folder_that_cannot_be_created_is_a_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal's folder should be\n")
    with pytest.raises(JournalError, match="cannot create the journal's folder"):
        await Journal(blocker / "journal.db").open()


# --------------------------------------------------------------------------- one owner


async def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, flush_interval_s=IDLE) as first:
        first.append(quote(1))
        await first.commit()
        assert lock_path(path).read_text() == f"{os.getpid()}\n"
        with pytest.raises(JournalLockedError) as refused:
            await Journal(path).open()
        assert f"{path}: in use by another writer (pid {os.getpid()}" in str(refused.value)
        assert [r.seq for r in await read_all(path)] == [1]  # a reader is not blocked
        first.append(quote(2))  # the refusal did not disturb the owner
    assert not lock_path(path).exists()  # a writer that closes removes its lock file
    async with Journal(path) as next_writer:
        assert next_writer.opened_at_seq == 2


async def test_a_lock_file_nobody_holds_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    lock_path(path).write_text("999999999\n")  # left by a writer that was killed
    async with Journal(path) as journal:
        journal.append(quote(1))
        assert lock_path(path).read_text() == f"{os.getpid()}\n"


async def test_a_journal_opened_under_a_given_lock_leaves_it_to_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with pytest.raises(JournalError, match="not held"):
        await Journal(path, lock=JournalLock(path)).open()
    with JournalLock(path) as lock:
        async with Journal(path, lock=lock) as journal:
            journal.append(quote(1))
        assert lock.held
        with pytest.raises(JournalLockedError):
            await Journal(path).open()
    assert not lock_path(path).exists()


# --------------------------------------------------------------------------- damaged files


async def test_a_journal_whose_tail_does_not_decode_is_not_appended_to(hundred: Path) -> None:
    raw_sql(hundred, "UPDATE events SET payload = ? WHERE seq = 99", (b"\xc1 not msgpack",))
    with pytest.raises(JournalCorruptError) as refused:
        await Journal(hundred).open()
    message = str(refused.value)
    assert message.startswith(f"{hundred}: the journal is damaged (record seq 99 does not decode")
    assert f"`ballast journal export {hundred} --skip-damaged -o FILE`" in message
    assert "\n" not in message
    assert not lock_path(hundred).exists()  # the refused writer let go of the lock
    async with JournalReader(hundred) as reader:
        assert (await reader.stats()).count == 100  # nothing was appended


@pytest.mark.parametrize(
    ("where", "found"),
    [
        (0.5, "database disk image is malformed"),
        (0.7, "quick_check: *** in database main *** Page"),
    ],
)
async def test_a_journal_sqlite_finds_damaged_is_not_appended_to(
    tmp_path: Path, where: float, found: str
) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        for m in quotes(10_000):
            journal.append(m)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    at = int(len(data) // page * where) * page  # a page the last records do not live in
    data[at : at + 200] = bytes(b ^ 0xFF for b in data[at : at + 200])
    path.write_bytes(bytes(data))
    async with JournalReader(path) as reader:
        assert (await reader.last_seq()) == 10_000  # what an unchecked writer would go on from
    with pytest.raises(JournalCorruptError) as refused:
        await Journal(path).open()
    message = str(refused.value)
    assert message.startswith(f"{path}: the journal is damaged ({found}")
    assert "\n" not in message
    assert path.read_bytes() == bytes(data)

    async with JournalReader(path, chunk=500) as reader:  # what the message says to do
        saved = [r.seq async for r in reader.readable_records()]
        assert sorted(saved + reader.skipped) == list(range(1, 10_001))
        assert len(reader.skipped) < 500  # one damaged page, not the chunk around it
        async for _ in reader.readable_records(start_seq=9_001):
            pass
        assert reader.skipped == []  # each salvage starts its own list


# --------------------------------------------------------------------------- session kinds


async def test_a_writer_appends_only_to_a_journal_of_its_kind(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, kind="backtest") as journal:
        assert journal.meta[KIND_KEY] == "backtest"  # written with the schema
        journal.append(quote(1))
    with pytest.raises(JournalError, match="holds a backtest session; a paper session is not"):
        await Journal(path, kind="paper").open()
    async with Journal(path) as untyped:  # a writer without a kind neither sets nor checks it
        assert untyped.meta[KIND_KEY] == "backtest"

    older = tmp_path / "older.db"  # from before session kinds: the first typed writer marks it
    async with Journal(older) as journal:
        journal.append(quote(1))
    async with Journal(older, kind="paper"):
        pass
    async with JournalReader(older) as reader:
        assert reader.meta[KIND_KEY] == "paper"
    with pytest.raises(ValueError, match="not one of"):
        Journal(path, kind="papr")


# --------------------------------------------------------------------------- failed starts


async def test_a_start_that_fails_before_the_first_record_leaves_no_journal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    with pytest.raises(RuntimeError, match="metrics port busy"):
        async with Journal(path):
            raise RuntimeError("metrics port busy")
    assert sorted(os.listdir(tmp_path)) == []

    async with Journal(path):  # a file that was there before the failed start is kept
        pass
    with pytest.raises(RuntimeError):
        async with Journal(path):
            raise RuntimeError("metrics port busy")
    assert path.exists()


async def test_a_folder_is_refused_as_a_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a folder; a journal is a file"):
        await Journal(tmp_path).open()
    with pytest.raises(JournalError, match="is a folder"):
        await open_reader(tmp_path)
    assert not lock_path(tmp_path).exists()


async def test_a_message_with_an_unknown_code_is_refused_before_it_takes_a_seq(
    tmp_path: Path,
) -> None:
    """msgspec checks Literal codes only on decode: a plug-in's made-up veto reason or asset
    action would be written, then refused by every reader (the journal would look damaged)."""
    path = tmp_path / "j.db"
    t = START_NS
    vetoed = OrderVetoed(t, t, "int-1", "BTC/USDT", cast(Any, "my_code"), "made up")
    action = AssetDecision(
        "BTC",
        Decimal("0.5"),
        Decimal("0.6"),
        Decimal("0.55"),
        Decimal("0.65"),
        cast(Any, "teleport"),
    )
    decided = RebalanceDecided(t, t, "dec-1", "band", "auto", "normal", "", (action,), ())
    async with Journal(path) as journal:
        with pytest.raises(JournalError, match=r"OrderVetoed.reason = 'my_code' is not one of"):
            journal.append(vetoed)
        with pytest.raises(JournalError, match=r"AssetDecision.action = 'teleport' is not one"):
            journal.append(decided)
        assert journal.append(TimerFired(t, t, "check")) == 1
        await journal.commit()
    assert [rec.seq for rec in await read_all(path)] == [1]
