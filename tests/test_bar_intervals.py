"""Bars of any interval from one minute to one week (issue 12, items 3 and 7).

The interval is detected from each file (median spacing of its times) or set by ``[paper]
bar_interval`` / ``--bar-interval``; bars are stamped at their close and gaps are counted in bars
of that interval. Yahoo downloads and the generic OHLCV layout load alike, in any quote, and
``ballast plan`` reads them exactly as ``ballast backtest`` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import MarketBundle, to_ns
from ballast.adapters.data.klines import DataError, load_klines
from ballast.engine.app.backtest import load_market
from ballast.engine.app.bundled import market_data
from ballast.engine.app.cli.main import build_parser
from ballast.engine.app.cli.options import time_option
from ballast.engine.kernel.bar_interval import interval_label, parse_bar_interval
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.errors import ConfigError
from tests.support.cli import ballast

YAHOO = "Date,Open,High,Low,Close,Adj Close,Volume"
GENERIC = "timestamp,open,high,low,close,volume"
DAY = timedelta(days=1)
JAN1 = datetime(2024, 1, 1, tzinfo=UTC)


def _prices(i: int) -> tuple[str, str, str, str]:
    """Open, high, low, close of the i-th candle: a gentle zig-zag, never a 10 % jump."""
    close = Decimal(100) + Decimal(i % 7) - Decimal(i % 3) / 2
    return str(close - 1), str(close + 2), str(close - 2), str(close)


def _yahoo(
    path: Path, days: int, *, skip: tuple[int, ...] = (), null: tuple[int, ...] = ()
) -> Path:
    """A Yahoo-style daily file from 2024-01-01, without the days in ``skip`` and with ``null``
    prices on the days in ``null`` (as Yahoo writes a day it has no data for)."""
    rows = [YAHOO]
    for i in range(days):
        if i in skip:
            continue
        day = (JAN1 + i * DAY).strftime("%Y-%m-%d")
        if i in null:
            rows.append(f"{day},null,null,null,null,null,null")
            continue
        o, h, lo, c = _prices(i)
        rows.append(f"{day},{o},{h},{lo},{c},{c},{1000 + i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _generic(path: Path, count: int, step: timedelta, start: datetime = JAN1) -> Path:
    rows = [GENERIC]
    for i in range(count):
        o, h, lo, c = _prices(i)
        rows.append(f"{(start + i * step).isoformat()},{o},{h},{lo},{c},5")
    path.write_text("\n".join(rows) + "\n")
    return path


# ----------------------------------------------------------------------- stamping and detection


def test_yahoo_daily_file_is_read_with_bars_stamped_at_their_close(tmp_path: Path) -> None:
    series = load_klines(_yahoo(tmp_path / "BTC-USD.csv", 10), "BTC/USD")
    assert series.interval_s == 86_400
    first = series.bars[0]
    # the candle opening 2024-01-01 is known, and stamped, at 2024-01-02T00:00Z
    assert first.ts_event == first.ts_init == to_ns(datetime(2024, 1, 2, tzinfo=UTC))
    assert first.interval_s == 86_400
    assert first.close == Decimal(_prices(0)[3])  # Close, not Adj Close, exactly
    assert series.gaps == []


@pytest.mark.parametrize(
    ("step", "seconds", "label"),
    [
        (timedelta(minutes=1), 60, "1m"),
        (timedelta(minutes=5), 300, "5m"),
        (timedelta(hours=4), 14_400, "4h"),
        (timedelta(weeks=1), 604_800, "1w"),
    ],
)
def test_interval_is_detected_from_the_spacing_of_the_times(
    tmp_path: Path, step: timedelta, seconds: int, label: str
) -> None:
    series = load_klines(_generic(tmp_path / "x.csv", 30, step), "BTC/USDT")
    assert series.interval_s == seconds
    assert interval_label(seconds) == label
    assert [b.ts_event for b in series.bars[:2]] == [to_ns(JAN1 + step), to_ns(JAN1 + 2 * step)]
    assert series.gaps == []


def test_a_few_gaps_do_not_move_the_detected_interval(tmp_path: Path) -> None:
    series = load_klines(_yahoo(tmp_path / "d.csv", 20, skip=(4, 9, 10, 15)), "BTC/USD")
    assert series.interval_s == 86_400
    assert [(g.missing, g.after_ns) for g in series.gaps] == [
        (1, to_ns(JAN1 + 3 * DAY)),
        (2, to_ns(JAN1 + 8 * DAY)),
        (1, to_ns(JAN1 + 14 * DAY)),
    ]


def test_interval_outside_one_minute_to_one_week_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    seconds = _generic(tmp_path / "secs.csv", 10, timedelta(seconds=1))
    with pytest.raises(DataError, match=r"secs\.csv: bar interval 1s is outside 1m \.\. 1w"):
        load_klines(seconds, "BTC/USDT")
    monthly = _generic(tmp_path / "monthly.csv", 10, timedelta(days=30))
    with pytest.raises(DataError, match=r"monthly\.csv: bar interval 30d is outside"):
        load_klines(monthly, "BTC/USDT")
    one = _generic(tmp_path / "one.csv", 1, DAY)
    with pytest.raises(DataError, match=r"one\.csv: fewer than two bars .* bar_interval"):
        load_klines(one, "BTC/USDT")
    assert load_klines(one, "BTC/USDT", 86_400).bars[0].ts_event == to_ns(JAN1 + DAY)


# ------------------------------------------------------------------------------------ override


def test_the_interval_can_be_set_and_then_stamps_and_gaps_follow_it(tmp_path: Path) -> None:
    """A file of 4-hourly candles read as hourly: stamped one hour after the open, three missing
    bars between candles, because that is what the user said the bars are."""
    path = _generic(tmp_path / "BTC_USDT.csv", 5, timedelta(hours=4))
    as_set = load_klines(path, "BTC/USDT", 3_600)
    assert as_set.interval_s == 3_600
    assert as_set.bars[0].ts_event == to_ns(JAN1 + timedelta(hours=1))
    assert [g.missing for g in as_set.gaps] == [3, 3, 3, 3]
    config = parse_config(
        '[paper]\nbar_interval = "1h"\nbalances = {USDT = 1000}\n'
        '[instruments]\nspot = ["BTC/USDT"]\nperp = []\n[targets]\nBTC = 0.5\n'
    )
    assert config.paper.bar_interval_s == 3_600
    bundle = load_market(config, tmp_path, start=None, end=None)
    assert bundle.interval_s == 3_600
    assert bundle.report().missing == 12
    detected = load_market(config, tmp_path, start=None, end=None, interval_s=14_400)
    assert (detected.interval_s, detected.report().missing) == (14_400, 0)


@pytest.mark.parametrize("value", ['"2mo"', '"30s"', '"2w"', '"hourly"', '""'])
def test_bad_bar_interval_names_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"paper\.bar_interval"):
        parse_config(f"[paper]\nbar_interval = {value}\n")


def test_bar_interval_forms() -> None:
    assert [parse_bar_interval(t) for t in ("1m", "15m", "1h", "4h", "1d", "1w", "3600s")] == [
        60,
        900,
        3_600,
        14_400,
        86_400,
        604_800,
        3_600,
    ]


# ------------------------------------------------------------------------------ gaps in reports


def test_gaps_are_judged_against_the_detected_interval_one_missing_day_reported_once(
    tmp_path: Path,
) -> None:
    _yahoo(tmp_path / "BTC-USD.csv", 40, skip=(20,))
    _yahoo(tmp_path / "ETH-USD.csv", 40, null=(30,))
    bundle = MarketBundle.load(tmp_path, ["BTC", "ETH"], "USD")
    assert bundle.interval_s == 86_400
    assert [f"gaps: {g.describe()}" for g in bundle.report().gaps()] == [
        "gaps: BTC/USD 1 missing bar at 2024-01-21 00:00",
        "gaps: ETH/USD 1 missing bar at 2024-01-31 00:00",
    ]


def test_several_intervals_of_one_asset_need_a_choice(tmp_path: Path) -> None:
    _generic(tmp_path / "btcusdt_spot_1h.csv", 30, timedelta(hours=1))
    _generic(tmp_path / "btcusdt_spot_1d.csv", 30, DAY)
    with pytest.raises(
        DataError, match=r"btcusdt_spot_1d\.csv, btcusdt_spot_1h\.csv.*bar_interval"
    ):
        MarketBundle.load(tmp_path, ["BTC"])
    assert MarketBundle.load(tmp_path, ["BTC"], interval_s=86_400).interval_s == 86_400
    assert MarketBundle.load(tmp_path, ["BTC"], interval_s=3_600).interval_s == 3_600


def test_files_of_different_detected_intervals_are_refused(tmp_path: Path) -> None:
    _generic(tmp_path / "BTC_USDT.csv", 30, DAY)
    _generic(tmp_path / "ETH_USDT.csv", 30, timedelta(hours=1))
    with pytest.raises(DataError, match=r"BTC_USDT\.csv 1d, ETH_USDT\.csv 1h.*bar_interval"):
        MarketBundle.load(tmp_path, ["BTC", "ETH"])
    chosen = MarketBundle.load(tmp_path, ["BTC", "ETH"], interval_s=3_600)
    assert chosen.interval_s == 3_600


# ------------------------------------------------------------------------------- shipped series


def test_shipped_daily_btc_and_eth_cover_five_years_without_gaps() -> None:
    bundle = MarketBundle.load(market_data(), ["BTC", "ETH"], "USD")
    assert bundle.interval_s == 86_400
    assert bundle.report().missing == 0
    spans = {c.symbol: (c.first_ns, c.last_ns) for c in bundle.report().series}
    for first, last in spans.values():
        assert first is not None
        assert last is not None
        assert last - first >= to_ns("2024-01-01") - to_ns("2019-01-01")
    # the hourly USDT files beside them are still found, and still hourly
    assert MarketBundle.load(market_data(), ["BTC"]).interval_s == 3_600


# ------------------------------------------------------------------------------- the CLI: daily


RESEARCH = """
[venue]
quote = "{quote}"
[instruments]
spot = ["BTC/{quote}", "ETH/{quote}"]
perp = []
[strategy]
name = "threshold"
[targets]
BTC = 0.5
ETH = 0.3
[paper]
data_dir = "{data}"
balances = {{ {quote} = 100000 }}
"""


def _config(tmp_path: Path, data: Path, quote: str, extra: str = "") -> Path:
    path = tmp_path / "research.toml"
    path.write_text(RESEARCH.format(quote=quote, data=data) + extra)
    return path


def test_backtest_on_a_yahoo_daily_file_stamps_bars_at_close_and_reports_no_gaps(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _yahoo(data / "BTC-USD.csv", 60)
    _yahoo(data / "ETH-USD.csv", 60)
    proc = ballast(
        "backtest",
        "-c",
        str(_config(tmp_path, data, "USD")),
        "--no-report",
        "--journal",
        str(tmp_path / "bt.db"),
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"data: {data} 2024-01-02T00:00 → 2024-03-01T00:00, 1d bars" in out
    assert "BTC/USD spot: 60 bars closing 2024-01-02 00:00 .. 2024-03-01 00:00, no gaps" in out
    assert "missing" not in out


def test_backtest_bar_interval_option_overrides_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _yahoo(data / "BTC-USD.csv", 10)
    _yahoo(data / "ETH-USD.csv", 10)
    config = _config(tmp_path, data, "USD")
    journal = str(tmp_path / "bt.db")
    proc = ballast(
        "backtest", "-c", str(config), "--no-report", "--journal", journal, "--bar-interval", "12h"
    )
    assert proc.returncode == 0, proc.stderr
    assert "2024-01-01T12:00 → 2024-01-10T12:00, 12h bars" in proc.stdout
    assert "gaps: BTC/USD 1 missing bar at 2024-01-01 12:00" in proc.stdout
    bad = ballast("backtest", "-c", str(config), "--bar-interval", "daily")
    assert bad.returncode == 2
    assert "--bar-interval: not a bar interval: 'daily'" in bad.stderr


# -------------------------------------------------------------------------------- the CLI: plan


def _eur_folder(tmp_path: Path) -> Path:
    data = tmp_path / "eur"
    data.mkdir()
    _generic(data / "BTC_EUR.csv", 30, DAY)
    _generic(data / "ETH_EUR.csv", 30, DAY)
    return data


def test_plan_reads_a_generic_folder_in_a_non_usdt_quote_as_backtest_does(tmp_path: Path) -> None:
    data = _eur_folder(tmp_path)
    config = _config(tmp_path, tmp_path / "elsewhere", "EUR")
    proc = ballast("plan", "-c", str(config), "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the last daily candle opens 2024-01-30 and closes (prices the plan) 2024-01-31T00:00
    assert "Plan at 2024-01-31T00:00:00.000000Z" in out
    assert "NAV 100,000.00 EUR" in out
    assert "BTC/EUR         buy" in out
    assert "ETH/EUR         buy" in out
    backtest = ballast(
        "backtest",
        "-c",
        str(config),
        "--data",
        str(data),
        "--no-report",
        "--journal",
        str(tmp_path / "bt.db"),
    )
    assert backtest.returncode == 0, backtest.stderr
    assert "→ 2024-01-31T00:00, 1d bars" in backtest.stdout


def test_plan_follows_the_configured_bar_interval(tmp_path: Path) -> None:
    data = _eur_folder(tmp_path)
    config = _config(tmp_path, data, "EUR")
    config.write_text(config.read_text().replace("[paper]\n", '[paper]\nbar_interval = "1h"\n'))
    proc = ballast("plan", "-c", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "Plan at 2024-01-30T01:00:00.000000Z" in proc.stdout


# ------------------------------------------------------------------------------ time options


def _options(
    parser: argparse.ArgumentParser, path: str = "ballast"
) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _options(child, f"{path} {name}")
        elif action.option_strings:
            yield f"{path} {action.option_strings[-1]}", action


TIME_WORDS = ("start", "end", "at", "since", "until")


def test_every_option_that_takes_a_time_parses_it_the_same_way() -> None:
    timed = {
        name: action
        for name, action in _options(build_parser())
        if action.dest in TIME_WORDS or action.metavar == "TIME"
    }
    assert {"ballast backtest --start", "ballast plan --at", "ballast journal export --since"} <= (
        set(timed)
    )
    assert {name: action.type for name, action in timed.items()} == dict.fromkeys(
        timed, time_option
    )


def test_plan_at_reads_epoch_and_iso_alike(tmp_path: Path) -> None:
    data = _eur_folder(tmp_path)
    config = str(_config(tmp_path, data, "EUR"))
    moment = int(datetime(2024, 1, 10, 12, tzinfo=UTC).timestamp())
    stamps = set()
    for text in ("2024-01-10T12:00", "2024-01-10T13:00+01:00", str(moment), str(moment * 1000)):
        proc = ballast("plan", "-c", config, "--at", text)
        assert proc.returncode == 0, proc.stderr
        stamps.add(proc.stdout.splitlines()[0].split(" on venue")[0])
    assert stamps == {"Plan at 2024-01-10T00:00:00.000000Z"}
