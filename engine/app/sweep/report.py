"""The HTML report of a sweep (one self-contained page, in the style of the backtest report,
:mod:`ballast.engine.observe.report`): a heatmap of a metric over two parameters (each cell the
best variant with those two values, over the other parameters), the equity curves of the top
variants, the results table, and for a walk-forward the windows in-sample beside out-of-sample.
Imported only when a report is written (matplotlib is the ``report`` extra)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from ballast.engine.app.sweep.table import (
    WindowChoice,
    fmt,
    metric_value,
    rank,
    walk_forward_rows,
)
from ballast.engine.app.sweep.task import LOWER_IS_BETTER, Record
from ballast.engine.app.sweep.variants import Variant
from ballast.engine.observe.report import (
    _STYLE,
    DPI,
    PALETTE,
    WIDTH_IN,
    _Chart,
    _img_html,
    _page,
    _png,
)


def heatmap_axes(
    variants: Sequence[Variant], chosen: Sequence[str] | None
) -> tuple[str, str] | None:
    """The two parameters of the heatmap: ``chosen``, else the first two that vary."""
    if chosen:
        return chosen[0], chosen[1]
    if not variants:
        return None
    keys = [k for k, _ in variants[0].params]
    varying = [k for k in keys if len({_label(dict(v.params)[k]) for v in variants}) > 1]
    return (varying[0], varying[1]) if len(varying) >= 2 else None


def _label(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def heatmap_figure(
    records: Sequence[Record], variants: Mapping[str, Variant], metric: str, x: str, y: str
) -> Figure:
    xs: list[str] = []
    ys: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    lower = metric in LOWER_IS_BETTER
    for record in records:
        params = dict(variants[record.variant].params)
        cx, cy = _label(params[x]), _label(params[y])
        xs += [] if cx in xs else [cx]
        ys += [] if cy in ys else [cy]
        value = metric_value(record.metrics.get(metric))
        if value is None:
            continue
        old = cells.get((cx, cy))
        if old is None or (value < old if lower else value > old):
            cells[(cx, cy)] = value
    grid = np.full((len(ys), len(xs)), np.nan)
    for (cx, cy), value in cells.items():
        grid[ys.index(cy), xs.index(cx)] = value
    fig = Figure(figsize=(min(WIDTH_IN, max(7.0, 2.0 + 1.1 * len(xs))), 2.0 + 0.55 * len(ys)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis_r" if lower else "viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(False)
    for (cx, cy), value in cells.items():
        # dark text on the colour map's light end (viridis: yellow), white on its dark end
        r, g, b, _ = image.cmap(image.norm(np.array(value)))
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
        ax.text(
            xs.index(cx),
            ys.index(cy),
            fmt(metric, value),
            ha="center",
            va="center",
            fontsize=8,
            color="black" if light else "white",
        )
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"{metric} over {x} × {y}")
    fig.tight_layout()
    return fig


def equity_figure(records: Sequence[Record], quote: str) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, 4.2))
    ax = fig.add_subplot()
    for record, colour in zip(records, PALETTE, strict=False):
        if not record.curve:
            continue
        times = np.array([ts // 1_000_000 for ts, _ in record.curve], dtype="datetime64[ms]")
        navs = np.array([float(nav) for _, nav in record.curve])
        ax.plot(times, navs, color=colour, label=record.variant)
    ax.set_ylabel(f"NAV ({quote})")
    ax.set_title("equity of the top variants (daily closes)")
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def write_sweep_report(
    folder: Path,
    records: Sequence[Record],
    variants: Mapping[str, Variant],
    *,
    metric: str,
    title: str,
    subtitle: str,
    heatmap: Sequence[str] | None = None,
    choices: Sequence[WindowChoice] = (),
    quote: str = "USDT",
    top: int = 5,
) -> Path:
    """Write ``report.html`` into ``folder``; ``records`` are the ranked runs (full range, or
    the train runs of a walk-forward)."""
    sections: list[str] = []
    ranked = rank(records, metric)
    with mpl.rc_context(_STYLE):
        axes = heatmap_axes([variants[r.variant] for r in ranked], heatmap)
        if axes is not None and not choices:
            png = _png(heatmap_figure(ranked, variants, metric, *axes), DPI)
            chart = _Chart("heatmap.png", f"{metric} heatmap", png)
            sections.append(
                f"<h2>{html.escape(metric)} by parameter</h2>\n<p>each cell: the best variant with "
                f"those two values, over the other parameters</p>\n{_img_html(chart)}"
            )
        if ranked and not choices:
            png = _png(equity_figure(ranked[:top], quote), DPI)
            chart = _Chart("equity.png", "equity of the top variants", png)
            sections.append(
                f"<h2>Top {min(top, len(ranked))} by {html.escape(metric)}</h2>\n{_img_html(chart)}"
            )
    if choices:
        rows = walk_forward_rows(choices, variants, metric)
        shown = [
            "window",
            "train_start",
            "test_start",
            "test_end",
            "chosen",
            f"is_{metric}",
            f"oos_{metric}",
            "is_total_return",
            "oos_total_return",
        ]
        body = [[_show(name, row[name]) for name in shown] for row in rows]
        sections.append(
            "<h2>Walk-forward: in-sample vs out-of-sample</h2>\n"
            + _table(
                [s.replace("is_", "in-sample ").replace("oos_", "out-of-sample ") for s in shown],
                body,
            )
        )
    if ranked and not choices:
        keys = [k for k, _ in variants[ranked[0].variant].params]
        names = [metric, "total_return", "max_drawdown", "sharpe", "fees_paid", "fills"]
        names = list(dict.fromkeys(names))
        body = [
            [
                r.variant,
                *(_label(dict(variants[r.variant].params)[k]) for k in keys),
                *(fmt(n, r.metrics.get(n)) for n in names),
            ]
            for r in ranked
        ]
        sections.append("<h2>All variants</h2>\n" + _table(["variant", *keys, *names], body))
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "report.html"
    page.write_text(_page(title, subtitle, sections), encoding="utf-8")
    return page


def _show(name: str, value: Any) -> str:
    if name.startswith(("is_", "oos_")):
        return fmt(name.split("_", 1)[1], value)
    return _label(value)
