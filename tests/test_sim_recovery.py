"""The simulated exchange rebuilt from a journal (adapters/sim/recovery.py): from a real backtest
journal (perps, funding, fill latency) it reproduces every order and account event, ends with
the journal's balances and positions, and goes on numbering venue order ids and trade ids after
the journal's; a journal that is not its history is refused with the seq."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.sim.config import Latency
from ballast.adapters.sim.exchange import SimExchange
from ballast.adapters.sim.recovery import BookMismatch, BookRebuild
from ballast.engine.app.backtest import assets_of, run_backtest, sim_config
from ballast.engine.kernel.codec import decode
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.events import (
    BalanceUpdated,
    FundingPaid,
    Message,
    OrderAccepted,
    OrderFilled,
    PositionUpdated,
    SessionStarted,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import JournalReader, Record

# One pytest-xdist worker runs this module (--dist loadgroup): the module-scoped backtest is shared.
pytestmark = pytest.mark.xdist_group("test_sim_recovery")
DATA = Path(__file__).resolve().parents[1] / "data" / "market"
CONFIG = parse_config(
    '[strategy]\nname = "growth_optimizer"\n[execution]\nmode = "auto"\n[paper]\nlatency_ms = 250\n'
)


def fresh_exchange(config: Config) -> SimExchange:
    instruments = binance_defaults(assets_of(config), config.venue.quote)
    # as the venue builds it: the fill latency is the venue's, the exchange core has none
    return SimExchange(instruments, msgspec.structs.replace(sim_config(config), latency=Latency()))


async def backtest_records(path: Path) -> list[Record]:
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], start="2022-05-01", end="2022-06-15")
    await run_backtest(CONFIG, bundle, name="t", journal_path=path)
    async with JournalReader(path) as reader:
        return [rec async for rec in reader.records()]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> list[Record]:
    return asyncio.run(backtest_records(tmp_path_factory.mktemp("recovery") / "j.db"))


def rebuilt(records: list[Record]) -> SimExchange:
    exchange = fresh_exchange(CONFIG)
    book = BookRebuild(exchange)
    for rec in records:
        book.apply(rec.seq, rec.message)
    book.finish()
    assert book.unjournaled == 0
    return exchange


def last(records: list[Record], kind: type[Message], key: str) -> dict[str, Message]:
    out: dict[str, Message] = {}
    for rec in records:
        if isinstance(rec.message, kind):
            out[getattr(rec.message, key)] = rec.message
    return out


async def test_the_book_rebuilt_from_a_journal_ends_where_the_journal_does(
    journal: list[Record],
) -> None:
    messages = [rec.message for rec in journal]
    assert any(isinstance(m, FundingPaid) for m in messages)
    assert any(isinstance(m, OrderFilled) and ":" in m.symbol for m in messages)
    exchange = rebuilt(journal)
    for asset, event in last(journal, BalanceUpdated, "asset").items():
        assert isinstance(event, BalanceUpdated)
        assert (exchange.free(asset), exchange.locked(asset)) == (event.free, event.locked)
    for symbol, event in last(journal, PositionUpdated, "symbol").items():
        assert isinstance(event, PositionUpdated)
        assert exchange.position_qty(symbol) == event.qty
        assert exchange.entry_price(symbol) == event.entry_price


async def test_ids_go_on_after_the_journals(journal: list[Record]) -> None:
    accepted = sum(isinstance(rec.message, OrderAccepted) for rec in journal)
    fills = sum(isinstance(rec.message, OrderFilled) for rec in journal)
    exchange = rebuilt(journal)
    now = journal[-1].message.ts_event
    order = SubmitOrder(
        now,
        now,
        "next",
        "bl-next",
        "BTC/USDT",
        "buy",
        "market",
        Decimal("0.001"),
        None,
        False,
        False,
        "IOC",
    )
    events = exchange.submit(order, now)
    ids = [
        (type(e).__name__, getattr(e, "venue_order_id", ""), getattr(e, "trade_id", ""))
        for e in events
        if isinstance(e, OrderAccepted | OrderFilled)
    ]
    assert ids == [
        ("OrderAccepted", f"sim-{accepted + 1}", ""),
        ("OrderFilled", f"sim-{accepted + 1}", f"t-{fills + 1}"),
    ]


async def test_a_journal_that_is_not_the_books_history_is_refused(journal: list[Record]) -> None:
    index, fill = next(
        (i, rec) for i, rec in enumerate(journal) if isinstance(rec.message, OrderFilled)
    )
    assert isinstance(fill.message, OrderFilled)
    forged = Record(fill.seq, msgspec.structs.replace(fill.message, price=fill.message.price + 1))
    with pytest.raises(BookMismatch, match=f"seq {fill.seq}: the journal recorded OrderFilled"):
        rebuilt([*journal[:index], forged, *journal[index + 1 :]])


def test_a_session_started_of_an_older_journal_still_decodes() -> None:
    """The two new SessionStarted fields have defaults and come last: a record written before
    them decodes as a fresh (not resumed) session with no source config."""
    old = msgspec.msgpack.encode(["SessionStarted", 1, 2, "s", "0.1.0", "LiveClock", "{}", "sim"])
    started = decode(old)
    assert isinstance(started, SessionStarted)
    assert (started.resumed_from_seq, started.source_config_json) == (0, "")
