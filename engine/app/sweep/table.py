"""The results of a sweep as rows (one per task: the variant's parameters, the summary metrics of
``ballast backtest``, run time, journal), written as CSV and Parquet, and as terminal tables: the
best variants by a metric, the best one beside its neighbours in the grid (one step along one
axis: a lonely peak shows as such), and the walk-forward windows, in-sample beside
out-of-sample. Money is exact decimal text in both files; the tables are sorted by the metric,
ties by variant id, so the same results give the same tables."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from ballast.engine.app.sweep.task import (
    COUNT_METRICS,
    FLOAT_METRICS,
    LOWER_IS_BETTER,
    METRICS,
    MONEY_METRICS,
    Metric,
    Record,
)
from ballast.engine.app.sweep.variants import Variant
from ballast.engine.kernel.timefmt import ns_to_iso

PERCENT: Final = frozenset({"total_return", "cagr", "volatility", "max_drawdown"})
SHOWN: Final = ("total_return", "max_drawdown", "sharpe", "fills")
"""Shown beside the chosen metric in the terminal tables."""


def metric_value(value: Metric) -> float | None:
    """A metric as a number to rank by (money is exact text)."""
    if value is None:
        return None
    return float(Decimal(value)) if isinstance(value, str) else float(value)


def rank(records: Sequence[Record], metric: str) -> list[Record]:
    """Best first by ``metric`` (lower first for a cost or a risk), ties by variant id; a
    missing value last."""

    def key(record: Record) -> tuple[int, float, str]:
        value = metric_value(record.metrics.get(metric))
        if value is None:
            return (1, 0.0, record.variant)
        return (0, value if metric in LOWER_IS_BETTER else -value, record.variant)

    return sorted(records, key=key)


# ------------------------------------------------------------------------------------ files


def rows(records: Sequence[Record], variants: Mapping[str, Variant]) -> list[dict[str, Any]]:
    """One row per record, in (variant, phase, window) order."""
    ordered = sorted(records, key=lambda r: (r.variant, r.window, r.phase))
    out = []
    for record in ordered:
        row: dict[str, Any] = {
            "variant": record.variant,
            "phase": record.phase,
            "window": record.window,
            "start": ns_to_iso(record.start_ns),
            "end": ns_to_iso(record.end_ns),
        }
        row.update(variants[record.variant].params)
        row.update({name: record.metrics.get(name) for name in METRICS})
        row.update(events=record.events, seconds=record.seconds, journal=record.journal)
        out.append(row)
    return out


def write_csv(table: Sequence[Mapping[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        if not table:
            return
        writer.writerow(list(table[0]))
        for row in table:
            writer.writerow(["" if v is None else _cell(v) for v in row.values()])


def _cell(value: Any) -> str:
    return str(value) if not isinstance(value, bool) else str(value).lower()


def write_parquet(table: Sequence[Mapping[str, Any]], path: Path) -> None:
    """The same rows as Parquet: float metrics as doubles, counts as integers, money as exact
    decimal text, a parameter as integers or doubles when all its values are numbers, else
    text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {}
    for name in table[0] if table else ():
        values = [row[name] for row in table]
        columns[name] = pa.array(_column(name, values), type=_arrow_type(pa, name, values))
    pq.write_table(pa.table(columns), path)


def _column(name: str, values: list[Any]) -> list[Any]:
    if name in (*METRICS, "window", "events", "seconds"):
        return values
    if all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
        return [v if all(isinstance(w, int) for w in values) else float(v) for v in values]
    return [v if isinstance(v, str) else _cell(v) for v in values]


def _arrow_type(pa: Any, name: str, values: list[Any]) -> Any:
    numeric = all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values)
    if name in FLOAT_METRICS or name == "seconds":
        return pa.float64()
    if name in COUNT_METRICS or name in ("window", "events"):
        return pa.int64()
    if name in MONEY_METRICS:
        return pa.string()
    if numeric:
        return pa.int64() if all(isinstance(v, int) for v in values) else pa.float64()
    return pa.string()


# ---------------------------------------------------------------------------- terminal tables


def fmt(name: str, value: Metric) -> str:
    if value is None:
        return "-"
    if name in PERCENT and isinstance(value, float | int):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str):
        return f"{Decimal(value):,.2f}"
    return str(value)


