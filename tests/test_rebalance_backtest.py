"""``[rebalance]`` end to end: backtests on the bundled data, with the dates and orders read back
from the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.app.backtest import initial_allocation, run_backtest, variant
from ballast.engine.kernel.clock import NS_PER_DAY
from ballast.engine.kernel.config import Config, RebalanceConfig, parse_config
from ballast.engine.kernel.events import PortfolioSnapshot, RebalanceDecided
from ballast.engine.kernel.instruments import base_of
from ballast.engine.kernel.journal import JournalReader

DATA = Path(__file__).resolve().parents[1] / "data" / "market"
BASE = '[targets]\nBTC = 0.5\nETH = 0.3\n[execution]\nmode = "spot"\n[risk]\ndrawdown_limit = 1\n'


async def journal(config: Config, path: Path) -> list[Any]:
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], start="2022-04-18", end="2022-08-01")
    result = await run_backtest(config, bundle, name="t", journal_path=path)
    async with JournalReader(result.journal) as reader:
        return await reader.messages()


def trades(messages: list[Any]) -> list[RebalanceDecided]:
    return [m for m in messages if isinstance(m, RebalanceDecided) and m.intents]


async def test_calendar_trades_at_every_date_and_never_between(tmp_path: Path) -> None:
    config = parse_config(BASE + '[rebalance]\ntrigger = "calendar"\nevery_days = 14\n')
    messages = await journal(config, tmp_path / "j.db")
    first = next(m.ts_event for m in messages if isinstance(m, PortfolioSnapshot))
    days = [(d.ts_event - first) / NS_PER_DAY for d in trades(messages)]
    assert days == [0, 14, 28, 42, 56, 70, 84, 98]
    for decision in trades(messages)[1:]:  # after the first purchase, both assets each date
        assert {base_of(i.symbol) for i in decision.intents} == {"BTC", "ETH"}


async def test_hybrid_checks_the_bands_only_at_the_dates(tmp_path: Path) -> None:
    config = parse_config(
        BASE + '[bands]\nrel = 0.1\n[rebalance]\ntrigger = "hybrid"\nevery_days = 7\n'
    )
    messages = await journal(config, tmp_path / "j.db")
    first = next(m.ts_event for m in messages if isinstance(m, PortfolioSnapshot))
    made = trades(messages)
    assert len(made) >= 2
    assert all((d.ts_event - first) % (7 * NS_PER_DAY) == 0 for d in made)
    for decision in made[1:]:  # only breached assets are traded (scope breached)
        breached = {a.asset for a in decision.assets if not a.band_low <= a.weight <= a.band_high}
        assert {base_of(i.symbol) for i in decision.intents} == breached


async def test_scope_all_trades_every_asset_whenever_one_breaches(tmp_path: Path) -> None:
    config = parse_config(BASE + '[bands]\nrel = 0.1\n[rebalance]\nscope = "all"\n')
    messages = await journal(config, tmp_path / "j.db")
    made = trades(messages)
    assert len(made) >= 3
    some_inside = False
    for decision in made[1:]:
        assert {base_of(i.symbol) for i in decision.intents} == {"BTC", "ETH"}
        some_inside |= any(a.band_low <= a.weight <= a.band_high for a in decision.assets)
    assert some_inside  # an asset inside its band was traded with the one that breached


def test_the_baselines_keep_their_own_rebalancing_rule() -> None:
    config = parse_config(BASE + '[rebalance]\ntrigger = "hybrid"\nevery_days = 7\n')
    for baseline in ("buy_and_hold", "calendar"):
        assert variant(config, baseline, initial_allocation(config)).rebalance == (
            RebalanceConfig()
        )
