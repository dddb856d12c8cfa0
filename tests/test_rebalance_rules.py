"""``[rebalance]`` (issue 12, item 5): scope "breached" (only the assets out of band trade, MISSION
example 1 to the cent) or "all" (any breach brings every asset back to target); trigger
"threshold", "calendar" or "hybrid" (the band check only at calendar dates), for every preset."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ballast.engine.app.config_check import check_startable
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_HOUR, SimulatedClock
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import InstrumentsLoaded, Message, RebalanceDecided
from ballast.engine.trading.rebalancer import Rebalancer
from tests.conftest import START_NS
from tests.support.book import Book, fine_instruments

D = Decimal
TARGETS = "[targets]\nBTC = 0.4\nETH = 0.2\n"
PRESETS = ("threshold", "conservative_hedger", "growth_optimizer", "yield_aggregator")


class Run:
    """A configured rebalancer on a bus, fed snapshots of a book that fills its orders."""

    def __init__(self, config: Config, book: Book) -> None:
        self.clock = SimulatedClock(START_NS)
        self.bus = Bus(self.clock)
        self.seen: list[Message] = []
        self.bus.subscribe_all(self.seen.append)
        self.rebalancer = Rebalancer.from_config(config, self.bus, self.clock)
        instruments = tuple(fine_instruments(["BTC", "ETH"]).values())
        self.bus.publish(InstrumentsLoaded(START_NS, START_NS, "test", instruments))
        self.book = book

    def at(self, ts: int) -> list[RebalanceDecided]:
        """The decisions made on a snapshot at ``ts``."""
        before = len(self.seen)
        self.bus.publish(self.book.snapshot(ts))
        return [m for m in self.seen[before:] if isinstance(m, RebalanceDecided)]


def mission_example_1() -> Book:
    """MISSION example 1 after BTC rose 30 %: BTC 52,000 (46.43 %), ETH 20,000 (17.86 %),
    USDT 40,000, NAV 112,000; targets BTC 40 % ± 5 pp, ETH 20 % ± 5 pp."""
    return Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(52_000), "ETH": D(2_000)},
    )


def config(rebalance: str = "", extra: str = "") -> Config:
    return parse_config(TARGETS + extra + ("[rebalance]\n" + rebalance if rebalance else ""))


def orders(decision: RebalanceDecided, book: Book) -> dict[str, tuple[str, Decimal]]:
    """symbol → (side, notional to the cent)."""
    return {
        i.symbol: (i.side, (i.qty * book.prices[i.symbol.split("/")[0]]).quantize(D("0.01")))
        for i in decision.intents
    }


def test_scope_breached_is_mission_example_1_to_the_cent() -> None:
    book = mission_example_1()
    [decision] = Run(config('scope = "breached"\n'), book).at(START_NS)
    assert orders(decision, book) == {"BTC/USDT": ("sell", D("7200.00"))}
    for intent in decision.intents:
        book.fill(intent)
    assert abs(book.weight("BTC") - D("0.40")) < D("1e-8")
    assert book.weight("ETH") == D(20_000) / D(112_000)  # untouched, inside its band


def test_scope_breached_is_the_default() -> None:
    book = mission_example_1()
    [decision] = Run(config(), book).at(START_NS)
    assert orders(decision, book) == {"BTC/USDT": ("sell", D("7200.00"))}


def test_scope_all_brings_every_asset_back_to_target_on_one_breach() -> None:
    book = mission_example_1()
    [decision] = Run(config('scope = "all"\n'), book).at(START_NS)
    # BTC breached (46.43 % > 45 %); ETH (17.86 %) is inside its band but goes back too:
    # 0.20 x 112,000 - 20,000 = 2,400 of ETH bought with part of the BTC sale.
    assert orders(decision, book) == {
        "BTC/USDT": ("sell", D("7200.00")),
        "ETH/USDT": ("buy", D("2400.00")),
    }
    assert "scope all: BTC out of band" in decision.reasoning
    for intent in decision.intents:
        book.fill(intent)
    assert abs(book.weight("BTC") - D("0.40")) < D("1e-8")
    assert book.weight("ETH") == D("0.2")


def test_scope_all_trades_nothing_while_every_asset_is_inside_its_band() -> None:
    book = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(48_000), "ETH": D(2_000)},  # MISSION example 3: 44.44 % <= 45 %
    )
    assert Run(config('scope = "all"\n'), book).at(START_NS) == []


def test_hybrid_trades_only_at_a_calendar_date_and_only_out_of_band() -> None:
    book = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(48_000), "ETH": D(2_000)},  # inside the band at the first date
    )
    run = Run(config('trigger = "hybrid"\nevery_days = 7\n'), book)
    assert run.at(START_NS) == []  # a date, but inside the band
    book.prices["BTC"] = D(52_000)  # out of band from here on
    assert run.at(START_NS + 2 * NS_PER_HOUR) == []  # out of band, but no date
    assert run.at(START_NS + 6 * NS_PER_DAY) == []
    [decision] = run.at(START_NS + 7 * NS_PER_DAY)  # the next date: the band check trades
    assert orders(decision, book) == {"BTC/USDT": ("sell", D("7200.00"))}
    assert "hybrid check (every 7 days)" in decision.reasoning
    assert run.at(START_NS + 7 * NS_PER_DAY + 2 * NS_PER_HOUR) == []


def test_threshold_trades_at_every_snapshot_out_of_band() -> None:
    book = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(48_000), "ETH": D(2_000)},
    )
    run = Run(config(), book)
    assert run.at(START_NS) == []
    book.prices["BTC"] = D(52_000)
    assert len(run.at(START_NS + 2 * NS_PER_HOUR)) == 1


def test_calendar_brings_every_asset_back_to_target_at_each_date_whatever_the_drift() -> None:
    book = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(48_000), "ETH": D(2_000)},  # BTC 44.44 %, ETH 18.52 %: inside
    )
    run = Run(config('trigger = "calendar"\nevery_days = 30\n'), book)
    [decision] = run.at(START_NS)
    # NAV 108,000: BTC 48,000 -> 43,200 (sell 4,800); ETH 20,000 -> 21,600 (buy 1,600).
    assert orders(decision, book) == {
        "BTC/USDT": ("sell", D("4800.00")),
        "ETH/USDT": ("buy", D("1600.00")),
    }
    assert "calendar date" in decision.reasoning
    for intent in decision.intents:
        book.fill(intent)
    book.prices["BTC"] = D(70_000)  # far out of any band: still nothing until the next date
    assert run.at(START_NS + 2 * NS_PER_HOUR) == []
    assert run.at(START_NS + 29 * NS_PER_DAY) == []
    [again] = run.at(START_NS + 30 * NS_PER_DAY + NS_PER_HOUR)
    assert {s: side for s, (side, _) in orders(again, book).items()} == {
        "BTC/USDT": "sell",
        "ETH/USDT": "buy",
    }


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('trigger = "calendar"\n', "rebalance.every_days", "needs its period"),
        ('trigger = "hybrid"\n', "rebalance.every_days", "needs its period"),
        ("every_days = 30\n", "rebalance.every_days", "only for trigger"),
        ('trigger = "hybrid"\nevery_days = 0\n', "rebalance.every_days", "> 0"),
        ('trigger = "weekly"\n', "rebalance.trigger", "Invalid enum"),
        ('scope = "some"\n', "rebalance.scope", "Invalid enum"),
        ("scpoe = 'all'\n", "rebalance.scpoe", "unknown key"),
    ],
)
def test_a_wrong_rebalance_rule_names_its_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[rebalance]\n" + text)
    assert caught.value.key == key
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[bands]\nrebalance_to = "edge"\n[rebalance]\nscope = "all"\n', "rebalance.scope"),
        (
            '[bands]\nrebalance_to = "edge"\n[rebalance]\ntrigger = "calendar"\nevery_days = 1\n',
            "bands.rebalance_to",
        ),
    ],
)
def test_back_to_target_and_to_the_edge_together_is_an_error(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key == key


def preset_config(name: str, rebalance: str) -> Config:
    targets = TARGETS if name == "threshold" else ""
    params = {  # the carry needs funding data: give the yield preset a directional core
        "yield_aggregator": "[strategy.params]\ncore = { BTC = 0.2, ETH = 0.1 }\n",
    }.get(name, "")
    text = (
        f'[strategy]\nname = "{name}"\n{params}{targets}[paper]\nbalances = {{ USDT = 100000 }}\n'
    )
    return parse_config(text + ("[rebalance]\n" + rebalance if rebalance else ""))


MODES: dict[str, str] = {
    "threshold": "",
    "calendar": 'trigger = "calendar"\nevery_days = 1\n',
    "hybrid": 'trigger = "hybrid"\nevery_days = 1\n',
}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("mode", list(MODES))
def test_every_preset_runs_under_every_trigger(preset: str, mode: str) -> None:
    """An all-cash book is out of every preset's bands. Threshold: a decision at every snapshot
    past the cooldown; calendar and hybrid: only at the dates (the first snapshot, then daily)."""
    cfg = preset_config(preset, MODES[mode])
    check_startable(cfg)  # what `ballast config check` accepts
    book = Book(cash=D(100_000), spot={"BTC": D(0), "ETH": D(0)}, prices=_prices())
    run = Run(cfg, book)
    made: dict[str, Any] = {
        "first": run.at(START_NS),
        "later": run.at(START_NS + 2 * NS_PER_HOUR),
        "date": run.at(START_NS + NS_PER_DAY),
    }
    assert made["first"], f"{preset}: no decision on an all-cash book"
    assert all(d.intents for d in made["first"])
    if mode == "threshold":
        assert made["later"], f"{preset}: threshold should check at every snapshot"
    else:
        assert made["later"] == [], f"{preset}: {mode} traded between dates"
    assert made["date"], f"{preset}: {mode} did not check at the date"


def _prices() -> dict[str, Decimal]:
    return {"BTC": D(40_000), "ETH": D(2_000)}


def test_calendar_dates_stay_on_their_grid_across_a_gap_in_the_data() -> None:
    book = mission_example_1()
    run = Run(config('trigger = "calendar"\nevery_days = 10\n'), book)
    assert len(run.at(START_NS)) == 1
    # no data for 35 days: one check at the first snapshot after the gap, not three in a row
    assert len(run.at(START_NS + 35 * NS_PER_DAY)) == 1
    assert run.at(START_NS + 38 * NS_PER_DAY) == []
    assert len(run.at(START_NS + 40 * NS_PER_DAY)) == 1  # the grid: 0, 10, 20, 30, 40 days