def render(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def _columns(metric: str) -> list[str]:
    return [metric, *(m for m in SHOWN if m != metric)]


def _row(record: Record, variant: Variant, metric: str, mark: str) -> list[str]:
    params = [_param(v) for _, v in variant.params]
    values = [fmt(m, record.metrics.get(m)) for m in _columns(metric)]
    return [f"{mark}{record.variant}", *params, *values]


def _param(value: Any) -> str:
    return value if isinstance(value, str) else _cell(value)


@dataclass(frozen=True)
class Ranked:
    best: list[Record]
    neighbours: list[tuple[Record, str]]


def best_table(
    records: Sequence[Record], variants: Mapping[str, Variant], metric: str, *, top: int = 5
) -> str:
    """The ``top`` variants by ``metric``, then the best one beside each of its neighbours."""
    ranked = rank(records, metric)
    if not ranked:
        return "no results"
    first = variants[ranked[0].variant]
    header = ["variant", *(k for k, _ in first.params), *_columns(metric)]
    out = [f"top {min(top, len(ranked))} of {len(ranked)} by {metric}:"]
    out.append(render(header, [_row(r, variants[r.variant], metric, "") for r in ranked[:top]]))
    by_id = {r.variant: r for r in records}
    near = [
        (by_id[v.id], _axis_of(first, v))
        for v in variants.values()
        if v.id in by_id and first.neighbour_of(v)
    ]
    out.append("")
    out.append(f"best {first.id} and its neighbours in the grid (one step along one axis):")
    body = [_row(ranked[0], first, metric, "*")]
    body += [[*_row(r, variants[r.variant], metric, " "), f"({axis})"] for r, axis in near]
    out.append(render([*header, ""], [b if len(b) > len(header) else [*b, ""] for b in body]))
    out.append(_peak_line(ranked[0], [r for r, _ in near], metric))
    return "\n".join(out)


def _axis_of(best: Variant, other: Variant) -> str:
    for (key, _), a, b in zip(best.params, best.position, other.position, strict=True):
        if a != b:
            return f"{key} {'+' if b > a else '-'}1"
    return ""


def _peak_line(best: Record, near: Sequence[Record], metric: str) -> str:
    values = [v for r in near if (v := metric_value(r.metrics.get(metric))) is not None]
    top = metric_value(best.metrics.get(metric))
    if not values or top is None:
        return f"{metric}: no neighbour in the results to compare with"
    median = statistics.median(values)
    return (
        f"{metric}: best {fmt(metric, best.metrics.get(metric))}, neighbours "
        f"{fmt(metric, min(values))} .. {fmt(metric, max(values))} (median "
        f"{fmt(metric, median if metric not in COUNT_METRICS else round(median))})"
    )


@dataclass(frozen=True)
class WindowChoice:
    """A walk-forward window: the variant chosen on its train window, and its records."""

    index: int
    train: tuple[int, int]
    test: tuple[int, int]
    chosen: str
    in_sample: Record
    out_of_sample: Record | None


def walk_forward_rows(
    choices: Sequence[WindowChoice], variants: Mapping[str, Variant], metric: str
) -> list[dict[str, Any]]:
    out = []
    for c in choices:
        row: dict[str, Any] = {
            "window": c.index,
            "train_start": ns_to_iso(c.train[0]),
            "train_end": ns_to_iso(c.train[1]),
            "test_start": ns_to_iso(c.test[0]),
            "test_end": ns_to_iso(c.test[1]),
            "chosen": c.chosen,
        }
        row.update(variants[c.chosen].params)
        for name in METRICS:
            row[f"is_{name}"] = c.in_sample.metrics.get(name)
            oos = c.out_of_sample.metrics.get(name) if c.out_of_sample else None
            row[f"oos_{name}"] = oos
        out.append(row)
    return out


def walk_forward_table(choices: Sequence[WindowChoice], metric: str) -> str:
    day: Callable[[int], str] = lambda ns: ns_to_iso(ns)[:10]  # noqa: E731
    header = [
        "window",
        "train",
        "test",
        "chosen",
        f"in-sample {metric}",
        f"out-of-sample {metric}",
        "in-sample return",
        "out-of-sample return",
    ]
    body = []
    for c in choices:
        oos = c.out_of_sample.metrics if c.out_of_sample else {}
        body.append(
            [
                str(c.index),
                f"{day(c.train[0])} → {day(c.train[1])}",
                f"{day(c.test[0])} → {day(c.test[1])}",
                c.chosen,
                fmt(metric, c.in_sample.metrics.get(metric)),
                fmt(metric, oos.get(metric)),
                fmt("total_return", c.in_sample.metrics.get("total_return")),
                fmt("total_return", oos.get("total_return")),
            ]
        )
    return render(header, body)
