"""The peer side of ``make bench-peers``: the benchmark's rebalance on NautilusTrader 1.221.

Runs in its own environment (``.venv-peers``, made by the Makefile; NautilusTrader is no
dependency of Ballast) and imports nothing of Ballast: it reads the same bundled CSV files and is
given the scenario's figures on its command line (``bench/peers/scenario.py`` is the source).

- Venue: a simulated Binance-like exchange ``BINANCE``, one USDT margin account (netting), bar
  execution; instruments with Binance's lot sizes and VIP 0 fees (spot 0.1 %, perp taker 0.05 %).
- Data: every spot and perp hourly bar, stamped at its close as Ballast stamps them, plus one
  ``MarkPriceUpdate`` per perp bar (mark = perp close, as Ballast's bundle makes its marks): the
  same event stream. Funding is not settled (NautilusTrader's backtest has no funding payments).
- Strategy: at every bar, NAV = account balance + unrealised PnL of the open positions (perps at
  their mark, spot at its last close); net weight of each asset = position qty × price / NAV;
  outside target ± band, a market order back to target (quantity rounded to the lot).

Prints one JSON object: bar events, mark events, seconds of ``engine.run()`` and end to end,
orders, fills, fills per month, fees, final NAV and peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.backtest.engine import BacktestEngine  # type: ignore[import-not-found]
from nautilus_trader.config import (  # type: ignore[import-not-found]
    BacktestEngineConfig,
    LoggingConfig,
    StrategyConfig,
)
from nautilus_trader.model.currencies import BTC, ETH, USDT  # type: ignore[import-not-found]
from nautilus_trader.model.data import (  # type: ignore[import-not-found]
    Bar,
    BarType,
    MarkPriceUpdate,
)
from nautilus_trader.model.enums import (  # type: ignore[import-not-found]
    AccountType,
    OmsType,
    OrderSide,
)
from nautilus_trader.model.identifiers import (  # type: ignore[import-not-found]
    InstrumentId,
    Symbol,
    TraderId,
    Venue,
)
from nautilus_trader.model.instruments import (  # type: ignore[import-not-found]
    CryptoPerpetual,
    CurrencyPair,
)
from nautilus_trader.model.objects import Money, Price, Quantity  # type: ignore[import-not-found]
from nautilus_trader.trading.strategy import Strategy  # type: ignore[import-not-found]

VENUE = Venue("BINANCE")
BASES = {"BTC": BTC, "ETH": ETH}
# Binance's filters, as Ballast's simulated venue has them: (tick, lot) per asset and kind.
FILTERS = {
    ("BTC", "spot"): ("0.01", "0.00001"),
    ("ETH", "spot"): ("0.01", "0.0001"),
    ("BTC", "perp"): ("0.1", "0.001"),
    ("ETH", "perp"): ("0.01", "0.001"),
}
FEES = {
    "spot": (Decimal("0.001"), Decimal("0.001")),
    "perp": (Decimal("0.0002"), Decimal("0.0005")),
}
STEPS = {3600: ("1-HOUR", "1h"), 60: ("1-MINUTE", "1m")}
"""Bar interval (s) → NautilusTrader's bar step, the CSV files' label."""


def instrument(asset: str, kind: str) -> Any:
    tick, lot = FILTERS[(asset, kind)]
    price_precision = len(tick.split(".")[1])
    size_precision = len(lot.split(".")[1])
    maker, taker = FEES[kind]
    common: dict[str, Any] = {
        "raw_symbol": Symbol(f"{asset}USDT"),
        "base_currency": BASES[asset],
        "quote_currency": USDT,
        "price_precision": price_precision,
        "size_precision": size_precision,
        "price_increment": Price.from_str(tick),
        "size_increment": Quantity.from_str(lot),
        "max_quantity": Quantity.from_str(f"{1_000_000:.{size_precision}f}"),
        "min_quantity": Quantity.from_str(lot),
        "max_notional": None,
        "min_notional": Money(5 if kind == "spot" else 20, USDT),
        "max_price": Price.from_str(f"{10_000_000:.{price_precision}f}"),
        "min_price": Price.from_str(tick),
        "maker_fee": maker,
        "taker_fee": taker,
        "ts_event": 0,
        "ts_init": 0,
    }
    if kind == "spot":
        return CurrencyPair(
            instrument_id=InstrumentId(Symbol(f"{asset}USDT"), VENUE),
            lot_size=None,
            margin_init=Decimal(0),
            margin_maint=Decimal(0),
            **common,
        )
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(f"{asset}USDT-PERP"), VENUE),
        settlement_currency=USDT,
        is_inverse=False,
        margin_init=Decimal("0.1"),
        margin_maint=Decimal("0.005"),
        **common,
    )


def _ns(text: str) -> int:
    """A candle's open time (``2022-04-18 00:00:00`` or with ``+00:00``) in ns since the epoch."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000


