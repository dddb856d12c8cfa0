"""One time-parsing rule for every option and config key that takes a time
(:func:`ballast.engine.kernel.timefmt.parse_time`): ISO 8601 (naive = UTC) or a number of epoch
seconds, milliseconds, microseconds or nanoseconds told apart by magnitude."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.adapters.data.bundle import to_ns
from ballast.adapters.data.klines import DataError, parse_timestamp
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.timefmt import epoch_number_to_ns, ns_to_iso, parse_time
from tests.support.cli import ballast

NOV_14 = 1_700_000_000 * NS_PER_SECOND  # 2023-11-14T22:13:20Z
SAME_INSTANT = (
    "1700000000",
    "1700000000000",
    "1700000000000000",
    "1700000000000000000",
    "2023-11-14T22:13:20Z",
    "2023-11-14T22:13:20",
    "2023-11-14 22:13:20",
    "2023-11-14T23:13:20+01:00",
    " 2023-11-14T22:13:20.000000Z ",
)


@pytest.mark.parametrize("text", SAME_INSTANT)
def test_every_form_of_one_instant_parses_to_it(text: str) -> None:
    assert parse_time(text) == NOV_14
    assert parse_timestamp(text) == NOV_14  # market-data files read times by the same rule
    assert to_ns(text) == NOV_14


def test_magnitude_decides_the_unit_of_a_number() -> None:
    assert epoch_number_to_ns(10**11 - 1) == (10**11 - 1) * NS_PER_SECOND
    assert epoch_number_to_ns(10**11) == 10**11 * 1_000_000  # milliseconds from here on
    assert epoch_number_to_ns(10**14) == 10**14 * 1_000  # microseconds
    assert epoch_number_to_ns(10**17) == 10**17  # nanoseconds
    assert parse_time("0") == 0


def test_dates_and_fractions_are_exact_on_both_sides_of_1970() -> None:
    assert parse_time("2024-01-31") == 1_706_659_200 * NS_PER_SECOND
    assert parse_time("2024-01-31T08:00:00.123456") == 1_706_688_000_123_456_000
    assert parse_time("1969-12-31T23:59:59.5") == -NS_PER_SECOND // 2
    assert ns_to_iso(parse_time("2024-01-31T08:00:00.123456Z")) == "2024-01-31T08:00:00.123456Z"


@pytest.mark.parametrize("text", ["", "yesterday", "-5", "1.5", "1e9", "2023-13-45", "١٢٣"])
def test_anything_else_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time: .* \(use ISO 8601 like 2024-01-31"):
        parse_time(text)
    with pytest.raises(DataError, match="unreadable timestamp"):
        parse_timestamp(text)


def test_paper_start_and_end_read_times_by_the_same_rule() -> None:
    config = parse_config('[paper]\nstart = "1700000000"\nend = "2023-11-15"\n')
    assert config.paper.start == "1700000000"
    with pytest.raises(ConfigError, match=r"paper\.end: must be after start"):
        parse_config('[paper]\nstart = "2023-11-15"\nend = "1700000000000"\n')
    with pytest.raises(ConfigError, match=r"paper\.start: not a time: 'soon'"):
        parse_config('[paper]\nstart = "soon"\n')


# ------------------------------------------------------------------ the CLI, as a user runs it

HELD = """
[targets]
BTC = 0.40
ETH = 0.20
[paper]
balances = {USDT = 40000, BTC = 1, ETH = 10}
"""
NOV_10 = ("2022-11-10", "1668038400", "1668038400000000000")


@pytest.fixture
def held(tmp_path: Path) -> Path:
    config = tmp_path / "held.toml"
    config.write_text(HELD)
    return config


def _plan_at(out: str) -> str:
    """``2022-11-10T00:00:00.000000Z`` of ``Plan at 2022-11-10T00:00:00.000000Z on venue ...``."""
    return next(line for line in out.splitlines() if line.startswith("Plan at ")).split()[2]


def test_plan_at_and_paper_end_take_the_same_text_to_the_same_instant(
    held: Path, tmp_path: Path
) -> None:
    seen = set()
    for text in NOV_10:
        proc = ballast("plan", "-c", str(held), "--at", text)
        assert proc.returncode == 0, proc.stderr
        seen.add(_plan_at(proc.stdout))
    by_config = tmp_path / "ended.toml"
    by_config.write_text(HELD + f'end = "{NOV_10[1]}"\n')
    proc = ballast("plan", "-c", str(by_config))
    assert proc.returncode == 0, proc.stderr
    seen.add(_plan_at(proc.stdout))
    assert seen == {"2022-11-10T00:00:00.000000Z"}  # the close of the last bar at that time


@pytest.mark.parametrize(
    "text", ["2030-01-01", "1893456000", "1893456000000", "1893456000000000000"]
)
def test_backtest_start_takes_the_same_text_to_the_same_instant(
    held: Path, tmp_path: Path, text: str
) -> None:
    proc = ballast(
        "backtest", "-c", str(held), "--journal", str(tmp_path / "j.db"), "--start", text
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no bars from 2030-01-01T00:00: the data has bars closing from" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "-c", "{config}", "--at", "tomorrow"),
        ("backtest", "-c", "{config}", "--start", "tomorrow"),
        ("backtest", "-c", "{config}", "--end", "tomorrow"),
        ("journal", "export", "{journal}", "--since", "tomorrow"),
        ("journal", "export", "{journal}", "--until", "tomorrow"),
    ],
)
def test_a_bad_time_is_a_usage_error_naming_the_option(
    held: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    filled = [a.format(config=held, journal=tmp_path / "j.db") for a in args]
    proc = ballast(*filled)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"argument {args[-2]}: not a time: 'tomorrow' (use ISO 8601" in proc.stderr
    assert proc.stdout == ""
