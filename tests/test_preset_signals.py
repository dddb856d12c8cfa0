"""Issue 12, "presets that do what their names promise": every signal-driven position waits for
its signal's warm-up, signals have hysteresis and a minimum holding period, and the decision's
reason states the parameters. The shared pieces (engine/strategy/signal.py) and each preset.

Contexts are built by hand as the Rebalancer builds them (tests/test_strategies.py's builders).
"""

from __future__ import annotations

import math
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.app.backtest import run_backtest
from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import OrderFilled, RebalanceDecided
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.strategy.api import TargetSet
from ballast.engine.strategy.signal import Latch, Levels, State, TrailingReturn
from ballast.strategies.conservative_hedger import ConservativeHedger
from ballast.strategies.growth_optimizer import GrowthOptimizer
from ballast.strategies.yield_aggregator import YieldAggregator
from tests.conftest import START_NS
from tests.test_strategies import PRICES, budget, context, nets, spots

ROOT = Path(__file__).resolve().parents[1]
D = Decimal
H = NS_PER_HOUR
CORE = {"BTC": D("0.35"), "ETH": D("0.25")}


def at(hour: int) -> int:
    return START_NS + hour * H


def whipsaw(hour: int) -> Decimal:
    """A price swinging ±5 % around 100 with a period of 720 / 15.5 h (about two days): its 720 h
    return (the opposite phase) swings between about −9.5 % and +10.5 %, across every level,
    about once a day."""
    phase = 2 * math.pi * hour * 15.5 / 720
    return D(100) * (1 + D("0.05") * D(math.sin(phase)).quantize(D("1e-9")))


def btc_targets(strategy: GrowthOptimizer, path: list[Decimal]) -> list[tuple[Decimal, str]]:
    """BTC's net target and the decision's note for each hour of ``path`` (ETH flat)."""
    out = []
    for hour, btc in enumerate(path):
        targets = strategy.targets(context(at(hour), prices={"BTC": btc, "ETH": PRICES["ETH"]}))
        out.append((nets(targets)["BTC"], targets.note))
    return out


def changes(values: list[Decimal]) -> list[int]:
    """The indexes where the value differs from the one before."""
    return [i for i in range(1, len(values)) if values[i] != values[i - 1]]


# ------------------------------------------------------------------------------ warm-up


def test_growth_optimizer_takes_no_signal_position_before_its_lookback_is_filled() -> None:
    """On main an asset with no price history counted as strong: 30 % of NAV in perp longs on the
    first bar ("ETH strong (momentum −3.57 %)")."""
    rising = [D(50_000) * (1 + D("0.001") * hour) for hour in range(722)]
    seen = btc_targets(GrowthOptimizer(), rising)
    for hour, (net, note) in enumerate(seen[:720]):
        assert net == CORE["BTC"], hour
        assert f"BTC warming up: {hour} of 720 h: no signal position (spot core only)" in note
    net, note = seen[720]  # +72 % over the 30 days, now measured
    assert net == D("0.65")
    assert "BTC strong (momentum +72.00%" in note


def test_growth_optimizer_first_context_holds_the_core_only() -> None:
    targets = GrowthOptimizer().targets(context())
    assert nets(targets) == CORE
    assert targets.spot_weights == CORE
    assert "BTC warming up: 0 of 720 h" in targets.note
    assert "ETH warming up: 0 of 720 h" in targets.note


def test_a_shorter_lookback_is_a_shorter_warm_up() -> None:
    strategy = GrowthOptimizer({"lookback_h": 12, "sample_h": 1})
    seen = btc_targets(strategy, [D(100) + hour for hour in range(14)])
    assert "BTC warming up: 11 of 12 h" in seen[11][1]
    assert seen[11][0] == CORE["BTC"]
    assert seen[12][0] == D("0.65")


# ------------------------------------------------------------------------------ hysteresis, hold


def test_a_whipsawing_price_flips_the_target_at_most_once_per_minimum_hold() -> None:
    """Ten weeks of a ±5 % swing every two days: on main BTC's target flipped between 65 % and
    17.5 % twice a day once warm (about 100 flips with a one-week lookback)."""
    hours = 10 * 7 * 24
    seen = btc_targets(GrowthOptimizer(), [whipsaw(h) for h in range(hours)])
    flips = changes([net for net, _ in seen])
    assert flips, "the signal never acted"
    assert len(flips) <= (hours - 720) // 168 + 1
    assert all(b - a >= 168 for a, b in pairwise(flips))


