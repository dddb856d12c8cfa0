"""A tiny, independent frictionless holdings model for building snapshots and applying intents
in tests (deliberately not the engine's Ledger, so tests check one against the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ballast.engine.kernel.events import AssetState, OrderIntent, PortfolioSnapshot
from ballast.engine.kernel.instruments import Instrument, InstrumentKind, base_of

ZERO = Decimal(0)


def fine_instruments(assets: list[str], quote: str = "USDT") -> dict[str, Instrument]:
    """Instruments with 8-decimal lots and cent ticks, so dollar amounts survive rounding."""
    out: dict[str, Instrument] = {}
    for asset in assets:
        legs: dict[InstrumentKind, str] = {
            "spot": f"{asset}/{quote}",
            "perp": f"{asset}/{quote}:{quote}",
        }
        for kind, symbol in legs.items():
            out[symbol] = Instrument(
                symbol=symbol,
                kind=kind,
                base=asset,
                quote=quote,
                tick_size=Decimal("0.01"),
                lot_size=Decimal("0.00000001"),
                min_qty=Decimal("0.00000001"),
                min_notional=Decimal(5),
            )
    return out


@dataclass
class Book:
    cash: Decimal
    spot: dict[str, Decimal] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)
    perp: dict[str, Decimal] = field(default_factory=dict)
    entry: dict[str, Decimal] = field(default_factory=dict)
    fees: Decimal = ZERO

    def mark(self, asset: str) -> Decimal:
        return self.prices[asset]

    def nav(self) -> Decimal:
        spot = sum((q * self.prices[a] for a, q in self.spot.items()), ZERO)
        upnl = sum((q * (self.mark(a) - self.entry[a]) for a, q in self.perp.items()), ZERO)
        return self.cash + spot + upnl

    def net_exposure(self, asset: str) -> Decimal:
        return (self.spot.get(asset, ZERO) + self.perp.get(asset, ZERO)) * self.prices[asset]

    def weight(self, asset: str) -> Decimal:
        return self.net_exposure(asset) / self.nav()

    def snapshot(self, ts: int = 0) -> PortfolioSnapshot:
        nav = self.nav()
        assets = tuple(self._state(a, nav) for a in sorted(set(self.spot) | set(self.perp)))
        gross = sum((abs(s.spot_value) + abs(s.perp_notional) for s in assets), ZERO) / nav
        net = sum((s.net_exposure for s in assets), ZERO) / nav
        return PortfolioSnapshot(
            ts_event=ts,
            ts_init=ts,
            trigger="price",
            nav=nav,
            cash=self.cash,
            gross_leverage=gross,
            net_leverage=net,
            margin_used=ZERO,
            realized_pnl=ZERO,
            unrealized_pnl=ZERO,
            price_pnl=ZERO,
            funding_pnl=ZERO,
            fees_paid=self.fees,
            transfers=ZERO,
            peak_nav=nav,
            drawdown=ZERO,
            assets=assets,
        )

    def _state(self, asset: str, nav: Decimal) -> AssetState:
        price = self.prices[asset]
        spot_qty, perp_qty = self.spot.get(asset, ZERO), self.perp.get(asset, ZERO)
        entry = self.entry.get(asset, ZERO)
        return AssetState(
            asset=asset,
            spot_qty=spot_qty,
            spot_price=price,
            spot_value=spot_qty * price,
            perp_qty=perp_qty,
            perp_price=price,
            perp_notional=perp_qty * price,
            perp_entry_price=entry,
            perp_unrealized_pnl=perp_qty * (price - entry),
            perp_funding=ZERO,
            perp_liquidation_price=None,
            net_exposure=self.net_exposure(asset),
            weight=self.net_exposure(asset) / nav,
            spot_weight=spot_qty * price / nav,
        )

    def fill(self, intent: OrderIntent, fee_rate: Decimal = ZERO) -> None:
        """Fill at the current price; perp realised PnL goes to cash."""
        asset = base_of(intent.symbol)
        price = self.prices[asset]
        signed = intent.qty if intent.side == "buy" else -intent.qty
        fee = intent.qty * price * fee_rate
        self.fees += fee
        self.cash -= fee
        if ":" not in intent.symbol:
            self.spot[asset] = self.spot.get(asset, ZERO) + signed
            self.cash -= signed * price
            return
        old = self.perp.get(asset, ZERO)
        new = old + signed
        entry = self.entry.get(asset, price)
        if old != 0 and (old > 0) != (signed > 0):  # reducing: realise on the closed part
            closed = min(abs(signed), abs(old)) * (1 if old > 0 else -1)
            self.cash += closed * (price - entry)
        if new == 0:
            self.entry[asset] = ZERO
        elif old == 0 or (old > 0) != (new > 0):
            self.entry[asset] = price
        elif abs(new) > abs(old):
            self.entry[asset] = (old * entry + signed * price) / new
        self.perp[asset] = new
