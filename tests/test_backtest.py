"""Backtests on the bundled real data: determinism, the accounting identity at every event over
two years, and funding reproduced exactly from the funding file."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.app.backtest import BacktestRun, initial_allocation, run_backtest, variant
from ballast.engine.app.cli.cmd_journal import record_json
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_MILLISECOND
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import (
    BandsConfig,
    Config,
    ExecutionConfig,
    RiskConfig,
    StrategyConfig,
    parse_config,
)
from ballast.engine.kernel.events import (
    FundingPaid,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    RebalanceDecided,
)
from ballast.engine.kernel.instruments import base_of
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.observe.performance import format_summary
from ballast.engine.strategy.api import Strategy, StrategyContext, TargetSet

DATA = Path(__file__).resolve().parents[1] / "data" / "market"
D = Decimal


async def run(
    config: Config, path: Path, start: str | None = None, end: str | None = None
) -> BacktestRun:
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], start=start, end=end)
    return await run_backtest(config, bundle, name="t", journal_path=path)


async def export(path: Path) -> list[bytes]:
    async with JournalReader(path) as reader:
        return [record_json(rec) async for rec in reader.records()]


async def messages(path: Path) -> list[Any]:
    async with JournalReader(path) as reader:
        return await reader.messages()


GROWTH = parse_config('[strategy]\nname = "growth_optimizer"\n[execution]\nmode = "auto"\n')


@pytest.mark.slow
async def test_same_config_and_data_give_identical_journals_and_numbers(tmp_path: Path) -> None:
    runs = [await run(GROWTH, tmp_path / f"{n}.db", "2022-05-01", "2022-07-01") for n in (1, 2)]
    first, second = [await export(r.journal) for r in runs]
    assert len(first) > 5_000
    assert first == second
    assert [format_summary(r.performance.summary) for r in runs[:1]] == [
        format_summary(r.performance.summary) for r in runs[1:]
    ]
    assert any(isinstance(m, OrderFilled) for m in await messages(runs[0].journal))


def replanned_in_flight(journal: list[Any]) -> list[str]:
    """Decisions that plan an asset while an order of an earlier decision for it is still open
    (submitted, neither completely filled nor canceled nor rejected): a duplicate order."""
    left: dict[str, Decimal] = {}
    asset_of: dict[str, str] = {}
    found: list[str] = []
    for m in journal:
        if isinstance(m, RebalanceDecided):
            open_assets = {asset_of[c] for c, q in left.items() if q > 0}
            for intent in m.intents:
                if base_of(intent.symbol) in open_assets:
                    found.append(f"{m.decision_id}: {intent.symbol} while in flight: {m.reasoning}")
        elif isinstance(m, SubmitOrder):
            left[m.client_order_id] = m.qty
            asset_of[m.client_order_id] = base_of(m.symbol)
        elif isinstance(m, OrderFilled) and m.client_order_id in left:
            left[m.client_order_id] -= m.qty
        elif isinstance(m, OrderCanceled | OrderRejected):
            left.pop(m.client_order_id, None)
    return found


@pytest.mark.parametrize("strategy", ["growth_optimizer", "buy_and_hold", "calendar"])
async def test_no_asset_is_planned_again_while_its_order_is_in_flight(
    tmp_path: Path, strategy: str
) -> None:
    """Orders sent when an instant closes are executed at that instant, before the clock jumps to
    the next bar an hour later; so the rebalancer never sees an order unanswered for an hour,
    expires it and sends the same trade again."""
    config = variant(GROWTH, strategy, initial_allocation(GROWTH))
    result = await run(config, tmp_path / "j.db", "2022-04-18", "2022-07-01")
    journal = await messages(result.journal)
    assert sum(isinstance(m, SubmitOrder) for m in journal) >= 2
    assert replanned_in_flight(journal) == []
    fills = [m for m in journal if isinstance(m, OrderFilled)]
    submits = {m.client_order_id: m for m in journal if isinstance(m, SubmitOrder)}
    assert all(f.ts_event == submits[f.client_order_id].ts_event for f in fills)


@pytest.mark.slow
async def test_the_accounting_identity_holds_at_every_event_over_two_years(tmp_path: Path) -> None:
    """NAV − NAV0 = price PnL + funding − fees + transfers, at every snapshot (one is published
    after every account, order, funding event and every priced hour) of the whole bundle."""
    result = await run(GROWTH, tmp_path / "two_years.db")
    snapshots = [m for m in await messages(result.journal) if isinstance(m, PortfolioSnapshot)]
    assert len(snapshots) > 17_000
    days = (snapshots[-1].ts_event - snapshots[0].ts_event) / NS_PER_DAY
    assert days > 700
    base = {s.nav - (s.price_pnl + s.funding_pnl - s.fees_paid + s.transfers) for s in snapshots}
    assert base == {
        snapshots[0].nav
        - (
            snapshots[0].price_pnl
            + snapshots[0].funding_pnl
            - snapshots[0].fees_paid
            + snapshots[0].transfers
        )
    }
    assert snapshots[-1].fees_paid > 0
    assert snapshots[-1].funding_pnl != 0


class ConstantPerp(Strategy):
    """Holds a perp position of ``net`` × NAV on BTC and no spot, inside a band wide enough that
    it is never traded again: a constant-size position."""

    name: ClassVar[str] = "constant_perp"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.net = D(str(self.params["net"]))

    def targets(self, context: StrategyContext) -> TargetSet:
        return TargetSet(
            weights={"BTC": self.net}, spot_weights={"BTC": D(0)}, note="constant perp"
        )


def funding_file() -> dict[int, Decimal]:
    """settlement minute (ns) → rate, straight from the bundled CSV."""
    rates: dict[int, Decimal] = {}
    with (DATA / "btcusdt_perp_funding_8h.csv").open() as handle:
        for row in csv.DictReader(handle):
            minute = round(int(row["calc_time"]) / 60_000) * 60_000
            rates[minute * NS_PER_MILLISECOND] = D(row["last_funding_rate"])
    return rates


def perp_closes() -> dict[int, Decimal]:
    """bar close time (ns) → BTC perp close, straight from the bundled CSV."""
    from ballast.adapters.data.klines import load_klines

    bars = load_klines(DATA / "btcusdt_perp_1h.csv", "BTC/USDT:USDT").bars
    return {bar.ts_event: bar.close for bar in bars}


@pytest.mark.slow
@pytest.mark.parametrize("net", ["0.30", "-0.30"])
async def test_a_constant_perp_position_pays_exactly_the_funding_of_the_file(
    tmp_path: Path, net: str
) -> None:
    config = Config(
        strategy=StrategyConfig(name="tests.test_backtest:ConstantPerp", params={"net": net}),
        bands=BandsConfig(abs_pp=D(29)),
        execution=ExecutionConfig(mode="overlay"),
        # no regime ever stressed (it would close the long): a constant position is the point
        risk=RiskConfig(calm_vol=D(98), stressed_vol=D(99)),
    )
    result = await run(config, tmp_path / "funding.db", "2022-05-01", "2022-09-01")
    events = await messages(result.journal)
    fills = [m for m in events if isinstance(m, OrderFilled)]
    assert [f.symbol for f in fills] == ["BTC/USDT:USDT"]  # opened once, never traded again
    qty = fills[0].qty if fills[0].side == "buy" else -fills[0].qty
    payments = [m for m in events if isinstance(m, FundingPaid)]
    rates, closes = funding_file(), perp_closes()
    assert len(payments) > 300
    for paid in payments:
        assert paid.position_qty == qty
        assert paid.rate == rates[paid.ts_event]
        assert paid.mark_price == closes[paid.ts_event]
        assert paid.amount == -qty * closes[paid.ts_event] * rates[paid.ts_event]
    expected = sum((-qty * closes[p.ts_event] * rates[p.ts_event] for p in payments), D(0))
    final = [m for m in events if isinstance(m, PortfolioSnapshot)][-1]
    assert final.funding_pnl == expected
    # sign conventions, both ways: rate > 0 → longs pay and shorts receive; rate < 0 the reverse
    for paid in payments:
        if paid.rate != 0:
            longs_pay = paid.rate > 0
            assert (paid.amount < 0) == (longs_pay if qty > 0 else not longs_pay)
    assert {p.rate > 0 for p in payments} == {True, False}  # both signs occur in this window
