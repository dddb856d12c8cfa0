"""Bad market data never drives a decision: a rejected price reaches no estimator, ledger or
strategy; an absurd funding rate is never paid; a configured instrument without data is an error.

Each test damages a copy of the bundled data in its own folder and compares the run with the run
on the same copy with the damaged row removed: if the bad value reaches nothing but the venue
(which sees what the market sees), the engine decides exactly the same on both.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ballast.adapters.data.bundle import MarketBundle, to_ns
from ballast.engine.app.backtest import BacktestRun, assets_of, run_backtest
from ballast.engine.app.cli.cmd_plan import paper_venue
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config, load_config, parse_config
from ballast.engine.kernel.events import (
    Bar,
    DataRejected,
    FundingPaid,
    IntentApproved,
    OrderFilled,
    OrderVetoed,
    RebalanceDecided,
    RiskBudgetChanged,
)
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.observe.performance import format_summary
from tests.support.cli import ROOT, ballast
from tests.support.market_data import (
    copy_market,
    drop_row,
    funding_key,
    header_only,
    rows,
    set_cell,
)

PAPER = load_config(ROOT / "examples" / "paper.toml")
D = Decimal
# A growth optimizer with perp longs open from its second day on, so that funding is paid (issue
# 12: the default signal warms up for 30 days and then goes long only on +5 % momentum).
GROWTH = parse_config(
    '[strategy]\nname = "growth_optimizer"\n'
    "params = { lookback_h = 24, strong_above = 0, fade_below = -1, min_hold_h = 0 }\n"
    '[execution]\nmode = "auto"\n'
)
TRAIL = (
    RiskBudgetChanged,
    RebalanceDecided,
    IntentApproved,
    OrderVetoed,
    SubmitOrder,
    OrderFilled,
    FundingPaid,
)
SPIKE_AT = "2023-03-10 12:00"
"""The BTC spot candle whose close the issue set to 2,000,000 (it closes at 13:00)."""


async def backtest(config: Config, data: Path, journal: Path, start: str, end: str) -> BacktestRun:
    bundle = MarketBundle.load(data, assets_of(config), start=start, end=end)
    return await run_backtest(config, bundle, name="t", journal_path=journal)


async def journaled(path: Path) -> list[Any]:
    async with JournalReader(path) as reader:
        return await reader.messages()


def trail(messages: list[Any]) -> list[Any]:
    """What the engine concluded and did: regime and budget, decisions, verdicts, orders, fills,
    funding."""
    return [m for m in messages if isinstance(m, TRAIL)]


async def test_a_rejected_spot_close_drives_neither_regime_nor_trades(tmp_path: Path) -> None:
    spiked = copy_market(tmp_path / "spiked", "2023-02-28", "2023-03-23")
    clean = copy_market(tmp_path / "clean", "2023-02-28", "2023-03-23")
    set_cell(spiked / "btcusdt_spot_1h.csv", SPIKE_AT, "close", "2000000")
    set_cell(spiked / "btcusdt_spot_1h.csv", SPIKE_AT, "high", "2000000")
    drop_row(clean / "btcusdt_spot_1h.csv", SPIKE_AT)
    runs = [
        await backtest(PAPER, folder, tmp_path / f"{folder.name}.db", "2023-03-01", "2023-03-22")
        for folder in (spiked, clean)
    ]
    bad, good = [await journaled(run.journal) for run in runs]
    rejected = [m for m in bad if isinstance(m, DataRejected)]
    assert [(r.symbol, r.reason) for r in rejected] == [("BTC/USDT", "price_jump")]
    assert max(m.volatility for m in bad if isinstance(m, RiskBudgetChanged)) < 2  # main: 72.9
    assert trail(bad) == trail(good)
    assert format_summary(runs[0].performance.summary) == format_summary(
        runs[1].performance.summary
    )


async def test_an_absurd_funding_rate_is_never_paid(tmp_path: Path) -> None:
    settled_at = funding_key("2023-03-05T08:00")
    absurd = copy_market(tmp_path / "absurd", "2023-02-28", "2023-03-11")
    clean = copy_market(tmp_path / "clean", "2023-02-28", "2023-03-11")
    set_cell(absurd / "btcusdt_perp_funding_8h.csv", settled_at, "last_funding_rate", "5.0")
    drop_row(clean / "btcusdt_perp_funding_8h.csv", settled_at)
    bundle = MarketBundle.load(absurd, ["BTC", "ETH"], start="2023-03-01", end="2023-03-10")
    assert all(s.rate.copy_abs() <= Decimal("0.03") for s in bundle.settlements)
    assert any("funding rate 5.0" in line for line in bundle.report().lines())
    runs = [
        await backtest(GROWTH, folder, tmp_path / f"{folder.name}.db", "2023-03-01", "2023-03-10")
        for folder in (absurd, clean)
    ]
    bad, good = [await journaled(run.journal) for run in runs]
    assert any(isinstance(m, FundingPaid) and m.position_qty != 0 for m in bad)
    assert all(m.rate.copy_abs() <= Decimal("0.03") for m in bad if isinstance(m, FundingPaid))
    assert trail(bad) == trail(good)


def paper_config(tmp_path: Path, data: Path) -> Path:
    """examples/paper.toml on ``data``, journal and metrics kept inside ``tmp_path``."""
    text = (ROOT / "examples" / "paper.toml").read_text()
    text = text.replace('path = "var/paper/journal.db"', f'path = "{tmp_path / "j.db"}"')
    text = text.replace("enabled = true", "enabled = false")
    text += f'\n[paper]\ndata_dir = "{data}"\nstart = "2023-03-01"\nend = "2023-03-05"\n'
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def test_backtest_prints_what_the_guard_and_the_loader_rejected(tmp_path: Path) -> None:
    data = copy_market(tmp_path / "data", "2023-02-28", "2023-03-06")
    set_cell(data / "btcusdt_spot_1h.csv", "2023-03-02 12:00", "close", "2000000")
    settled_at = funding_key("2023-03-03T08:00")
    set_cell(data / "ethusdt_perp_funding_8h.csv", settled_at, "last_funding_rate", "-0.5")
    config = paper_config(tmp_path, data)
    proc = ballast("backtest", "-c", str(config), "--no-report", cwd=tmp_path)  # var/ in tmp_path
    assert proc.returncode == 0, proc.stderr
    assert "rejected: ETH/USDT:USDT funding rate -0.5 at 2023-03-03 08:00" in proc.stdout
    assert "threshold: data rejected: BTC/USDT price_jump 1" in proc.stdout


MISSING_DATA = [
    ("ethusdt_perp_1h.csv", "deleted"),
    ("btcusdt_spot_1h.csv", "header only"),
    ("ethusdt_perp_funding_8h.csv", "deleted"),
    ("btcusdt_perp_1h.csv", "ends before the range"),
]


def damaged(tmp_path: Path, name: str, how: str) -> Path:
    data = copy_market(tmp_path / "data", "2023-02-28", "2023-03-06")
    path = data / name
    if how == "deleted":
        path.unlink()
    elif how == "header only":
        header_only(path)
    else:
        table = rows(path)
        path.write_text("\n".join(",".join(r) for r in table[:10]) + "\n")
    return data


@pytest.mark.parametrize(("name", "how"), MISSING_DATA)
@pytest.mark.parametrize("command", ["backtest", "plan", "run"])
def test_a_configured_instrument_without_data_is_an_error(
    tmp_path: Path, name: str, how: str, command: str
) -> None:
    config = paper_config(tmp_path, damaged(tmp_path, name, how))
    extra = {"backtest": ["--no-report"], "plan": [], "run": ["--max-runtime-s", "5"]}[command]
    proc = ballast(command, "-c", str(config), *extra, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert name in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_is_never_priced_by_a_rejected_bar(tmp_path: Path) -> None:
    data = copy_market(tmp_path / "data", "2023-02-28", "2023-03-06")
    last = "2023-03-04 23:00"  # closes at [paper] end, 2023-03-05 00:00: the plan's prices
    set_cell(data / "btcusdt_spot_1h.csv", last, "close", "2000000")
    config = load_config(paper_config(tmp_path, data))
    _, market = paper_venue(config, None)
    [btc] = [bar for bar in market if isinstance(bar, Bar) and bar.symbol == "BTC/USDT"]
    assert btc.close != D(2_000_000)
    assert btc.ts_event == to_ns("2023-03-04T23:00")  # the bar before it, the last accepted
