"""LoopbackCore without the server: the input log rebuilds the same exchange, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.adapters.loopback import wire
from ballast.adapters.loopback.core import LoopbackCore, LoopbackError, OrderUpdate, Update
from ballast.adapters.sim.config import SimConfig
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.errors import JournalLockedError
from ballast.engine.kernel.events import MarkPriceUpdated, QuoteTick
from ballast.engine.kernel.instruments import binance_defaults

START = 1_700_000_000 * NS_PER_SECOND
INSTRUMENTS = binance_defaults(["BTC"])
SYMBOLS = ["BTC/USDT", "BTC/USDT:USDT"]

Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("quote"), st.sampled_from(SYMBOLS), st.integers(45_000, 55_000)),
        st.tuples(st.just("mark"), st.integers(45_000, 55_000)),
        st.tuples(
            st.just("order"),
            st.sampled_from(SYMBOLS),
            st.sampled_from(["buy", "sell"]),
            st.sampled_from(["market", "limit"]),
            st.integers(1, 40),  # hundredths of a BTC
            st.integers(-1500, 1500),  # limit offset from 50,000
            st.booleans(),  # reduce only (perps)
        ),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("funding"), st.integers(-5, 5)),
    ),
    min_size=5,
    max_size=40,
)
PRICED: list[Op] = [("quote", SYMBOLS[0], 50_000), ("quote", SYMBOLS[1], 50_000), ("mark", 50_000)]


def _cmd(n: int, now: int, op: Op) -> SubmitOrder:
    _, symbol, side, kind, hundredths, offset, reduce = op
    return SubmitOrder(
        ts_event=now,
        ts_init=now,
        intent_id=f"i-{n}",
        client_order_id=f"c-{n}",
        symbol=symbol,
        side=side,
        order_type=kind,
        qty=Decimal(hundredths) / 100,
        price=Decimal(50_000 + offset) if kind == "limit" else None,
        reduce_only=reduce and symbol.endswith(":USDT"),
        post_only=False,
        time_in_force="GTC",
    )


async def _run(path: Path, script: list[Op]) -> tuple[dict[str, Any], int]:
    clock = SimulatedClock(START)
    config = SimConfig(balances={"USDT": Decimal(100_000), "BTC": Decimal(1)})
    core = LoopbackCore(INSTRUMENTS, config, clock, state_path=path)
    updates: list[Update] = []
    core.listen(updates.append)
    for n, op in enumerate(script):
        clock.advance_to(clock.now_ns() + NS_PER_SECOND)
        now = clock.now_ns()
        if op[0] == "quote":
            price = Decimal(op[2])
            tick = QuoteTick(0, 0, op[1], price, price + 1, Decimal(1), Decimal(1))
            await core.on_market(tick)
        elif op[0] == "mark":
            mark = Decimal(op[1])
            perp = SYMBOLS[1]
            await core.on_market(MarkPriceUpdated(0, 0, perp, mark, mark, Decimal(0), now))
        elif op[0] == "order":
            with contextlib.suppress(LoopbackError):
                await core.submit(_cmd(n, now, op))
        elif op[0] == "cancel":
            with contextlib.suppress(LoopbackError):
                await core.cancel(SYMBOLS[1], f"c-{op[1]}")
            with contextlib.suppress(LoopbackError):
                await core.cancel(SYMBOLS[0], f"c-{op[1]}")
        else:
            marked = core.exchange.mark_price(SYMBOLS[1])
            if marked is not None:
                await core.settle_funding(SYMBOLS[1], Decimal(op[1]) / 10_000, marked, now)
    state = wire.state(core, clock.now_ns() // 1_000_000)
    core.close()
    assert all(u.record.order_id > 0 for u in updates if isinstance(u, OrderUpdate))
    return state, len(updates)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_replaying_the_input_log_rebuilds_the_same_exchange(script: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exchange.sqlite"
        before, _ = asyncio.run(_run(path, PRICED + script))
        after, _ = asyncio.run(_run(path, []))  # only the replay of the log
    before.pop("time")
    after.pop("time")
    assert after == before


async def test_inputs_are_logged_before_they_are_applied(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    core = LoopbackCore(INSTRUMENTS, SimConfig(balances={"USDT": Decimal(1000)}), clock,
                        state_path=tmp_path / "x.sqlite")  # fmt: skip
    seen: list[int] = []
    core.listen(lambda _update: seen.append(core.inputs_logged))
    await core.on_market(QuoteTick(0, 0, SYMBOLS[0], Decimal(50_000), Decimal(50_001),
                                   Decimal(1), Decimal(1)))  # fmt: skip
    cmd = _cmd(0, clock.now_ns(), ("order", SYMBOLS[0], "buy", "market", 1, 0, False))
    await core.submit(cmd)
    assert seen == [1, 2, 2, 2]  # quote; NEW, TRADE, balances: each after its input was logged
    with pytest.raises(LoopbackError) as dup:
        await core.submit(cmd)
    assert dup.value.kind == "duplicate"
    assert core.inputs_logged == 2  # a refused duplicate is no input
    core.close()


def test_one_exchange_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "exchange.sqlite"
    first = LoopbackCore(INSTRUMENTS, SimConfig(), SimulatedClock(START), state_path=path)
    with pytest.raises(JournalLockedError):
        LoopbackCore(INSTRUMENTS, SimConfig(), SimulatedClock(START), state_path=path)
    first.close()
    LoopbackCore(INSTRUMENTS, SimConfig(), SimulatedClock(START), state_path=path).close()
