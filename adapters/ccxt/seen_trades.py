"""The trade ids a venue already emitted as fills: bounded, for a process that runs for weeks.

A fill may come more than once (the REST reply of an order, the user stream, a catch-up that
reads again a margin before the latest fill), so a venue drops a trade id it already emitted.
Remembering every id ever seen grows without end; only the ids a catch-up can bring again are
needed: trades from ``keep_ms`` before the latest fill of their symbol on (a catch-up reads from
its margin before that fill, ``keep_ms`` must be at least that margin).

So an id is forgotten once its trade is ``keep_ms`` older than its symbol's latest fill, and the
trade's time becomes the symbol's dedup boundary: a trade of that symbol older than the newest
forgotten one is taken as seen (only a re-read can bring it: a catch-up never reads that far
back). Trades without a time stay until ``max_ids`` is passed, then the oldest id goes whatever
its age (a hard bound; far more than any catch-up window holds). The ids a restart seeds (the
journal's fills within its catch-up margin: a bounded set) are kept.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

MAX_IDS: Final = 100_000
"""The hard bound on the ids remembered (beyond what ``keep_ms`` would keep)."""


class SeenTrades:
    """Trade ids already emitted (module docstring)."""

    def __init__(
        self, seeded: Collection[str] = (), *, keep_ms: int, max_ids: int = MAX_IDS
    ) -> None:
        if keep_ms < 0 or max_ids < 1:
            raise ValueError(f"keep_ms >= 0 and max_ids >= 1, got {keep_ms}, {max_ids}")
        self.keep_ms = keep_ms
        self.max_ids = max_ids
        self._seeded = frozenset(seeded)
        self._ids: dict[str, tuple[str, int | None]] = {}
        """Trade id → (symbol, trade time in ms), in the order they were added."""
        self._latest_ms: dict[str, int] = {}
        """Per symbol: the latest fill time added (never past the clock: the caller's)."""
        self._before_ms: dict[str, int] = {}
        """Per symbol: trades older than this were forgotten; one such is taken as seen."""

    def __len__(self) -> int:
        return len(self._seeded) + len(self._ids)

    def seen(self, trade_id: str, symbol: str, ts_ms: int | None) -> bool:
        """Whether the trade was emitted already (or is older than what is remembered)."""
        if trade_id in self._ids or trade_id in self._seeded:
            return True
        before = self._before_ms.get(symbol)
        return before is not None and ts_ms is not None and ts_ms < before

    def add(self, trade_id: str, symbol: str, ts_ms: int | None, latest_ms: int | None) -> None:
        """Remember a trade just emitted: ``ts_ms`` its own time, ``latest_ms`` the time it
        moves its symbol's latest fill to (the trade's, never past the clock), if it has one."""
        self._ids[trade_id] = (symbol, ts_ms)
        if latest_ms is not None:
            self._latest_ms[symbol] = max(self._latest_ms.get(symbol, latest_ms), latest_ms)
        self._forget()

    def _forget(self) -> None:
        ids = self._ids
        while ids:
            trade_id, (symbol, ts_ms) = next(iter(ids.items()))
            if len(ids) <= self.max_ids:
                latest = self._latest_ms.get(symbol)
                if ts_ms is None or latest is None or ts_ms >= latest - self.keep_ms:
                    return  # still within a catch-up's reach (the next ones are newer)
            del ids[trade_id]
            if ts_ms is not None:
                self._before_ms[symbol] = max(self._before_ms.get(symbol, 0), ts_ms + 1)
