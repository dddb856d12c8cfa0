"""The cost basis of a linear perpetual position: the one implementation, shared by the portfolio
ledger and the simulated exchange (and the pre-trade projection of a fill).

A position (one-way mode) is a signed ``qty`` and a signed ``cost``, the cost basis of the open
quantity (``qty × entry``). Kept as a cost basis so that every amount stays exact:

- entry price = ``cost / qty`` (28 significant digits): the weighted average of the fills that
  opened or increased the position; unchanged by a reduce; the fill price after a flip; 0 flat;
- unrealised PnL at mark ``M`` = ``qty × M − cost``;
- a fill of signed size ``d`` (> 0 buy) at price ``P`` realises ``cost_after − cost_before −
  d × P``: zero on an open or increase, ``closed × (P − entry)`` (signed) on a reduce, close or
  flip. Summed over the fills, realised + unrealised is exactly ``Σ d × (M − P)``: the
  mark-to-market of the fills, to the last digit.

Open or increase: ``cost + d × P``. Close or flip through zero: the old position is realised in
full and the remainder opens at ``P`` (``cost = qty_after × P``). Reduce: the cost basis kept is
``cost × qty_after / qty_before``, rounded (half even) to 1e-12 quote units, so that amounts keep
a bounded number of digits; that rounding moves into the realised PnL, never lost.

Everything but that rounding and the entry price is computed exactly (100 digits, ``Inexact``
trapped: an amount that would need more raises :class:`decimal.Inexact` instead of rounding),
whatever the caller's decimal context.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow
from typing import Final

COST_QUANTUM: Final = Decimal("1e-12")
"""The cost basis kept after a partial reduce is rounded to this many quote units."""

_ZERO: Final = Decimal(0)
_EXACT: Final = Context(prec=100, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])
_RATIO: Final = Context(prec=28, traps=[InvalidOperation, DivisionByZero, Overflow])
"""Only ever used through its own methods: its flags are never read."""


@dataclass(slots=True)
class Position:
    """A linear perpetual position: signed ``qty`` and signed cost basis ``cost``."""

    qty: Decimal = _ZERO
    cost: Decimal = _ZERO

    @property
    def entry_price(self) -> Decimal:
        return _RATIO.divide(self.cost, self.qty) if self.qty else _ZERO

    def unrealized(self, mark: Decimal) -> Decimal:
        """``qty × mark − cost``."""
        return _EXACT.subtract(_EXACT.multiply(self.qty, mark), self.cost)

    def trade(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill of ``signed_qty`` (> 0 buy) at ``price``; return the PnL it realises."""
        qty, cost = self.qty, self.cost
        new_qty, new_cost = traded(qty, cost, signed_qty, price)
        self.qty, self.cost = new_qty, new_cost
        return realized(cost, new_cost, signed_qty, price)


def traded(
    qty: Decimal, cost: Decimal, signed_qty: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """The quantity and cost basis after a fill of ``signed_qty`` at ``price``."""
    new_qty = _EXACT.add(qty, signed_qty)
    if qty == 0 or (qty > 0) == (signed_qty > 0):
        return new_qty, _EXACT.add(cost, _EXACT.multiply(signed_qty, price))
    if new_qty == 0 or (new_qty > 0) != (qty > 0):
        return new_qty, _EXACT.multiply(new_qty, price)
    kept = _RATIO.divide(_RATIO.multiply(cost, new_qty), qty)
    return new_qty, _RATIO.quantize(kept, COST_QUANTUM)


def realized(cost: Decimal, new_cost: Decimal, signed_qty: Decimal, price: Decimal) -> Decimal:
    """The PnL a fill of ``signed_qty`` at ``price`` realised: ``new_cost − cost − d × P``."""
    return _EXACT.subtract(_EXACT.subtract(new_cost, cost), _EXACT.multiply(signed_qty, price))
