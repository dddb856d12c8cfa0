"""`ballast plan`: the state from the venue once, a table and the exact orders, nothing sent.

The venue is the simulated exchange backtests and paper runs trade on (one unified account)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec

from ballast.adapters.sim.config import Latency
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.backtest import sim_config
from ballast.engine.app.cli.cmd_plan import paper_venue
from ballast.engine.app.dry_run import dry_run
from ballast.engine.kernel.config import parse_config
from tests.support.cli import ballast

D = Decimal

HELD = """
[targets]
BTC = 0.40
ETH = 0.20
[paper]
balances = {USDT = 40000, BTC = 1, ETH = 10}
end = "2022-11-10"
[execution]
mode = "overlay"
"""


async def test_plan_sends_nothing_and_reports_every_asset() -> None:
    config = parse_config(HELD)
    venue, market = paper_venue(config, None)
    account = await venue.account()
    result = await dry_run(config, venue, market)
    # nothing reached the exchange: no order on its way, none resting, the account as it was
    assert (venue.in_flight, await venue.open_orders()) == ([], [])
    assert await venue.account() == account
    [decision] = result.decisions
    assert {a.asset: a.action for a in decision.assets} == {"BTC": "perp long", "ETH": "hold"}
    [approved] = result.approved
    assert approved.intent.symbol == "BTC/USDT:USDT"
    assert result.snapshot is not None
    assert result.snapshot.cash == D(40_000)


async def test_plan_runs_on_the_exchange_model_of_backtests_and_paper_runs() -> None:
    config = parse_config(HELD.replace("[paper]\n", "[paper]\nslippage_bps = 3\n"))
    venue, market = paper_venue(config, None)
    assert isinstance(venue, SimulatedVenue)
    model = sim_config(config)
    assert venue.exchange.config == msgspec.structs.replace(model, latency=Latency())
    assert venue.latency == model.latency
    assert venue.exchange.balance("USDT") == D(40_000)  # one unified account, as in a backtest
    assert sorted(bar.symbol for bar in market) == sorted(await venue.instruments())
    assert all(venue.exchange.last_price(bar.symbol) == bar.close for bar in market)


def test_plan_cli_prints_the_table_and_the_orders(tmp_path: Path) -> None:
    config = tmp_path / "held.toml"
    config.write_text(HELD)
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "on venue 'sim' (simulated)" in out  # the exchange model of backtests and paper runs
    assert "Nothing is sent." in out
    assert "asset    weight   target" in out
    assert "BTC      23.78%   40.00%      35.00–45.00%       15,922.81  perp long" in out
    assert "BTC/USDT:USDT   buy" in out
    assert "[approved]" in out


def test_plan_with_everything_in_band_has_no_orders(tmp_path: Path) -> None:
    config = tmp_path / "inside.toml"
    config.write_text(HELD.replace('end = "2022-11-10"', 'end = "2024-01-01"'))
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "orders: none (every weight is inside its band)" in proc.stdout


def test_plan_on_a_live_venue_kind_says_it_is_not_available(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text('[venue]\nkind = "binance"\n')
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 1
    assert "not available yet" in proc.stderr


def test_plan_with_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[paper]\nbalances = {USDT = -5}\n")
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 2
    assert "paper.balances.USDT" in proc.stderr


def test_plan_without_market_data_names_the_folder_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "nodata.toml"
    config.write_text(HELD.replace("[paper]\n", f'[paper]\ndata_dir = "{tmp_path / "empty"}"\n'))
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"ballast: plan: {tmp_path / 'empty'}: no spot klines for BTC (tried "
        "btcusdt_spot_<interval>.csv or BTC_USDT.csv or BTC-USDT.csv); set [paper] data_dir "
        "to the folder of the market data"
    )
