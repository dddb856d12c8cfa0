"""DriftWatch: an observe-only actor that values a target-weight portfolio at bar closes and
records a decision whenever a weight leaves its band. It sends no orders.

It shows the decision path end to end (bars in, decisions out, all journaled and replayable) before
the trading pipeline exists, and stays useful as a dry "would have rebalanced here" monitor.
"""

from __future__ import annotations

from decimal import Decimal

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    AssetDecision,
    AssetState,
    Bar,
    PortfolioSnapshot,
    RebalanceDecided,
    TimerFired,
)

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_WEIGHT = Decimal("0.0001")


class DriftWatch(Actor):
    """Holds ``targets`` (asset → weight) of ``nav0`` quote units from the first full set of prices,
    re-anchors to target (frictionless) when a band is breached, and snapshots daily."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        targets: dict[str, Decimal],
        band_pp: Decimal,
        quote: str = "USDT",
        nav0: Decimal = Decimal(100_000),
        snapshot_every_s: int = 86_400,
    ) -> None:
        super().__init__(bus, clock)
        self.targets = dict(targets)
        self.band = band_pp / _HUNDRED
        self.quote = quote
        self.nav0 = nav0
        self.prices: dict[str, Decimal] = {}
        self.qty: dict[str, Decimal] = {}
        self.cash = _ZERO
        self.decisions = 0
        self._snapshot_every_ns = snapshot_every_s * NS_PER_SECOND
        self.subscribe(Bar, self.on_bar)

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> DriftWatch:
        band = config.bands.abs_pp if config.bands.abs_pp is not None else Decimal(5)
        return cls(bus, clock, targets=config.targets, band_pp=band, quote=config.venue.quote)

    async def on_start(self) -> None:
        self.every("snapshot", self._snapshot_every_ns, self.on_snapshot_timer)

    def on_bar(self, bar: Bar) -> None:
        base, _, rest = bar.symbol.partition("/")
        if base not in self.targets or ":" in rest:
            return
        self.prices[base] = bar.close
        if len(self.prices) < len(self.targets):
            return
        if not self.qty:
            self._anchor(self.nav0)
            return
        weights = self.weights()
        breached = {a: w for a, w in weights.items() if abs(w - self.targets[a]) > self.band}
        if breached:
            self._decide(weights, breached)

    def nav(self) -> Decimal:
        return self.cash + sum((q * self.prices[a] for a, q in self.qty.items()), _ZERO)

    def weights(self) -> dict[str, Decimal]:
        nav = self.nav()
        return {a: (q * self.prices[a] / nav) for a, q in self.qty.items()}

    def _anchor(self, nav: Decimal) -> None:
        self.qty = {a: nav * w / self.prices[a] for a, w in self.targets.items()}
        self.cash = nav - sum((self.qty[a] * self.prices[a] for a in self.qty), _ZERO)

    def _decide(self, weights: dict[str, Decimal], breached: dict[str, Decimal]) -> None:
        assets = tuple(
            AssetDecision(
                asset=a,
                weight=w.quantize(_WEIGHT),
                target=self.targets[a],
                band_low=self.targets[a] - self.band,
                band_high=self.targets[a] + self.band,
                action="rebalance" if a in breached else "hold",
            )
            for a, w in sorted(weights.items())
        )
        why = "; ".join(
            f"{a} weight {w * _HUNDRED:.2f}% outside {self.targets[a] * _HUNDRED:.0f}% "
            f"± {self.band * _HUNDRED:.0f} pp"
            for a, w in sorted(breached.items())
        )
        self.decisions += 1
        now = self.now()
        self.publish(
            RebalanceDecided(
                ts_event=now,
                ts_init=now,
                decision_id=f"watch-{self.decisions}",
                trigger="band",
                mode="watch",
                regime="unknown",
                reasoning=why,
                assets=assets,
                intents=(),
            )
        )
        self._anchor(self.nav())

    def on_snapshot_timer(self, event: TimerFired) -> None:
        if not self.qty:
            return
        nav = self.nav()
        assets = tuple(self._asset_state(a, q, nav) for a, q in sorted(self.qty.items()))
        gross = (sum((s.spot_value for s in assets), _ZERO) / nav).quantize(_WEIGHT)
        self.publish(
            PortfolioSnapshot(
                ts_event=event.ts_event,
                ts_init=self.now(),
                trigger="timer",
                nav=nav.quantize(_CENT),
                cash=self.cash.quantize(_CENT),
                gross_leverage=gross,
                net_leverage=gross,
                margin_used=_ZERO,
                realized_pnl=_ZERO,
                unrealized_pnl=_ZERO,
                price_pnl=(nav - self.nav0).quantize(_CENT),
                funding_pnl=_ZERO,
                fees_paid=_ZERO,
                transfers=_ZERO,
                peak_nav=_ZERO,
                drawdown=_ZERO,
                assets=assets,
            )
        )

    def _asset_state(self, asset: str, qty: Decimal, nav: Decimal) -> AssetState:
        value = (qty * self.prices[asset]).quantize(_CENT)
        weight = (qty * self.prices[asset] / nav).quantize(_WEIGHT)
        return AssetState(
            asset=asset,
            spot_qty=qty,
            spot_price=self.prices[asset],
            spot_value=value,
            perp_qty=_ZERO,
            perp_price=_ZERO,
            perp_notional=_ZERO,
            perp_entry_price=_ZERO,
            perp_unrealized_pnl=_ZERO,
            perp_funding=_ZERO,
            perp_liquidation_price=None,
            net_exposure=value,
            weight=weight,
            spot_weight=weight,
        )
