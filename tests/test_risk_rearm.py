"""Issue 12: the backtest re-arm policy of the kill switch (``[risk.rearm]``), off by default."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.clock import NS_PER_DAY, SimulatedClock
from ballast.engine.kernel.config import RearmConfig, RiskConfig, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import KillSwitchReset, KillSwitchTriggered, PortfolioSnapshot
from tests.test_pretrade import intent, snapshot
from tests.test_risk_actor import Desk, approved, desk_on, vetoed

D = Decimal


def book(cash: str, drawdown: str) -> PortfolioSnapshot:
    """NAV = ``cash`` + 1 BTC at 40,000, with the portfolio's own drawdown figure."""
    return snapshot(D(cash), {"BTC": (D(1), D(40_000), D(0), D(40_000))}, drawdown=D(drawdown))


def at_day(
    desk: Desk, clock: SimulatedClock, start: int, day: float, snap: PortfolioSnapshot
) -> None:
    clock.advance_to(start + int(day * NS_PER_DAY))
    desk.given(snap)


def rearming(after_days: float | None, recovery: str | None) -> RiskConfig:
    return RiskConfig(
        max_asset_weight=D(2),
        stale_after_s=3600.0,
        rearm=RearmConfig(
            after_days=after_days, recovery=None if recovery is None else D(recovery)
        ),
    )


async def test_rearms_after_the_cooldown_and_the_recovery_then_measures_from_the_rearm(
    sim_clock: SimulatedClock,
) -> None:
    start = sim_clock.now_ns()
    desk = desk_on(sim_clock, rearming(7, "0.05"))
    async with desk.risk:
        desk.given(book("60000", "0.30"))  # NAV 100,000: trips
        at_day(desk, sim_clock, start, 1, book("50000", "0.37"))  # trough 90,000
        at_day(desk, sim_clock, start, 3, book("55000", "0.34"))  # +5.6 %, but only 3 days
        assert desk.of(KillSwitchReset) == []
        at_day(desk, sim_clock, start, 8, book("54000", "0.34"))  # 94,000: +4.4 %, not enough
        assert desk.of(KillSwitchReset) == []
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        vetoed(desk.last(), "kill_switch")
        at_day(desk, sim_clock, start, 9, book("55000", "0.34"))  # 95,000 ≥ 94,500: re-armed
        [reset] = desk.of(KillSwitchReset)
        assert reset.by.startswith("rearm: 9.0 days after it fired, NAV 95000 vs trough 90000")
        assert desk.risk.kill_switch is None
        # the portfolio's drawdown is still 34 % from the old peak: measured from the re-arm, none
        at_day(desk, sim_clock, start, 10, book("56000", "0.33"))
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        approved(desk.last())
        assert len(desk.of(KillSwitchTriggered)) == 1
        # a fall of 25 % from the peak since the re-arm (96,000) trips it again
        at_day(desk, sim_clock, start, 11, book("32000", "0.50"))  # 72,000
    trips = desk.of(KillSwitchTriggered)
    assert len(trips) == 2
    assert trips[1].detail == "drawdown 0.2500 >= limit 0.25 (NAV 72000, peak 96000)"


async def test_each_condition_alone(sim_clock: SimulatedClock) -> None:
    start = sim_clock.now_ns()
    cooldown = desk_on(sim_clock, rearming(2, None))
    async with cooldown.risk:
        cooldown.given(book("60000", "0.30"))
        at_day(cooldown, sim_clock, start, 1.5, book("40000", "0.40"))
        assert cooldown.of(KillSwitchReset) == []
        at_day(cooldown, sim_clock, start, 2, book("40000", "0.40"))  # no recovery needed
        assert len(cooldown.of(KillSwitchReset)) == 1


async def test_recovery_alone_counts_from_the_trough(sim_clock: SimulatedClock) -> None:
    start = sim_clock.now_ns()
    recovery = desk_on(sim_clock, rearming(None, "0.10"))
    async with recovery.risk:
        recovery.given(book("60000", "0.30"))
        at_day(recovery, sim_clock, start, 0.1, book("40000", "0.40"))  # trough 80,000
        at_day(recovery, sim_clock, start, 0.2, book("47000", "0.35"))  # 87,000: +8.75 %
        assert recovery.of(KillSwitchReset) == []
        at_day(recovery, sim_clock, start, 0.3, book("48000", "0.34"))  # 88,000: +10 %
        assert len(recovery.of(KillSwitchReset)) == 1


async def test_off_by_default_the_kill_switch_stays_on(sim_clock: SimulatedClock) -> None:
    start = sim_clock.now_ns()
    desk = desk_on(sim_clock, RiskConfig(max_asset_weight=D(2), stale_after_s=3600.0))
    assert not desk.risk.risk.rearm.enabled
    async with desk.risk:
        desk.given(book("60000", "0.30"))
        at_day(desk, sim_clock, start, 1, book("20000", "0.50"))
        at_day(desk, sim_clock, start, 400, book("160000", "0.0"))
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        vetoed(desk.last(), "kill_switch")
    assert desk.of(KillSwitchReset) == []


async def test_a_failed_money_handler_never_rearms(sim_clock: SimulatedClock) -> None:
    start = sim_clock.now_ns()
    desk = desk_on(sim_clock, rearming(0, None))
    async with desk.risk:
        desk.given(book("60000", "0.0"))
        desk.bus.publish(
            KillSwitchTriggered(
                ts_event=start, ts_init=start, reason="handler_failed", detail="ledger failed"
            )
        )
        at_day(desk, sim_clock, start, 30, book("90000", "0.0"))
    assert desk.of(KillSwitchReset) == []
    assert desk.risk.kill_switch == "handler_failed"


def test_config_names_the_bad_key_and_run_refuses_it(tmp_path: Path) -> None:
    config = parse_config("[risk.rearm]\nafter_days = 7\nrecovery = 0.05\n")
    assert config.risk.rearm == RearmConfig(after_days=7.0, recovery=D("0.05"))
    assert not parse_config("").risk.rearm.enabled
    with pytest.raises(ConfigError) as bad:
        parse_config("[risk.rearm]\nrecovery = -0.1\n")
    assert bad.value.key == "risk.rearm.recovery"
    path = tmp_path / "rearm.toml"
    path.write_text("[risk.rearm]\nafter_days = 7\n")
    done = subprocess.run(
        [sys.executable, "-m", "ballast.engine.app.cli.main", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "risk.rearm: backtests only" in done.stderr
