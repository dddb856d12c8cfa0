"""The bus: one global order equal to the journal's, isolation of failing handlers, mailboxes
with market-data coalescing, durability and back-pressure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.bus import Bus, Mailbox
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.events import (
    AccountEvent,
    BalanceUpdated,
    Bar,
    DataRejected,
    HandlerFailed,
    MarketEvent,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderEvent,
    OrderFilled,
    QuoteTick,
    TradeTick,
)
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.kernel.redaction import register_secret
from tests.conftest import START_NS
from tests.support.waiting import eventually

D = Decimal
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def quote(symbol: str = "BTC/USDT", bid: int = 100, ts: int = START_NS) -> QuoteTick:
    return QuoteTick(ts, ts, symbol, D(bid), D(bid + 1), D(1), D(1))


def trade(symbol: str, price: int, ts: int = START_NS) -> TradeTick:
    return TradeTick(ts, ts, symbol, D(price), D(1), "buy", f"t-{price}")


def bar(symbol: str, close: int, ts: int = START_NS) -> Bar:
    return Bar(ts, ts, symbol, 60, D(close), D(close), D(close), D(close), D(1))


def mark(symbol: str, price: int, ts: int = START_NS) -> MarkPriceUpdated:
    return MarkPriceUpdated(ts, ts, symbol, D(price), D(price), D("0.0001"), ts)


def balance(free: int, ts: int = START_NS) -> BalanceUpdated:
    return BalanceUpdated(ts, ts, "spot", "USDT", D(free), D(0))


def accepted(coid: str, ts: int = START_NS) -> OrderAccepted:
    return OrderAccepted(ts, ts, coid, f"v-{coid}", "BTC/USDT")


def filled(coid: str, symbol: str, ts: int = START_NS) -> OrderFilled:
    return OrderFilled(
        ts, ts, coid, f"v-{coid}", f"tr-{coid}", symbol, "buy", D(1), D(100), D(0), "USDT", "taker"
    )


def rejected(symbol: str, marker: str, ts: int = START_NS) -> DataRejected:
    return DataRejected(ts, ts, symbol, "price_jump", marker)


KINDS: dict[str, Callable[[str, int], Message]] = {
    "quote": lambda s, i: quote(s, 100 + i, START_NS + i),
    "trade": lambda s, i: trade(s, 100 + i, START_NS + i),
    "bar": lambda s, i: bar(s, 100 + i, START_NS + i),
    "mark": lambda s, i: mark(s, 100 + i, START_NS + i),
    "balance": lambda s, i: balance(i, START_NS + i),
    "accepted": lambda s, i: accepted(f"o{i}", START_NS + i),
    "filled": lambda s, i: filled(f"o{i}", s, START_NS + i),
    "decision": lambda s, i: rejected(s, f"r{i}", START_NS + i),
}


def market_key(message: Message) -> tuple[type[Message], str]:
    return type(message), str(getattr(message, "symbol", ""))


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with Journal(tmp_path / "journal.db") as j:
        yield j


async def journaled(journal: Journal) -> list[tuple[int, Message]]:
    await journal.sync()
    async with JournalReader(journal.path) as reader:
        return [(rec.seq, rec.message) async for rec in reader.records()]


# ------------------------------------------------------------------------------- ordering


async def test_every_subscriber_sees_the_journal_order_including_handler_publishes(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    bus = Bus(sim_clock, journal)
    calls: list[tuple[str, Message]] = []

    def recorder(name: str) -> Callable[[Message], None]:
        return lambda message: calls.append((name, message))

    def react_to_quote(q: QuoteTick) -> None:
        calls.append(("quote-reactor", q))
        bus.publish(bar(q.symbol, int(q.bid), q.ts_event))
        bus.publish(balance(int(q.bid), q.ts_event))

    def react_to_bar(b: Bar) -> None:
        calls.append(("bar-reactor", b))
        bus.publish(rejected(b.symbol, "from-bar", b.ts_event))

    # given: reactors that publish during dispatch, subscribed between two recorders
    bus.subscribe_all(recorder("first"), name="first")
    bus.subscribe(QuoteTick, react_to_quote)
    bus.subscribe(Bar, react_to_bar)
    bus.subscribe_all(recorder("last"), name="last")

    # when: a producer publishes three quotes
    for i in range(3):
        bus.publish(quote(bid=100 + i, ts=START_NS + i))

    # then: every subscriber saw exactly the journal, in seq order
    records = await journaled(journal)
    recorded = [message for _, message in records]
    assert [seq for seq, _ in records] == list(range(1, 13))
    assert [type(m).__name__ for m in recorded[:4]] == [
        "QuoteTick",
        "Bar",
        "BalanceUpdated",
        "DataRejected",
    ]
    for name in ("first", "last"):
        assert [m for n, m in calls if n == name] == recorded
    # breadth-first: a message reaches all its subscribers before anything published after it
    positions = [recorded.index(message) for _, message in calls]
    assert positions == sorted(positions)
    assert bus.last_seq == journal.last_seq == 12
    assert bus.published == 12
    assert bus.pending == 0


async def test_publish_returns_the_journal_seq(journal: Journal, sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock, journal)
    seqs = [bus.publish(quote(bid=i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [seq for seq, _ in await journaled(journal)] == seqs


async def test_a_bus_on_a_reopened_journal_continues_its_seq(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    path = tmp_path / "j.db"
    async with Journal(path) as journal:
        Bus(sim_clock, journal).publish(quote())
    async with Journal(path) as journal:
        bus = Bus(sim_clock, journal)
        assert bus.last_seq == 1
        assert bus.publish(quote(bid=2)) == 2


def test_a_bus_without_journal_numbers_messages_itself(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    assert [bus.publish(quote(bid=i)) for i in range(3)] == [1, 2, 3]
    assert bus.now() == sim_clock.now_ns()


# ---------------------------------------------------------------------- subscription by type


def test_subscription_by_base_class_receives_subclasses(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    market: list[Message] = []
    orders: list[Message] = []
    quotes: list[Message] = []
    everything: list[Message] = []
    bus.subscribe(MarketEvent, market.append)
    bus.subscribe(OrderEvent, orders.append)
    bus.subscribe(QuoteTick, quotes.append)
    bus.subscribe(Message, everything.append)

    sent = [
        quote(),
        trade("BTC/USDT", 1),
        bar("ETH/USDT", 2),
        mark("BTC/USDT:USDT", 3),
        balance(4),
        accepted("a"),
        filled("a", "BTC/USDT"),
        rejected("BTC/USDT", "x"),
    ]
    for message in sent:
        bus.publish(message)

    assert market == sent[:4]
    assert orders == sent[5:7]
    assert quotes == sent[:1]
    assert everything == sent  # once each, even with several matching subscriptions


def test_unsubscribe_stops_delivery(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    seen: list[Message] = []
    sub = bus.subscribe(QuoteTick, seen.append)
    bus.publish(quote(bid=1))
    bus.unsubscribe(sub)
    bus.publish(quote(bid=2))
    assert seen == [quote(bid=1)]


def test_a_subscription_made_during_dispatch_sees_later_messages(
    sim_clock: SimulatedClock,
) -> None:
    bus = Bus(sim_clock)
    late: list[Message] = []

    def subscribe_late(q: QuoteTick) -> None:
        if not late and q.bid == 1:
            bus.subscribe(MarketEvent, late.append)
            bus.publish(bar("BTC/USDT", 5))

    bus.subscribe(QuoteTick, subscribe_late)
    bus.publish(quote(bid=1))
    bus.publish(quote(bid=2))
    assert late == [bar("BTC/USDT", 5), quote(bid=2)]


# -------------------------------------------------------------------------- failing handlers


async def test_a_raising_handler_is_isolated_and_reported(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    bus = Bus(sim_clock, journal)
    before: list[Message] = []
    after: list[Message] = []
    failures: list[HandlerFailed] = []

    def explode(q: QuoteTick) -> None:
        raise ValueError(f"cannot price {q.symbol}")

    bus.subscribe(QuoteTick, before.append)
    bus.subscribe(QuoteTick, explode, name="pricer.explode")
    bus.subscribe(QuoteTick, after.append)
    bus.subscribe(HandlerFailed, failures.append)

    seq = bus.publish(quote())
    bus.publish(quote(bid=2))

    assert before == after == [quote(), quote(bid=2)]
    assert bus.handler_errors == 2
    assert bus.handler_errors_by_name == {"pricer.explode": 2}
    records = await journaled(journal)
    assert [type(m).__name__ for _, m in records] == [
        "QuoteTick",
        "HandlerFailed",
        "QuoteTick",
        "HandlerFailed",
    ]
    failed = records[1][1]
    assert isinstance(failed, HandlerFailed)
    assert failed.handler == "pricer.explode"
    assert failed.event_type == "QuoteTick"
    assert failed.seq == seq == records[0][0]
    assert failed.error == "ValueError: cannot price BTC/USDT"
    assert failed.ts_event == sim_clock.now_ns()
    assert failures == [m for _, m in records if isinstance(m, HandlerFailed)]


def test_handler_names_default_to_the_callable(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)

    class Pricer:
        def on_quote(self, q: QuoteTick) -> None:
            raise KeyError(q.symbol)

    def broken(q: QuoteTick) -> None:
        raise RuntimeError("no")

    failures: list[HandlerFailed] = []
    bus.subscribe(QuoteTick, Pricer().on_quote)
    bus.subscribe(QuoteTick, broken)
    bus.subscribe(HandlerFailed, failures.append)
    bus.publish(quote())
    assert [f.handler for f in failures] == ["Pricer.on_quote", "broken"]
    assert failures[0].error == "KeyError: 'BTC/USDT'"


async def test_a_raising_failure_handler_does_not_recurse(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    bus = Bus(sim_clock, journal)

    def explode(message: Message) -> None:
        raise RuntimeError(f"cannot handle {type(message).__name__}")

    bus.subscribe(QuoteTick, explode, name="a")
    bus.subscribe(HandlerFailed, explode, name="b")
    bus.subscribe_all(explode, name="c")  # fails on everything, HandlerFailed included

    bus.publish(quote())

    records = await journaled(journal)
    failures = [m for _, m in records if isinstance(m, HandlerFailed)]
    # a and c failed on the quote; b and c failed on each HandlerFailed without publishing more
    assert [(f.handler, f.event_type, f.seq) for f in failures] == [
        ("a", "QuoteTick", 1),
        ("c", "QuoteTick", 1),
    ]
    assert bus.handler_errors == 2 + 2 * 2
    assert bus.handler_errors_by_name == {"a": 1, "b": 2, "c": 3}
    assert bus.pending == 0


async def test_secrets_are_masked_in_handler_failures(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    secret = "sk-live-0123456789abcdef"
    spaced = "p@ss w/rd+42"
    register_secret(secret)
    register_secret(spaced)
    bus = Bus(sim_clock, journal)

    def leak(q: QuoteTick) -> None:
        raise PermissionError(f"auth failed for key={secret} url=https://x/?p=p%40ss%20w%2Frd%2B42")

    bus.subscribe(QuoteTick, leak)
    bus.publish(quote())

    records = await journaled(journal)
    failed = records[1][1]
    assert isinstance(failed, HandlerFailed)
    assert secret not in failed.error
    assert "p%40ss" not in failed.error
    assert failed.error == "PermissionError: auth failed for key=*** url=https://x/?p=***"
    await journal.close()
    for suffix in ("", "-wal"):
        file = Path(f"{journal.path}{suffix}")
        if file.exists():
            assert secret.encode() not in file.read_bytes()


def test_handler_failure_text_is_bounded(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    failures: list[HandlerFailed] = []

    def verbose(q: QuoteTick) -> None:
        raise ValueError("x" * 10_000)

    bus.subscribe(QuoteTick, verbose)
    bus.subscribe(HandlerFailed, failures.append)
    bus.publish(quote())
    assert len(failures) == 1
    assert 0 < len(failures[0].error) <= 500


# ------------------------------------------------------------------------------- mailboxes


def drain(box: Mailbox) -> list[tuple[int, Message]]:
    out: list[tuple[int, Message]] = []
    while (item := box.get_nowait()) is not None:
        out.append(item)
    return out


async def test_mailbox_delivers_its_types_in_journal_order(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    bus = Bus(sim_clock, journal)
    box = bus.mailbox([AccountEvent, OrderEvent], name="router", coalesce_after=None)
    for i in range(20):
        bus.publish(quote(bid=i))
        bus.publish(balance(i) if i % 2 else accepted(f"o{i}"))
    delivered = drain(box)
    expected = [
        (seq, m) for seq, m in await journaled(journal) if isinstance(m, AccountEvent | OrderEvent)
    ]
    assert delivered == expected
    assert len(box) == 0
    assert box.max_depth == 20


def delivered(got: list[tuple[int, Message]], count: int) -> Callable[[], bool]:
    return lambda: len(got) == count


async def test_mailbox_get_waits_for_the_next_message(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    box = bus.mailbox([MarketEvent], name="consumer")
    got: list[tuple[int, Message]] = []

    async def consume() -> None:
        while len(got) < 3:
            got.append(await box.get())

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # the consumer is now waiting on an empty mailbox
    assert not task.done()
    for i in range(3):
        bus.publish(quote(bid=i))
        await eventually(delivered(got, i + 1), what=f"{i + 1} delivered")
    await task
    assert got == [(1, quote(bid=0)), (2, quote(bid=1)), (3, quote(bid=2))]


def check_delivery(
    published: list[tuple[int, Message]], delivered: list[tuple[int, Message]], box: Mailbox
) -> None:
    """What a lagging consumer may miss: only market data superseded by a newer one of the same
    (type, symbol). Everything else arrives, in seq order, and the last of each key too."""
    by_seq = dict(published)
    seqs = [seq for seq, _ in delivered]
    assert seqs == sorted(set(seqs)), "delivered out of order or twice"
    for seq, message in delivered:
        assert by_seq[seq] == message
    got = set(seqs)
    for seq, message in published:
        if not isinstance(message, MarketEvent):
            assert seq in got, f"non-market message {seq} was dropped"
    latest: dict[tuple[type[Message], str], int] = {}
    for seq, message in published:
        if isinstance(message, MarketEvent):
            latest[market_key(message)] = seq
    assert set(latest.values()) <= got, "the latest market message of a key was dropped"
    for seq, message in published:
        if seq not in got:
            assert any(
                later > seq and market_key(m) == market_key(message)
                for later, m in published
                if isinstance(m, MarketEvent)
            ), f"market message {seq} dropped without a newer one"
    assert box.coalesced == len(published) - len(delivered)


Op = tuple[str, str, str] | tuple[str, int]


def publish_op(kind: str, symbol: str) -> Op:
    return ("pub", kind, symbol)


def get_op(count: int) -> Op:
    return ("get", count)


@settings(max_examples=300, deadline=None, database=None)
@given(
    ops=st.lists(
        st.one_of(
            st.builds(publish_op, st.sampled_from(sorted(KINDS)), st.sampled_from(SYMBOLS)),
            st.builds(get_op, st.integers(0, 4)),
        ),
        max_size=150,
    ),
    coalesce_after=st.one_of(st.none(), st.integers(0, 6)),
)
def test_mailbox_coalesces_only_superseded_market_data(
    ops: list[Op], coalesce_after: int | None
) -> None:
    bus = Bus(SimulatedClock(START_NS))
    box = bus.mailbox([Message], name="lagging", coalesce_after=coalesce_after)
    published: list[tuple[int, Message]] = []
    delivered: list[tuple[int, Message]] = []
    for i, op in enumerate(ops):
        if len(op) == 3:
            _, kind, symbol = op
            message = KINDS[kind](symbol, i)
            depth, coalesced = len(box), box.coalesced
            published.append((bus.publish(message), message))
            lagging = coalesce_after is not None and depth >= coalesce_after
            if not lagging or not isinstance(message, MarketEvent):
                assert box.coalesced == coalesced, "coalesced while not lagging"
        else:
            _, count = op
            for _ in range(count):
                item = box.get_nowait()
                if item is not None:
                    delivered.append(item)
    delivered.extend(drain(box))
    check_delivery(published, delivered, box)
    if coalesce_after is None:
        assert delivered == published


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_lagging_mailbox_on_a_journal_keeps_account_and_order_events(
    journal: Journal, sim_clock: SimulatedClock, seed: int
) -> None:
    rng = random.Random(seed)
    bus = Bus(sim_clock, journal)
    box = bus.mailbox([Message], name="metrics", coalesce_after=8)
    delivered: list[tuple[int, Message]] = []
    weights = {"quote": 6, "trade": 3, "bar": 2, "mark": 2, "balance": 1, "accepted": 1}
    weights |= {"filled": 1, "decision": 1}
    kinds = sorted(weights)
    for i in range(2_000):
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        bus.publish(KINDS[kind](rng.choice(SYMBOLS), i))
        if rng.random() < 0.05:  # a slow consumer: reads in rare bursts
            for _ in range(rng.randint(1, 20)):
                item = box.get_nowait()
                if item is not None:
                    delivered.append(item)
    delivered.extend(drain(box))
    published = await journaled(journal)
    assert len(published) == 2_000
    check_delivery(published, delivered, box)
    assert box.coalesced > 0


def test_no_coalescing_without_lag_or_when_disabled(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    keeping_up = bus.mailbox([MarketEvent], name="fast", coalesce_after=4)
    never = bus.mailbox([MarketEvent], name="never", coalesce_after=None)
    got_fast: list[tuple[int, Message]] = []
    for i in range(100):
        bus.publish(quote(bid=i))  # always the same (type, symbol)
        if i % 3 == 2:  # depth stays below 4
            got_fast.extend(drain(keeping_up))
    got_fast.extend(drain(keeping_up))
    assert [seq for seq, _ in got_fast] == list(range(1, 101))
    assert keeping_up.coalesced == 0
    assert [seq for seq, _ in drain(never)] == list(range(1, 101))
    assert never.coalesced == 0
    assert never.max_depth == 100


def test_coalescing_is_per_type_and_symbol(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    box = bus.mailbox([Message], name="slow", coalesce_after=0)  # always lagging
    sent = [
        quote("BTC/USDT", 1),
        quote("ETH/USDT", 2),
        trade("BTC/USDT", 3),
        balance(4),
        quote("BTC/USDT", 5),  # supersedes seq 1
        accepted("o"),
        trade("BTC/USDT", 6),  # supersedes seq 3
        quote("BTC/USDT", 7),  # supersedes seq 5
    ]
    for message in sent:
        bus.publish(message)
    assert drain(box) == [
        (2, sent[1]),
        (4, sent[3]),
        (6, sent[5]),
        (7, sent[6]),
        (8, sent[7]),
    ]
    assert box.coalesced == 3


# -------------------------------------------------------------- durability and back-pressure


async def test_publish_durable_returns_once_fsynced(
    journal: Journal, sim_clock: SimulatedClock
) -> None:
    bus = Bus(sim_clock, journal)
    for i in range(10):
        bus.publish(quote(bid=i))
    seq = await bus.publish_durable(accepted("o1"))
    assert seq == 11
    assert journal.durable_seq >= seq
    assert journal.committed_seq >= seq


async def test_send_applies_back_pressure_without_losing_anything(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    # the flusher would wait 60 s on its own: only back-pressure makes the writer commit here
    async with Journal(tmp_path / "bp.db", high_water=3, flush_interval_s=60.0) as journal:
        bus = Bus(sim_clock, journal)
        seen: list[Message] = []
        bus.subscribe_all(seen.append)
        sent: list[Message] = []
        for i in range(300):
            message = quote(SYMBOLS[i % 3], i) if i % 4 else balance(i)
            await bus.send(message)
            sent.append(message)
            assert journal.backlog <= journal.high_water
        assert journal.commits > 1
    assert seen == sent
    async with JournalReader(tmp_path / "bp.db") as reader:
        assert await reader.messages() == sent


async def test_send_without_a_journal_publishes(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    seen: list[Message] = []
    bus.subscribe(QuoteTick, seen.append)
    assert await bus.send(quote()) == 1
    await bus.sync()
    assert seen == [quote()]


async def test_paced_says_when_a_producer_must_await_pace(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    bare = Bus(sim_clock)  # without a journal nothing is ever paced
    assert not bare.paced(bare.publish(quote()))
    async with Journal(tmp_path / "j.db", batch_size=3) as journal:
        bus = Bus(sim_clock, journal)
        seqs = [bus.publish(quote(ts=START_NS + i)) for i in range(1, 7)]
        # once per journal batch (seqs 3 and 6): the producer yields so the group commit runs
        assert [bus.paced(seq) for seq in seqs] == [False, False, True, False, False, True]
        await bus.pace(seqs[2])  # yields once, returns
        assert await bus.send(quote(ts=START_NS + 7)) == seqs[-1] + 1
