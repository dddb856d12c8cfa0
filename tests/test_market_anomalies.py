"""Property: whatever is wrong with the market data, no order is sized from a rejected value and
every anomaly is counted.

Three days of the bundled data are copied and damaged (hypothesis picks the damage), then loaded by
the real loader and run through the real backtest (growth_optimizer in auto mode: spot and perps,
funding paid and received):

- a price spike (one close multiplied or divided by 10 to 1000) is rejected by the market gate:
  exactly one DataRejected per spiked event (a perp close is both its bar and its mark), naming
  the seq of the spiked record; no decision is sized on a snapshot holding a spiked price (every
  price in it is the last accepted one), no order carries one, and the regime's volatility never
  sees one;
- an implausible funding rate is left out by the loader, listed in the data report, and never paid;
- a NaN, infinite, zero or negative price, a duplicated or swapped row, or a missing file stops the
  load with a DataError naming the file (and line).

A spike is never put on the first bar of a series (the first point of a series has nothing to be
compared with: the guard accepts any positive one), and spikes in one file are at least three rows
apart (three consistent out-of-band points in a row are a real move, which the guard accepts).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.data.klines import DataError
from ballast.engine.app.backtest import load_market, run_backtest
from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.events import (
    Bar,
    DataRejected,
    FundingPaid,
    MarkPriceUpdated,
    PortfolioSnapshot,
    RebalanceDecided,
    RiskBudgetChanged,
)
from ballast.engine.kernel.journal import JournalReader, Record
from tests.support.market_data import FUNDING, KLINES, copy_market, funding_key, rows

D = Decimal
START, END = "2023-03-01", "2023-03-04"
CONFIG = parse_config('[strategy]\nname = "growth_optimizer"\n[execution]\nmode = "auto"\n')
SYMBOLS = {
    "btcusdt_spot_1h": "BTC/USDT",
    "btcusdt_perp_1h": "BTC/USDT:USDT",
    "ethusdt_spot_1h": "ETH/USDT",
    "ethusdt_perp_1h": "ETH/USDT:USDT",
}
ROWS = 72  # three days of hourly bars
SETTLEMENTS = [f"2023-03-0{day}T{hour:02d}:00" for day in (1, 2, 3) for hour in (0, 8, 16)]
MAX_VOLATILITY = D(5)
"""Far above three calm days of March 2023 (about 0.5), far below what one 10× spike gives."""


@dataclass(frozen=True)
class Spike:
    file: str
    row: int
    """Index among the data rows, 1.. (never the first bar)."""
    factor: int
    up: bool


@dataclass(frozen=True)
class FundingSpike:
    file: str
    settlement: str
    rate: str


@dataclass(frozen=True)
class Fatal:
    kind: str
    """nan, inf, zero, negative, duplicate, swap or missing."""
    file: str
    row: int


spikes = st.builds(
    Spike,
    st.sampled_from(KLINES),
    st.integers(1, ROWS - 1),
    st.integers(10, 1000),
    st.booleans(),
)
funding_spikes = st.builds(
    FundingSpike,
    st.sampled_from(FUNDING),
    st.sampled_from(SETTLEMENTS),
    st.sampled_from(["5.0", "-5", "0.5", "-0.0301", "0.04", "1"]),
)
fatal = st.builds(
    Fatal,
    st.sampled_from(["nan", "inf", "zero", "negative", "duplicate", "swap", "missing"]),
    st.sampled_from(KLINES + FUNDING),
    st.integers(1, ROWS - 2),
)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_market(tmp_path_factory.mktemp("base"), START, END)


@contextlib.contextmanager
def damaged(
    base: Path, spiked: list[Spike], rates: list[FundingSpike], fatal: Fatal | None
) -> Iterator[Path]:
    """A fresh copy of ``base`` with the damage done."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(base, data)
        for spike in spiked:
            _spike(data, spike)
        for rate in rates:
            _set(data / f"{rate.file}.csv", funding_key(rate.settlement), 2, rate.rate)
        if fatal is not None:
            _fatal(data, fatal)
        yield data


