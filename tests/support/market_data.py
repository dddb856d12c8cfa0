"""Copies of the bundled market data in a test's own folder, cut to a range and edited row by row.

The bundled files (``data/market``) are never touched: ``copy_market(tmp_path / "data", ...)``
writes the kline files cut to candles opening in ``[first, last)`` and the funding files whole (the
marks at the start of a range need the settlement made before it). ``set_cell``, ``drop_row`` and
``header_only`` then damage a copy the way a broken feed or a bad export would.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "market"
KLINES = ("btcusdt_spot_1h", "btcusdt_perp_1h", "ethusdt_spot_1h", "ethusdt_perp_1h")
FUNDING = ("btcusdt_perp_funding_8h", "ethusdt_perp_funding_8h")


def copy_market(dest: Path, first: str | None = None, last: str | None = None) -> Path:
    """Kline files with the rows whose open time is in ``[first, last)`` (ISO text, UTC), funding
    files whole; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    lo = first.replace("T", " ") if first else None
    hi = last.replace("T", " ") if last else None
    for name in KLINES:
        _filter(DATA / f"{name}.csv", dest / f"{name}.csv", lambda row: _inside(row[0], lo, hi))
    for name in FUNDING:
        (dest / f"{name}.csv").write_bytes((DATA / f"{name}.csv").read_bytes())
    return dest


def funding_key(moment: str) -> str:
    """The first cell of a funding row (``calc_time``, Unix ms with jitter) starts with this."""
    when = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return str(int(when.timestamp()))


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def set_cell(path: Path, key: str, column: str, value: str) -> list[str]:
    """Set ``column`` of the one row whose first cell starts with ``key``; return the old row."""
    table = rows(path)
    index = table[0].index(column)
    [hit] = [row for row in table[1:] if row[0].startswith(key)]
    old = list(hit)
    hit[index] = value
    _write(path, table)
    return old


def drop_row(path: Path, key: str) -> None:
    """Remove the one row whose first cell starts with ``key``."""
    table = rows(path)
    kept = [table[0], *(row for row in table[1:] if not row[0].startswith(key))]
    assert len(kept) == len(table) - 1, f"{key!r} matched {len(table) - len(kept)} rows"
    _write(path, kept)


def header_only(path: Path) -> None:
    _write(path, rows(path)[:1])


def _inside(cell: str, lo: str | None, hi: str | None) -> bool:
    return (lo is None or cell >= lo) and (hi is None or cell < hi)


def _filter(source: Path, dest: Path, keep: Callable[[list[str]], bool]) -> None:
    table = rows(source)
    _write(dest, [table[0], *(row for row in table[1:] if keep(row))])


def _write(path: Path, table: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(table)
