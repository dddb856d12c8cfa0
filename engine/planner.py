"""Rebalance planning: pure functions from a valued portfolio and targets to exact orders.

Bands. For a target weight ``t`` the band half-width is ``band_abs`` (a fraction: 5 pp = 0.05),
``band_rel × |t|``, or the narrower of the two when both are set (whichever is hit first). A weight
strictly outside ``t ± width`` is a breach; on the band edge is inside (MISSION example 3).

Sizing rule (MISSION example 2): the exposure to trade is ``goal × NAV − current exposure``, with
``goal`` the target (``rebalance_to = "target"``) or just inside the nearer band edge (``"edge"``:
90 % of the band width from the target, so that rounding quantities down to the lot can never
leave the weight outside the band).

Sales are planned before purchases, and purchases are limited to the cash left after margin plus
the proceeds of the plan's own sales.

Instruments, per execution mode:
- ``spot``: trade spot, never below the core floor;
- ``overlay``: trade the perp. Overweight → perp short (Case A), underweight → perp long (Case B;
  spot instead while the budget forbids overlay longs);
- ``auto``: first unwind an opposite perp position, then take the cheaper of spot and perp by
  expected cost (fee + funding over the horizon); spot the core floor protects goes to the perp.
A strategy that sets an explicit spot weight gets its spot and perp legs rebalanced separately.

Unwind cycle (Case B completion): an asset back inside its band that still carries a profitable
overlay long has the long closed and the same notional bought in spot.

Every quantity is rounded down to the lot; a trade below the instrument's minimum notional is
skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from engine.events import AssetDecision, AssetState, OrderIntent, PortfolioSnapshot, Side
from engine.instruments import Instrument, perp_symbol, plain, spot_symbol
from strategies.api import ResolvedTarget

Mode = Literal["spot", "overlay", "auto"]
Leg = Literal["spot", "perp"]
_ZERO = Decimal(0)
_PCT = Decimal(100)


@dataclass(frozen=True)
class BudgetView:
    """The part of the risk budget planning needs (fractions of NAV)."""

    band_abs: Decimal | None
    band_rel: Decimal | None
    allow_overlay_longs: bool = True
    regime: str = "normal"


@dataclass(frozen=True)
class PlanInputs:
    snapshot: PortfolioSnapshot
    targets: Mapping[str, ResolvedTarget]
    budget: BudgetView
    instruments: Mapping[str, Instrument]
    mode: Mode = "spot"
    rebalance_to: Literal["target", "edge"] = "target"
    quote: str = "USDT"
    funding_rates: Mapping[str, Decimal] = field(default_factory=dict)
    funding_horizon_periods: int = 21  # a week of 8-hourly settlements
    unwind_profit: Decimal = Decimal("0.02")  # overlay long up this much → unwind into spot


@dataclass
class Plan:
    assets: list[AssetDecision] = field(default_factory=list)
    intents: list[OrderIntent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.intents


def band_width(target: Decimal, band_abs: Decimal | None, band_rel: Decimal | None) -> Decimal:
    widths = [
        w for w in (band_abs, None if band_rel is None else band_rel * abs(target)) if w is not None
    ]
    return min(widths) if widths else _ZERO


def excess(exposure: Decimal, goal_weight: Decimal, nav: Decimal) -> Decimal:
    """Exposure above the goal, in quote units (MISSION example 2): > 0 sell, < 0 buy."""
    return exposure - goal_weight * nav


EDGE_FRACTION = Decimal("0.9")


def _goal(weight: Decimal, target: Decimal, width: Decimal, to: str) -> Decimal:
    if to == "edge":
        inside = width * EDGE_FRACTION
        return target + inside if weight > target else target - inside
    return target


def _pct(x: Decimal) -> str:
    return f"{x * _PCT:.2f}%"


class _Planner:
    """Builds one plan; holds the running intent counter and the notes."""

    def __init__(self, inp: PlanInputs, decision_id: str) -> None:
        self.inp = inp
        self.decision_id = decision_id
        self.plan = Plan()
        self.states = {a.asset: a for a in inp.snapshot.assets}
        self.nav = inp.snapshot.nav
        self.cash = max(_ZERO, inp.snapshot.cash - inp.snapshot.margin_used)

    # ------------------------------------------------------------------ orders

    def order(
        self, asset: str, leg: Leg, delta: Decimal, reason: str, *, reduce: bool = False
    ) -> None:
        """Add an intent changing ``asset``'s ``leg`` exposure by ``delta`` quote units."""
        symbol = (
            perp_symbol(asset, self.inp.quote)
            if leg == "perp"
            else spot_symbol(asset, self.inp.quote)
        )
        instrument = self.inp.instruments.get(symbol)
        price = self._price(asset, leg)
        if instrument is None or price is None or price <= 0:
            self.plan.notes.append(f"{asset}: no {leg} instrument or price, {reason} skipped")
            return
        qty = instrument.round_qty(abs(delta) / price)
        if reduce:
            qty = min(qty, abs(self._perp_qty(asset)))
        if qty * price < instrument.min_notional or qty < instrument.min_qty:
            self.plan.notes.append(
                f"{asset}: {leg} trade of {abs(delta):.2f} {self.inp.quote} is below the minimum "
                f"notional {instrument.min_notional} after rounding, skipped"
            )
            return
        side: Side = "buy" if delta > 0 else "sell"
        if leg == "spot":
            fee = instrument.taker_fee * qty * price
            self.cash += -qty * price - fee if side == "buy" else qty * price - fee
        self.plan.intents.append(
            OrderIntent(
                intent_id=f"{self.decision_id}-{len(self.plan.intents) + 1}",
                symbol=symbol,
                side=side,
                qty=qty,
                order_type="market",
                price=None,
                reduce_only=reduce,
                reason=reason,
            )
        )

    def _price(self, asset: str, leg: Leg) -> Decimal | None:
        state = self.states.get(asset)
        if state is None:
            return None
        price = state.perp_price if leg == "perp" else state.spot_price
        if leg == "perp" and price <= 0:
            price = state.spot_price  # no mark yet: the spot price is the best estimate
        return price

    def _perp_qty(self, asset: str) -> Decimal:
        state = self.states.get(asset)
        return state.perp_qty if state is not None else _ZERO

    # ------------------------------------------------------------------ costs

    def _perp_cost(self, asset: str, side: Side) -> Decimal:
        """Expected cost of a perp trade per unit notional: taker fee + funding over the horizon
        (a long pays positive funding, a short receives it)."""
        inst = self.inp.instruments.get(perp_symbol(asset, self.inp.quote))
        fee = inst.taker_fee if inst is not None else Decimal("0.0005")
        rate = self.inp.funding_rates.get(asset, _ZERO) * self.inp.funding_horizon_periods
        return fee + (rate if side == "buy" else -rate)

    def _spot_cost(self, asset: str) -> Decimal:
        inst = self.inp.instruments.get(spot_symbol(asset, self.inp.quote))
        return inst.taker_fee if inst is not None else Decimal("0.001")

    # ------------------------------------------------------------------ per-asset logic

    def asset(self, asset: str, target: ResolvedTarget) -> None:
        state = self.states.get(asset) or _empty_state(asset)
        if target.spot is not None:
            self._two_legs(state, target)
            return
        width = band_width(target.net, self.inp.budget.band_abs, self.inp.budget.band_rel)
        low, high = target.net - width, target.net + width
        weight = state.weight
        action = "hold"
        if weight > high or weight < low:
            goal = _goal(weight, target.net, width, self.inp.rebalance_to)
            delta = goal * self.nav - state.net_exposure
            why = (
                f"{asset} weight {_pct(weight)} outside {_pct(target.net)} ± {_pct(width)}: "
                f"trade {delta:+.2f} {self.inp.quote} to {_pct(goal)}"
            )
            self.plan.notes.append(why)
            action = self._route(state, delta, target, "band breach")
        elif self._unwind_due(state):
            action = self._unwind(state)
        self.plan.assets.append(_decision(asset, weight, target.net, low, high, action))

    def _effective_mode(self, target: ResolvedTarget) -> Mode:
        if target.prefer == "spot":
            return "spot"
        if target.prefer == "perp":
            return "overlay"
        return self.inp.mode

    def _route(self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str) -> str:
        mode = self._effective_mode(target)
        if mode == "spot":
            return self._spot(state, delta, target, why)
        if mode == "overlay":
            return self._overlay(state, delta, why)
        return self._auto(state, delta, target, why)

    def _spot(self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str) -> str:
        """Trade spot by ``delta``: sales stop at the core floor, purchases at the cash."""
        if delta < 0:
            sellable = max(_ZERO, state.spot_value - target.core_floor * self.nav)
            amount = min(-delta, sellable)
            if amount < -delta:
                self.plan.notes.append(
                    f"{state.asset}: core floor {_pct(target.core_floor)} limits the spot sale to "
                    f"{amount:.2f} of {-delta:.2f}"
                )
            self.order(state.asset, "spot", -amount, f"{why}: sell spot")
            return "sell spot"
        amount = min(delta, self._spendable_cash(state.asset))
        if amount < delta:
            self.plan.notes.append(f"{state.asset}: cash limits the spot purchase to {amount:.2f}")
        self.order(state.asset, "spot", amount, f"{why}: buy spot")
        return "buy spot"

    def _spendable_cash(self, asset: str) -> Decimal:
        """Cash left for a spot purchase: free cash plus this plan's sale proceeds, less fees."""
        return max(_ZERO, self.cash) / (1 + self._spot_cost(asset))

    def _overlay(self, state: AssetState, delta: Decimal, why: str) -> str:
        """Case A (delta < 0): perp short. Case B (delta > 0): perp long, or spot while the
        budget forbids overlay longs (after covering any short)."""
        if delta < 0:
            self._perp(state, delta, f"{why}: hedge with perp short (case A)")
            return "perp short"
        cover = min(delta, max(_ZERO, -state.perp_notional))
        if cover > 0:
            self._perp(state, cover, f"{why}: cover perp short")
        rest = delta - cover
        if rest <= 0:
            return "cover perp short"
        if not self.inp.budget.allow_overlay_longs:
            self.plan.notes.append(
                f"{state.asset}: overlay longs are off ({self.inp.budget.regime}), buying spot"
            )
            self.order(
                state.asset,
                "spot",
                min(rest, self._spendable_cash(state.asset)),
                f"{why}: buy spot",
            )
            return "buy spot"
        self._perp(state, rest, f"{why}: add with perp long (case B)")
        return "perp long"

    def _perp(self, state: AssetState, delta: Decimal, why: str) -> None:
        """Change the perp exposure by ``delta``, split into a reduce-only part (towards zero) and
        an opening part, so a flip through zero is two orders."""
        current = state.perp_notional
        reducing = _ZERO
        if current != 0 and (delta > 0) != (current > 0):
            reducing = min(abs(delta), abs(current)) * (1 if delta > 0 else -1)
        if reducing != 0:
            self.order(state.asset, "perp", reducing, f"{why} (reduce)", reduce=True)
        opening = delta - reducing
        if opening != 0:
            self.order(state.asset, "perp", opening, why)

    def _auto(self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str) -> str:
        """Unwind an opposite perp position first, then use the cheaper instrument."""
        opposite = state.perp_notional if delta < 0 else -state.perp_notional
        first = min(abs(delta), max(_ZERO, opposite)) * (1 if delta > 0 else -1)
        if first != 0:
            self._perp(state, first, f"{why}: unwind perp first")
        rest = delta - first
        if rest == 0:
            return "unwind perp"
        side: Side = "buy" if rest > 0 else "sell"
        spot_cost, perp_cost = self._spot_cost(state.asset), self._perp_cost(state.asset, side)
        longs_off = side == "buy" and not self.inp.budget.allow_overlay_longs
        prefer_spot = spot_cost <= perp_cost or longs_off
        self.plan.notes.append(
            f"{state.asset}: auto {side} {abs(rest):.2f}: spot cost {_pct(spot_cost)}, perp cost "
            f"{_pct(perp_cost)} (fee + funding over {self.inp.funding_horizon_periods} periods)"
            f" -> {'spot' if prefer_spot else 'perp'} first"
        )
        if prefer_spot:
            limit = (
                max(_ZERO, state.spot_value - target.core_floor * self.nav)
                if side == "sell"
                else self._spendable_cash(state.asset)
            )
            spot_part = min(abs(rest), limit) * (1 if rest > 0 else -1)
            self.order(state.asset, "spot", spot_part, f"{why}: {side} spot (cheaper)")
            rest -= spot_part
            if rest != 0 and not longs_off:
                self._perp(state, rest, f"{why}: perp for the rest (floor or cash limit)")
            return f"{side} spot" if rest == 0 else f"{side} spot+perp"
        self._perp(state, rest, f"{why}: perp {side} (cheaper)")
        return f"perp {side}"

    # ------------------------------------------------------------------ explicit spot legs

    def _two_legs(self, state: AssetState, target: ResolvedTarget) -> None:
        assert target.spot is not None
        budget = self.inp.budget
        perp_target = target.net - target.spot
        perp_weight = state.perp_notional / self.nav if self.nav else _ZERO
        actions: list[str] = []
        for leg, weight, goal_t in (
            ("spot", state.spot_weight, target.spot),
            ("perp", perp_weight, perp_target),
        ):
            width = band_width(goal_t, budget.band_abs, budget.band_rel)
            if goal_t - width <= weight <= goal_t + width:
                continue
            goal = _goal(weight, goal_t, width, self.inp.rebalance_to)
            delta = (goal - weight) * self.nav
            why = (
                f"{state.asset} {leg} weight {_pct(weight)} outside {_pct(goal_t)} ± {_pct(width)}"
            )
            self.plan.notes.append(f"{why}: trade {delta:+.2f} {self.inp.quote}")
            if leg == "spot":
                actions.append(self._spot(state, delta, target, why))
            elif (
                delta > 0 and perp_weight + delta / self.nav > 0 and not budget.allow_overlay_longs
            ):
                self.plan.notes.append(
                    f"{state.asset}: overlay longs are off, perp leg not increased"
                )
            else:
                self._perp(state, delta, why)
                actions.append("perp")
        width = band_width(target.net, budget.band_abs, budget.band_rel)
        self.plan.assets.append(
            _decision(
                state.asset,
                state.weight,
                target.net,
                target.net - width,
                target.net + width,
                "+".join(actions) or "hold",
            )
        )

    # ------------------------------------------------------------------ unwind, contraction

    def _unwind_due(self, state: AssetState) -> bool:
        if self.inp.mode == "spot" or state.perp_qty <= 0 or state.perp_entry_price <= 0:
            return False
        return state.perp_price >= state.perp_entry_price * (1 + self.inp.unwind_profit)

    def _unwind(self, state: AssetState) -> str:
        notional = state.perp_qty * state.perp_price
        self.plan.notes.append(
            f"{state.asset}: overlay long up {_pct(state.perp_price / state.perp_entry_price - 1)} "
            f"and weight back in band: close it and buy {notional:.2f} of spot (case B unwind)"
        )
        self.order(
            state.asset, "perp", -notional, "unwind: close profitable overlay long", reduce=True
        )
        self.order(state.asset, "spot", notional, "unwind: buy spot with the proceeds")
        return "unwind"

    def close_longs(self, why: str) -> None:
        for state in self.inp.snapshot.assets:
            if state.perp_qty > 0:
                self._perp(state, -state.perp_notional, why)

    def close_all_perps(self, why: str) -> None:
        for state in self.inp.snapshot.assets:
            if state.perp_qty != 0:
                self._perp(state, -state.perp_notional, why)


