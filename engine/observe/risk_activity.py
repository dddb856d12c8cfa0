"""Which risk features acted during a run, recorded from its events (live on the bus, or from a
journal), so that no result is silently shaped by a default.

:class:`RiskActivityRecorder` consumes KillSwitchTriggered and KillSwitchReset (the kill switch,
its re-arms), DataRejected (the market data guard), RiskBudgetChanged (bands and leverage caps
scaled by the regime, timed between portfolio snapshots like the performance's regime time),
DeleverageRequired (reducing trades asked for), IntentApproved with a cut and OrderVetoed (the
pre-trade check), and PortfolioSnapshot (the measured window). :meth:`RiskActivityRecorder.result`
gives a :class:`RiskActivity`; :meth:`RiskActivity.lines` says it in words, or
``no risk feature acted``.

A band or cap counts as scaled while the budget in force differs from the ``normal`` regime's
(the budget every session starts with); the scale is the ratio of the two.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, Final

from ballast.engine.kernel.bus import Bus, Subscription
from ballast.engine.kernel.events import (
    DataRejected,
    DeleverageRequired,
    IntentApproved,
    KillSwitchReset,
    KillSwitchTriggered,
    Message,
    OrderVetoed,
    PortfolioSnapshot,
    RiskBudgetChanged,
)
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.timefmt import ns_to_iso

NO_RISK_ACTED: Final = "no risk feature acted"
_NORMAL: Final = "normal"

Counts = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class KillEpisode:
    """The kill switch fired at ``fired_ns``; ``reset_ns`` when it was reset (by a re-arm or an
    operator, ``reset_by``), None while it stayed on until the end."""

    fired_ns: int
    reason: str
    detail: str
    reset_ns: int | None = None
    reset_by: str = ""


@dataclass(frozen=True, slots=True)
class Scaling:
    """While ``regime`` was in force (``fraction`` of the window) its budget scaled the bands by
    ``band_scale`` and the gross leverage cap by ``leverage_scale`` (1: unchanged)."""

    regime: str
    fraction: float
    band_scale: Decimal
    leverage_scale: Decimal


@dataclass(frozen=True, slots=True)
class Rejection:
    symbol: str
    reason: str
    count: int
    first_ns: int


@dataclass(frozen=True, slots=True)
class RiskActivity:
    """What the risk features did during a run (module docstring)."""

    kills: tuple[KillEpisode, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    scaled: tuple[Scaling, ...] = ()
    deleverage: Counts = ()
    vetoes: Counts = ()
    cuts: Counts = ()

    @property
    def acted(self) -> bool:
        return bool(
            self.kills
            or self.rejected
            or self.scaled
            or self.deleverage
            or self.vetoes
            or self.cuts
        )

    @property
    def rejected_total(self) -> int:
        return sum(r.count for r in self.rejected)

    def lines(self) -> list[str]:
        """One line per feature that acted, or ``[NO_RISK_ACTED]``."""
        if not self.acted:
            return [NO_RISK_ACTED]
        out = [_kill_line(k) for k in self.kills]
        if self.rejected:
            by_reason = Counter[str]()
            for r in self.rejected:
                by_reason[r.reason] += r.count
            out.append(
                f"price guard rejected {self.rejected_total:,} market data points "
                f"({_counts(sorted(by_reason.items()))}), never traded on"
            )
            out.extend(
                f"data rejected: {r.symbol} {r.reason} {r.count} (first {_minute(r.first_ns)})"
                for r in self.rejected
            )
        for s in self.scaled:
            parts = []
            if s.band_scale != 1:
                parts.append(f"bands ×{_plain(s.band_scale)}")
            if s.leverage_scale != 1:
                parts.append(f"leverage caps ×{_plain(s.leverage_scale)}")
            out.append(
                f"regime {s.regime}: {' and '.join(parts)} for {s.fraction * 100:.1f} % of the time"
            )
        if self.deleverage:
            total = sum(n for _, n in self.deleverage)
            out.append(f"deleveraging asked {total:,} times ({_counts(self.deleverage)})")
        if self.vetoes:
            total = sum(n for _, n in self.vetoes)
            out.append(f"pre-trade check vetoed {total:,} orders ({_counts(self.vetoes)})")
        if self.cuts:
            total = sum(n for _, n in self.cuts)
            out.append(f"pre-trade check cut {total:,} orders ({_counts(self.cuts)})")
        return out


def _kill_line(kill: KillEpisode) -> str:
    fired = f"kill switch fired {_minute(kill.fired_ns)} ({kill.reason}: {kill.detail})"
    if kill.reset_ns is None:
        return f"{fired}; stayed on to the end (only reducing orders passed)"
    how = "re-armed" if kill.reset_by.startswith("rearm") else f"reset by {kill.reset_by}"
    return f"{fired}; {how} {_minute(kill.reset_ns)}"


def _minute(ns: int) -> str:
    return ns_to_iso(ns)[:16].replace("T", " ")


def _counts(items: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in items)


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


class RiskActivityRecorder:
    """Accumulates a run's :class:`RiskActivity` from its events (``on_event``)."""

    CONSUMES: ClassVar[tuple[type[Message], ...]] = (
        PortfolioSnapshot,
        RiskBudgetChanged,
        KillSwitchTriggered,
        KillSwitchReset,
        DataRejected,
        DeleverageRequired,
        OrderVetoed,
        IntentApproved,
    )

    def __init__(self) -> None:
        self._kills: list[KillEpisode] = []
        self._rejected: dict[tuple[str, str], Rejection] = {}
        self._deleverage = Counter[str]()
        self._vetoes = Counter[str]()
        self._cuts = Counter[str]()
        self._normal: RiskBudgetChanged | None = None
        self._budget: RiskBudgetChanged | None = None
        self._clock_ns: int | None = None
        self._window_ns = 0
        self._scaled_ns: dict[tuple[str, Decimal, Decimal], int] = {}

    def attach(self, bus: Bus) -> list[Subscription]:
        return [bus.subscribe(t, self.on_event, name="risk_activity") for t in self.CONSUMES]

    def on_event(self, message: Message) -> None:
        """Take one event; events of other types are ignored."""
        match message:
            case PortfolioSnapshot():
                self._advance(message.ts_event)
            case RiskBudgetChanged():
                self._advance(message.ts_event)
                self._budget = message
                if message.regime == _NORMAL:
                    self._normal = message
            case KillSwitchTriggered():
                if not self._kills or self._kills[-1].reset_ns is not None:
                    self._kills.append(
                        KillEpisode(message.ts_event, message.reason, message.detail)
                    )
            case KillSwitchReset():
                if self._kills and self._kills[-1].reset_ns is None:
                    last = self._kills[-1]
                    self._kills[-1] = KillEpisode(
                        last.fired_ns, last.reason, last.detail, message.ts_event, message.by
                    )
            case DataRejected():
                key = (message.symbol, message.reason)
                known = self._rejected.get(key)
                first = message.ts_event if known is None else known.first_ns
                count = 1 if known is None else known.count + 1
                self._rejected[key] = Rejection(message.symbol, message.reason, count, first)
            case DeleverageRequired():
                self._deleverage[message.reason] += 1
            case OrderVetoed():
                self._vetoes[message.reason] += 1
            case IntentApproved():
                for part in message.cut_reason.split("; ") if message.cut_reason else ():
                    self._cuts[part.partition(":")[0]] += 1

    def _advance(self, ts_ns: int) -> None:
        """Book the time since the last event to the scaling in force (snapshot window only)."""
        if self._clock_ns is None:
            self._clock_ns = ts_ns
            return
        spent = ts_ns - self._clock_ns
        if spent <= 0:
            return
        self._clock_ns = ts_ns
        self._window_ns += spent
        scaling = self._scaling()
        if scaling is not None:
            self._scaled_ns[scaling] = self._scaled_ns.get(scaling, 0) + spent

    def _scaling(self) -> tuple[str, Decimal, Decimal] | None:
        """(regime, band scale, leverage scale) of the budget in force, None if not scaled."""
        budget, normal = self._budget, self._normal
        if budget is None or normal is None or budget.regime == _NORMAL:
            return None
        band = _ratio(budget.band_abs, normal.band_abs) or _ratio(budget.band_rel, normal.band_rel)
        leverage = _ratio(budget.max_gross_leverage, normal.max_gross_leverage)
        band, leverage = band or Decimal(1), leverage or Decimal(1)
        if band == 1 and leverage == 1:
            return None
        return budget.regime, band, leverage

    def result(self) -> RiskActivity:
        total = self._window_ns
        scaled = tuple(
            Scaling(regime, ns / total, band, leverage)
            for (regime, band, leverage), ns in sorted(self._scaled_ns.items())
            if total > 0
        )
        return RiskActivity(
            kills=tuple(self._kills),
            rejected=tuple(v for _, v in sorted(self._rejected.items())),
            scaled=scaled,
            deleverage=tuple(sorted(self._deleverage.items())),
            vetoes=tuple(sorted(self._vetoes.items())),
            cuts=tuple(sorted(self._cuts.items())),
        )


def _ratio(value: Decimal | None, base: Decimal | None) -> Decimal | None:
    if value is None or base is None or base == 0:
        return None
    return (value / base).quantize(Decimal("0.01"))


async def from_journal(path: str | Path) -> RiskActivity:
    """The risk activity of every session in the journal at ``path``."""
    recorder = RiskActivityRecorder()
    names = [t.__name__ for t in RiskActivityRecorder.CONSUMES]
    async with JournalReader(path) as reader:
        async for record in reader.records(types=names):
            recorder.on_event(record.message)
    return recorder.result()
