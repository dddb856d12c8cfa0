"""The venue's own request-weight budget (instead of ccxt's blocking rate limiter).

Binance counts the weight of each REST request per IP in fixed one-minute windows and answers
HTTP 429 (``-1003``, with ``Retry-After``) past its limit; repeated abuse bans the IP (418). The
budget of one API is ``limit × safety`` per window. Before each call the venue awaits
:meth:`WeightBudget.acquire` with the call's weight: within the budget it returns at once,
otherwise it waits for the next window. Every response resyncs the count from the exchange's own
header (``X-MBX-USED-WEIGHT-1M``: the weight it counted in its window, other clients of the key
included), and a 429/418 blocks the budget until its ``Retry-After`` has passed.

Windows follow the injected clock (``clock.now_ns() // window``), the same clock the exchange
stamps its answers with on loopback, so a test on a simulated clock moves to the next window by
advancing the clock. Waiting polls the clock (a simulated clock does not move by sleeping).
"""

from __future__ import annotations

import asyncio
import math

from ballast.engine.kernel.clock import NS_PER_MINUTE, NS_PER_SECOND, Clock

_NO_RETRY_AFTER_S = 1.0
"""The wait after a 429/418 that named none (and the rest of the window)."""
_POLL_S = 0.02
"""How often a waiting call looks at the clock again (at most; less when the wait is shorter)."""


class WeightBudget:
    """One API's request weight per window; see the module docstring."""

    def __init__(
        self, limit: int, safety: float, clock: Clock, *, window_ns: int = NS_PER_MINUTE
    ) -> None:
        if limit <= 0 or not 0 < safety <= 1:
            raise ValueError(f"weight limit {limit} × safety {safety}: both must be positive")
        self.limit = limit
        self.safety = safety
        self.budget = max(1, math.floor(limit * safety))
        self.clock = clock
        self.window_ns = window_ns
        self.used = 0
        """Weight spent in the current window (ours, or the exchange's count if higher)."""
        self.waits = 0
        """Calls that had to wait for a window (or a Retry-After)."""
        self.rate_limited = 0
        """429/418 answers seen."""
        self._window = clock.now_ns() // window_ns
        self._blocked_until_ns = 0

    def set_limit(self, limit: int) -> None:
        """The limit the exchange advertises (its ``exchangeInfo``), instead of the one assumed
        until it was read."""
        if limit <= 0:
            raise ValueError(f"weight limit {limit}: must be positive")
        self.limit = limit
        self.budget = max(1, math.floor(limit * self.safety))

    def _roll(self) -> int:
        now = self.clock.now_ns()
        window = now // self.window_ns
        if window != self._window:
            self._window = window
            self.used = 0
        return now

    def current(self) -> int:
        """Weight used in the current window."""
        self._roll()
        return self.used

    async def acquire(self, weight: int) -> None:
        """Take ``weight`` from the budget, waiting for the next window when it would exceed it
        (a call heavier than the whole budget runs alone at the start of a window)."""
        waited = False
        while True:
            now = self._roll()
            if now >= self._blocked_until_ns and (
                self.used + weight <= self.budget or self.used == 0
            ):
                self.used += weight
                return
            if not waited:
                waited = True
                self.waits += 1
            until = max(self._blocked_until_ns, (self._window + 1) * self.window_ns)
            await asyncio.sleep(min(_POLL_S, max(0.0, (until - now) / NS_PER_SECOND)))

    def observe(self, used: int) -> None:
        """The exchange's own count of this window (a response header): never below ours, so
        requests still in flight stay counted."""
        self._roll()
        self.used = max(self.used, used)

    def block(self, retry_after_s: float | None) -> None:
        """A 429/418: no call before ``retry_after_s`` from now, as the exchange said (its
        weight count, a response header, still resyncs the window); without a Retry-After, not
        before a second from now and the next window."""
        self.rate_limited += 1
        wait_s = _NO_RETRY_AFTER_S if retry_after_s is None else retry_after_s
        until = self.clock.now_ns() + int(max(wait_s, 0.0) * NS_PER_SECOND)
        self._blocked_until_ns = max(self._blocked_until_ns, until)
        self._roll()
        if retry_after_s is None:
            self.used = max(self.used, self.budget)
