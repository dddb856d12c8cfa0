"""The unified account of the simulated exchange: wallet balances and perpetual positions.

Wallet: ``free`` and ``locked`` per asset. Locked funds back resting spot limit orders (the quote
for buys, the base for sells); they still belong to the account.

Position (one per perp symbol, one-way mode, cross margin): signed ``qty`` and signed ``cost``
(the cost basis of the open quantity, ``qty × entry``). Kept as a cost basis so that every
amount that reaches the wallet is exact:

- entry price = ``cost / qty``: the weighted average of the fills that opened or increased the
  position; unchanged by a reduce (the cost basis kept after a partial reduce is
  ``cost × remaining / before``, rounded to 12 decimal places so that wallet amounts keep a
  bounded number of digits and stay exact); the fill price after a flip; 0 when flat;
- unrealised PnL at mark ``M`` = ``qty × M − cost``;
- a fill of signed size ``d`` at price ``P`` realises ``cost_after − cost_before − d × P``: zero on
  an increase, ``closed × (P − entry)`` (signed) on a reduce, close or flip. This keeps
  ``realised + unrealised`` equal, to the last digit, to the mark-to-market of the fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

_ZERO = Decimal(0)
_COST_QUANTUM = Decimal("1e-12")


@dataclass(slots=True)
class Position:
    qty: Decimal = _ZERO
    cost: Decimal = _ZERO

    @property
    def entry(self) -> Decimal:
        return self.cost / self.qty if self.qty else _ZERO

    def unrealized(self, mark: Decimal) -> Decimal:
        return self.qty * mark - self.cost if self.qty else _ZERO

    def apply(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Trade ``signed_qty`` (> 0 buy) at ``price``; return the realised PnL."""
        old_qty, old_cost = self.qty, self.cost
        new_qty = old_qty + signed_qty
        if old_qty == 0 or (old_qty > 0) == (signed_qty > 0):
            new_cost = old_cost + signed_qty * price
        elif new_qty == 0:
            new_cost = _ZERO
        elif (new_qty > 0) == (old_qty > 0):
            new_cost = (old_cost * new_qty / old_qty).quantize(_COST_QUANTUM)
        else:
            new_cost = new_qty * price
        self.qty, self.cost = new_qty, new_cost
        return new_cost - old_cost - signed_qty * price


class Wallet:
    """Balances by asset, free and locked (absolute amounts)."""

    def __init__(self, balances: Mapping[str, Decimal]) -> None:
        self._free: dict[str, Decimal] = dict(balances)
        self._locked: dict[str, Decimal] = {}

    def free(self, asset: str) -> Decimal:
        return self._free.get(asset, _ZERO)

    def locked(self, asset: str) -> Decimal:
        return self._locked.get(asset, _ZERO)

    def total(self, asset: str) -> Decimal:
        return self.free(asset) + self.locked(asset)

    def assets(self) -> list[str]:
        return sorted(set(self._free) | set(self._locked))

    def add(self, asset: str, amount: Decimal) -> None:
        """Add ``amount`` (negative: remove) to the free balance."""
        self._free[asset] = self.free(asset) + amount

    def lock(self, asset: str, amount: Decimal) -> None:
        self._free[asset] = self.free(asset) - amount
        self._locked[asset] = self.locked(asset) + amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        self._locked[asset] = self.locked(asset) - amount
        self._free[asset] = self.free(asset) + amount
