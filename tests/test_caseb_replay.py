"""A Case B unwind through a journaled session replays to the same verdicts.

The pre-trade liquidation guard judges the risk actor's settled book (the approved reduce-only
market closes in flight counted as filled, the latest perp marks): what it depends on must be in
the journal, so that a replay reaches the same cuts and vetoes. A session with the real Portfolio
and RiskManager (and a scripted decider and sender, :mod:`tests.support.caseb`) is recorded into
a SQLite journal in tmp_path, fed the venue's account, prices and order answers; the unwind's spot
buy passes uncut thanks to its close in flight, the close is refused, the kill switch trips; then
``replay --verify`` must reproduce every output.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ballast.engine.app.replay import replay
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import (
    IntentApproved,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderVetoed,
    QuoteTick,
)
from ballast.engine.kernel.journal import Journal, JournalReader, Record
from tests.conftest import START_NS
from tests.support.caseb import PERP, SPOT, TRIGGER_SIZE, account_messages

D = Decimal
S = NS_PER_SECOND
CONFIG = """
[engine]
actors = [
    "ballast.engine.trading.portfolio:Portfolio",
    "ballast.engine.trading.risk:RiskManager",
    "tests.support.caseb:Unwinder",
]

[execution]
price_snapshot_interval_s = 0
"""


def account(ts: int) -> list[Message]:
    """USDT 32,400, BTC spot 0.1, ETH spot 20, a BTC perp long of 0.75 entered at 36,000."""
    return account_messages(ts, "32400", "0.1", ((PERP, D("0.75"), D(36000), D(40000)),))


ONE = D(1)


def prices(ts: int, btc: str, size: Decimal = ONE) -> list[Message]:
    p = D(btc)
    return [
        QuoteTick(
            ts_event=ts,
            ts_init=ts,
            symbol="ETH/USDT",
            bid=D(2000),
            ask=D(2000),
            bid_size=D(1),
            ask_size=D(1),
        ),
        MarkPriceUpdated(
            ts_event=ts,
            ts_init=ts,
            symbol=PERP,
            mark=p,
            index=p,
            funding_rate=D("0.0001"),
            next_funding_ns=ts + 8 * 3600 * S,
        ),
        QuoteTick(ts_event=ts, ts_init=ts, symbol=SPOT, bid=p, ask=p, bid_size=size, ask_size=D(1)),
    ]


def accepted(ts: int, intent_id: str, symbol: str) -> OrderAccepted:
    coid = f"c-{intent_id}"
    return OrderAccepted(
        ts_event=ts, ts_init=ts, client_order_id=coid, venue_order_id=f"v-{coid}", symbol=symbol
    )


async def record(path: Path) -> None:
    clock = SimulatedClock(START_NS)
    t1, t2, t3, t4 = (START_NS + n * S for n in (1, 2, 3, 4))
    script: list[Message] = [
        *account(START_NS),
        *prices(START_NS, "40000"),
        *prices(t1, "40000", size=TRIGGER_SIZE),  # the unwind is decided, both orders sent
        accepted(t1, "unwind-1-0", PERP),
        accepted(t1, "unwind-1-1", SPOT),
        OrderFilled(
            ts_event=t1,
            ts_init=t1,
            client_order_id="c-unwind-1-1",
            venue_order_id="v-c-unwind-1-1",
            trade_id="t-1",
            symbol=SPOT,
            side="buy",
            qty=D("0.75"),
            price=D(40000),
            fee=D(0),
            fee_asset="USDT",
            liquidity="taker",
        ),
        *prices(t2, "38500"),
        OrderRejected(
            ts_event=t3,
            ts_init=t3,
            client_order_id="c-unwind-1-0",
            symbol=PERP,
            reason="-2019 Margin is insufficient.",
        ),
        *prices(t4, "38500", size=TRIGGER_SIZE),  # decided again, the kill switch on
    ]
    async with Journal(path) as journal:
        session = Session(parse_config(CONFIG), clock, journal=journal)
        async with session:
            for message in script:
                clock.advance_to(message.ts_event)
                await session.bus.send(message)


async def read_all(path: Path) -> list[Record]:
    async with JournalReader(path) as reader:
        return [rec async for rec in reader.records()]


async def test_a_case_b_unwind_replays_to_the_same_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "caseb.db"
    await record(path)
    records = await read_all(path)
    messages = [rec.message for rec in records]
    approved = [
        (m.intent.intent_id, m.intent.qty, m.cut_reason)
        for m in messages
        if isinstance(m, IntentApproved)
    ]
    assert approved == [
        ("unwind-1-0", D("0.75"), ""),
        ("unwind-1-1", D("0.75"), ""),  # judged with its close in flight: not cut
        ("unwind-2-0", D("0.75"), ""),
    ]
    [trip] = [m for m in messages if isinstance(m, KillSwitchTriggered)]
    assert (trip.ts_event, trip.reason) == (START_NS + 3 * S, "liquidation_distance")
    assert [(m.intent_id, m.reason) for m in messages if isinstance(m, OrderVetoed)] == [
        ("unwind-2-1", "kill_switch")
    ]

    result = await replay(path, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.outputs_compared == sum(type(m).role == "output" for m in messages)