def test_the_minimum_hold_is_a_parameter_and_is_respected() -> None:
    strategy = GrowthOptimizer({"min_hold_h": 24})
    seen = btc_targets(strategy, [whipsaw(h) for h in range(900)])
    flips = changes([net for net, _ in seen])
    assert len(flips) >= 5
    assert min(b - a for a, b in pairwise(flips)) >= 24
    # while a change is blocked, the reason says what was asked and for how long it is held
    blocked = [note for _, note in seen if "asked, held" in note]
    assert any("of min 24 h" in note for note in blocked)


def test_without_hold_or_hysteresis_gap_the_same_whipsaw_flips_often() -> None:
    """The bound above is the hold's doing: with no hold the same path flips many times."""
    strategy = GrowthOptimizer({"min_hold_h": 0})
    seen = btc_targets(strategy, [whipsaw(h) for h in range(10 * 7 * 24)])
    assert len(changes([net for net, _ in seen])) > 20


def test_growth_optimizer_states_its_signal_parameters_in_the_reason() -> None:
    strategy = GrowthOptimizer(
        {
            "lookback_h": 48,
            "strong_above": 0.04,
            "fade_below": 0.01,
            "weak_below": 0.06,
            "recover_above": -0.02,
            "min_hold_h": 36,
        }
    )
    _, note = btc_targets(strategy, [D(100)] * 50)[-1]
    assert (
        "signal: 48 h momentum, strong at >= +4.00% until < +1.00%, "
        "weak at <= -6.00% until > -2.00%, min hold 36 h"
    ) in note
    assert "BTC neutral (momentum +0.00%, min hold 36 h): spot core only" in note


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"fade_below": 0.1}, "fade_below"),  # above strong_above
        ({"recover_above": 0.06}, "recover_above"),  # above strong_above
        ({"min_hold_h": -1}, "min_hold_h"),
        ({"strong_above": 2}, "strong_above"),
    ],
)
def test_bad_signal_parameters_name_their_key(params: dict[str, object], key: str) -> None:
    from ballast.engine.kernel.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        GrowthOptimizer(params)
    assert caught.value.key == f"strategy.params.{key}"


# ------------------------------------------------------------------------------ the pieces


def test_trailing_return_reads_nothing_until_the_lookback_is_filled() -> None:
    signal = TrailingReturn(3 * H, H)
    readings = [signal.update("X", at(h), D(100 + h)) for h in range(5)]
    assert [r.value for r in readings[:3]] == [None, None, None]
    assert readings[2].warmup == "warming up: 2 of 3 h"
    assert readings[3].value == D(103) / D(100) - 1
    assert readings[4].value == D(104) / D(101) - 1


def test_levels_enter_and_leave_at_different_values() -> None:
    levels = Levels(up_enter=D(5), up_exit=D(1), down_enter=D(-5), down_exit=D(-1))
    state: State = "flat"
    visited: list[State] = []
    for value in [0, 4, 5, 2, 1, 0, -4, -5, -2, -1, 0]:
        state = levels.next(state, D(value))
        visited.append(state)
    assert visited == [
        "flat", "flat", "up", "up", "up", "flat", "flat", "down", "down", "down", "flat",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="levels"):
        Levels(up_enter=D(1), up_exit=D(2), down_enter=D(-1), down_exit=D(0))


def test_latch_keeps_a_state_for_its_minimum_hold() -> None:
    latch = Latch("off", 10 * H)
    assert latch.step("A", at(0), "on").changed  # the initial state may be left at once
    held = latch.step("A", at(5), "off")
    assert (held.state, held.blocked, held.hold) == ("on", True, "held 5 h of min 10 h")
    assert latch.step("A", at(9), "off").state == "on"
    after = latch.step("A", at(10), "off")
    assert (after.state, after.changed) == ("off", True)
    assert latch.state("B") == "off"


# ------------------------------------------------------------------------------ conservative_hedger


def hedged(targets: TargetSet) -> bool:
    return nets(targets)["BTC"] == 0


def test_conservative_hedger_keeps_a_hedge_for_its_minimum_hold() -> None:
    """On main a stressed regime that flickers hedged and unhedged the whole spot book on every
    flicker; now a hedge stays on ``min_hold_h`` (default 24 h) after it went on."""
    hedger = ConservativeHedger()
    regimes = ["stressed", "normal", "stressed", "normal"] + ["normal"] * 30
    seen = [
        hedger.targets(context(at(hour), risk=budget(regime)))  # type: ignore[arg-type]
        for hour, regime in enumerate(regimes)
    ]
    on = [hedged(t) for t in seen]
    assert on[:24] == [True] * 24  # on at hour 0, kept through the flicker and the hold
    assert on[24:] == [False] * (len(regimes) - 24)
    assert "risk alert cleared: spot book still hedged (held 1 h of min 24 h)" in seen[1].note
    assert "min hold 24 h" in seen[30].note
    assert "alert at drawdown >= 10.00% until < 5.00%, release rebound 10.00%" in seen[30].note


