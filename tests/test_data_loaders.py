"""Market-data loaders and the merged backtest stream, on the bundled real Binance files.

Row counts and the known spot gap are those of data/market/PROVENANCE.md.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import FundingSettlement, MarketBundle, bar_order, to_ns
from ballast.adapters.data.funding import load_funding
from ballast.adapters.data.gaps import DataReport, Gap, SeriesGap, find_gaps, format_ts
from ballast.adapters.data.klines import DataError, load_klines
from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated

# One pytest-xdist worker runs this module (--dist loadgroup): one load of the bundled data.
pytestmark = pytest.mark.xdist_group("test_data_loaders")
DATA = Path(__file__).resolve().parents[1] / "data" / "market"
GAP_OPEN = to_ns("2023-03-24 13:00")


@pytest.fixture(scope="module")
def real() -> MarketBundle:
    return MarketBundle.load(DATA, ["BTC", "ETH"])


@pytest.fixture(scope="module")
def real_events(real: MarketBundle) -> list[MarketData]:
    return list(real.events())


# ------------------------------------------------------------------ checks shared with synthetic


def assert_stream_order(events: Sequence[MarketData]) -> None:
    """Time order; at equal times spot bars, perp bars, then marks, each by symbol."""

    def key(e: MarketData) -> tuple[int, int, str]:
        assert isinstance(e, Bar | MarkPriceUpdated)
        rank = 2 if isinstance(e, MarkPriceUpdated) else int(":" in e.symbol)
        return (e.ts_event, rank, e.symbol)

    keys = [key(e) for e in events]
    assert all(a < b for a, b in itertools.pairwise(keys))


def assert_no_look_ahead(events: Iterable[MarketData], settled: Sequence[FundingSettlement]) -> int:
    """Each mark carries the rate of the last settlement at or before it; returns marks seen."""
    by_symbol: dict[str, list[FundingSettlement]] = {}
    for s in sorted(settled, key=lambda s: s.ts_ns):
        by_symbol.setdefault(s.symbol, []).append(s)
    times = {symbol: [s.ts_ns for s in known] for symbol, known in by_symbol.items()}
    marks = 0
    for e in events:
        if isinstance(e, MarkPriceUpdated):
            i = bisect.bisect_right(times[e.symbol], e.ts_event)
            assert i > 0, f"mark at {format_ts(e.ts_event)} before any settlement"
            assert e.funding_rate == by_symbol[e.symbol][i - 1].rate
            assert e.ts_event < e.next_funding_ns <= e.ts_event + 8 * NS_PER_HOUR
            assert e.next_funding_ns % (8 * NS_PER_HOUR) == 0
            marks += 1
    return marks


# --------------------------------------------------------------------------------- raw loaders


@pytest.mark.parametrize("asset", ["btc", "eth"])
def test_bundled_row_counts(asset: str) -> None:
    spot = load_klines(DATA / f"{asset}usdt_spot_1h.csv", "X/USDT")
    perp = load_klines(DATA / f"{asset}usdt_perp_1h.csv", "X/USDT:USDT")
    funding = load_funding(DATA / f"{asset}usdt_perp_funding_8h.csv", "X/USDT:USDT")
    assert (len(spot.bars), len(perp.bars), len(funding.points)) == (17_543, 17_544, 2_193)
    assert [(g.after_ns + NS_PER_HOUR, g.missing) for g in spot.gaps] == [(GAP_OPEN, 1)]
    assert perp.gaps == []
    assert funding.gaps == []


def test_exact_decimal_values_of_known_rows() -> None:
    spot = load_klines(DATA / "btcusdt_spot_1h.csv", "BTC/USDT")
    first = spot.bars[0]
    assert first.ts_event == to_ns("2022-04-18 01:00")  # candle 00:00 closes at 01:00
    assert [str(v) for v in (first.open, first.high, first.low, first.close, first.volume)] == [
        "39678.11",
        "39784.98",
        "39580.05",
        "39732.92",
        "1597.81786",
    ]
    perp = load_klines(DATA / "ethusdt_perp_1h.csv", "ETH/USDT:USDT")
    assert (str(perp.bars[-1].close), str(perp.bars[-1].volume)) == ("2983.25", "54976.051")
    funding = load_funding(DATA / "btcusdt_perp_funding_8h.csv", "BTC/USDT:USDT")
    assert funding.points[0].rate == Decimal("-0.00003231")
    assert str(funding.points[-1].rate) == "0.00006534"


def test_funding_times_are_rounded_to_the_minute_on_the_8h_grid() -> None:
    for asset in ("btc", "eth"):
        funding = load_funding(DATA / f"{asset}usdt_perp_funding_8h.csv", "X/USDT:USDT")
        # the raw first row says 1650240000008 ms: 8 ms of Binance jitter
        assert funding.points[0].ts_ns == 1_650_240_000_000 * 1_000_000
        assert {p.ts_ns % (8 * NS_PER_HOUR) for p in funding.points} == {0}
        assert {p.interval_h for p in funding.points} == {8}
        assert {format_ts(p.ts_ns)[-5:] for p in funding.points} == {"00:00", "08:00", "16:00"}


def test_gaps_count_every_missing_step_rounding_up() -> None:
    times = [0, NS_PER_HOUR, 5 * NS_PER_HOUR, 6 * NS_PER_HOUR, 7 * NS_PER_HOUR + NS_PER_HOUR // 2]
    assert find_gaps(times, NS_PER_HOUR) == [Gap(NS_PER_HOUR, 3), Gap(6 * NS_PER_HOUR, 1)]
    gap = SeriesGap("BTC/USDT", "bar", to_ns("2024-01-01"), 3, NS_PER_HOUR)
    assert gap.describe() == "BTC/USDT 3 missing bars from 2024-01-01 01:00"


# ------------------------------------------------------------------------------ market bundle


def test_bundle_report_lists_the_spot_gap(real: MarketBundle) -> None:
    report = real.report()
    assert [g.describe() for g in report.gaps()] == [
        "BTC/USDT 1 missing bar at 2023-03-24 13:00",
        "ETH/USDT 1 missing bar at 2023-03-24 13:00",
    ]
    assert "gaps: BTC/USDT 1 missing bar at 2023-03-24 13:00" in report.lines()
    assert report.missing == 2
    counts = {(c.symbol, c.kind): c.count for c in report.series}
    assert counts[("BTC/USDT", "spot")] == 17_543
    assert counts[("ETH/USDT:USDT", "perp")] == 17_544
    assert counts[("ETH/USDT:USDT", "funding")] == 2_193
    assert real.span() == (to_ns("2022-04-18 01:00"), to_ns("2024-04-18 00:00"))
    assert real.interval_s == 3600


def test_bundle_stream_content_and_order(real: MarketBundle, real_events: list[MarketData]) -> None:
    kinds = Counter(
        (type(e).__name__, e.symbol) for e in real_events if isinstance(e, Bar | MarkPriceUpdated)
    )
    assert kinds[("Bar", "BTC/USDT")] == 17_543
    assert kinds[("Bar", "ETH/USDT:USDT")] == 17_544
    assert kinds[("MarkPriceUpdated", "BTC/USDT:USDT")] == 17_544
    assert len(real_events) == 2 * 17_543 + 4 * 17_544
    assert_stream_order(real_events)
    assert len(real.settlements) == 2 * 2_193
    assert all(
        a.ts_ns <= b.ts_ns for a, b in zip(real.settlements, real.settlements[1:], strict=False)
    )


def test_stream_order_does_not_depend_on_the_order_assets_are_given_in() -> None:
    """Series are merged by close time alone, ties in the (spot before perp, symbol) order the
    series are put in first: assets given in another order still give the one stream order."""
    start, end = "2022-05-01T00:00", "2022-05-08T00:00"
    given = list(MarketBundle.load(DATA, ["ETH", "BTC"], start=start, end=end).events())
    assert_stream_order(given)
    assert given == list(MarketBundle.load(DATA, ["BTC", "ETH"], start=start, end=end).events())
    assert [e.symbol for e in given[:6]] == [
        "BTC/USDT",
        "ETH/USDT",
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
        "BTC/USDT:USDT",
        "ETH/USDT:USDT",
    ]


def test_marks_never_see_a_future_funding_rate(
    real: MarketBundle, real_events: list[MarketData]
) -> None:
    settled = [
        FundingSettlement(p.ts_ns, symbol, p.rate)
        for asset, symbol in (("btc", "BTC/USDT:USDT"), ("eth", "ETH/USDT:USDT"))
        for p in load_funding(DATA / f"{asset}usdt_perp_funding_8h.csv", symbol).points
    ]
    assert assert_no_look_ahead(real_events, settled) == 2 * 17_544


def test_mark_index_is_the_spot_close_or_the_perp_close_in_a_spot_gap(
    real_events: list[MarketData],
) -> None:
    spot = {(e.ts_event, e.symbol): e.close for e in real_events if isinstance(e, Bar)}
    for e in real_events:
        if isinstance(e, MarkPriceUpdated):
            assert e.mark == spot[(e.ts_event, e.symbol)]
            assert e.index == spot.get((e.ts_event, e.symbol.split(":")[0]), e.mark)
    in_gap = [
        e
        for e in real_events
        if isinstance(e, MarkPriceUpdated) and e.ts_event == GAP_OPEN + NS_PER_HOUR
    ]
    assert next((e.symbol, e.index, e.mark) for e in in_gap) == (
        "BTC/USDT:USDT",
        Decimal("27963.9"),
        Decimal("27963.9"),
    )


def test_date_range_keeps_the_settlement_before_start_for_marks() -> None:
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], start="2023-03-24 03:00", end="2023-03-25")
    events = list(bundle.events())
    assert {e.ts_event for e in events} == {
        to_ns("2023-03-24 03:00") + h * NS_PER_HOUR for h in range(21)
    }
    assert sum(isinstance(e, Bar) and e.symbol == "BTC/USDT" for e in events) == 20
    assert [format_ts(s.ts_ns) for s in bundle.settlements if s.symbol == "BTC/USDT:USDT"] == [
        "2023-03-24 08:00",
        "2023-03-24 16:00",
    ]
    first_mark = next(e for e in events if isinstance(e, MarkPriceUpdated))
    midnight = load_funding(DATA / "btcusdt_perp_funding_8h.csv", "BTC/USDT:USDT").between(
        to_ns("2023-03-24"), to_ns("2023-03-24 00:01")
    )
    assert first_mark.funding_rate == midnight.points[0].rate
    assert next(g.describe() for g in bundle.report().gaps()) == (
        "BTC/USDT 1 missing bar at 2023-03-24 13:00"
    )
    assert bundle.span() == (to_ns("2023-03-24 03:00"), to_ns("2023-03-24 23:00"))


def test_date_range_without_the_gap_reports_none() -> None:
    bundle = MarketBundle.load(DATA, ["BTC"], start="2024-01-01", end="2024-01-02")
    assert bundle.report().gaps() == []
    assert sum(isinstance(e, Bar) for e in bundle.events()) == 2 * 24


# ---------------------------------------------------------------------------- generic files


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def test_generic_ohlcv_and_funding_files(tmp_path: Path) -> None:
    ms = 1_700_006_400_000  # 2023-11-15 00:00 UTC, on the 8 h grid
    spot_rows = [
        f"{ms + i * 3_600_000},{100 + i},{101 + i},{99 + i},{100.5 + i},7" for i in range(6)
    ]
    _write(
        tmp_path / "BTC_USDT.csv", "\n".join(["timestamp,open,high,low,close,volume", *spot_rows])
    )
    perp_rows = [
        f"{ms // 1000 + i * 3600},{100 + i},{102 + i},{98 + i},{100.7 + i},9" for i in range(6)
    ]
    _write(
        tmp_path / "BTC_USDT_USDT.csv", "\n".join(["time,open,high,low,close,volume", *perp_rows])
    )
    _write(
        tmp_path / "BTC_USDT_USDT_funding.csv",
        """