def _empty_state(asset: str) -> AssetState:
    return AssetState(
        asset=asset,
        spot_qty=_ZERO,
        spot_price=_ZERO,
        spot_value=_ZERO,
        perp_qty=_ZERO,
        perp_price=_ZERO,
        perp_notional=_ZERO,
        perp_entry_price=_ZERO,
        perp_unrealized_pnl=_ZERO,
        perp_funding=_ZERO,
        perp_liquidation_price=None,
        net_exposure=_ZERO,
        weight=_ZERO,
        spot_weight=_ZERO,
    )


def _decision(
    asset: str, weight: Decimal, target: Decimal, low: Decimal, high: Decimal, action: str
) -> AssetDecision:
    return AssetDecision(
        asset=asset,
        weight=plain(weight),
        target=target,
        band_low=low,
        band_high=high,
        action=action,
    )


def plan_rebalance(inp: PlanInputs, decision_id: str) -> Plan:
    """Band check every targeted asset (and every held asset without a target, whose target is
    0) and plan the trades back."""
    planner = _Planner(inp, decision_id)
    if inp.snapshot.nav <= 0:
        planner.plan.notes.append("NAV is not positive: nothing planned")
        return planner.plan
    assets = sorted(set(inp.targets) | {a.asset for a in inp.snapshot.assets})
    targets = {
        a: inp.targets.get(a)
        or ResolvedTarget(asset=a, net=_ZERO, spot=None, core_floor=_ZERO, prefer="auto")
        for a in assets
    }
    for asset in sorted(assets, key=lambda a: _buying(planner, targets[a])):
        planner.asset(asset, targets[asset])
    planner.plan.assets.sort(key=lambda d: d.asset)
    return planner.plan


def _buying(planner: _Planner, target: ResolvedTarget) -> bool:
    """Sort key: assets to be sold (above their target) are planned first."""
    state = planner.states.get(target.asset)
    if state is None:
        return True
    return state.weight <= target.net


def plan_close_longs(inp: PlanInputs, decision_id: str, why: str) -> Plan:
    """Budget contraction: close every overlay long (no band needs to be breached)."""
    planner = _Planner(inp, decision_id)
    planner.close_longs(why)
    return planner.plan


def plan_flatten(inp: PlanInputs, decision_id: str, why: str) -> Plan:
    """Kill switch: close every perp position with reduce-only orders."""
    planner = _Planner(inp, decision_id)
    planner.close_all_perps(why)
    return planner.plan
