"""``ballast demo`` (what ``make demo`` runs): the engine live through the real ccxt.pro client
against the in-process loopback exchange, ending by itself with its summary and a verified
replay; ``ballast demo --backtest``: the former two-year comparison, its numbers unchanged."""

from __future__ import annotations

import asyncio
import re
import shutil
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from ballast.engine.app.cli.cmd_demo import compare_books
from ballast.engine.kernel.events import BalanceUpdated, FundingPaid, PositionUpdated
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.cli import ballast

ROOT = Path(__file__).resolve().parents[1]


def row(stdout: str, label: str) -> list[str]:
    """The values of one row of a results table (columns split on two spaces or more)."""
    for line in stdout.splitlines():
        if line.startswith(label):
            return re.split(r"\s{2,}", line[len(label) :].strip())
    raise AssertionError(f"no row {label!r} in:\n{stdout}")


@pytest.mark.slow
def test_demo_backtest_is_the_former_demo_with_the_same_numbers(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = ballast("demo", "--backtest", "--out", str(out), timeout_s=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "journal.db").is_file()
    assert (out / "config.toml").read_text() == (ROOT / "examples" / "demo.toml").read_text()
    html = (out / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html
    for name in ("growth_optimizer", "buy_and_hold", "calendar"):
        assert name in proc.stdout
        assert name in html
    # The figures `ballast demo` printed before it went live (ballast 0.1.0 on the bundled data),
    # growth_optimizer's as issue 12 changed them (its signal's warm-up, levels and minimum hold;
    # before: 119,816.32, +19.82 %, -54.82 %, 848.77, -86.18, 56, 101).
    assert row(proc.stdout, "Final NAV (USDT)") == ["169,546.75", "118,860.74", "132,292.21"]
    assert row(proc.stdout, "Total return") == ["+69.55 %", "+18.86 %", "+32.29 %"]
    assert row(proc.stdout, "Max drawdown") == ["-38.65 %", "-39.60 %", "-43.36 %"]
    assert row(proc.stdout, "Fees paid (USDT)") == ["1,618.76", "60.01", "148.74"]
    assert row(proc.stdout, "Funding PnL (USDT)") == ["-7,821.06", "+0.00", "+0.00"]
    assert row(proc.stdout, "Rebalances") == ["118", "1", "25"]
    assert row(proc.stdout, "Fills") == ["138", "2", "47"]
    assert re.search(r"replay: [\d,]+ records .* reproduced identically \(verify ok\)", proc.stdout)


@pytest.mark.slow
async def test_demo_runs_live_on_loopback_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # The bundled slice at 5 ms per hour of data: about 15 s of trading.
    args = ("demo", "--out", str(out), "--step-s", "0.005")
    proc = await asyncio.to_thread(ballast, *args, timeout_s=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stdout = proc.stdout
    assert "ccxt.pro" in stdout
    assert "127.0.0.1" in stdout
    assert re.search(r" rebalance #1 ", stdout)  # the live view's plain lines (not a terminal)
    assert "summary:" in stdout
    # The engine's balances and positions (its journal) equal the exchange's exactly.
    assert "book: the engine's" in stdout
    assert "\n  balance " not in stdout
    assert "\n  position " not in stdout
    nav = re.search(r"NAV +([\d,.]+) → ([\d,.]+) USDT", stdout)
    assert nav is not None
    assert nav.group(1) == "100,000.00"
    rebalances = re.search(r"rebalances +(\d+)", stdout)
    assert rebalances is not None
    assert int(rebalances.group(1)) >= 3
    assert re.search(r"orders +\d+ sent, \d+ fills, 0 rejected", stdout)
    for label in ("return", "max drawdown", "fees", "funding"):
        assert re.search(rf"^  {label} ", stdout, re.MULTILINE), label
    assert "(verify ok)" in stdout
    assert stdout.rstrip().endswith("ballast demo --backtest")
    journal = out / "journal.db"
    assert journal.is_file()
    assert (out / "report" / "report.html").is_file()
    assert 'kind = "paper"' in (out / "config.toml").read_text()
    types = await _types(journal)
    assert types["OrderFilled"] >= 3
    assert types["VenueConnectionChanged"] >= 1
    assert "Bar" not in types  # quotes and marks over WebSockets, not the bundle's bars


async def _types(journal: Path) -> dict[str, int]:
    async with JournalReader(journal) as reader:
        return dict((await reader.stats()).by_type)


def test_demo_refuses_a_folder_holding_a_journal_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "journal.db").write_bytes(b"precious")
    proc = ballast("demo", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "was not written by ballast demo" in proc.stderr
    assert (out / "journal.db").read_bytes() == b"precious"


def test_demo_replaces_the_former_demos_backtest_journal(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    shutil.copyfile(ROOT / "tests" / "fixtures" / "backtest_v1.db", out / "journal.db")
    proc = ballast("demo", "--out", str(out), "--step-s", "60", "--data", str(tmp_path / "none"))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # no data there: fails after _prepare
    assert "was not written by ballast demo" not in proc.stderr
    assert not (out / "journal.db").exists() or (out / ".ballast-demo").exists()


def test_demo_step_must_be_a_sane_number_of_seconds(tmp_path: Path) -> None:
    proc = ballast("demo", "--out", str(tmp_path), "--step-s", "-1")
    assert proc.returncode == 2
    assert "--step-s: must be between 0 and 60 seconds" in proc.stderr


def test_plan_runs_on_the_live_demos_config() -> None:
    """The paper kind's exchange is the simulated one with the [paper] balances: plan works on
    the config the live demo leaves in its folder (a binance config is refused)."""
    proc = ballast("plan", "-c", str(ROOT / "examples" / "demo_live.toml"), "--at", "2023-01-01")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("Plan at 2023-01-01T00:00:00")
    assert "strategy growth_optimizer" in proc.stdout


async def test_the_book_check_compares_exactly(tmp_path: Path) -> None:
    """The engine's book is its journal's last statement per (account, asset), summed over its
    accounts, plus its perp positions and funding; any difference is named, to the last digit."""
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        for message in (
            BalanceUpdated(1, 1, "spot", "USDT", D("100"), D("0")),
            BalanceUpdated(2, 2, "spot", "USDT", D("90.5"), D("0.25")),
            BalanceUpdated(2, 2, "futures", "USDT", D("0"), D("0")),
            BalanceUpdated(3, 3, "spot", "BTC", D("0.001"), D("0")),
            PositionUpdated(4, 4, "BTC/USDT:USDT", D("0.5"), D("1"), D("1"), D(0), D(0), None),
            FundingPaid(5, 5, "BTC/USDT:USDT", D("0.5"), D("1"), D("0.0001"), D("-0.25"), "USDT"),
        ):
            journal.append(message)
    balances = {
        "USDT": {"free": "90.5", "locked": "0.25"},
        "BTC": {"free": "0.001", "locked": "0"},
    }
    income = [{"incomeType": "FUNDING_FEE", "income": "-0.25"}]
    state: dict[str, Any] = {
        "balances": balances,
        "positions": {"BTC/USDT:USDT": {"qty": "0.5"}},
        "income": income,
    }
    differences, compared = await compare_books(path, state)
    assert differences == []
    assert compared == "2 balances, 1 positions, funding -0.25"
    balances["BTC"]["free"] = "0.0010000001"
    state["positions"] = {}
    income.append({"incomeType": "FUNDING_FEE", "income": "-0.01"})
    differences, _ = await compare_books(path, state)
    assert differences == [
        "balance BTC: engine 0.001, exchange 0.0010000001",
        "position BTC/USDT:USDT: engine 0.5, exchange 0",
        "funding: engine -0.25, exchange -0.26",
    ]
