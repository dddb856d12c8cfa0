"""Issue 12: growth_optimizer's drawdown kill switch (the demo's config with a 30 % limit) on
2022-06-13, in a backtest of the bundled data, with and without ``[risk.rearm]``: the summary says
when it fired and whether it re-armed, and a re-armed run trades again. (With the demo's own 50 %
limit it no longer fires since the preset's signals got a warm-up and hysteresis.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.app.backtest import BacktestRun, run_backtest
from ballast.engine.app.cli.cmd_backtest import print_results
from ballast.engine.kernel.config import Config, RearmConfig, load_config
from ballast.engine.kernel.events import OrderFilled
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.timefmt import parse_time

ROOT = Path(__file__).resolve().parents[1]
FIRED = "2022-06-13 12:00"


def _config(rearm: RearmConfig) -> Config:
    demo = load_config(ROOT / "examples" / "demo.toml")
    risk = msgspec.structs.replace(demo.risk, drawdown_limit=Decimal("0.3"), rearm=rearm)
    return msgspec.structs.replace(demo, risk=risk)


async def _run(config: Config, path: Path) -> BacktestRun:
    bundle = MarketBundle.load(
        ROOT / "data" / "market",
        ["BTC", "ETH"],
        start="2022-04-18",
        end="2022-07-25",
        perp_assets=["BTC", "ETH"],
    )
    return await run_backtest(config, bundle, name="growth_optimizer", journal_path=path)


async def _fills_after(path: Path, ts_ns: int) -> int:
    async with JournalReader(path) as reader:
        fills = await reader.messages(types=["OrderFilled"])
    return sum(1 for f in fills if isinstance(f, OrderFilled) and f.ts_event > ts_ns)


async def test_without_a_policy_the_kill_switch_stays_on_and_the_summary_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(RearmConfig())
    run = await _run(config, tmp_path / "off.db")
    [kill] = run.performance.risk.kills
    assert kill.reset_ns is None
    assert await _fills_after(run.journal, kill.fired_ns + 3_600_000_000_000) == 0
    print_results([run], config)
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("risk settings: kill switch at 30 % drawdown")
    assert "no re-arm" in out.splitlines()[0]
    assert f"growth_optimizer: kill switch fired {FIRED} (drawdown: " in out
    assert "stayed on to the end (only reducing orders passed)" in out


async def test_a_rearmed_run_trades_again_and_the_summary_and_report_say_when(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(RearmConfig(after_days=7, recovery=Decimal("0.05")))
    run = await _run(config, tmp_path / "on.db")
    kill = run.performance.risk.kills[0]
    assert kill.reset_ns == parse_time("2022-06-20T12:00Z")
    assert kill.reset_by.startswith("rearm: 7.0 days after it fired")
    assert await _fills_after(run.journal, kill.reset_ns) > 0
    print_results([run], config)
    out = capsys.readouterr().out
    assert "re-arm after 7 days and 5 % off the trough" in out.splitlines()[0]
    assert f"growth_optimizer: kill switch fired {FIRED} (drawdown: " in out
    assert "; re-armed 2022-06-20 12:00" in out
