"""Issue 12, report fixes seen by a new user: the kill switch on every chart, regime and band
shading drawn as merged spans, no legend entry for a band that is not drawn, weight lines that
start at the first real weight, and the page saying which risk features acted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.kernel.events import KillSwitchReset, KillSwitchTriggered, Message
from ballast.engine.observe.performance import Performance
from ballast.engine.observe.report import (
    REGIME_COLOURS,
    comparison_figure,
    costs_figure,
    equity_figure,
    leverage_figure,
    weights_figure,
    write_report,
)
from tests.test_performance import DAY0, budget, decided, record, snapshot

H = NS_PER_HOUR
KILL_H, REARM_H = 30, 40


def run(
    *,
    band: tuple[str, str] = ("0.35", "0.45"),
    widths: tuple[str, str] = ("0.05", "0.03"),
    kill: bool = True,
) -> Performance:
    """48 hourly snapshots: all cash for 3 hours, then BTC between 36 % and 44 %; a stressed
    regime from hour 10 to 20 whose cap changes every hour (eleven budget events, one regime); a
    kill switch at hour 30, re-armed at hour 40. ``widths``: the normal and stressed bands."""
    normal, stressed = widths
    events: list[Message] = [budget(DAY0, "normal", band_abs=normal)]
    for h in range(48):
        ts = DAY0 + h * H
        if 10 <= h < 20:
            cap = "1.5" if h % 2 else "1.4"
            events.append(budget(ts, "stressed", cap=cap, band_abs=stressed))
        if h == 20:
            events.append(budget(ts, "normal", band_abs=normal))
        if h == 3:
            events.append(decided(ts, {"BTC": ("0.40", *band)}, traded=["BTC/USDT"]))
        weight = "0" if h < 3 else str(0.4 + 0.02 * (h % 5 - 2))
        events.append(snapshot(ts, 100_000 + 10 * h, weights={"BTC": weight}))
        if kill and h == KILL_H:
            events.append(
                KillSwitchTriggered(ts_event=ts, ts_init=ts, reason="drawdown", detail="test")
            )
        if kill and h == REARM_H:
            events.append(KillSwitchReset(ts_event=ts, ts_init=ts, by="rearm: test"))
    return record(events).result()


def _at(hour: int) -> float:
    return float(mdates.date2num(np.datetime64(DAY0 + hour * H, "ns")))


def _vertical_lines_at(ax: Axes, x: float) -> list[Line2D]:
    return [
        line
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2  # type: ignore[arg-type]
        and all(_num(v) == x for v in line.get_xdata())  # type: ignore[union-attr]
    ]


def _num(value: object) -> float:
    if isinstance(value, np.datetime64):
        return float(mdates.date2num(value))
    return float(value)  # type: ignore[arg-type]


def test_the_kill_switch_and_its_rearm_are_marked_on_every_chart() -> None:
    perf = run()
    figures: list[Figure | None] = [
        equity_figure("r", perf),
        weights_figure("r", perf),
        leverage_figure("r", perf),
        costs_figure("r", perf),
        comparison_figure({"r": perf, "s": run(kill=False)}),
    ]
    for figure in figures:
        assert figure is not None
        for ax in figure.axes:
            assert _vertical_lines_at(ax, _at(KILL_H)), (figure, ax.get_ylabel())
            assert _vertical_lines_at(ax, _at(REARM_H)), (figure, ax.get_ylabel())
    equity = figures[0]
    assert equity is not None
    assert _legend_texts(equity.axes[0]) >= {"kill switch", "re-armed"}


def _shapes_of(ax: Axes, colour: str) -> int:
    """Shaded shapes of ``colour``: patches, plus every path of a collection."""
    rgb = np.asarray(mcolors.to_rgb(colour))

    def same(face: object) -> bool:
        values = np.asarray(face, dtype=float).reshape(-1)
        return len(values) >= 3 and bool(np.allclose(values[:3], rgb))

    patches = len([p for p in ax.patches if same(p.get_facecolor())])
    paths = sum(
        len(c.get_paths())
        for c in ax.collections
        if len(c.get_facecolor()) and same(np.asarray(c.get_facecolor(), dtype=float)[0])
    )
    return patches + paths


def test_a_regime_is_one_span_however_many_budget_events_it_had() -> None:
    figure = equity_figure("r", run())
    for ax in figure.axes:
        assert _shapes_of(ax, REGIME_COLOURS["stressed"]) == 1


def _legend_texts(ax: Axes) -> set[str]:
    legend = ax.get_legend()
    assert legend is not None
    return {t.get_text() for t in legend.get_texts()}


def test_a_band_too_narrow_to_see_is_neither_drawn_nor_in_the_legend() -> None:
    narrow = weights_figure("calendar", run(band=("0.3995", "0.4005"), widths=("0.0005", "0.0003")))
    assert narrow is not None
    assert "band" not in _legend_texts(narrow.axes[0])
    wide = weights_figure("threshold", run())
    assert wide is not None
    assert "band" in _legend_texts(wide.axes[0])


def test_weight_lines_start_at_the_first_real_weight_not_at_zero() -> None:
    figure = weights_figure("r", run())
    assert figure is not None
    [line] = [x for x in figure.axes[0].get_lines() if x.get_label() == "BTC weight"]
    ys = np.asarray(line.get_ydata(), dtype=float)
    assert ys[0] == 0.4 + 0.02 * (3 % 5 - 2)
    assert ys.min() > 0.35


def test_the_page_lists_the_risk_features_that_acted(tmp_path: Path) -> None:
    files = write_report(tmp_path, {"acted": run(), "quiet": run(kill=False)})
    page = files.html.read_text(encoding="utf-8")
    assert "Risk features that acted" in page
    assert "kill switch fired 2024-01-02 06:00 (drawdown: test); re-armed 2024-01-02 16:00" in page
    assert "regime stressed: bands ×0.6 and leverage caps ×0.5" in page