def _spike(data: Path, spike: Spike) -> None:
    path = data / f"{spike.file}.csv"
    table = rows(path)
    row = table[1 + spike.row]
    close = D(row[4])
    row[4] = str(close * spike.factor if spike.up else (close / spike.factor).quantize(D("1e-8")))
    _write(path, table)


def _set(path: Path, key: str, column: int, value: str) -> None:
    table = rows(path)
    [row] = [r for r in table[1:] if r[0].startswith(key)]
    row[column] = value
    _write(path, table)


def _fatal(data: Path, fatal: Fatal) -> None:
    path = data / f"{fatal.file}.csv"
    if fatal.kind == "missing":
        path.unlink()
        return
    table = rows(path)
    at = 1 + min(fatal.row, len(table) - 3)
    values = {"nan": "NaN", "inf": "Infinity", "zero": "0", "negative": "-1"}
    if fatal.kind in values:
        table[at][-1 if fatal.file in FUNDING else 4] = values[fatal.kind]
        if fatal.file in FUNDING and fatal.kind != "nan" and fatal.kind != "inf":
            table[at][0] = table[at - 1][0]  # a funding rate may be 0 or < 0: break its time
    elif fatal.kind == "duplicate":
        table.insert(at, list(table[at]))
    else:
        table[at], table[at + 1] = table[at + 1], table[at]
    _write(path, table)


def _write(path: Path, table: list[list[str]]) -> None:
    path.write_text("".join(",".join(row) + "\n" for row in table))


def isolated(found: list[Spike]) -> list[Spike]:
    """Spikes at least three rows apart within each file (see the module docstring)."""
    kept: list[Spike] = []
    for spike in found:
        if all(k.file != spike.file or abs(k.row - spike.row) >= 3 for k in kept):
            kept.append(spike)
    return kept


def one_per_settlement(found: list[FundingSpike]) -> list[FundingSpike]:
    return list({(f.file, f.settlement): f for f in found}.values())


async def backtest(data: Path, journal: Path, config: Config) -> tuple[MarketBundle, list[Any]]:
    bundle = load_market(config, data, start=START, end=END)
    await run_backtest(config, bundle, name="t", journal_path=journal)
    async with JournalReader(journal) as reader:
        records = [rec async for rec in reader.records()]
    return bundle, records


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@example(found=[Spike("btcusdt_spot_1h", 30, 100, up=True)], rates=[], broken=None)
@example(
    found=[Spike("ethusdt_perp_1h", 40, 10, up=False)],
    rates=[FundingSpike("btcusdt_perp_funding_8h", "2023-03-02T08:00", "5.0")],
    broken=None,
)
@given(
    found=st.lists(spikes, max_size=4),
    rates=st.lists(funding_spikes, max_size=2),
    broken=st.one_of(st.none(), fatal),
)
def test_no_order_is_sized_from_a_rejected_value_and_every_anomaly_is_counted(
    base: Path, found: list[Spike], rates: list[FundingSpike], broken: Fatal | None
) -> None:
    spiked, rates = isolated(found), one_per_settlement(rates)
    with damaged(base, spiked, rates, broken) as data:
        if broken is not None:
            with pytest.raises(DataError) as refused:
                load_market(CONFIG, data, start=START, end=END)
            assert f"{broken.file}.csv" in str(refused.value)
            return
        bundle, records = asyncio.run(backtest(data, data / "journal.db", CONFIG))
    check_funding(bundle, records, rates)
    check_spikes(records, spiked)
    check_sizing(records, spiked)


