"""Issue 12, point 6: the summary and the report say which risk features acted, from the run's
events (recorded live or read back from a journal), and which risk settings it ran with."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_HOUR, SimulatedClock
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import (
    DataRejected,
    DeleverageRequired,
    IntentApproved,
    KillSwitchReset,
    KillSwitchTriggered,
    Message,
    OrderVetoed,
)
from ballast.engine.kernel.journal import Journal
from ballast.engine.observe.risk_activity import NO_RISK_ACTED, RiskActivityRecorder, from_journal
from ballast.engine.observe.risk_settings import risk_settings_line
from tests.test_performance import DAY0, budget, record, snapshot
from tests.test_pretrade import intent

D = Decimal
H = NS_PER_HOUR


def kill(ts: int) -> KillSwitchTriggered:
    return KillSwitchTriggered(ts_event=ts, ts_init=ts, reason="drawdown", detail="dd 0.30")


def rejected(ts: int, symbol: str, reason: str = "price_jump") -> DataRejected:
    return DataRejected(ts_event=ts, ts_init=ts, symbol=symbol, reason=reason, detail="x")  # type: ignore[arg-type]


def eventful_run() -> list[Message]:
    """Ten hours: normal, 2 h stressed (bands ×0.6, caps ×0.5), 3 h calm (bands ×1.4); a kill
    switch at 4 h re-armed at 7 h; three rejected prices; a deleveraging request, a veto, a cut."""
    events: list[Message] = [budget(DAY0, "normal", band_abs="0.05")]
    events += [snapshot(DAY0 + h * H, 100_000) for h in range(11)]
    events += [
        budget(DAY0 + 2 * H, "stressed", cap="1.5", band_abs="0.03"),
        budget(DAY0 + 4 * H, "normal", band_abs="0.05"),
        budget(DAY0 + 6 * H, "calm", band_abs="0.07"),
        budget(DAY0 + 9 * H, "normal", band_abs="0.05"),
        kill(DAY0 + 4 * H),
        KillSwitchReset(ts_event=DAY0 + 7 * H, ts_init=DAY0 + 7 * H, by="rearm: 0.1 days"),
        rejected(DAY0 + H, "BTC/USDT"),
        rejected(DAY0 + 3 * H, "BTC/USDT"),
        rejected(DAY0 + 5 * H, "ETH/USDT"),
        DeleverageRequired(
            ts_event=DAY0 + 5 * H,
            ts_init=DAY0 + 5 * H,
            asset="BTC",
            symbol="BTC/USDT:USDT",
            side="buy",
            notional=D(1000),
            reason="margin_usage",
            measure=D("1.1"),
            limit=D(1),
            target=D("0.9"),
            detail="",
        ),
        OrderVetoed(
            ts_event=DAY0 + 5 * H,
            ts_init=DAY0 + 5 * H,
            intent_id="i1",
            symbol="BTC/USDT",
            reason="kill_switch",
            detail="",
        ),
        IntentApproved(
            ts_event=DAY0 + 8 * H,
            ts_init=DAY0 + 8 * H,
            intent=intent("BTC/USDT", "buy", "1"),
            cut_reason="max_net_leverage: 2 → 1 (x); max_daily_turnover: 1 → 0.5 (y)",
        ),
    ]
    return sorted(events, key=lambda m: m.ts_event)


def test_every_feature_that_acted_is_said_with_its_numbers() -> None:
    activity = record(eventful_run()).result().risk
    assert activity.acted
    assert activity.lines() == [
        "kill switch fired 2024-01-01 04:00 (drawdown: dd 0.30); re-armed 2024-01-01 07:00",
        "price guard rejected 3 market data points (price_jump 3), never traded on",
        "data rejected: BTC/USDT price_jump 2 (first 2024-01-01 01:00)",
        "data rejected: ETH/USDT price_jump 1 (first 2024-01-01 05:00)",
        "regime calm: bands ×1.4 for 30.0 % of the time",
        "regime stressed: bands ×0.6 and leverage caps ×0.5 for 20.0 % of the time",
        "deleveraging asked 1 times (margin_usage 1)",
        "pre-trade check vetoed 1 orders (kill_switch 1)",
        "pre-trade check cut 2 orders (max_daily_turnover 1, max_net_leverage 1)",
    ]


def test_a_kill_switch_that_stays_on_and_a_quiet_run() -> None:
    recorder = RiskActivityRecorder()
    quiet = [budget(DAY0, "normal"), *(snapshot(DAY0 + h * H, 100) for h in range(3))]
    for event in quiet:
        recorder.on_event(event)
    assert recorder.result().lines() == [NO_RISK_ACTED]
    recorder.on_event(kill(DAY0 + 3 * H))
    recorder.on_event(kill(DAY0 + 4 * H))  # the same episode, told again
    [line] = recorder.result().lines()
    assert line == (
        "kill switch fired 2024-01-01 03:00 (drawdown: dd 0.30); stayed on to the end "
        "(only reducing orders passed)"
    )


async def test_read_back_from_a_journal_it_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    clock = SimulatedClock(DAY0)
    async with Journal(path) as journal:
        bus = Bus(clock, journal)
        for event in eventful_run():
            bus.publish(event)
        await bus.sync()
    assert await from_journal(path) == record(eventful_run()).result().risk


def test_the_settings_line_names_every_default_that_can_shape_a_result() -> None:
    line = risk_settings_line(parse_config(""))
    assert line == (
        "risk settings: kill switch at 25 % drawdown or 15 % from liquidation, no re-arm "
        "(risk.drawdown_limit, risk.rearm); price guard rejects moves over 10 % "
        "(risk.max_price_deviation); regime bands ×1.4 calm (vol < 40 %) / ×0.6 stressed "
        "(vol > 90 %), leverage caps ×0.5 stressed (risk.calm_band_scale, "
        "risk.stressed_band_scale, risk.stressed_leverage_scale); caps: net leverage 3×, "
        "gross 3×, margin usage 100 %"
    )
    off = parse_config(
        "[risk]\ndrawdown_limit = 1\ncalm_band_scale = 1\nstressed_band_scale = 1\n"
        "[risk.rearm]\nafter_days = 7\nrecovery = 0.05\n"
    )
    text = risk_settings_line(off)
    assert (
        "kill switch off or 15 % from liquidation, re-arm after 7 days and 5 % off the trough"
        in text
    )
    assert "regime band scaling off" in text
