"""The human-friendly report of one or more runs: PNG charts and one self-contained HTML page.

:func:`write_report` draws, for every named run (a
:class:`~ballast.engine.observe.performance.Performance`):

- the equity curve (NAV, optionally on a log scale) over a drawdown panel, with calm and stressed
  regimes shaded (each regime's periods as merged spans);
- each asset's net weight (from its first non-zero value) against its target, the band shaded as
  spans (unless too narrow to see), rebalances marked;
- gross leverage against the regime's leverage cap;
- cumulative funding, fees and their net;
- on every chart, where the kill switch fired and where it re-armed (or was reset);
- under each run's table, which risk features acted
  (:mod:`ballast.engine.observe.risk_activity`);

and, for two runs or more, every equity curve (and drawdown) on one chart plus the comparison
table. The HTML page embeds the same PNGs as base64 data URIs: no external asset, readable offline.

Charts are drawn with matplotlib's Agg canvas on ``Figure`` objects (no pyplot, no display, no
global backend switch). Everything shown is derived from event data, so the same runs give the
same page.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import matplotlib as mpl
import numpy as np
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.typing import RcKeyType

from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.observe.performance import (
    CurvePoint,
    Performance,
    PerformanceSeries,
    PerformanceSummary,
    TargetPoint,
    summary_rows,
)
from ballast.engine.observe.risk_activity import RiskActivity

DPI: Final = 110
WIDTH_IN: Final = 11.0
PALETTE: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
ASSET_COLOURS: Final = {"BTC": "#f7931a", "ETH": "#627eea", "SOL": "#14b8a6", "BNB": "#d4a017"}
REGIME_COLOURS: Final = {"calm": "#2ca02c", "stressed": "#d62728"}
FEES_COLOUR: Final = "#d62728"
FUNDING_COLOUR: Final = "#2ca02c"
NET_COLOUR: Final = "#333333"
CAP_COLOUR: Final = "#d62728"
KILL_COLOUR: Final = "#b00020"
REARM_COLOUR: Final = "#2ca02c"
BAND_VISIBLE: Final = 0.05
"""A band narrower than this share of its panel's height is not drawn (nor in the legend)."""
_STYLE: Final[dict[RcKeyType, Any]] = {
    "font.size": 9.5,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "lines.linewidth": 1.4,
}


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    html: Path
    images: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class _Chart:
    name: str
    alt: str
    png: bytes


# --------------------------------------------------------------------------- helpers


