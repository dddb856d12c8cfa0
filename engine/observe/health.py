"""Feed health and readiness: what ``/readyz`` answers and what the market-data age metrics read.

:class:`Health` is plain state, fed by the metrics exporter from bus events (it subscribes to
nothing itself, so market data is handled once for both):

- per symbol, the newest ``ts_event`` of market data seen (quotes, trades, bars, mark prices) and
  whether the risk actor flagged it stale (a :class:`~ballast.engine.kernel.events.DataStale` not
  yet followed by fresh data);
- whether the venue is reconciled: its instruments were loaded (``InstrumentsLoaded``) and its
  account was loaded (at least one ``BalanceUpdated``);
- whether trading is halted: the kill switch is engaged, or the strategy failed and was halted;
- a live venue's links: which streams are down (``VenueConnectionChanged``), and which
  reconciliation mismatches are open (``ReconcileMismatch`` until ``ReconcileResolved``: trading
  is halted meanwhile);
- why the risk actor holds intents on a live venue (:attr:`Health.trading_held`, set by the live
  run: from the session's start or a user-stream gap until the venue caught up and reconciled).

Ages are measured on the engine's clock: on a simulated clock they are simulated ages.

Ready means: reconciled, every venue stream up, every required symbol has data, no symbol is
stale (older than ``stale_after_s`` or flagged), and not halted. Otherwise
:meth:`Health.readiness` names why, with short codes (``instruments_not_loaded``,
``account_not_loaded``, ``venue_down:VENUE:STREAM``, ``reconcile_mismatch:SUBJECT``,
``no_market_data``, ``no_data:SYMBOL``, ``data_stale:SYMBOL``, ``kill_switch:REASON``,
``strategy_halted``, ``journal_unwritable`` (disk full or read-only: no order is sent until the
journal can be written), ``trading_held:start`` / ``trading_held:reconciling`` /
``trading_held:gap:VENUE:CHANNEL``).
``kill_switch:handler_failed`` means a handler of an actor that owns money state (portfolio, risk,
router) raised: the metric ``ballast_handler_errors_total{actor}`` says which.
``kill_switch:key_refused`` means the venue refused an order for the API key itself (invalid, or
without the permission to trade): the journal's ``KillSwitchTriggered`` names the order and the
venue's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.redaction import redact

_MAX_CODE: Final = 64


@dataclass(frozen=True)
class Readiness:
    """The answer of ``/readyz``: ready, or the reasons it is not."""

    ready: bool
    reasons: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        status = "ready" if self.ready else "not_ready"
        return msgspec.json.encode({"status": status, "reasons": list(self.reasons)})


class Health:
    """Freshness of market data, venue reconciliation and halt state (see the module docstring)."""

    def __init__(
        self, clock: Clock, *, stale_after_s: float = 30.0, symbols: Iterable[str] = ()
    ) -> None:
        self.clock = clock
        self.stale_after_ns = int(stale_after_s * NS_PER_SECOND)
        self.required = frozenset(symbols)
        self.last_data_ns: dict[str, int] = {}
        self.flagged_stale: set[str] = set()
        self.instruments_loaded = False
        self.account_loaded = False
        self.kill_switch: str | None = None
        self.strategy_halted = False
        self.links_down: set[str] = set()
        """``venue:stream`` of the live venue's streams that are down."""
        self.mismatches: set[str] = set()
        """Subjects of the open reconciliation mismatches."""
        self.journal_error: str | None = None
        """Why the journal cannot be written (``JournalWriteChanged``), None while it can."""
        self.trading_held: Callable[[], str | None] | None = None
        """Why intents are held (a short code), None when they are not; set by the composition
        root to read the risk actor's hold
        (:attr:`ballast.engine.trading.risk.RiskManager.held`)."""

    # ------------------------------------------------------------------ updates

    def on_data(self, symbol: str, ts_event: int) -> None:
        """Market data for ``symbol`` with this event time (the hot path: keep it small)."""
        last = self.last_data_ns.get(symbol)
        if last is None or ts_event > last:
            self.last_data_ns[symbol] = ts_event
        if self.flagged_stale:
            self.flagged_stale.discard(symbol)

    def on_stale(self, symbol: str) -> None:
        self.flagged_stale.add(symbol)

    def on_link(self, link: str, up: bool) -> None:
        """A venue stream (``venue:stream``) went up or down."""
        if up:
            self.links_down.discard(link)
        else:
            self.links_down.add(link)

    def on_mismatch(self, subject: str | None) -> None:
        """A reconciliation mismatch on ``subject`` opened; None: all were resolved."""
        if subject is None:
            self.mismatches.clear()
        else:
            self.mismatches.add(subject)

    def on_kill_switch(self, reason: str | None) -> None:
        """``reason`` of the trigger, or None when it was reset."""
        self.kill_switch = None if reason is None else _code(reason)

    # ------------------------------------------------------------------ views

    def symbols(self) -> list[str]:
        """Every symbol required or seen, sorted."""
        return sorted(self.required | self.last_data_ns.keys())

    def age_s(self, symbol: str, now_ns: int) -> float | None:
        """Seconds since the newest data of ``symbol`` (never negative), None if none was seen."""
        last = self.last_data_ns.get(symbol)
        return None if last is None else max(0, now_ns - last) / NS_PER_SECOND

    def is_stale(self, symbol: str, now_ns: int) -> bool:
        """Flagged stale by the risk actor, older than ``stale_after_s``, or never seen."""
        last = self.last_data_ns.get(symbol)
        if last is None or symbol in self.flagged_stale:
            return True
        return now_ns - last > self.stale_after_ns

    def readiness(self, now_ns: int | None = None) -> Readiness:
        now = self.clock.now_ns() if now_ns is None else now_ns
        reasons = [*self._venue_reasons(), *self._data_reasons(now), *self._halt_reasons()]
        return Readiness(ready=not reasons, reasons=tuple(reasons))

    def _venue_reasons(self) -> list[str]:
        reasons = [] if self.instruments_loaded else ["instruments_not_loaded"]
        if not self.account_loaded:
            reasons.append("account_not_loaded")
        reasons += [f"venue_down:{_code(link)}" for link in sorted(self.links_down)]
        reasons += [f"reconcile_mismatch:{_code(s)}" for s in sorted(self.mismatches)]
        return reasons

    def _data_reasons(self, now_ns: int) -> list[str]:
        symbols = self.symbols()
        if not symbols:
            return ["no_market_data"]
        reasons: list[str] = []
        for symbol in symbols:
            if symbol not in self.last_data_ns:
                reasons.append(f"no_data:{_code(symbol)}")
            elif self.is_stale(symbol, now_ns):
                reasons.append(f"data_stale:{_code(symbol)}")
        return reasons

    def _halt_reasons(self) -> list[str]:
        reasons = [] if self.kill_switch is None else [f"kill_switch:{self.kill_switch}"]
        if self.journal_error is not None:
            reasons.append("journal_unwritable")
        held = self.trading_held() if self.trading_held is not None else None
        if held is not None:
            reasons.append(f"trading_held:{_code(held)}")
        return [*reasons, "strategy_halted"] if self.strategy_halted else reasons


def _code(text: str) -> str:
    """A short, secret-free code for a reason or symbol shown to orchestrators."""
    return redact(text)[:_MAX_CODE]
