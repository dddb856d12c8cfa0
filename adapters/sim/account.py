"""The unified account of the simulated exchange: wallet balances and perpetual positions.

Wallet: ``free`` and ``locked`` per asset. Locked funds back resting spot limit orders (the quote
for buys, the base for sells); they still belong to the account.

Position (one per perp symbol, one-way mode, cross margin): signed ``qty`` and signed ``cost``,
the cost basis of the open quantity (``qty × entry``): the engine's one cost-basis
implementation, :class:`ballast.engine.trading.position.Position` (entry price, unrealised and
realised PnL, the rounding of a partial reduce), the same the portfolio ledger books with.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

_ZERO = Decimal(0)


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
