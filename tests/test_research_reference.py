"""`ballast backtest` on examples/research.toml against an independent reference.

The reference below is plain Python (csv, decimal, datetime; no Ballast code): threshold
rebalancing on the shipped daily BTC and ETH closes, 50 % BTC / 30 % ETH / 20 % cash, a relative
band of 0.2, no fees, exact quantities, fills at the close. Each daily row is the candle of its
date, closing at the next midnight UTC (where Ballast stamps it). At every close, with both
prices: NAV = cash + Σ quantity × close; if an asset's weight is outside target × (1 ± 0.2),
scope "all" sets every asset to target × NAV / close, scope "breached" only the assets outside.
Ballast must trade on the same closes and end on the same NAV (1e-9 relative).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path

import pytest

from tests.support.cli import ROOT, ballast

DATA = ROOT / "data" / "market"
CONFIG = ROOT / "examples" / "research.toml"
TARGETS = {"BTC": Decimal("0.5"), "ETH": Decimal("0.3")}
REL = Decimal("0.2")
START = datetime(2017, 11, 10, tzinfo=UTC)  # [paper] start of research.toml
CASH = Decimal(100_000)


def closes(path: Path) -> dict[datetime, Decimal]:
    """Close time (the row's date + 1 day, midnight UTC) → close, rows without a price left out."""
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Close"] in ("", "null"):
                continue
            day = datetime.strptime(row["Date"], "%Y-%m-%d").replace(tzinfo=UTC)
            out[day + timedelta(days=1)] = Decimal(row["Close"])
    return out


def reference(scope: str) -> tuple[list[datetime], Decimal]:
    """The rebalance times and the final NAV of the study."""
    prices = {
        "BTC": closes(DATA / "btcusd_spot_1d.csv"),
        "ETH": closes(DATA / "ethusd_spot_1d.csv"),
    }
    times = sorted(t for t in set(prices["BTC"]) & set(prices["ETH"]) if t >= START)
    assert times[-1] - times[0] >= timedelta(days=5 * 365), "at least five years"
    cash, held = CASH, {asset: Decimal(0) for asset in TARGETS}
    rebalanced = []
    with localcontext() as ctx:
        ctx.prec = 60
        for t in times:
            price = {asset: prices[asset][t] for asset in TARGETS}
            nav = cash + sum(held[a] * price[a] for a in TARGETS)
            out = [
                a
                for a, target in TARGETS.items()
                if not target * (1 - REL) <= held[a] * price[a] / nav <= target * (1 + REL)
            ]
            if not out:
                continue
            for a in TARGETS if scope == "all" else out:
                new = TARGETS[a] * nav / price[a]
                cash -= (new - held[a]) * price[a]
                held[a] = new
            rebalanced.append(t)
        final = cash + sum(held[a] * price[a] for a in TARGETS)
    return rebalanced, final


def run_study(tmp_path: Path, scope: str) -> tuple[list[datetime], Decimal]:
    """Ballast's rebalance times (the closes its fills happened at) and final NAV."""
    config = tmp_path / "research.toml"
    text = CONFIG.read_text()
    assert 'scope = "all"' in text
    config.write_text(text.replace('scope = "all"', f'scope = "{scope}"'))
    journal = tmp_path / "j.db"
    done = ballast(
        "backtest", "-c", str(config), "--journal", str(journal), "--no-report", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "threshold: no risk feature acted" in done.stdout

    def export(kind: str) -> list[dict[str, object]]:
        out = ballast("journal", "export", str(journal), "--type", kind, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return [json.loads(line)["event"] for line in out.stdout.splitlines()]

    fills = export("OrderFilled")
    assert all(Decimal(str(f["fee"])) == 0 for f in fills)
    times = sorted(
        {datetime.fromtimestamp(int(str(f["ts_event"])) // 10**9, tz=UTC) for f in fills}
    )
    nav = Decimal(str(export("PortfolioSnapshot")[-1]["nav"]))
    return times, nav


@pytest.mark.parametrize("scope", ["all", "breached"])
def test_research_example_matches_an_independent_reference(tmp_path: Path, scope: str) -> None:
    expected_times, expected_nav = reference(scope)
    times, nav = run_study(tmp_path, scope)
    assert times == expected_times
    assert abs(nav - expected_nav) <= Decimal("1e-9") * expected_nav
    assert len(times) > 20  # a study that trades: the first close buys, then the bands act