def test_conservative_hedger_never_delays_a_hedge() -> None:
    hedger = ConservativeHedger({"min_hold_h": 48})
    assert hedged(hedger.targets(context(at(0), risk=budget("stressed"))))
    assert not hedged(hedger.targets(context(at(48), risk=budget("normal"))))
    # a new alert one hour after the release hedges at once
    assert hedged(hedger.targets(context(at(49), kill_switch=True)))


def test_conservative_hedger_flips_are_bounded_under_a_flickering_alert() -> None:
    hedger = ConservativeHedger({"min_hold_h": 24})
    flicker = [
        hedged(hedger.targets(context(at(h), risk=budget("stressed" if h % 2 else "normal"))))
        for h in range(24 * 10)
    ]
    flips = changes([D(int(x)) for x in flicker])
    assert len(flips) <= 2 * 10  # at most one hedge (on, then off) per held day
    on_spells = [b - a for a, b in pairwise(flips) if flicker[a]]
    assert all(spell >= 24 for spell in on_spells)


# ------------------------------------------------------------------------------ yield_aggregator

HIGH = D("0.0002")  # per 8 h: 21.9 % APR, above the 15 % entry
LOW = D("0.00004")  # 4.38 % APR, below the 5 % exit


def carry(strategy: YieldAggregator, hour: int, rate: Decimal) -> TargetSet:
    return strategy.targets(context(at(hour), funding={"BTC": rate, "ETH": rate}))


def test_yield_aggregator_opens_no_carry_before_its_funding_window_is_filled() -> None:
    """On main the first funding rate above 15 % APR opened a 25 % carry per asset at once."""
    strategy = YieldAggregator()
    seen = [carry(strategy, hour, HIGH) for hour in range(74)]
    for hour in range(72):
        assert spots(seen[hour]) == {"BTC": D(0), "ETH": D(0)}, hour
        assert f"BTC carry off (warming up: {hour} of 72 h of funding)" in seen[hour].note
    assert spots(seen[72]) == {"BTC": D("0.25"), "ETH": D("0.25")}
    assert "BTC carry on (funding 21.9% APR)" in seen[72].note
    assert "carry on above 15.0% APR, off below 5.0% (mean of 72 h), min hold 72 h" in (
        seen[72].note
    )


def test_yield_aggregator_one_high_settlement_does_not_open_a_carry() -> None:
    strategy = YieldAggregator()
    for hour in range(100):
        targets = carry(strategy, hour, HIGH if hour == 80 else LOW)
        assert spots(targets)["BTC"] == 0, hour


def test_yield_aggregator_holds_a_carry_for_its_minimum_hold() -> None:
    strategy = YieldAggregator({"funding_window_h": 8, "min_hold_h": 48})
    rates = [HIGH] * 9 + [LOW] * 60
    seen = [spots(carry(strategy, hour, rate))["BTC"] for hour, rate in enumerate(rates)]
    opened = seen.index(D("0.25"))
    closed = seen.index(D(0), opened)
    assert closed - opened == 48  # the mean fell below the exit long before
    note = carry(YieldAggregator({"funding_window_h": 8, "min_hold_h": 48}), 0, LOW).note
    assert "min hold 48 h" in note


# ------------------------------------------------------------------------------ through the engine


async def test_a_growth_backtest_sends_no_perp_order_while_its_signal_warms_up(
    tmp_path: Path,
) -> None:
    """Four days of the bundled data through the real backtest: on main the first decision bought
    30 % of NAV in perp longs per asset ("BTC strong (warming up)"); now only the spot core, and
    the journal's decisions say why."""
    config = parse_config('[strategy]\nname = "growth_optimizer"\n[execution]\nmode = "auto"\n')
    bundle = MarketBundle.load(
        ROOT / "data" / "market", ["BTC", "ETH"], start="2022-06-13", end="2022-06-17"
    )
    journal = tmp_path / "growth.db"
    await run_backtest(config, bundle, name="growth", journal_path=journal)
    async with JournalReader(journal) as reader:
        messages = await reader.messages()
    decisions = [m for m in messages if isinstance(m, RebalanceDecided)]
    assert decisions
    assert all("warming up" in d.reasoning for d in decisions)
    assert "BTC warming up: 0 of 720 h: no signal position (spot core only)" in (
        decisions[0].reasoning
    )
    fills = [m for m in messages if isinstance(m, OrderFilled)]
    assert {f.symbol for f in fills} == {"BTC/USDT", "ETH/USDT"}  # spot only, no perp
