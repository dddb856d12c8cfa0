"""A paper run restarted on its journal resumes: the book (balances, positions, fees, peak NAV),
the feed (after the last bar sent) and the id counters continue from the journal, after a
SIGTERM as after a SIGKILL, and ``ballast replay --verify`` reproduces every session.
``ballast run`` is a real subprocess at a fast pace (tests/test_run.py drives it the same way)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    InstrumentsLoaded,
    IntentApproved,
    KillSwitchTriggered,
    MarketEvent,
    Message,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    RebalanceDecided,
    RiskBudgetChanged,
    SessionStarted,
    SessionStopped,
)
from ballast.engine.kernel.journal import JournalReader
from tests.support.cli import ballast
from tests.support.paper_config import DATA
from tests.support.waiting import eventually
from tests.test_run import config, running

PACE = ("--step-s=0.01", "--max-runtime-s=60")
START = "2022-06-01"  # a month of falling prices: rebalancing trades from the first bars on


async def messages_of(path: Path) -> list[Message]:
    async with JournalReader(path) as reader:
        return await reader.messages()


def count_in(path: Path, kind: str) -> int:
    """How many ``kind`` records the (live) journal holds, read with plain sqlite."""
    import sqlite3

    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT COUNT(*) FROM events WHERE type = ?", (kind,)).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def more_fills(journal: Path, than: int) -> Callable[[], bool]:
    return lambda: count_in(journal, "OrderFilled") > than + 1


def sessions(messages: Sequence[Message]) -> list[list[Message]]:
    out: list[list[Message]] = []
    for message in messages:
        if isinstance(message, SessionStarted):
            out.append([])
        out[-1].append(message)
    return out


def opening_balances(session: Sequence[Message]) -> dict[str, Decimal]:
    """The account the venue reported at the session's start, before any market data."""
    start = next(i for i, m in enumerate(session) if isinstance(m, InstrumentsLoaded))
    balances: dict[str, Decimal] = {}
    for message in session[start + 1 :]:
        if isinstance(message, MarketEvent):
            break
        if isinstance(message, BalanceUpdated):
            balances[message.asset] = message.free + message.locked
    return balances


def closing_balances(messages: Sequence[Message]) -> dict[str, Decimal]:
    balances: dict[str, Decimal] = {}
    for message in messages:
        if isinstance(message, BalanceUpdated):
            balances[message.asset] = message.free + message.locked
    return {asset: value for asset, value in balances.items() if value}


def spot_bought(messages: Sequence[Message]) -> dict[str, Decimal]:
    """Base quantity bought less sold, per asset, over the spot fills of ``messages``."""
    held: dict[str, Decimal] = {}
    for fill in (m for m in messages if isinstance(m, OrderFilled) and ":" not in m.symbol):
        asset = fill.symbol.split("/")[0]
        held[asset] = held.get(asset, Decimal(0)) + (fill.qty if fill.side == "buy" else -fill.qty)
    return held


def repeated(values: Sequence[str]) -> list[str]:
    return [value for value, n in Counter(values).items() if n > 1]


@pytest.mark.slow
async def test_a_restarted_paper_run_resumes_the_book_the_feed_and_the_ids(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.db"
    paper = config(tmp_path, metrics={"enabled": False}, paper={"start": START})
    resumed: list[str] = []
    filled = 0
    # SIGTERM after some fills, SIGKILL after more, then a last run until its max runtime
    for how in (signal.SIGTERM, signal.SIGKILL, None):
        args = PACE if how is not None else ("--step-s=0.01", "--max-runtime-s=1.5")
        async with running(tmp_path, paper, *args) as engine:
            await engine.line("paper: ", within_s=30)
            if how is not None:
                await eventually(
                    more_fills(journal, filled),
                    within_s=30,
                    what="more fills",
                )
                filled = count_in(journal, "OrderFilled")
                code = await engine.stop(how)
                assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
            else:
                assert await asyncio.wait_for(engine.proc.wait(), 30) == 0
                assert engine.proc.stdout is not None
                engine.lines += (await engine.proc.stdout.read()).decode().splitlines()
            resumed += [line for line in engine.lines if line.startswith("resumed from seq")]
        assert "Traceback" not in engine.log.read_text(), engine.log.read_text()

    messages = await messages_of(journal)
    runs = sessions(messages)
    assert len(runs) == 3
    # one line per restart: where the journal was, the bar time and the NAV it resumed at
    assert len(resumed) == 2, resumed
    for index, line in enumerate(resumed, start=1):
        match = re.match(r"resumed from seq (\d+) at (\S+) with NAV ([\d.,]+) USDT", line)
        assert match is not None, line
        assert int(match[1]) == sum(len(run) for run in runs[:index])
        nav = Decimal(match[3].replace(",", ""))
        assert nav != Decimal(100_000)

    # the book continues: a restart after SIGTERM opens with the balances the journal ended
    # with; after SIGKILL (which may cut a fill from its balance update) with every spot fill
    # the journal holds booked
    assert opening_balances(runs[1]) == closing_balances(runs[0])
    earlier = [m for run in runs[:2] for m in run]
    spot = {a: q for a, q in spot_bought(earlier).items() if q}
    assert {a: q for a, q in opening_balances(runs[2]).items() if a != "USDT"} == spot
    for index in (1, 2):
        earlier = [m for run in runs[:index] for m in run]
        # ... and the portfolio's attribution goes on (fees paid so far, peak NAV), not reset
        last = [m for m in earlier if isinstance(m, PortfolioSnapshot)][-1]
        first = next(m for m in runs[index] if isinstance(m, PortfolioSnapshot))
        assert first.fees_paid >= last.fees_paid > 0
        assert first.peak_nav >= last.peak_nav

    # the feed continues after the last bar sent: every bundled bar once, in order
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], "USDT", start=START)
    sent = [(m.symbol, m.close) for m in messages if isinstance(m, Bar)]
    expected = [(e.symbol, e.close) for e in bundle.events() if isinstance(e, Bar)]
    assert sent == expected[: len(sent)]
    assert sum(isinstance(m, Bar) for m in runs[2]) > 0

    # no id is ever used twice
    fills = [m for m in messages if isinstance(m, OrderFilled)]
    assert len(fills) > filled - 1 > 0
    assert not repeated([m.trade_id for m in fills])
    assert not repeated([m.venue_order_id for m in messages if isinstance(m, OrderAccepted)])
    assert not repeated([m.client_order_id for m in messages if isinstance(m, SubmitOrder)])
    assert not repeated([m.decision_id for m in messages if isinstance(m, RebalanceDecided)])

    # how each session ended
    stops = [m for m in messages if isinstance(m, SessionStopped)]
    assert [s.reason for s in stops] == ["signal:SIGTERM", "max_runtime"]

    verified = ballast("replay", "--verify", str(journal))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 session(s)" in verified.stdout


