"""Rebalance planning: pure functions from a valued portfolio and targets to exact orders.

Bands. For a target weight ``t`` the band half-width is ``band_abs`` (a fraction: 5 pp = 0.05),
``band_rel × |t|``, or, when both are set, the narrower (whichever is hit first) or the wider of
the two, as the config's ``combine`` says; an asset may have a rule of its own
(:mod:`ballast.engine.trading.bands`). A weight strictly outside ``t ± width`` is a breach; on the
band edge is inside (MISSION example 3).

Scope. ``"breached"``: only the assets out of their band are traded. ``"all"``: when any asset is
out of its band, every asset is traded back to its target. A calendar date (``calendar_date``)
trades every asset back to target whatever its drift.

Sizing rule (MISSION example 2): the exposure to trade is ``goal × NAV − current exposure``, with
``goal`` the target (``rebalance_to = "target"``) or just inside the nearer band edge (``"edge"``:
90 % of the band width from the target, so that rounding quantities down to the lot can never
leave the weight outside the band).

Sales are planned before purchases. Every order is sized within the account as the venue checks
it, after what the same plan's earlier orders commit (:class:`AccountFigures`, the simulated
exchange's definitions): margin balance = cash + Σ perp unrealised PnL; position margin = Σ
|perp notional at mark| / leverage (the venue's leverage per asset, else ``default_leverage``);
available margin = margin balance − position margin; a reserve of ``margin_buffer`` × margin
balance is never committed. A spot purchase (with its fee) fits in min(free cash, available
margin) − reserve; an order that grows a perp position fits its initial margin (growth × price /
leverage, with its fee) in available margin − reserve; sales and reductions need neither and give
back what they free (sale proceeds, released margin, realised PnL). An order that does not fit is
cut down to what does, with a note naming the figure; in ``auto`` mode the rest goes to the other
instrument (a short the margin cannot carry is sold in spot above the core floor, a long is
bought in spot with the cash left), with the reason. Spot cash is never planned below zero.

Instruments, per execution mode:
- ``spot``: trade spot, never below the core floor;
- ``overlay``: trade the perp. Overweight → perp short (Case A), underweight → perp long (Case B;
  spot instead while the budget forbids overlay longs);
- ``auto``: first unwind an opposite perp position, then take the cheaper of spot and perp by
  expected cost (spot: fee; perp: fee + funding over the horizon + the basis at the decision, the
  perp's premium over spot, paid by a long and earned by a short); spot the core floor protects
  goes to the perp. Every override of the cheaper choice is named in the reason: the regime
  (overlay longs off), the core floor or cash, the margin.
A strategy that sets an explicit spot weight gets its spot and perp legs rebalanced separately.

Unwind cycle, both ways, for an asset back inside its band (modes other than spot):
- Case B completion: a profitable overlay long (``unwind_profit`` above entry) is closed and the
  same notional bought in spot;
- Case A completion: an overlay short comes off when the asset's spot weight is back inside the
  band, within half its width of the target (``UNWIND_FRACTION``: closing it leaves the weight
  inside, and not on the edge where the next move would short it again), or when the price has
  fallen ``unwind_profit`` below the short's entry: then the same notional of spot is sold (down to
  the core floor), so the net exposure stays where it is. The reason says which.

Deleveraging (:func:`plan_deleverage`): reducing trades only, bringing the mandate's leverage
(Σ |net exposure| / NAV) down to a target.

Every quantity is rounded down to the lot; a trade below the instrument's minimum notional is
skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal, NamedTuple

from ballast.engine.kernel.config import BandCombine
from ballast.engine.kernel.events import (
    AssetAction,
    AssetDecision,
    AssetState,
    Mode,
    OrderIntent,
    PortfolioSnapshot,
    Regime,
    Side,
)
from ballast.engine.kernel.instruments import (
    Instrument,
    InstrumentKind,
    perp_symbol,
    plain,
    spot_symbol,
    symbol_of,
)
from ballast.engine.strategy.api import ResolvedTarget
from ballast.engine.trading.bands import BandSpec, band_width

__all__ = ["band_width"]

Leg = InstrumentKind
_ZERO = Decimal(0)
_PCT = Decimal(100)
_SPOT_FIRST: Final[dict[Side, AssetAction]] = {"buy": "buy spot", "sell": "sell spot"}
_SPOT_THEN_PERP: Final[dict[Side, AssetAction]] = {"buy": "buy spot+perp", "sell": "sell spot+perp"}
_PERP_FIRST: Final[dict[Side, AssetAction]] = {"buy": "perp buy", "sell": "perp sell"}
_PERP_THEN_SPOT: Final[dict[Side, AssetAction]] = {"buy": "perp+spot buy", "sell": "perp+spot sell"}
_TWO_LEGS: Final[dict[tuple[AssetAction, ...], AssetAction]] = {
    (): "hold",
    ("buy spot",): "buy spot",
    ("sell spot",): "sell spot",
    ("perp",): "perp",
    ("buy spot", "perp"): "buy spot+perp",
    ("sell spot", "perp"): "sell spot+perp",
}
"""The action of an asset with explicit spot and perp legs: what each leg did, spot first."""


@dataclass(frozen=True)
class BudgetView:
    """The part of the risk budget planning needs (fractions of NAV)."""

    band_abs: Decimal | None
    band_rel: Decimal | None
    allow_overlay_longs: bool = True
    regime: Regime = "normal"
    max_gross_leverage: Decimal | None = None  # the gross cap in force (auto avoids breaking it)
    combine: BandCombine = "narrower"  # how band_abs and band_rel combine when both are set
    asset_bands: Mapping[str, BandSpec] = field(default_factory=dict)  # per-asset rules, scaled

    def width(self, asset: str, target: Decimal) -> Decimal:
        """Half-width of ``asset``'s band around ``target``: its own rule, else the budget's."""
        own = self.asset_bands.get(asset)
        if own is not None:
            return own.width(target)
        return band_width(target, self.band_abs, self.band_rel, self.combine)


EXACT_DUST: Final = Decimal("1e-12")
"""An instrument without a lot (``instruments.precision = "exact"``) trades any quantity: a trade
of at most this share of NAV is the rounding of a division, not a rebalance, and is skipped."""


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
    unwind_profit: Decimal = Decimal("0.02")  # overlay position this much in profit → unwind
    perp_leverage: Mapping[str, Decimal] = field(default_factory=dict)  # asset → venue leverage
    default_leverage: Decimal = Decimal(10)
    margin_buffer: Decimal = Decimal("0.05")  # share of the margin balance no plan commits
    scope: Literal["breached", "all"] = "breached"  # all: any breach trades every asset
    calendar_date: bool = False  # a calendar date: every asset back to target, no band check


@dataclass(frozen=True)
class AccountFigures:
    """The account as the venue's funds checks see it, from a snapshot (see the module
    docstring): free cash, margin balance, initial margin of the positions at mark, available
    margin, and the reserve (``margin_buffer`` × margin balance) that plans leave unused."""

    cash: Decimal
    margin_balance: Decimal
    position_margin: Decimal
    available_margin: Decimal
    reserve: Decimal


def leverage_of(inp: PlanInputs, asset: str) -> Decimal:
    return inp.perp_leverage.get(asset, inp.default_leverage)


def account_figures(inp: PlanInputs) -> AccountFigures:
    snapshot = inp.snapshot
    upnl = sum((a.perp_unrealized_pnl for a in snapshot.assets), _ZERO)
    balance = snapshot.cash + upnl
    used = sum((abs(a.perp_notional) / leverage_of(inp, a.asset) for a in snapshot.assets), _ZERO)
    return AccountFigures(
        cash=snapshot.cash,
        margin_balance=balance,
        position_margin=used,
        available_margin=balance - used,
        reserve=inp.margin_buffer * max(_ZERO, balance),
    )


@dataclass
class Plan:
    assets: list[AssetDecision] = field(default_factory=list)
    intents: list[OrderIntent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.intents


def excess(exposure: Decimal, goal_weight: Decimal, nav: Decimal) -> Decimal:
    """Exposure above the goal, in quote units (MISSION example 2): > 0 sell, < 0 buy."""
    return exposure - goal_weight * nav


EDGE_FRACTION = Decimal("0.9")
UNWIND_FRACTION = Decimal("0.5")
"""A Case A short comes off once the spot weight is within this fraction of the band's width of
the target (hysteresis: not at the band's edge, where it was just shorted)."""


def _goal(weight: Decimal, target: Decimal, width: Decimal, to: str) -> Decimal:
    if to == "edge":
        inside = width * EDGE_FRACTION
        return target + inside if weight > target else target - inside
    return target


def _pct(x: Decimal) -> str:
    return f"{x * _PCT:.2f}%"


class _Order(NamedTuple):
    """An order the planner sizes: what it trades, at which price, on which instrument."""

    asset: str
    leg: Leg
    side: Side
    price: Decimal
    instrument: Instrument
    reduce: bool


class _Planner:
    """Builds one plan; holds the running intent counter, the notes and the account figures the
    plan has left (free cash and available margin, after what its earlier orders commit)."""

    def __init__(self, inp: PlanInputs, decision_id: str) -> None:
        self.inp = inp
        self.decision_id = decision_id
        self.plan = Plan()
        self.states = {a.asset: a for a in inp.snapshot.assets}
        self.nav = inp.snapshot.nav
        account = account_figures(inp)
        self.cash = account.cash
        self.available = account.available_margin
        self.reserve = account.reserve
        self._perp_left = {a.asset: a.perp_qty for a in inp.snapshot.assets}
        self.cut = False  # set when the account cut an order down (see _fit)
        self.everything = ""  # why every asset goes back to target (calendar, scope all), if so
        self.gross = sum(
            (abs(a.spot_value) + abs(a.perp_notional) for a in inp.snapshot.assets), _ZERO
        )  # Σ |spot| + Σ |perp notional| after the plan's orders so far

    # ------------------------------------------------------------------ account

    def leverage(self, asset: str) -> Decimal:
        return leverage_of(self.inp, asset)

    def spot_budget(self) -> Decimal:
        """What a spot purchase may spend: free cash, and no more than the available margin
        (the venue does not let a spot buy eat the margin the perps need), less the reserve."""
        return max(_ZERO, min(self.cash, self.available) - self.reserve)

    def margin_budget(self) -> Decimal:
        """Initial margin a new perp order may take: available margin less the reserve."""
        return max(_ZERO, self.available - self.reserve)

    # ------------------------------------------------------------------ orders

    def order(
        self, asset: str, leg: Leg, delta: Decimal, reason: str, *, reduce: bool = False
    ) -> Decimal:
        """Add an intent changing ``asset``'s ``leg`` exposure by ``delta`` quote units, sized
        within the free cash (spot buys) or the available margin (perp orders that open risk)
        this plan has left. Returns the exposure change planned (signed; 0 if nothing)."""
        symbol = symbol_of(leg, asset, self.inp.quote)
        instrument = self.inp.instruments.get(symbol)
        price = self._price(asset, leg)
        if instrument is None or price is None or price <= 0:
            self.plan.notes.append(f"{asset}: no {leg} instrument or price, {reason} skipped")
            return _ZERO
        side: Side = "buy" if delta > 0 else "sell"
        qty = instrument.round_qty(abs(delta) / price)
        if reduce:
            qty = min(qty, abs(self._perp_left.get(asset, _ZERO)))
        order = _Order(asset, leg, side, price, instrument, reduce)
        qty = self._fit(order, qty)
        if not instrument.lot_size and qty * price <= EXACT_DUST * abs(self.inp.snapshot.nav):
            self.plan.notes.append(
                f"{asset}: {leg} trade of {qty * price:.2E} {self.inp.quote} is rounding of the "
                "exact arithmetic (below 1E-12 of NAV), skipped"
            )
            return _ZERO
        if qty * price < instrument.min_notional or qty < instrument.min_qty:
            self.plan.notes.append(
                f"{asset}: {leg} trade of {abs(delta):.2f} {self.inp.quote} is below the minimum "
                f"notional {instrument.min_notional} after rounding, skipped"
            )
            return _ZERO
        self._commit(order, qty)
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
        signed = qty * price
        return signed if side == "buy" else -signed

    def _fit(self, order: _Order, qty: Decimal) -> Decimal:
        """``qty`` of ``order`` cut down to what the plan's cash (spot buy) or margin (perp
        opening) allows, with a note when it is cut. Sales and reductions need neither."""
        asset, leg, side, price, instrument, reduce = order
        if leg == "spot" and side == "buy":
            budget = self.spot_budget()
            most = instrument.round_qty(budget / (price * (1 + instrument.taker_fee)))
            what = f"free cash {budget:.2f} {self.inp.quote} (after this plan's orders)"
        elif leg == "perp" and not reduce:
            # The venue checks the margin of the growth of |position|: a flip of a position of
            # ``held`` needs margin only past 2 × |held|.
            budget = self.margin_budget()
            unit = price * (1 / self.leverage(asset) + instrument.taker_fee)
            held = self._perp_left.get(asset, _ZERO)
            free = 2 * abs(held) if self._reduces(asset, side) else _ZERO
            most = instrument.round_qty(free + budget / unit)
            if instrument.taker_fee > 0:  # its fee is paid in cash
                fee_cap = max(_ZERO, self.cash) / (price * instrument.taker_fee)
                most = min(most, instrument.round_qty(fee_cap))
            what = (
                f"available margin {budget:.2f} {self.inp.quote} (after this plan's orders, "
                f"leverage {plain(self.leverage(asset))}x)"
            )
        else:
            return qty
        if qty <= most:
            return qty
        self.cut = True
        self.plan.notes.append(
            f"{asset}: {leg} {side} of {qty * price:.2f} cut to {most * price:.2f}: {what}"
        )
        return most

    def _reduces(self, asset: str, side: Side) -> bool:
        """Whether a perp order on ``side`` shrinks the position (it then needs no margin; the
        planner splits flips into a reduce-only part and an opening part)."""
        held = self._perp_left.get(asset, _ZERO)
        return held != 0 and (held > 0) == (side == "sell")

    def _commit(self, order: _Order, qty: Decimal) -> None:
        """Book what ``qty`` of ``order`` will take from (or give back to) the plan's cash and
        margin."""
        asset, leg, side, price, instrument, _ = order
        notional = qty * price
        fee = instrument.taker_fee * notional
        if leg == "spot":
            flow = -notional - fee if side == "buy" else notional - fee
            self.cash += flow
            self.available += flow
            self.gross += notional if side == "buy" else -notional
            return
        held = self._perp_left.get(asset, _ZERO)
        signed = qty if side == "buy" else -qty
        state = self.states.get(asset)
        if self._reduces(asset, side) and state is not None and state.perp_qty != 0:
            closed = min(qty, abs(held)) / abs(state.perp_qty)
            self.cash += state.perp_unrealized_pnl * closed  # realised into the wallet
        growth = abs(held + signed) - abs(held)
        self.available -= growth * price / self.leverage(asset)
        self.gross += growth * price
        self.cash -= fee
        self.available -= fee
        self._perp_left[asset] = held + signed

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
        """Expected cost of a perp trade per unit notional (see :meth:`_perp_cost_parts`)."""
        fee, funding, basis = self._perp_cost_parts(asset, side)
        return fee + funding + basis

    def _perp_cost_parts(self, asset: str, side: Side) -> tuple[Decimal, Decimal, Decimal]:
        """Taker fee, funding over the horizon (a long pays positive funding, a short receives
        it) and the basis at the time of the decision (the perp's premium over spot: a long
        bought at a premium gives it up as the perp converges to spot, a short sold at a premium
        earns it), each per unit notional."""
        inst = self.inp.instruments.get(perp_symbol(asset, self.inp.quote))
        fee = inst.taker_fee if inst is not None else Decimal("0.0005")
        rate = self.inp.funding_rates.get(asset, _ZERO) * self.inp.funding_horizon_periods
        state = self.states.get(asset)
        basis = _ZERO
        if state is not None and state.spot_price > 0 and state.perp_price > 0:
            basis = state.perp_price / state.spot_price - 1
        sign = 1 if side == "buy" else -1
        return fee, rate * sign, basis * sign

    def _spot_cost(self, asset: str) -> Decimal:
        inst = self.inp.instruments.get(spot_symbol(asset, self.inp.quote))
        return inst.taker_fee if inst is not None else Decimal("0.001")

    # ------------------------------------------------------------------ per-asset logic

    def asset(self, asset: str, target: ResolvedTarget) -> None:
        state = self.states.get(asset) or _empty_state(asset)
        if target.spot is not None:
            self._two_legs(state, target)
            return
        width = self.inp.budget.width(asset, target.net)
        low, high = target.net - width, target.net + width
        weight = state.weight
        action: AssetAction = "hold"
        breached = weight > high or weight < low
        if self.everything and not breached:
            delta = target.net * self.nav - state.net_exposure
            if delta != 0:
                self.plan.notes.append(
                    f"{asset} weight {_pct(weight)} inside {_pct(target.net)} ± {_pct(width)}, "
                    f"back to target ({self.everything}): trade {delta:+.2f} {self.inp.quote}"
                )
                action = self._route(state, delta, target, self.everything)
        elif breached:
            goal = (
                target.net
                if self.everything
                else _goal(weight, target.net, width, self.inp.rebalance_to)
            )
            delta = goal * self.nav - state.net_exposure
            why = (
                f"{asset} weight {_pct(weight)} outside {_pct(target.net)} ± {_pct(width)}: "
                f"trade {delta:+.2f} {self.inp.quote} to {_pct(goal)}"
            )
            self.plan.notes.append(why)
            action = self._route(state, delta, target, "band breach")
        elif self._effective_mode(target) != "spot":
            if self._unwind_due(state):
                action = self._unwind(state)
            elif state.perp_qty < 0:
                action = self._unwind_short(state, target, target.net + width * UNWIND_FRACTION)
        self.plan.assets.append(_decision(asset, weight, target.net, low, high, action))

    def breached(self, target: ResolvedTarget) -> bool:
        """Whether ``target.asset`` is out of its band (either leg, for explicit spot legs)."""
        state = self.states.get(target.asset) or _empty_state(target.asset)
        budget = self.inp.budget
        if target.spot is None:
            legs = [(state.weight, target.net)]
        else:
            perp_weight = state.perp_notional / self.nav if self.nav else _ZERO
            legs = [(state.spot_weight, target.spot), (perp_weight, target.net - target.spot)]
        for weight, goal in legs:
            width = budget.width(target.asset, goal)
            if not goal - width <= weight <= goal + width:
                return True
        return False

    def _effective_mode(self, target: ResolvedTarget) -> Mode:
        if target.prefer == "spot":
            return "spot"
        if target.prefer == "perp":
            return "overlay"
        return self.inp.mode

    def _route(
        self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str
    ) -> AssetAction:
        mode = self._effective_mode(target)
        if mode == "spot":
            return self._spot(state, delta, target, why)
        if mode == "overlay":
            return self._overlay(state, delta, why)
        return self._auto(state, delta, target, why)

    def _sellable(self, state: AssetState, target: ResolvedTarget) -> Decimal:
        """Spot value above the core floor (what a spot sale may take)."""
        return max(_ZERO, state.spot_value - target.core_floor * self.nav)

    def _spot(
        self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str
    ) -> AssetAction:
        """Trade spot by ``delta``: sales stop at the core floor, purchases at the cash."""
        if delta < 0:
            sellable = self._sellable(state, target)
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
        """Cash left for a spot purchase: free cash plus this plan's sale proceeds, less what its
        orders commit and the reserve, less fees."""
        return self.spot_budget() / (1 + self._spot_cost(asset))

    def _overlay(self, state: AssetState, delta: Decimal, why: str) -> AssetAction:
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

    def _perp(self, state: AssetState, delta: Decimal, why: str) -> Decimal:
        """Change the perp exposure by ``delta``, split into a reduce-only part (towards zero) and
        an opening part, so a flip through zero is two orders. Returns the change planned."""
        current = state.perp_notional
        reducing = _ZERO
        if current != 0 and (delta > 0) != (current > 0):
            reducing = min(abs(delta), abs(current)) * (1 if delta > 0 else -1)
        planned = _ZERO
        if reducing != 0:
            planned += self.order(state.asset, "perp", reducing, f"{why} (reduce)", reduce=True)
        opening = delta - reducing
        if opening != 0:
            planned += self.order(state.asset, "perp", opening, why)
        return planned

    def _auto(
        self, state: AssetState, delta: Decimal, target: ResolvedTarget, why: str
    ) -> AssetAction:
        """Unwind an opposite perp position first, then use the cheaper instrument; what the
        account does not let the cheaper one take goes to the other, and every override of the
        cost choice (regime, floor, cash, margin) is named."""
        opposite = state.perp_notional if delta < 0 else -state.perp_notional
        first = min(abs(delta), max(_ZERO, opposite)) * (1 if delta > 0 else -1)
        if first != 0:
            self._perp(state, first, f"{why}: unwind perp first")
        rest = delta - first
        if rest == 0:
            return "unwind perp"
        side: Side = "buy" if rest > 0 else "sell"
        spot_cost = self._spot_cost(state.asset)
        fee, funding, basis = self._perp_cost_parts(state.asset, side)
        perp_cost = fee + funding + basis
        longs_off = side == "buy" and not self.inp.budget.allow_overlay_longs
        cheaper = "spot" if spot_cost <= perp_cost else "perp"
        capped = cheaper == "perp" and not longs_off and self._perp_breaks_gross_cap(state, rest)
        prefer_spot = cheaper == "spot" or longs_off or capped
        override = ""
        if longs_off and cheaper == "perp":
            override = f", overridden: overlay longs are off ({self.inp.budget.regime} regime)"
        elif capped:
            override = (
                f", overridden: a perp {side} would take gross leverage above the cap "
                f"{self.inp.budget.max_gross_leverage}x, spot does not"
            )
        self.plan.notes.append(
            f"{state.asset}: auto {side} {abs(rest):.2f}: spot cost {_pct(spot_cost)}, perp cost "
            f"{_pct(perp_cost)} (fee {_pct(fee)} + funding over "
            f"{self.inp.funding_horizon_periods} periods {_pct(funding)} + basis {_pct(basis)})"
            f" -> {'spot' if prefer_spot else 'perp'} first{override}"
        )
        if prefer_spot:
            return self._auto_spot_first(state, rest, target, why, longs_off=longs_off)
        self.cut = False
        planned = self._perp(state, rest, f"{why}: perp {side} (cheaper)")
        left = rest - planned
        if not self.cut:
            return _PERP_FIRST[side]
        limit = (
            self._sellable(state, target) if side == "sell" else self._spendable_cash(state.asset)
        )
        spot_part = min(abs(left), limit) * (1 if left > 0 else -1)
        self.plan.notes.append(
            f"{state.asset}: overridden by margin: the perp takes {abs(planned):.2f} of "
            f"{abs(rest):.2f}, {abs(spot_part):.2f} routed to spot"
        )
        if spot_part == 0:
            return _PERP_FIRST[side]
        self.order(state.asset, "spot", spot_part, f"{why}: {side} spot (margin limit)")
        return _PERP_THEN_SPOT[side]

    def _perp_breaks_gross_cap(self, state: AssetState, rest: Decimal) -> bool:
        """Whether opening ``rest`` on the perp (beyond any opposite position, already unwound)
        would take gross leverage above the budget's cap while a spot trade would not (a spot
        sale shrinks gross; only sales differ, a purchase adds the same either way)."""
        cap = self.inp.budget.max_gross_leverage
        if cap is None or rest >= 0 or self.nav <= 0 or state.spot_value <= 0:
            return False
        return self.gross + abs(rest) > cap * self.nav

    def _auto_spot_first(
        self, state: AssetState, rest: Decimal, target: ResolvedTarget, why: str, *, longs_off: bool
    ) -> AssetAction:
        side: Side = "buy" if rest > 0 else "sell"
        limit = (
            self._sellable(state, target) if side == "sell" else self._spendable_cash(state.asset)
        )
        spot_part = min(abs(rest), limit) * (1 if rest > 0 else -1)
        self.order(state.asset, "spot", spot_part, f"{why}: {side} spot (cheaper)")
        rest -= spot_part
        if rest == 0:
            return _SPOT_FIRST[side]
        limited_by = "the core floor" if side == "sell" else "cash"
        if longs_off:
            self.plan.notes.append(
                f"{state.asset}: {limited_by} limits spot to {abs(spot_part):.2f}; overlay longs "
                f"are off ({self.inp.budget.regime} regime), the rest {abs(rest):.2f} is not traded"
            )
            return _SPOT_FIRST[side]
        self.plan.notes.append(
            f"{state.asset}: overridden by {limited_by}: spot takes {abs(spot_part):.2f}, the "
            f"perp the rest {abs(rest):.2f}"
        )
        self._perp(state, rest, f"{why}: perp for the rest (floor or cash limit)")
        return _SPOT_THEN_PERP[side]

    # ------------------------------------------------------------------ explicit spot legs

    def _two_legs(self, state: AssetState, target: ResolvedTarget) -> None:
        assert target.spot is not None
        budget = self.inp.budget
        perp_target = target.net - target.spot
        perp_weight = state.perp_notional / self.nav if self.nav else _ZERO
        actions: list[AssetAction] = []
        for leg, weight, goal_t in (
            ("spot", state.spot_weight, target.spot),
            ("perp", perp_weight, perp_target),
        ):
            width = budget.width(state.asset, goal_t)
            inside = goal_t - width <= weight <= goal_t + width
            if inside and not self.everything:
                continue
            goal = (
                goal_t if self.everything else _goal(weight, goal_t, width, self.inp.rebalance_to)
            )
            delta = (goal - weight) * self.nav
            if delta == 0:
                continue
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
        width = budget.width(state.asset, target.net)
        self.plan.assets.append(
            _decision(
                state.asset,
                state.weight,
                target.net,
                target.net - width,
                target.net + width,
                _two_legs_action(actions),
            )
        )

    # ------------------------------------------------------------------ unwind, contraction

    def _unwind_due(self, state: AssetState) -> bool:
        if state.perp_qty <= 0 or state.perp_entry_price <= 0:
            return False
        return state.perp_price >= state.perp_entry_price * (1 + self.inp.unwind_profit)

    def _unwind(self, state: AssetState) -> AssetAction:
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

    def _unwind_short(
        self, state: AssetState, target: ResolvedTarget, inside: Decimal
    ) -> AssetAction:
        """Case A completion, for an asset whose net weight is inside its band: the overlay short
        comes off when the asset's spot weight is back well inside the band, at most ``inside``
        (target + ``UNWIND_FRACTION`` of the band's width: closing it leaves the weight inside, not
        on the edge where the next tick would short it again), or when the price has fallen back
        ``unwind_profit`` below the short's entry (then the same notional of spot is sold, down to
        the core floor, so the net exposure stays where it is)."""
        notional = -state.perp_notional
        if state.spot_weight <= inside:
            self.plan.notes.append(
                f"{state.asset}: spot weight {_pct(state.spot_weight)} back inside the band "
                f"(≤ {_pct(inside)}): close the case A short of {notional:.2f} (case A unwind)"
            )
            self.order(
                state.asset, "perp", notional, "unwind: spot weight back in band", reduce=True
            )
            return "unwind short"
        entry = state.perp_entry_price
        if entry <= 0 or state.perp_price > entry * (1 - self.inp.unwind_profit):
            return "hold"
        sale = min(notional, self._sellable(state, target))
        inst = self.inp.instruments.get(perp_symbol(state.asset, self.inp.quote))
        shown = inst.round_price(entry) if inst is not None else entry
        self.plan.notes.append(
            f"{state.asset}: price {state.perp_price} fell {_pct(1 - state.perp_price / entry)} "
            f"below the short's entry {shown}: close the case A short of {notional:.2f} and "
            f"sell {sale:.2f} of spot (case A unwind)"
        )
        self.order(state.asset, "perp", notional, "unwind: price fell back", reduce=True)
        self.order(state.asset, "spot", -sale, "unwind: sell the excess spot")
        return "unwind short"

    def close_longs(self, why: str) -> None:
        for state in self.inp.snapshot.assets:
            if state.perp_qty > 0:
                self._perp(state, -state.perp_notional, why)

    def deleverage(
        self, state: AssetState, target: ResolvedTarget | None, factor: Decimal, why: str
    ) -> None:
        cut = state.net_exposure * (1 - factor)  # > 0: reduce a net long; < 0: a net short
        if cut == 0:
            return
        perp = state.perp_notional
        from_perp = _ZERO
        if perp != 0 and (perp > 0) == (cut > 0):
            from_perp = min(abs(cut), abs(perp)) * (1 if cut > 0 else -1)
            self.order(state.asset, "perp", -from_perp, f"{why}: reduce perp", reduce=True)
        rest = cut - from_perp
        if rest > 0:
            floor = target.core_floor if target is not None else _ZERO
            sale = min(rest, max(_ZERO, state.spot_value - floor * self.nav))
            self.order(state.asset, "spot", -sale, f"{why}: sell spot")
        self.plan.assets.append(
            _decision(state.asset, state.weight, state.weight * factor, _ZERO, _ZERO, "deleverage")
        )

    def close_all_perps(self, why: str) -> None:
        for state in self.inp.snapshot.assets:
            if state.perp_qty != 0:
                self._perp(state, -state.perp_notional, why)


def _two_legs_action(actions: list[AssetAction]) -> AssetAction:
    return _TWO_LEGS[tuple(actions)]


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
    asset: str, weight: Decimal, target: Decimal, low: Decimal, high: Decimal, action: AssetAction
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
    0) and plan the trades back: only the breached ones (scope ``"breached"``), or every asset
    when any is breached (scope ``"all"``) or at a calendar date."""
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
    if inp.calendar_date:
        planner.everything = "calendar date"
        planner.plan.notes.append("calendar date: every asset back to target")
    elif inp.scope == "all":
        out = [a for a in assets if planner.breached(targets[a])]
        if out:
            planner.everything = f"scope all: {', '.join(out)} out of band"
            planner.plan.notes.append(f"{planner.everything}: every asset back to target")
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


def plan_deleverage(inp: PlanInputs, decision_id: str, why: str, target_leverage: Decimal) -> Plan:
    """Bring the mandate's leverage (Σ |net exposure| / NAV) down to ``target_leverage`` with
    reducing trades only: every asset's net exposure is scaled by the same factor, taking it
    first off a perp position on the same side (reduce-only) and then, for a net long, off spot
    above the core floor of ``inp.targets``. Nothing is planned at or below the target."""
    planner = _Planner(inp, decision_id)
    nav = inp.snapshot.nav
    gross_net = sum((abs(a.net_exposure) for a in inp.snapshot.assets), _ZERO)
    if nav <= 0 or gross_net <= target_leverage * nav:
        planner.plan.notes.append(
            f"net leverage {_ratio(gross_net, nav)} is within {target_leverage}: nothing to reduce"
        )
        return planner.plan
    factor = target_leverage * nav / gross_net
    planner.plan.notes.append(
        f"{why}: net leverage {_ratio(gross_net, nav)} above {target_leverage}: every net "
        f"exposure scaled by {factor:.4f}"
    )
    for state in sorted(inp.snapshot.assets, key=lambda a: a.asset):
        planner.deleverage(state, inp.targets.get(state.asset), factor, why)
    return planner.plan


def plan_reduce(
    inp: PlanInputs, decision_id: str, why: str, asset: str, delta: Decimal, *, perp_only: bool
) -> Plan:
    """One asset's net exposure changed by ``delta`` quote units toward zero, with reducing trades
    only: off its perp position first (reduce-only), then, unless ``perp_only`` (a perp near
    liquidation or margin above its limit: only the perp frees margin), off spot above the core
    floor. For the risk actor's :class:`~ballast.engine.kernel.events.DeleverageRequired`."""
    planner = _Planner(inp, decision_id)
    state = next((a for a in inp.snapshot.assets if a.asset == asset), None)
    if state is None or delta == 0:
        planner.plan.notes.append(f"{asset}: nothing held, {why}: nothing to reduce")
        return planner.plan
    if perp_only:
        if state.perp_notional != 0 and (state.perp_notional > 0) == (delta < 0):
            cut = min(abs(delta), abs(state.perp_notional))
            planner.order(
                asset, "perp", cut if delta > 0 else -cut, f"{why}: reduce perp", reduce=True
            )
        return planner.plan
    if state.net_exposure == 0 or (state.net_exposure > 0) == (delta > 0):
        planner.plan.notes.append(f"{asset}: {why}: the request does not reduce its net exposure")
        return planner.plan
    factor = max(_ZERO, 1 - abs(delta) / abs(state.net_exposure))
    planner.deleverage(state, inp.targets.get(asset), factor, why)
    return planner.plan


def _ratio(value: Decimal, nav: Decimal) -> str:
    return f"{value / nav:.4f}" if nav > 0 else "n/a"


def plan_flatten(inp: PlanInputs, decision_id: str, why: str) -> Plan:
    """Kill switch: close every perp position with reduce-only orders."""
    planner = _Planner(inp, decision_id)
    planner.close_all_perps(why)
    return planner.plan