def _times(ts: Sequence[int]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    return np.array(ts, dtype="datetime64[ns]")


def _floats(values: Sequence[Decimal | float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.array([float(v) for v in values], dtype=np.float64)


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _money_axis(ax: Axes, values: np.ndarray[Any, np.dtype[np.float64]], *, log: bool) -> None:
    """Thousands-separated ticks; a log axis gets readable ticks even over a narrow range."""
    money = ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}")
    if log and len(values) and values.min() > 0:
        ax.set_yscale("log")
        low, high = float(values.min()), float(values.max())
        if high / low < 5:
            ticks = ticker.MaxNLocator(nbins=6).tick_values(low, high)
            ax.yaxis.set_major_locator(ticker.FixedLocator(ticks))
        else:
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.yaxis.set_major_formatter(money)


def _span(series: PerformanceSeries) -> tuple[int, int]:
    return series.points[0].ts_ns, series.points[-1].ts_ns


def _spans(changes: Sequence[tuple[int, Any]], start: int, end: int) -> list[tuple[int, int, Any]]:
    """(left, right, state) runs of a step series of (ts, state) changes clipped to [start, end],
    consecutive equal states merged into one run."""
    runs: list[tuple[int, int, Any]] = []
    for i, (ts, state) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else end
        left, right = max(ts, start), min(stop, end)
        if right <= left:
            continue
        if runs and runs[-1][2] == state and runs[-1][1] >= left:
            runs[-1] = (runs[-1][0], right, state)
        else:
            runs.append((left, right, state))
    return runs


def _x(ns: int) -> float:
    return float(mdates.date2num(_times([ns])[0]))


def _shade_regimes(ax: Axes, series: PerformanceSeries) -> list[Patch]:
    """Shade calm and stressed periods, each regime one collection of merged spans (no seams
    between hours of the same regime); return legend handles for the regimes shaded."""
    start, end = _span(series)
    runs = _spans([(c.ts_ns, c.regime) for c in series.regimes], start, end)
    shaded: list[str] = []
    for regime, colour in REGIME_COLOURS.items():
        boxes = [
            [(_x(left), 0.0), (_x(left), 1.0), (_x(right), 1.0), (_x(right), 0.0)]
            for left, right, state in runs
            if state == regime
        ]
        if not boxes:
            continue
        spans = PolyCollection(
            boxes,
            facecolors=colour,
            alpha=0.08,
            linewidths=0,
            antialiased=False,
            transform=ax.get_xaxis_transform(),
        )
        ax.add_collection(spans, autolim=False)
        shaded.append(regime)
    return [Patch(color=REGIME_COLOURS[r], alpha=0.2, label=f"{r} regime") for r in sorted(shaded)]


def _mark_kill_switch(ax: Axes, risk: RiskActivity, colour: str = KILL_COLOUR) -> list[Line2D]:
    """A vertical line where the kill switch fired (and a dotted one where it re-armed or was
    reset); legend handles for what was drawn."""
    handles: list[Line2D] = []
    for kill in risk.kills:
        line = ax.axvline(_times([kill.fired_ns])[0], color=colour, linewidth=1.2, linestyle="--")
        if not handles:
            line.set_label("kill switch")
            handles.append(line)
    resets = [(k.reset_ns, k.reset_by) for k in risk.kills if k.reset_ns is not None]
    for index, (reset_ns, by) in enumerate(resets):
        line = ax.axvline(_times([reset_ns])[0], color=REARM_COLOUR, linewidth=1.2, linestyle=":")
        if index == 0:
            line.set_label("re-armed" if by.startswith("rearm") else "kill switch reset")
            handles.append(line)
    return handles


def _asset_colours(assets: Sequence[str]) -> dict[str, str]:
    others = iter(c for c in PALETTE if c not in ASSET_COLOURS.values())
    return {a: ASSET_COLOURS.get(a) or next(others, "#555555") for a in sorted(assets)}


def _new_figure(rows: int, height_ratios: Sequence[float], height: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(rows, 1, sharex=True, squeeze=False, height_ratios=list(height_ratios))
    return fig


def _legend(ax: Axes, handles: Sequence[Any] | None = None) -> None:
    """Legend entries above the plot, right-aligned (the title is on the left): one row, or two
    when there are more than five."""
    entries = list(handles) if handles is not None else ax.get_legend_handles_labels()[0]
    ax.legend(
        handles=entries,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=max(1, len(entries) if len(entries) <= 5 else -(-len(entries) // 2)),
        borderaxespad=0.3,
    )


def _dots(x: np.ndarray[Any, Any]) -> str:
    """Line format: a lone point is drawn as a dot (a line through one point is invisible)."""
    return "o" if len(x) == 1 else "-"


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


# --------------------------------------------------------------------------- charts


def equity_figure(
    name: str,
    perf: Performance,
    *,
    colour: str = PALETTE[0],
    log_scale: bool = False,
    quote: str = "USDT",
) -> Figure:
    """NAV over time (top) and drawdown from the running peak (bottom), regimes shaded."""
    series, summary = perf.series, perf.summary
    fig = _new_figure(2, (3, 1), 6.0)
    top, bottom = fig.axes
    x = _times([p.ts_ns for p in series.points])
    nav = _floats([p.nav for p in series.points])
    handles = _shade_regimes(top, series)
    _shade_regimes(bottom, series)
    (line,) = top.plot(x, nav, _dots(x), color=colour, label="NAV")
    kills = _mark_kill_switch(top, perf.risk)
    _mark_kill_switch(bottom, perf.risk)
    _money_axis(top, nav, log=log_scale)
    top.set_title(f"{name}: equity{' (log scale)' if log_scale else ''}")
    top.set_ylabel(f"NAV ({quote})")
    _legend(top, [line, *kills, *handles])
    _drawdown_panel(bottom, series.points, colour)
    _mark_max_drawdown(bottom, summary)
    _date_axis(bottom)
    return fig


def _drawdown_panel(ax: Axes, points: Sequence[CurvePoint], colour: str) -> None:
    x = _times([p.ts_ns for p in points])
    dd = _floats([-p.drawdown * 100 for p in points])
    ax.fill_between(x, dd, 0, color=colour, alpha=0.25, linewidth=0)
    ax.plot(x, dd, color=colour, linewidth=0.9)
    _drawdown_axis(ax, float(np.abs(dd).max()) if len(dd) else 0.0)


def _drawdown_axis(ax: Axes, deepest: float) -> None:
    """Label a drawdown axis (in %, ≤ 0) and leave room below the deepest point."""
    ax.set_ylabel("Drawdown (%)")
    ax.set_ylim(-max(1.0, deepest * 1.15), max(0.5, deepest * 0.05))


def _mark_max_drawdown(ax: Axes, summary: PerformanceSummary) -> None:
    if summary.drawdown_trough_ns is None or summary.max_drawdown <= 0:
        return
    depth = -summary.max_drawdown * 100
    ax.plot(_times([summary.drawdown_trough_ns]), [depth], "v", color="#d62728", markersize=6)
    ax.annotate(
        f"max {depth:.1f} %",
        (mdates.date2num(_times([summary.drawdown_trough_ns])[0]), depth),
        textcoords="offset points",
        xytext=(6, -2),
        fontsize=8.5,
        color="#d62728",
    )


def weights_figure(name: str, perf: Performance) -> Figure | None:
    """Each asset's net weight vs its target, band shaded, rebalances marked. None without
    assets."""
    series = perf.series
    assets = series.assets
    if not assets:
        return None
    colours = _asset_colours(assets)
    fig = _new_figure(len(assets), [1] * len(assets), 1.2 + 2.0 * len(assets))
    for ax, asset in zip(fig.axes, assets, strict=True):
        _weight_panel(ax, series, asset, colours[asset])
        _legend(ax, [*ax.get_legend_handles_labels()[0], *_mark_kill_switch(ax, perf.risk)])
    fig.axes[0].set_title(f"{name}: weights vs targets")
    _date_axis(fig.axes[-1])
    return fig


def _weight_panel(ax: Axes, series: PerformanceSeries, asset: str, colour: str) -> None:
    """The weight line from the asset's first non-zero weight on (an all-cash start is not a
    fall from 0 %), its band as spans, its target, rebalances marked."""
    points = series.points
    weights_all = [p.weight(asset) for p in points]
    first = next((i for i, w in enumerate(weights_all) if w != 0), 0)
    shown = points[first:]
    x = _times([p.ts_ns for p in shown])
    weights = _floats(weights_all[first:])
    ax.plot(x, weights, _dots(x), color=colour, label=f"{asset} weight")
    _target_band(ax, series.targets.get(asset, ()), points[-1].ts_ns, colour, weights)
    marks = [m.ts_ns for m in series.rebalances if asset in m.assets and m.ts_ns >= shown[0].ts_ns]
    if marks:
        at = np.interp(_floats(marks), _floats([p.ts_ns for p in shown]), weights)
        ax.plot(_times(marks), at, "o", color=colour, markersize=4, mfc="white", label="rebalance")
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel(f"{asset} (% of NAV)")


def _target_band(
    ax: Axes,
    targets: Sequence[TargetPoint],
    end_ns: int,
    colour: str,
    weights: np.ndarray[Any, np.dtype[np.float64]],
) -> None:
    """The band as spans of constant edges (merged), unless it is too narrow to see on this
    panel, and the target as a step line."""
    if not targets:
        return
    end = max(end_ns, targets[-1].ts_ns)
    runs = _spans([(t.ts_ns, (t.band_low, t.band_high)) for t in targets], targets[0].ts_ns, end)
    heights = [float(high - low) for _, _, (low, high) in runs]
    values = [*weights, *(float(t.target) for t in targets)]
    panel = (max(values) - min(values)) if values else 0.0
    if runs and max(heights) > BAND_VISIBLE * max(panel, max(heights)):
        boxes = [
            [(_x(a), float(lo)), (_x(a), float(hi)), (_x(b), float(hi)), (_x(b), float(lo))]
            for a, b, (lo, hi) in runs
        ]
        band = PolyCollection(
            boxes, facecolors=colour, alpha=0.15, linewidths=0, antialiased=False, label="band"
        )
        ax.add_collection(band)
    ts = [t.ts_ns for t in targets]
    ts.append(end)
    target = _floats([t.target for t in [*targets, targets[-1]]])
    ax.step(
        _times(ts),
        target,
        where="post",
        color="#333333",
        linestyle="--",
        linewidth=1,
        label="target",
    )


def leverage_figure(name: str, perf: Performance) -> Figure:
    """Gross leverage against the leverage cap in force (from RiskBudgetChanged)."""
    series = perf.series
    fig = _new_figure(1, (1,), 3.4)
    (ax,) = fig.axes
    handles = _shade_regimes(ax, series)
    x = _times([p.ts_ns for p in series.points])
    (line,) = ax.plot(x, _floats([p.gross_leverage for p in series.points]), label="gross leverage")
    lines = [line, *_cap_line(ax, series), *_mark_kill_switch(ax, perf.risk), *handles]
    ax.set_ylim(bottom=0)
    ax.set_title(f"{name}: gross leverage")
    ax.set_ylabel("Gross leverage (× NAV)")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:.1f}×"))
    _legend(ax, lines)
    _date_axis(ax)
    return fig


def _cap_line(ax: Axes, series: PerformanceSeries) -> list[Any]:
    start, end = _span(series)
    changes = [c for c in series.regimes if c.ts_ns <= end]
    if not changes:
        return []
    ts = [max(c.ts_ns, start) for c in changes] + [end]
    caps = _floats([c.max_gross_leverage for c in changes] + [changes[-1].max_gross_leverage])
    (line,) = ax.step(
        _times(ts), caps, where="post", color=CAP_COLOUR, linestyle="--", label="leverage cap"
    )
    return [line]


def costs_figure(name: str, perf: Performance, *, quote: str = "USDT") -> Figure:
    """Cumulative funding received (> 0) or paid (< 0), fees paid, and funding − fees."""
    series = perf.series
    fig = _new_figure(1, (1,), 3.4)
    (ax,) = fig.axes
    x = _times([p.ts_ns for p in series.points])
    funding = _floats([p.funding_pnl for p in series.points])
    fees = _floats([p.fees_paid for p in series.points])
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.plot(x, funding, color=FUNDING_COLOUR, label="funding received (+) / paid (−)")
    ax.plot(x, -fees, color=FEES_COLOUR, label="fees paid (shown negative)")
    ax.plot(x, funding - fees, color=NET_COLOUR, linestyle=":", label="funding − fees")
    _mark_kill_switch(ax, perf.risk)
    ax.set_title(f"{name}: cumulative funding and fees")
    ax.set_ylabel(quote)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    _legend(ax)
    _date_axis(ax)
    return fig


def comparison_figure(
    runs: Mapping[str, Performance], *, log_scale: bool = False, quote: str = "USDT"
) -> Figure:
    """Every run's equity on one chart (NAV if all start equal, else rebased to 100), and their
    drawdowns below."""
    fig = _new_figure(2, (3, 1), 6.0)
    top, bottom = fig.axes
    same_start = len({p.summary.initial_nav for p in runs.values()}) == 1
    everything: list[float] = []
    for (name, perf), colour in zip(runs.items(), _cycle(), strict=False):
        points = perf.series.points
        x = _times([p.ts_ns for p in points])
        y = (
            _floats([p.nav for p in points])
            if same_start
            else _floats([p.index * 100 for p in points])
        )
        everything.extend(y)
        top.plot(x, y, color=colour, label=name)
        bottom.plot(x, _floats([-p.drawdown * 100 for p in points]), color=colour, linewidth=1)
        for ax in (top, bottom):
            for kill in _mark_kill_switch(ax, perf.risk, colour):
                kill.set_label(f"{name}: {kill.get_label()}")
    _money_axis(top, np.array(everything, dtype=np.float64), log=log_scale)
    top.set_title(f"Equity of {len(runs)} runs{' (log scale)' if log_scale else ''}")
    top.set_ylabel(f"NAV ({quote})" if same_start else "Growth of 100")
    _legend(top)
    _drawdown_axis(bottom, max(p.summary.max_drawdown for p in runs.values()) * 100)
    _date_axis(bottom)
    return fig


def _cycle() -> Iterator[str]:
    while True:
        yield from PALETTE


# --------------------------------------------------------------------------- page


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "run"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


@dataclass(frozen=True, slots=True)
class _Options:
    log_scale: bool
    dpi: int
    quote: str


def _run_charts(
    name: str, slug: str, perf: Performance, colour: str, opt: _Options
) -> list[_Chart]:
    equity = equity_figure(name, perf, colour=colour, log_scale=opt.log_scale, quote=opt.quote)
    figures: list[tuple[str, str, Figure | None]] = [
        ("equity", "equity and drawdown", equity),
        ("weights", "weights vs targets", weights_figure(name, perf)),
        ("leverage", "gross leverage", leverage_figure(name, perf)),
        ("costs", "funding and fees", costs_figure(name, perf, quote=opt.quote)),
    ]
    return [
        _Chart(f"{slug}-{kind}.png", f"{name}: {alt}", _png(fig, opt.dpi))
        for kind, alt, fig in figures
        if fig is not None
    ]


def _table_html(header: Sequence[str], summaries: Sequence[PerformanceSummary], quote: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f'<tr><th scope="row">{html.escape(label)}</th>'
        + "".join(f"<td>{html.escape(v)}</td>" for v in values)
        + "</tr>"
        for label, values in summary_rows(summaries, quote=quote)
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _risk_html(risk: RiskActivity) -> str:
    """Which risk features acted, one item each (or that none did)."""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in risk.lines())
    return f'<h3>Risk features that acted</h3>\n<ul class="risk">{items}</ul>'


def _img_html(chart: _Chart) -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(chart.alt)}"></figure>'
    )


_CSS: Final = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #222; margin: 0 auto; max-width: 1240px; padding: 24px 32px 64px; background: #fafafa; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 2px solid #ddd; }
p.sub { color: #666; margin: 0 0 24px; }
figure { margin: 16px 0; background: #fff; border: 1px solid #e4e4e4; border-radius: 6px;
  padding: 8px; }
figure img { width: 100%; height: auto; display: block; }
table.summary { border-collapse: collapse; background: #fff; font-size: 14px;
  font-variant-numeric: tabular-nums; border: 1px solid #e4e4e4; }
table.summary th, table.summary td { padding: 5px 14px; border-bottom: 1px solid #eee; }
table.summary thead th { background: #f0f0f0; text-align: right; }
table.summary thead th:first-child, table.summary tbody th { text-align: left; font-weight: 600; }
table.summary td { text-align: right; white-space: nowrap; }
table.summary tbody tr:nth-child(even) { background: #f9f9f9; }
h3 { font-size: 15px; margin: 20px 0 6px; }
ul.risk { margin: 0; padding-left: 20px; font-size: 14px; }
"""


def _period(runs: Mapping[str, Performance]) -> str:
    start = min(p.summary.start_ns for p in runs.values())
    end = max(p.summary.end_ns for p in runs.values())
    return (
        f"{ns_to_iso(start)[:16].replace('T', ' ')} → {ns_to_iso(end)[:16].replace('T', ' ')} UTC"
    )


def _page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="sub">{html.escape(subtitle)}</p>\n'
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_report(
    folder: str | Path,
    runs: Performance | Mapping[str, Performance],
    *,
    title: str = "Ballast report",
    log_scale: bool = False,
    quote: str = "USDT",
    dpi: int = DPI,
) -> ReportFiles:
    """Write the charts (PNG) and ``report.html`` (charts embedded) into ``folder``.

    ``runs``: one run, or several named runs (compared side by side, in the mapping's order).
    Each run needs at least one snapshot. Returns the paths written.
    """
    named = {"run": runs} if isinstance(runs, Performance) else dict(runs)
    if not named:
        raise ValueError("write_report needs at least one run")
    if any(not p.series.points for p in named.values()):
        raise ValueError("every run needs at least one recorded snapshot")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(_STYLE):
        sections, charts = _sections(named, _Options(log_scale, dpi, quote))
    images = []
    for chart in charts:
        path = out / chart.name
        path.write_bytes(chart.png)
        images.append(path)
    page = out / "report.html"
    page.write_text(_page(title, _period(named), sections), encoding="utf-8")
    return ReportFiles(html=page, images=tuple(images))


def _sections(named: Mapping[str, Performance], opt: _Options) -> tuple[list[str], list[_Chart]]:
    sections: list[str] = []
    charts: list[_Chart] = []
    if len(named) > 1:
        figure = comparison_figure(named, log_scale=opt.log_scale, quote=opt.quote)
        chart = _Chart("comparison-equity.png", "equity of all runs", _png(figure, opt.dpi))
        charts.append(chart)
        summaries = [p.summary for p in named.values()]
        table = _table_html(("Metric", *named), summaries, opt.quote)
        sections.append(f"<h2>Comparison</h2>\n{_img_html(chart)}\n{table}")
    taken: set[str] = {"comparison"}
    for (name, perf), colour in zip(named.items(), _cycle(), strict=False):
        run_charts = _run_charts(name, _slug(name, taken), perf, colour, opt)
        charts.extend(run_charts)
        table = _table_html(("Metric", name), [perf.summary], opt.quote)
        body = [
            _img_html(run_charts[0]),
            table,
            _risk_html(perf.risk),
            *(_img_html(c) for c in run_charts[1:]),
        ]
        sections.append(f"<h2>{html.escape(name)}</h2>\n" + "\n".join(body))
    return sections, charts