timestamp,funding_rate,mark_price
2023-11-14T16:00:00.004Z,0.0001,99.5
2023-11-15T08:00:00,-0.00025,106.1
""",
    )
    bundle = MarketBundle.load(tmp_path, ["BTC"])
    events = list(bundle.events())
    assert_stream_order(events)
    marks = [e for e in events if isinstance(e, MarkPriceUpdated)]
    assert [str(m.funding_rate) for m in marks] == ["0.0001"] * 6
    assert marks[0].index == Decimal("100.5")
    assert marks[0].mark == Decimal("100.7")
    assert [(s.rate, s.mark) for s in bundle.settlements] == [
        (Decimal("0.0001"), Decimal("99.5")),
        (Decimal("-0.00025"), Decimal("106.1")),
    ]
    assert [g.describe() for g in bundle.report().gaps()] == [
        "BTC/USDT:USDT 1 missing settlement at 2023-11-15 00:00"
    ]


def test_asset_without_perp_is_spot_only(tmp_path: Path) -> None:
    _write(tmp_path / "SOL_USDT.csv", "date,open,high,low,close,volume\n2024-01-01,1,2,1,2,3")
    bundle = MarketBundle.load(tmp_path, ["SOL"], interval_s=86_400)  # one row: no spacing to see
    assert [type(e).__name__ for e in bundle.events()] == ["Bar"]
    assert bundle.settlements == []


# --------------------------------------------------------------------------------- malformed


HEADER = "timestamp,open,high,low,close,volume"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("2024-01-01 00:00,1,2,1,x,3", r"bad\.csv:3: bad row"),
        ("2024-01-01 00:00,1,2,1", r"bad\.csv:3: bad row"),
        ("yesterday,1,2,1,2,3", r"bad\.csv:3: bad row"),
        ("2024-01-01 00:00,1,2,1,NaN,3", r"bad\.csv:3: impossible prices"),
        ("2024-01-01 00:00,1,0.5,1,1,3", r"bad\.csv:3: impossible prices"),
        ("2024-01-01 00:00,1,2,1,2,-3", r"bad\.csv:3: impossible volume"),
        ("2023-12-31 23:00,1,2,1,2,3", r"bad\.csv:3: time does not increase"),
    ],
)
def test_malformed_klines_name_file_and_line(tmp_path: Path, rows: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", f"{HEADER}\n2023-12-31 23:00,1,2,1,2,3\n{rows}")
    with pytest.raises(DataError, match=message):
        load_klines(path, "BTC/USDT")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("calc_time,funding_interval_hours,last_funding_rate\n1,8,abc", r"f\.csv:2: bad row"),
        ("calc_time,funding_interval_hours,last_funding_rate\n1,0,0.1", r"f\.csv:2: impossible"),
        ("calc_time,funding_interval_hours,last_funding_rate\n1,8.5,0.1", r"f\.csv:2: bad row"),
        ("timestamp,funding_rate\n2024-01-01T08:00,0.1\n2024-01-01T00:00,0.1", r"f\.csv:3: time"),
        ("timestamp,rate_of_funding\n2024-01-01,0.1", r"f\.csv: header"),
    ],
)
def test_malformed_funding_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_funding(_write(tmp_path / "f.csv", text), "BTC/USDT:USDT")


def test_missing_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no spot klines for BTC"):
        MarketBundle.load(tmp_path, ["BTC"])
    _write(tmp_path / "BTC_USDT.csv", f"{HEADER}\n2024-01-01,1,2,1,2,3")
    _write(tmp_path / "BTC_USDT_USDT.csv", f"{HEADER}\n2024-01-01,1,2,1,2,3")
    with pytest.raises(DataError, match="has no funding file"):
        MarketBundle.load(tmp_path, ["BTC"])
    with pytest.raises(DataError, match=r"nope\.csv"):
        load_klines(tmp_path / "nope.csv", "BTC/USDT")
    with pytest.raises(DataError, match="header"):
        load_klines(_write(tmp_path / "empty.csv", ""), "BTC/USDT")


def test_feed_out_of_order_is_refused() -> None:
    def bar(ts: int, symbol: str) -> Bar:
        one = Decimal(1)
        return Bar(ts, ts, symbol, 3600, one, one, one, one, one)

    bars = [bar(NS_PER_HOUR, "BTC/USDT:USDT"), bar(NS_PER_HOUR, "BTC/USDT")]
    assert bar_order(bars[1]) < bar_order(bars[0])
    bundle = MarketBundle(lambda: bars, [], DataReport(()))
    with pytest.raises(DataError, match="out of order"):
        list(bundle.events())


def test_a_range_without_bars_says_what_the_data_covers() -> None:
    covered = "the data has bars closing from 2022-04-18T01:00 to 2024-04-18T00:00"
    late = MarketBundle.load(DATA, ["BTC", "ETH"], start="2025-06-01")
    with pytest.raises(DataError, match=f"^no bars from 2025-06-01T00:00: {covered}$"):
        late.span()
    between = MarketBundle.load(DATA, ["BTC"], start="2020-01-01", end="2020-02-01T12:00")
    with pytest.raises(DataError, match=r"^no bars from 2020-01-01T00:00 before 2020-02-01T12:00:"):
        between.span()
    with pytest.raises(DataError, match=r"^start 2023-02-01T00:00 is not before end 2023-01-01"):
        MarketBundle.load(DATA, ["BTC"], start="2023-02-01", end="2023-01-01")
    assert MarketBundle.load(DATA, ["BTC"], start="2023-01-01", end="2023-01-01T00:30").span() == (
        to_ns("2023-01-01"),
        to_ns("2023-01-01"),
    )