def load_bars(
    path: Path, inst: Any, interval_s: int, start_ns: int, end_ns: int | None
) -> tuple[BarType, list[Any]]:
    """The CSV's candles as bars stamped at their close (open + interval), within [start, end)."""
    bar_type = BarType.from_str(f"{inst.id}-{STEPS[interval_s][0]}-LAST-EXTERNAL")
    interval_ns = interval_s * 1_000_000_000
    bars = []
    with path.open(newline="") as handle:
        rows = csv.reader(handle)
        next(rows)
        for row in rows:
            ts = _ns(row[0]) + interval_ns
            if ts < start_ns or (end_ns is not None and ts >= end_ns):
                continue
            o, h, low, c = (inst.make_price(float(x)) for x in row[1:5])
            bars.append(Bar(bar_type, o, h, low, c, inst.make_qty(float(row[5])), ts, ts))
    return bar_type, bars


class RebalanceConfig(StrategyConfig, frozen=True):  # type: ignore[misc,call-arg]
    targets: dict[str, float]
    """Instrument id → net target weight."""
    band: float
    """Absolute band (a fraction: 0.01 = 1 pp)."""
    bar_types: list[str]
    marks: list[str]
    """Instruments whose price is their mark (the perps)."""


class Rebalance(Strategy):  # type: ignore[misc]
    """Checks the portfolio's net weights against targets with a band at every bar; market
    orders back to target."""

    def __init__(self, config: RebalanceConfig) -> None:
        super().__init__(config)
        self.targets = {
            InstrumentId.from_str(k): Decimal(str(v)) for k, v in config.targets.items()
        }
        self.band = Decimal(str(config.band))
        self.prices: dict[Any, Any] = {}
        self.marked = {InstrumentId.from_str(text) for text in config.marks}
        self.orders_sent = 0
        self.fills = 0
        self.fees = Decimal(0)
        self.fill_months: Counter[str] = Counter()
        self.checks = 0

    def on_start(self) -> None:
        for text in self.config.bar_types:
            self.subscribe_bars(BarType.from_str(text))
        for text in self.config.marks:
            self.subscribe_mark_prices(InstrumentId.from_str(text))

    def on_mark_price(self, mark: Any) -> None:
        self.prices[mark.instrument_id] = mark.value

    def on_bar(self, bar: Any) -> None:
        instrument_id = bar.bar_type.instrument_id
        if instrument_id not in self.marked:
            self.prices[instrument_id] = bar.close  # spot: its close (a perp: its mark)
        self.check()

    def nav(self) -> Decimal:
        account = self.portfolio.account(VENUE)
        nav: Decimal = account.balance_total(USDT).as_decimal()
        for position in self.cache.positions_open(venue=VENUE):
            price = self.prices.get(position.instrument_id)
            if price is not None:
                nav += position.unrealized_pnl(price).as_decimal()
        return nav

    def check(self) -> None:
        if any(i not in self.prices for i in self.targets):
            return  # not every traded instrument has a price yet
        self.checks += 1
        nav = self.nav()
        if nav <= 0:
            return
        for instrument_id, target in self.targets.items():
            price = self.prices[instrument_id].as_decimal()
            held = self.portfolio.net_position(instrument_id)
            weight = held * price / nav
            if abs(weight - target) <= self.band:
                continue
            if self.cache.orders_inflight_count(
                instrument_id=instrument_id
            ) or self.cache.orders_open_count(instrument_id=instrument_id):
                continue  # an order of this instrument is on its way: no second one
            inst = self.cache.instrument(instrument_id)
            step = inst.size_increment.as_decimal()
            delta = ((target * nav / price - held) / step).to_integral_value(ROUND_DOWN) * step
            if delta == 0 or abs(delta) * price < inst.min_notional.as_decimal():
                continue
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            order = self.order_factory.market(instrument_id, side, inst.make_qty(abs(delta)))
            self.submit_order(order)
            self.orders_sent += 1

    def on_order_filled(self, event: Any) -> None:
        self.fills += 1
        self.fees += event.commission.as_decimal()
        month = datetime.fromtimestamp(event.ts_event / 1e9, UTC).strftime("%Y-%m")
        self.fill_months[month] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--target", action="append", required=True, help="ASSET:spot|perp:WEIGHT (repeat)"
    )
    parser.add_argument("--band-pp", type=Decimal, required=True)
    parser.add_argument("--cash", type=Decimal, required=True)
    parser.add_argument("--start", default="2022-04-18T00:00+00:00")
    parser.add_argument("--end", default=None, help="first excluded bar close time (ISO)")
    parser.add_argument("--interval-s", type=int, choices=sorted(STEPS), default=3600)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    start_ns = _ns(args.start)
    end_ns = _ns(args.end) if args.end else None

    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR")
        )
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(args.cash, USDT)],
        base_currency=USDT,
        default_leverage=Decimal(10),
    )
    targets: dict[str, float] = {}
    bar_types: list[str] = []
    marks: list[str] = []
    data: list[Any] = []
    mark_events: list[Any] = []
    bar_count = 0
    for asset in ("BTC", "ETH"):  # every instrument trades as Ballast's bench has them all
        for kind in ("spot", "perp"):
            inst = instrument(asset, kind)
            engine.add_instrument(inst)
            name = f"{asset.lower()}usdt_{kind}_{STEPS[args.interval_s][1]}.csv"
            bar_type, bars = load_bars(args.data / name, inst, args.interval_s, start_ns, end_ns)
            bar_types.append(str(bar_type))
            data.extend(bars)
            bar_count += len(bars)
            if kind == "perp":
                marks.append(str(inst.id))
                mark_events.extend(
                    MarkPriceUpdate(inst.id, b.close, b.ts_event, b.ts_init) for b in bars
                )
    for spec in args.target:
        asset, kind, weight = spec.split(":")
        suffix = "USDT" if kind == "spot" else "USDT-PERP"
        targets[f"{asset}{suffix}.{VENUE}"] = float(weight)
    engine.add_data(data)
    engine.add_data(mark_events)
    strategy = Rebalance(
        RebalanceConfig(
            targets=targets,
            band=float(args.band_pp / 100),
            bar_types=bar_types,
            marks=marks,
        )
    )
    engine.add_strategy(strategy)
    loaded = time.perf_counter()
    engine.run()
    ran = time.perf_counter()
    nav = strategy.nav()
    engine.dispose()
    total = time.perf_counter() - started
    result = {
        "side": "nautilus",
        "bar_events": bar_count,
        "mark_events": len(mark_events),
        "seconds": ran - loaded,
        "load_seconds": loaded - started,
        "total_seconds": total,
        "orders": strategy.orders_sent,
        "fills": strategy.fills,
        "checks": strategy.checks,
        "fill_months": dict(sorted(strategy.fill_months.items())),
        "final_nav": str(nav),
        "fees": str(strategy.fees),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
