"""The benchmark scenario (``bench/peers/scenario.py``, run by ``make bench`` and ``make
bench-peers``) keeps trading for the whole run, so every actor is measured (issue 13): fills in
every month of a slice through the 2022 crash, on spot and perp, and the kill switch never fires.
The peer's script stays free of Ballast (it runs in its own environment), and the synthetic
minute market reaches it through CSV files that read back as the very same events."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from ballast.engine.app.backtest import load_market, run_backtest
from ballast.engine.kernel.events import Bar, OrderFilled
from ballast.engine.kernel.journal import JournalReader
from bench.peers.__main__ import months_later
from bench.peers.ballast_side import journal_activity, month_of
from bench.peers.minutes import minute_market, write_csv
from bench.peers.scenario import DATA, TARGETS, scenario_config

PEER_SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "peers" / "nautilus_side.py"


async def test_scenario_trades_in_every_month_and_never_trips_the_kill_switch(
    tmp_path: Path,
) -> None:
    # May to July 2022: BTC from 38k to 19k; the presets' 25 % drawdown limit would fire here.
    config = scenario_config()
    bundle = load_market(config, DATA, start="2022-05-01", end="2022-08-01", interval_s=3600)
    journal = tmp_path / "bench.db"
    result = await run_backtest(config, bundle, name="t", journal_path=journal)
    assert result.kill_switches == ()
    activity = journal_activity(journal)
    assert set(activity.fill_months) == {"2022-05", "2022-06", "2022-07"}
    assert all(n >= 3 for n in activity.fill_months.values()), activity.fill_months
    assert activity.fills == result.performance.summary.fills
    assert activity.orders is not None
    assert activity.orders >= activity.fills
    async with JournalReader(journal) as reader:
        fills = [m for m in await reader.messages() if isinstance(m, OrderFilled)]
    by_month_symbol = Counter((month_of(f.ts_event), f.symbol) for f in fills)
    # BTC held as spot, ETH as a perp (TARGETS); ETH's overlay also cycles into spot (case B).
    held = {f"{a}/USDT" + (":USDT" if kind == "perp" else "") for a, (kind, _) in TARGETS.items()}
    assert held == {"BTC/USDT", "ETH/USDT:USDT"}
    for month in ("2022-05", "2022-06", "2022-07"):
        assert all(by_month_symbol[(month, symbol)] > 0 for symbol in held), by_month_symbol


def test_peer_script_imports_nothing_of_ballast() -> None:
    tree = ast.parse(PEER_SCRIPT.read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert "nautilus_trader.backtest.engine" in modules
    assert [m for m in modules if m.split(".")[0] in {"ballast", "bench", "tests"}] == []


def test_months_later_counts_calendar_months() -> None:
    assert months_later("2022-04-18T00:00+00:00", 2) == "2022-06-18T00:00:00+00:00"
    assert months_later("2022-11-18T00:00+00:00", 3) == "2023-02-18T00:00:00+00:00"


def test_minute_market_written_as_csv_reads_back_as_the_same_events(tmp_path: Path) -> None:
    market = minute_market(1)
    written = write_csv(market, tmp_path)
    config = scenario_config()
    loaded = load_market(config, tmp_path, start=None, end=None, interval_s=60)
    expected = list(market.bundle().events())
    assert written == 4 * 24 * 60
    assert list(loaded.events()) == expected
    assert sum(1 for e in expected if isinstance(e, Bar)) == written
