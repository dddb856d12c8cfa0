"""The opt-in case of ``make bench-peers`` (``BALLAST_PEERS_MINUTE_DAYS=365``): the synthetic
1-minute market of ``make bench`` (seed 7, BTC and ETH spot + perps), written as CSV files in the
bundled layout so that both sides read the same data (the peer imports nothing of Ballast)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ballast.adapters.data.synthetic import SyntheticConfig, SyntheticMarket
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.instruments import base_of, is_perp

NS_PER_S = 1_000_000_000


def minute_market(days: int) -> SyntheticMarket:
    """``make bench``'s synthetic market, ``days`` days of 1-minute bars."""
    return SyntheticMarket(SyntheticConfig(seed=7, bars=days * 24 * 60, interval_s=60))


def write_csv(market: SyntheticMarket, folder: Path) -> int:
    """Write ``market`` to ``folder`` as ``btcusdt_spot_1m.csv``, ``btcusdt_perp_1m.csv`` (the
    generic layout: candle open time, OHLCV) and ``btcusdt_perp_funding_8h.csv`` (Binance's
    layout), per asset; returns the number of bars written."""
    bundle = market.bundle()
    interval_ns = market.config.interval_s * NS_PER_S
    folder.mkdir(parents=True, exist_ok=True)
    handles: dict[str, TextIO] = {}
    writers: dict[str, Any] = {}
    count = 0
    try:
        for event in bundle.events():
            if not isinstance(event, Bar):
                continue
            kind = "perp" if is_perp(event.symbol) else "spot"
            key = f"{base_of(event.symbol).lower()}usdt_{kind}_1m.csv"
            if key not in writers:
                handles[key] = (folder / key).open("w", newline="")
                writers[key] = csv.writer(handles[key])
                writers[key].writerow(["timestamp", "open", "high", "low", "close", "volume"])
            opened = datetime.fromtimestamp((event.ts_event - interval_ns) // NS_PER_S, UTC)
            writers[key].writerow(
                [
                    opened.strftime("%Y-%m-%d %H:%M:%S"),
                    event.open,
                    event.high,
                    event.low,
                    event.close,
                    event.volume,
                ]
            )
            count += 1
    finally:
        for handle in handles.values():
            handle.close()
    by_asset: dict[str, list[list[object]]] = {}
    for s in bundle.funding_history:
        row: list[object] = [s.ts_ns // 1_000_000, s.interval_h, s.rate]
        by_asset.setdefault(base_of(s.symbol).lower(), []).append(row)
    for asset, rows in by_asset.items():
        with (folder / f"{asset}usdt_perp_funding_8h.csv").open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["calc_time", "funding_interval_hours", "last_funding_rate"])
            out.writerows(rows)
    return count
