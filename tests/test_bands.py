"""Bands stated explicitly (issue 12, item 4): absolute, relative, or both with the rule written
in the config; per-asset overrides; no hidden default changing a band the user set; and
``ballast config check`` printing every asset's effective band."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.app.cli.main import main
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import Config, config_from_json, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import InstrumentsLoaded, Message, RebalanceDecided
from ballast.engine.trading.bands import BandSpec
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.rebalancer import Rebalancer
from tests.conftest import START_NS
from tests.support.book import Book, fine_instruments

D = Decimal
TARGETS = "[targets]\nBTC = 0.4\nETH = 0.2\n"


def edges(config: Config, asset: str) -> tuple[Decimal, Decimal]:
    """The band's edges around ``asset``'s target, as the planner computes them."""
    target = config.targets[asset]
    width = BandSpec.of(config.bands.band(asset)).width(target)
    return target - width, target + width


def decisions(config: Config, book: Book) -> list[RebalanceDecided]:
    """What the configured rebalancer decides on one snapshot of ``book``."""
    clock = SimulatedClock(START_NS)
    bus = Bus(clock)
    seen: list[Message] = []
    bus.subscribe_all(seen.append)
    Rebalancer.from_config(config, bus, clock)
    instruments = tuple(fine_instruments(["BTC", "ETH"]).values())
    bus.publish(InstrumentsLoaded(START_NS, START_NS, "test", instruments))
    bus.publish(book.snapshot(START_NS))
    return [m for m in seen if isinstance(m, RebalanceDecided)]


def mission_example_1() -> Book:
    """MISSION example 1 after BTC rose 30 %: BTC 46.43 %, ETH 17.86 % of 112,000."""
    return Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(52_000), "ETH": D(2_000)},
    )


def test_a_relative_band_alone_is_the_relative_band() -> None:
    config = parse_config(TARGETS + "[bands]\nrel = 0.25\n")
    assert edges(config, "BTC") == (D("0.30"), D("0.50"))  # not 35-45 %: no hidden 5 pp
    assert edges(config, "ETH") == (D("0.15"), D("0.25"))
    # BTC at 46.43 % is inside 30-50 %: nothing trades (on the old rule it sold BTC).
    assert decisions(config, mission_example_1()) == []


def test_nothing_set_keeps_the_five_point_band() -> None:
    config = parse_config(TARGETS)
    assert edges(config, "BTC") == (D("0.35"), D("0.45"))
    assert config.bands.band("BTC").source == "default"
    [decision] = decisions(config, mission_example_1())
    assert [(i.symbol, i.side) for i in decision.intents] == [("BTC/USDT", "sell")]


@pytest.mark.parametrize(
    ("combine", "low", "high", "trades"),
    [("narrower", "0.35", "0.45", True), ("wider", "0.30", "0.50", False)],
)
def test_both_widths_combine_as_the_config_says(
    combine: str, low: str, high: str, trades: bool
) -> None:
    config = parse_config(TARGETS + f'[bands]\nabs_pp = 5\nrel = 0.25\ncombine = "{combine}"\n')
    assert edges(config, "BTC") == (D(low), D(high))
    assert bool(decisions(config, mission_example_1())) is trades
    # ETH (20 %): 5 pp against 25 % of 20 % = 5 pp either way.
    assert edges(config, "ETH") == (D("0.15"), D("0.25"))


def test_a_small_target_shows_the_rule_at_work() -> None:
    narrower = parse_config(
        "[targets]\nBTC = 0.1\n[bands]\nabs_pp = 5\nrel = 0.2\ncombine = 'narrower'\n"
    )
    wider = parse_config(
        "[targets]\nBTC = 0.1\n[bands]\nabs_pp = 5\nrel = 0.2\ncombine = 'wider'\n"
    )
    assert edges(narrower, "BTC") == (D("0.08"), D("0.12"))  # 20 % of 10 % = 2 pp
    assert edges(wider, "BTC") == (D("0.05"), D("0.15"))


def test_a_per_asset_band_replaces_the_default_for_that_asset_only() -> None:
    config = parse_config(TARGETS + "[bands]\nabs_pp = 10\n[bands.assets.BTC]\nabs_pp = 3\n")
    assert edges(config, "BTC") == (D("0.37"), D("0.43"))
    assert edges(config, "ETH") == (D("0.10"), D("0.30"))
    assert config.bands.band("BTC").source == "bands.assets.BTC"
    # BTC at 46.43 % breaches its own 3 pp band (the section's 10 pp would let it drift).
    [decision] = decisions(config, mission_example_1())
    assert [(i.symbol, i.side) for i in decision.intents] == [("BTC/USDT", "sell")]
    btc = next(a for a in decision.assets if a.asset == "BTC")
    assert (btc.band_low, btc.band_high) == (D("0.37"), D("0.43"))


def test_a_per_asset_relative_band_with_its_own_rule() -> None:
    config = parse_config(
        TARGETS + "[bands]\nabs_pp = 2\n[bands.assets.ETH]\nabs_pp = 5\nrel = 0.5\n"
        "combine = 'wider'\n"
    )
    assert edges(config, "ETH") == (D("0.10"), D("0.30"))
    assert edges(config, "BTC") == (D("0.38"), D("0.42"))


def test_the_regime_scales_a_per_asset_band_like_the_default() -> None:
    from ballast.engine.kernel.events import RiskBudgetChanged

    config = parse_config(TARGETS + "[bands]\nabs_pp = 10\n[bands.assets.BTC]\nabs_pp = 5\n")
    clock = SimulatedClock(START_NS)
    bus = Bus(clock)
    rebalancer = Rebalancer.from_config(config, bus, clock)
    stressed: RiskBudgetChanged = RiskBudget.derive(config.risk, config.bands, "stressed").to_event(
        START_NS, "test"
    )
    bus.publish(stressed)
    assert rebalancer.budget.width("BTC", D("0.4")) == D("0.03")  # 5 pp x 0.6
    assert rebalancer.budget.width("ETH", D("0.2")) == D("0.06")  # 10 pp x 0.6


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[bands]\nabs_pp = 5\nrel = 0.25\n", "bands.combine", "both set"),
        ("[bands]\nrel = 0.25\ncombine = 'wider'\n", "bands.combine", "abs_pp is not"),
        ("[bands]\ncombine = 'narrower'\n", "bands.combine", "needs both"),
        ("[bands]\nabs_pp = 5\nrel = 0.2\ncombine = 'middle'\n", "bands.combine", "Invalid enum"),
        ("[bands.assets.BTC]\n", "bands.assets.BTC.abs_pp", "abs_pp and/or rel"),
        ("[bands.assets.BTC]\nabs_pp = 3\nrel = 0.1\n", "bands.assets.BTC.combine", "both set"),
        ("[bands.assets.BTC]\nrel = 2\n", "bands.assets.BTC.rel", "<= 1"),
        ("[bands.assets.BTC]\nwidth = 2\n", "bands.assets.BTC.width", "unknown key"),
        ("[bands.assets.SOL]\nabs_pp = 3\n", "bands.assets.SOL", "not traded"),
    ],
)
def test_an_ambiguous_or_wrong_band_names_its_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_config_check_exits_2_naming_the_band_rule_that_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(TARGETS + "[bands]\nabs_pp = 5\nrel = 0.25\n")
    assert main(["config", "check", str(file)]) == 2
    assert "bands.combine: abs_pp and rel are both set" in capsys.readouterr().err


def test_config_check_prints_the_effective_band_of_every_asset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(TARGETS + "[bands]\nrel = 0.25\n[bands.assets.ETH]\nabs_pp = 2\n")
    assert main(["config", "check", str(file)]) == 0
    out = capsys.readouterr().out
    assert "band BTC: target 40.00 %, band 30.00 % – 50.00 % (±25 % of target, from bands)" in out
    assert "band ETH: target 20.00 %, band 18.00 % – 22.00 % (±2 pp, from bands.assets.ETH)" in out


def test_config_check_says_when_the_band_is_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "c.toml"
    file.write_text(TARGETS)
    assert main(["config", "check", str(file)]) == 0
    out = capsys.readouterr().out
    assert "band BTC: target 40.00 %, band 35.00 % – 45.00 % (±5 pp, the default" in out
    assert "rebalance: trigger threshold" in out


def test_a_journal_config_from_before_combine_reads_as_the_narrower_band_it_ran_with() -> None:
    recorded = '{"bands": {"abs_pp": "5", "rel": "0.25", "rebalance_to": "target"}}'
    config = config_from_json(recorded)
    assert config.bands.combine == "narrower"
    assert edges(parse_config(TARGETS), "BTC") == (D("0.35"), D("0.45"))


@pytest.mark.parametrize(
    "document",
    [
        {"bands": {"assets": {"BTC": {"abs_pp": 150}}}},
        {"bands": {"assets": {"BTC": {"rel": 2}}}},
        {"bands": {"combine": "middle"}},
        {"rebalance": {"every_days": 0}},
        {"rebalance": {"scope": "some"}},
    ],
)
def test_the_schema_refuses_a_bad_band_or_rebalance_rule(document: dict[str, object]) -> None:
    from jsonschema import Draft202012Validator

    from ballast.engine.kernel.config import json_schema

    assert list(Draft202012Validator(json_schema()).iter_errors(document))


def test_metrics_and_the_live_view_show_each_assets_own_band() -> None:
    from ballast.engine.observe.live_view import LiveView
    from ballast.engine.observe.metrics import MetricsExporter

    config = parse_config(
        TARGETS + "[bands]\nabs_pp = 5\nrel = 0.25\ncombine = 'wider'\n[bands.assets.ETH]\n"
        "abs_pp = 2\n"
    )
    clock = SimulatedClock(START_NS)
    bus = Bus(clock)
    metrics = MetricsExporter.from_config(config, bus, clock)
    view = LiveView.from_config(config, bus, clock, plain=True)
    bus.publish(mission_example_1().snapshot(START_NS))
    bus.publish(RiskBudget.derive(config.risk, config.bands, "stressed").to_event(START_NS, "t"))
    # stressed: every band x 0.6; BTC the wider of 3 pp and 15 % of 40 % = 6 pp; ETH 2 pp x 0.6
    btc, eth = view.state.assets["BTC"], view.state.assets["ETH"]
    assert (btc.band_low, btc.band_high) == (D("0.34"), D("0.46"))
    assert (eth.band_low, eth.band_high) == (D("0.188"), D("0.212"))
    text = metrics.exposition().decode()
    assert 'ballast_asset_band_low_ratio{asset="BTC"} 0.34' in text
    assert 'ballast_asset_band_high_ratio{asset="ETH"} 0.212' in text


def test_the_report_moves_each_assets_own_band_with_the_regime() -> None:
    from ballast.engine.kernel.config import config_to_json
    from ballast.engine.kernel.events import AssetDecision, SessionStarted
    from ballast.engine.observe.performance import PerformanceRecorder

    config = parse_config(
        TARGETS + "[bands]\nabs_pp = 5\nrel = 0.25\ncombine = 'wider'\n[bands.assets.ETH]\n"
        "abs_pp = 2\n"
    )
    recorder = PerformanceRecorder()
    recorder.on_event(
        SessionStarted(START_NS, START_NS, "s", "t", "simulated", config_to_json(config))
    )
    decided = RebalanceDecided(
        ts_event=START_NS,
        ts_init=START_NS,
        decision_id="d1",
        trigger="band",
        mode="spot",
        regime="normal",
        reasoning="",
        assets=(
            AssetDecision("BTC", D("0.40"), D("0.40"), D("0.30"), D("0.50"), "hold"),
            AssetDecision("ETH", D("0.20"), D("0.20"), D("0.18"), D("0.22"), "hold"),
        ),
        intents=(),
    )
    recorder.on_event(decided)
    stressed = RiskBudget.derive(config.risk, config.bands, "stressed")
    recorder.on_event(stressed.to_event(START_NS + 1, "t"))
    last = {a: h[-1] for a, h in recorder.series().targets.items()}
    assert (last["BTC"].band_low, last["BTC"].band_high) == (D("0.34"), D("0.46"))
    assert (last["ETH"].band_low, last["ETH"].band_high) == (D("0.188"), D("0.212"))
