"""The HTML/PNG report: files written, images embedded, tables shown, output deterministic."""

from __future__ import annotations

import base64
import html
import re
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.clock import NS_PER_DAY
from ballast.engine.observe.performance import Performance, format_summary, summary_rows
from ballast.engine.observe.report import write_report
from tests.test_performance import DAY0, record, snapshot, synthetic_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">')


def run(seed: int = 1, drift: float = 0.002) -> Performance:
    return record(synthetic_run(seed=seed, drift=drift)).result()


def test_single_run_report_writes_pngs_and_one_self_contained_page(tmp_path: Path) -> None:
    perf = run()
    files = write_report(tmp_path / "out", {"threshold": perf}, title="Threshold backtest")
    names = [p.name for p in files.images]
    assert names == [
        "threshold-equity.png",
        "threshold-weights.png",
        "threshold-leverage.png",
        "threshold-costs.png",
    ]
    for image in files.images:
        assert image.read_bytes().startswith(PNG_MAGIC)
    page = files.html.read_text(encoding="utf-8")
    assert files.html == tmp_path / "out" / "report.html"
    embedded = IMG.findall(page)
    assert [base64.b64decode(data) for data, _alt in embedded] == [
        p.read_bytes() for p in files.images
    ]
    assert embedded[0][1] == "threshold: equity and drawdown"
    assert "<title>Threshold backtest</title>" in page
    assert "2024-01-01 00:00 → 2024-01-06 23:00 UTC" in page


def test_the_page_shows_the_summary_table(tmp_path: Path) -> None:
    perf = run()
    page = write_report(tmp_path, perf).html.read_text(encoding="utf-8")
    assert '<table class="summary">' in page
    for label, (value,) in summary_rows([perf.summary]):
        assert f'<th scope="row">{html.escape(label)}</th><td>{html.escape(value)}</td>' in page
    assert "Time in stressed" in page


def test_the_page_needs_nothing_from_outside(tmp_path: Path) -> None:
    page = write_report(tmp_path, run()).html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "<script" not in page
    assert "@import" not in page
    assert "url(" not in page


@pytest.mark.slow
def test_comparison_has_one_chart_of_all_equity_curves_and_a_side_by_side_table(
    tmp_path: Path,
) -> None:
    runs = {"threshold": run(1), "growth optimizer": run(2, 0.001), "Growth-Optimizer": run(3)}
    files = write_report(tmp_path, runs, title="Presets")
    names = [p.name for p in files.images]
    assert names[0] == "comparison-equity.png"
    assert "growth-optimizer-equity.png" in names
    assert "growth-optimizer-2-equity.png" in names  # same slug, still its own files
    assert len(names) == 1 + 3 * 4
    page = files.html.read_text(encoding="utf-8")
    header = "<th>Metric</th><th>threshold</th><th>growth optimizer</th><th>Growth-Optimizer</th>"
    assert header in page
    assert page.index("<h2>Comparison</h2>") < page.index("<h2>threshold</h2>")
    assert len(IMG.findall(page)) == len(names)


def test_log_scale_and_a_run_without_assets(tmp_path: Path) -> None:
    events = [snapshot(DAY0 + d * NS_PER_DAY, 100_000 * Decimal("1.5") ** d) for d in range(30)]
    files = write_report(tmp_path, {"hodl": record(events).result()}, log_scale=True)
    assert [p.name for p in files.images] == [
        "hodl-equity.png",
        "hodl-leverage.png",
        "hodl-costs.png",
    ]  # no weights chart without assets
    assert "hodl: equity and drawdown" in files.html.read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_report_is_deterministic(tmp_path: Path) -> None:
    runs = {"a": run(1), "b": run(2)}
    first = write_report(tmp_path / "one", runs)
    second = write_report(tmp_path / "two", runs)
    assert first.html.read_bytes() == second.html.read_bytes()
    assert format_summary(runs["a"].summary) == format_summary(run(1).summary)


def test_a_report_needs_a_run_with_snapshots(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        write_report(tmp_path, {})
    empty = record([]).series()
    perf = Performance(run().summary, empty)
    with pytest.raises(ValueError, match="snapshot"):
        write_report(tmp_path, {"empty": perf})


def test_a_run_of_one_snapshot_still_draws(tmp_path: Path) -> None:
    events = [snapshot(DAY0, 100_000, weights={"BTC": "0.4"})]
    files = write_report(tmp_path, {"one": record(events).result()}, log_scale=True)
    assert len(files.images) == 4