@pytest.mark.slow
async def test_a_tripped_kill_switch_and_the_peak_nav_survive_a_restart(tmp_path: Path) -> None:
    """Risk state is not reset by a restart: the drawdown is still measured from the peak NAV of
    the earlier session, and a kill switch tripped before the restart stays tripped (no second
    KillSwitchTriggered, no new risk opened)."""
    journal = tmp_path / "journal.db"
    paper = config(
        tmp_path, metrics={"enabled": False}, paper={"start": START}, risk={"drawdown_limit": 0.03}
    )
    for restart in (False, True):
        args = ("--step-s=0.01", "--max-runtime-s=1.5") if restart else PACE
        async with running(tmp_path, paper, *args) as engine:
            await engine.line("paper: ", within_s=30)
            if restart:
                assert await asyncio.wait_for(engine.proc.wait(), 30) == 0
            else:
                await eventually(
                    lambda: count_in(journal, "KillSwitchTriggered") > 0,
                    within_s=30,
                    what="the kill switch",
                )
                assert await engine.stop(signal.SIGTERM) == 0
        assert "Traceback" not in engine.log.read_text(), engine.log.read_text()

    before, after = sessions(await messages_of(journal))
    assert sum(isinstance(m, KillSwitchTriggered) for m in before) == 1
    assert not any(isinstance(m, KillSwitchTriggered) for m in after)
    peak = max(m.peak_nav for m in before if isinstance(m, PortfolioSnapshot))
    snapshots = [m for m in after if isinstance(m, PortfolioSnapshot)]
    assert snapshots
    assert all(s.peak_nav >= peak for s in snapshots)
    assert all(s.drawdown > 0 for s in snapshots[-1:])
    budgets = [m for m in before if isinstance(m, RiskBudgetChanged)]
    resumed_budgets = [m for m in after if isinstance(m, RiskBudgetChanged)]
    # the regime estimator continues: no fresh start at zero volatility
    assert all(b.volatility > 0 for b in resumed_budgets), resumed_budgets
    assert budgets
    opened = [m.intent for m in after if isinstance(m, IntentApproved) and not m.intent.reduce_only]
    assert not [i for i in opened if i.side == "buy" and ":" not in i.symbol], opened
    verified = ballast("replay", "--verify", str(journal))
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
async def test_an_order_lost_in_flight_by_a_kill_is_given_up_on_restart(tmp_path: Path) -> None:
    """With a fill latency, a kill can come after an order was sent and before the venue got it.
    The rebuilt venue never had it: the restarted router finds that out (the reconciliation
    seam) and gives it up, so the asset is planned again instead of waiting for it forever."""
    journal = tmp_path / "journal.db"
    slow = config(tmp_path, metrics={"enabled": False}, paper={"start": START, "latency_ms": 3000})
    async with running(tmp_path, slow, *PACE) as engine:
        await engine.line("paper: ", within_s=30)
        await eventually(
            lambda: count_in(journal, "OrderSubmitted") > 0, within_s=30, what="an order sent"
        )
        assert count_in(journal, "OrderAccepted") + count_in(journal, "OrderRejected") == 0
        assert await engine.stop(signal.SIGKILL) == -signal.SIGKILL
    # restarted with one key changed: the run says so
    slow = config(
        tmp_path,
        metrics={"enabled": False},
        paper={"start": START, "latency_ms": 3000},
        execution={"cooldown_s": 3.0},
    )
    async with running(tmp_path, slow, "--step-s=0.01", "--max-runtime-s=6") as engine:
        assert await asyncio.wait_for(engine.proc.wait(), 30) == 0, engine.log.read_text()
        assert engine.proc.stdout is not None
        lines = (await engine.proc.stdout.read()).decode().splitlines()
    changed = [line for line in lines if line.startswith("resume: ")]
    assert len(changed) == 1, lines
    assert changed[0].startswith("resume: execution.cooldown_s was 2.0 in session ")
    assert changed[0].endswith("now 3.0: the journal is caught up under the new value")
    before, after = sessions(await messages_of(journal))
    lost = {m.client_order_id for m in before if isinstance(m, SubmitOrder)}
    given_up = {
        m.client_order_id
        for m in after
        if isinstance(m, OrderRejected) and "never received" in m.reason
    }
    assert lost
    assert given_up == lost
    assert any(isinstance(m, OrderFilled) for m in after)  # planned and traded again
    verified = ballast("replay", "--verify", str(journal))
    assert verified.returncode == 0, verified.stdout + verified.stderr