def check_funding(bundle: MarketBundle, records: list[Record], rates: list[FundingSpike]) -> None:
    limit = CONFIG.risk.max_abs_funding_rate
    reported = {(r.symbol, r.value) for r in bundle.report().rejected}
    for rate in rates:
        symbol = SYMBOLS[rate.file.replace("_funding_8h", "_1h")]
        assert (symbol, rate.rate) in reported
    assert len(bundle.report().rejected) == len(rates)
    paid = [rec.message for rec in records if isinstance(rec.message, FundingPaid)]
    assert all(abs(p.rate) <= limit for p in paid)
    marks = [rec.message for rec in records if isinstance(rec.message, MarkPriceUpdated)]
    assert all(abs(m.funding_rate) <= limit for m in marks)


def spiked_events(records: list[Record], spiked: list[Spike]) -> set[int]:
    """Seqs of the bars and marks carrying a spiked close."""
    targets = {(SYMBOLS[s.file], _close_time(s)) for s in spiked}
    return {
        rec.seq
        for rec in records
        if isinstance(rec.message, Bar | MarkPriceUpdated)
        and (rec.message.symbol, rec.message.ts_event) in targets
    }


def _close_time(spike: Spike) -> int:
    from ballast.adapters.data.bundle import to_ns

    return to_ns(START) + (spike.row + 1) * NS_PER_HOUR


def check_spikes(records: list[Record], spiked: list[Spike]) -> None:
    verdicts = [rec.message for rec in records if isinstance(rec.message, DataRejected)]
    assert sorted(v.seq for v in verdicts) == sorted(spiked_events(records, spiked))
    assert all(v.reason == "price_jump" for v in verdicts)
    budgets = [rec.message for rec in records if isinstance(rec.message, RiskBudgetChanged)]
    assert all(b.volatility < MAX_VOLATILITY for b in budgets)


def check_sizing(records: list[Record], spiked: list[Spike]) -> None:
    """Every decision with orders is sized on a snapshot whose prices are the last accepted ones;
    no order carries a rejected price."""
    rejected = {rec.message.seq for rec in records if isinstance(rec.message, DataRejected)}
    bad_values = {
        rec.message.close if isinstance(rec.message, Bar) else rec.message.mark
        for rec in records
        if rec.seq in rejected and isinstance(rec.message, Bar | MarkPriceUpdated)
    }
    accepted = AcceptedPrices()
    snapshot: PortfolioSnapshot | None = None
    decided = 0
    for rec in records:
        message = rec.message
        if rec.seq not in rejected:
            accepted.take(message)
        if isinstance(message, PortfolioSnapshot):
            snapshot = message
            accepted.check(message, bad_values)
        elif isinstance(message, RebalanceDecided) and message.intents:
            assert snapshot is not None
            decided += 1
        elif isinstance(message, SubmitOrder):
            assert message.price is None or message.price not in bad_values
    assert decided > 0 or not spiked  # the property is not vacuous on a run that trades


class AcceptedPrices:
    """The last accepted price per asset, as the portfolio marks it (a perp's mark stream is
    authoritative once seen)."""

    def __init__(self) -> None:
        self.spot: dict[str, Decimal] = {}
        self.perp: dict[str, Decimal] = {}
        self.marked: set[str] = set()

    def take(self, message: Any) -> None:
        if isinstance(message, Bar):
            asset, _, rest = message.symbol.partition("/")
            if ":" not in rest:
                self.spot[asset] = message.close
            elif asset not in self.marked:
                self.perp[asset] = message.close
        elif isinstance(message, MarkPriceUpdated):
            asset = message.symbol.partition("/")[0]
            self.marked.add(asset)
            self.perp[asset] = message.mark

    def check(self, snapshot: PortfolioSnapshot, bad: set[Decimal]) -> None:
        for state in snapshot.assets:
            assert state.spot_price not in bad
            assert state.perp_price not in bad
            if state.asset in self.spot:
                assert state.spot_price == self.spot[state.asset]
            if state.perp_price > 0 and state.asset in self.perp:
                assert state.perp_price == self.perp[state.asset]
