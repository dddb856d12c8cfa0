"""The whole trading pipeline in one session: venue → portfolio → rebalancer → risk → router →
venue, journaled, then replayed with --verify. MISSION example 1 end to end, in overlay mode."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ballast.engine.app.replay import replay
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, Config, ExecutionConfig, JournalConfig
from ballast.engine.kernel.events import (
    IntentApproved,
    Message,
    OrderFilled,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    RiskBudgetChanged,
)
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS
from tests.support.book import fine_instruments
from tests.support.memory_venue import InMemoryVenue

D = Decimal
HOUR = NS_PER_HOUR
CENT = D("0.01")


async def quote(
    session: Session, venue: InMemoryVenue, clock: SimulatedClock, prices: dict[str, str]
) -> None:
    for symbol, text in prices.items():
        price = D(text)
        await venue.set_price(symbol, price)
        now = clock.now_ns()
        await session.bus.send(QuoteTick(now, now, symbol, price - 1, price + 1, D(1), D(1)))
    await session.idle()


def config(tmp_path: Path, mode: str) -> Config:
    return Config(
        targets={"BTC": D("0.40"), "ETH": D("0.20")},
        execution=ExecutionConfig(mode=mode),  # type: ignore[arg-type]
        journal=JournalConfig(path=str(tmp_path / "journal.db")),
    )


async def run_example_1(tmp_path: Path, mode: str) -> list[Message]:
    clock = SimulatedClock(START_NS)
    cfg = config(tmp_path, mode)
    venue = InMemoryVenue(
        list(fine_instruments(["BTC", "ETH"]).values()),
        {"USDT": D(40_000), "BTC": D(1), "ETH": D(10)},
        clock,
    )
    async with (
        Journal(cfg.journal.path) as journal,
        Session(cfg, clock, journal=journal, venue=venue) as session,
    ):
        await quote(
            session,
            venue,
            clock,
            {
                "BTC/USDT": "40000",
                "BTC/USDT:USDT": "40000",
                "ETH/USDT": "2000",
                "ETH/USDT:USDT": "2000",
            },
        )
        for hour, price in enumerate(("43000", "46000", "49000", "52000"), start=1):  # +30 %
            clock.advance_to(START_NS + hour * HOUR)  # each step is within the 10 % jump guard
            # perp first: the risk check refuses to trade a perp on a mark older than 30 s
            await quote(session, venue, clock, {"BTC/USDT:USDT": price, "BTC/USDT": price})
        clock.advance_to(START_NS + 4 * HOUR + 60 * NS_PER_SECOND)  # trailing snapshot fires
        await session.idle()
    async with JournalReader(cfg.journal.path) as reader:
        return await reader.messages()


def of(messages: list[Message], kind: type[Any]) -> list[Any]:
    return [m for m in messages if isinstance(m, kind)]


@pytest.mark.parametrize(("mode", "symbol"), [("spot", "BTC/USDT"), ("overlay", "BTC/USDT:USDT")])
async def test_example_1_end_to_end_and_replay_verifies(
    tmp_path: Path, mode: str, symbol: str
) -> None:
    messages = await run_example_1(tmp_path, mode)
    [decision] = of(messages, RebalanceDecided)
    assert [(i.symbol, i.side) for i in decision.intents] == [(symbol, "sell")]
    [approved] = of(messages, IntentApproved)
    assert approved.cut_reason == ""
    [command] = of(messages, SubmitOrder)
    assert command.client_order_id == f"bl-{approved.intent.intent_id}"
    [fill] = of(messages, OrderFilled)
    assert (fill.qty * fill.price).quantize(CENT) == D("7200.00")

    before, after = [s for s in of(messages, PortfolioSnapshot) if s.trigger in ("price", "fill")][
        -2:
    ]
    assert before.nav == D(112_000)
    assert after.nav == D(112_000) - fill.fee  # fees reduce NAV by exactly the fee charged
    btc = next(a for a in after.assets if a.asset == "BTC")
    assert btc.net_exposure.quantize(CENT) == D("44800.00")
    assert (btc.net_exposure / D(112_000) * 100).quantize(CENT) == D("40.00")
    if mode == "overlay":
        assert btc.spot_qty == D(1)  # the core is untouched; the overlay carries the hedge

    result = await replay(tmp_path / "journal.db", verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.outputs_compared == len([m for m in messages if type(m).role == "output"])


async def test_a_volatility_spike_closes_overlay_longs_without_any_band_breach(
    tmp_path: Path,
) -> None:
    """Calm hours, then hourly swings of ±8 %: the regime turns stressed, the budget forbids
    overlay longs and the existing perp long is closed, while every weight stays in its (wide)
    band, so no band-triggered decision is ever made."""
    clock = SimulatedClock(START_NS)
    cfg = Config(
        targets={"BTC": D("0.40"), "ETH": D("0.20")},
        bands=BandsConfig(abs_pp=D(20)),
        execution=ExecutionConfig(mode="overlay"),
        journal=JournalConfig(path=str(tmp_path / "journal.db")),
    )
    venue = InMemoryVenue(
        list(fine_instruments(["BTC", "ETH"]).values()),
        {"USDT": D(40_000), "BTC": D(1), "ETH": D(10)},
        clock,
        prices={"BTC/USDT:USDT": D(40_000)},
    )
    opened: list[Message] = []

    async def keep(event: Message) -> int:
        opened.append(event)
        return 0

    venue.attach(keep)  # an overlay long opened before this session: 0.1 BTC (4 % of NAV)
    await venue.submit(
        SubmitOrder(
            START_NS,
            START_NS,
            "before",
            "before-1",
            "BTC/USDT:USDT",
            "buy",
            "market",
            D("0.1"),
            None,
            False,
            False,
            "IOC",
        )
    )
    assert any(isinstance(e, OrderFilled) for e in opened)

    async with (
        Journal(cfg.journal.path) as journal,
        Session(cfg, clock, journal=journal, venue=venue) as session,
    ):
        btc = D(40_000)
        for hour in range(60):
            clock.advance_to(START_NS + hour * HOUR)
            if hour < 30:
                btc = btc * (D("1.001") if hour % 2 else D("0.999"))  # calm
            else:
                btc = btc * (D("1.08") if hour % 2 else D("0.93"))  # stressed swings
            btc = btc.quantize(CENT)
            await quote(
                session,
                venue,
                clock,
                {
                    "BTC/USDT:USDT": str(btc),
                    "BTC/USDT": str(btc),
                    "ETH/USDT:USDT": "2000",
                    "ETH/USDT": "2000",
                },
            )
    async with JournalReader(cfg.journal.path) as reader:
        messages = await reader.messages()

    regimes = [m.regime for m in of(messages, RiskBudgetChanged)]
    assert regimes[0] == "normal"
    assert "calm" in regimes
    assert regimes[-1] == "stressed"
    decisions = of(messages, RebalanceDecided)
    assert [d.trigger for d in decisions] == ["budget"]  # no band breach, ever
    [close] = decisions[0].intents
    assert (close.symbol, close.side, close.qty, close.reduce_only) == (
        "BTC/USDT:USDT",
        "sell",
        D("0.1"),
        True,
    )
    final = of(messages, PortfolioSnapshot)[-1]
    assert next(a for a in final.assets if a.asset == "BTC").perp_qty == 0
    for snapshot in of(messages, PortfolioSnapshot):
        for asset in snapshot.assets:
            target = cfg.targets[asset.asset]
            assert target - D("0.20") <= asset.weight <= target + D("0.20")
    result = await replay(tmp_path / "journal.db", verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
