"""Deterministic test actors, loadable from a config as ``tests.support.actors:Class``.

``Decider`` reacts to quotes, bars and its own timer with decisions, reacts to its own decisions
(chained outputs), raises on some inputs (so HandlerFailed is part of the output stream) and
publishes a last word when it stops. ``AlteredDecider`` behaves identically up to its N-th input
and differently from then on: replay --verify must catch it at the first output that input causes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.events import (
    AssetDecision,
    BalanceUpdated,
    Bar,
    DataRejected,
    IntentApproved,
    KillSwitchTriggered,
    Message,
    OrderIntent,
    OrderVetoed,
    QuoteTick,
    RebalanceDecided,
    RiskBudgetChanged,
    Side,
    TimerFired,
)

CHECK_INTERVAL_NS = 60 * NS_PER_SECOND
_MOVE = Decimal("0.002")
_ZERO = Decimal(0)


class Decider(Actor):
    """Publishes decisions from market data; every output's text goes through :meth:`note`."""

    def __init__(self, bus: Bus, clock: Clock, *, name: str | None = None) -> None:
        super().__init__(bus, clock, name=name)
        self.handled = 0
        self.decisions = 0
        self.last_mid: dict[str, Decimal] = {}
        self.subscribe(QuoteTick, self.on_quote)
        self.subscribe(Bar, self.on_bar)
        self.subscribe(RebalanceDecided, self.on_decided)

    async def on_start(self) -> None:
        self.every("check", CHECK_INTERVAL_NS, self.on_check)

    async def on_stop(self) -> None:
        now = self.now()
        self.publish(
            KillSwitchTriggered(
                ts_event=now,
                ts_init=now,
                reason="handler_failed",
                detail=self.note(f"handled {self.handled}, decided {self.decisions}"),
            )
        )

    def note(self, text: str) -> str:
        """Hook for the altered variant."""
        return text

    def _count(self) -> int:
        self.handled += 1
        return self.handled

    # ------------------------------------------------------------------ inputs

    def on_quote(self, quote: QuoteTick) -> None:
        n = self._count()
        if quote.bid > quote.ask:
            self.publish(
                DataRejected(
                    ts_event=quote.ts_event,
                    ts_init=self.now(),
                    symbol=quote.symbol,
                    reason="crossed_quote",
                    detail=self.note(f"bid {quote.bid} > ask {quote.ask}"),
                )
            )
            return
        if n % 11 == 0:
            raise ValueError(self.note(f"quote handler gave up on input {n}"))
        mid = (quote.bid + quote.ask) / 2
        prev = self.last_mid.get(quote.symbol)
        self.last_mid[quote.symbol] = mid
        if prev is not None and abs(mid - prev) / prev > _MOVE:
            self._decide(quote.symbol, mid, prev, moved="quote")

    def on_bar(self, bar: Bar) -> None:
        n = self._count()
        if bar.volume == 0:
            self.publish(
                OrderVetoed(
                    ts_event=bar.ts_event,
                    ts_init=self.now(),
                    intent_id=f"bar-{n}",
                    symbol=bar.symbol,
                    reason="stale_data",
                    detail=self.note(f"bar {n} has no volume"),
                )
            )
            return
        if bar.close > bar.open * (1 + _MOVE):
            self._decide(bar.symbol, bar.close, bar.open, moved="bar")

    def on_check(self, event: TimerFired) -> None:
        n = self._count()
        self.publish(
            RiskBudgetChanged(
                ts_event=event.ts_event,
                ts_init=self.now(),
                regime="calm" if len(self.last_mid) < 2 else "stressed",
                volatility=Decimal(n) / 100,
                band_abs=Decimal("0.05"),
                band_rel=None,
                max_gross_leverage=Decimal(2),
                overlay_scale=Decimal(1),
                allow_overlay_longs=False,
                reason=self.note(f"check {n}: {self.decisions} decisions so far"),
            )
        )

    # ------------------------------------------------------------------ own outputs

    def on_decided(self, decision: RebalanceDecided) -> None:
        number = int(decision.decision_id.rpartition("-")[2])
        if number % 4 == 0:
            raise RuntimeError(self.note(f"cannot size decision {decision.decision_id}"))
        for intent in decision.intents:
            if intent.qty > Decimal("0.05"):
                self.publish(
                    OrderVetoed(
                        ts_event=decision.ts_event,
                        ts_init=self.now(),
                        intent_id=intent.intent_id,
                        symbol=intent.symbol,
                        reason="max_order_notional",
                        detail=self.note(f"qty {intent.qty} too large"),
                    )
                )
            else:
                self.publish(
                    IntentApproved(
                        ts_event=decision.ts_event,
                        ts_init=self.now(),
                        intent=intent,
                        cut_reason=self.note(""),
                    )
                )

    def _decide(self, symbol: str, price: Decimal, prev: Decimal, *, moved: str) -> None:
        self.decisions += 1
        side: Side = "buy" if price < prev else "sell"
        qty = Decimal("0.01") * (self.decisions % 9 + 1)
        intent = OrderIntent(
            intent_id=f"{self.name}-{self.decisions}",
            symbol=symbol,
            side=side,
            qty=qty,
            order_type="market",
            price=None,
            reduce_only=False,
            reason=self.note(f"{moved} moved {prev} -> {price}"),
        )
        now = self.now()
        self.publish(
            RebalanceDecided(
                ts_event=now,
                ts_init=now,
                decision_id=f"{self.name}-{self.decisions}",
                trigger="band",
                mode="auto",
                regime="calm",
                reasoning=self.note(f"{symbol} {side} after a move from {prev} to {price}"),
                assets=(
                    AssetDecision(
                        asset=symbol.partition("/")[0],
                        weight=_ZERO,
                        target=Decimal("0.5"),
                        band_low=Decimal("0.45"),
                        band_high=Decimal("0.55"),
                        action="buy spot" if side == "buy" else "sell spot",
                    ),
                ),
                intents=(intent,),
            )
        )


class AlteredDecider(Decider):
    """A Decider that changes its output text from its ``ALTER_AFTER``-th input on.

    It keeps the name "Decider" so that its timer and handler names match the recorded ones.
    """

    ALTER_AFTER: ClassVar[int] = 25

    def __init__(self, bus: Bus, clock: Clock, *, name: str | None = None) -> None:
        super().__init__(bus, clock, name=name or "Decider")

    def note(self, text: str) -> str:
        return f"{text} [altered]" if self.handled >= self.ALTER_AFTER else text


class Tally(Actor):
    """Counts balance updates and publishes a running total (a second, independent actor)."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        super().__init__(bus, clock)
        self.count = 0
        self.subscribe(BalanceUpdated, self.on_balance)

    def on_balance(self, event: BalanceUpdated) -> None:
        self.count += 1
        self.publish(
            DataRejected(
                ts_event=event.ts_event,
                ts_init=self.now(),
                symbol=event.asset,
                reason="out_of_order",
                detail=f"{self.count} balance updates, last free {event.free}",
            )
        )


class Silent(Actor):
    """Subscribes to nothing and publishes nothing."""


class Recorder(Actor):
    """Records every message it is given, in dispatch order."""

    def __init__(self, bus: Bus, clock: Clock, *, name: str | None = None) -> None:
        super().__init__(bus, clock, name=name)
        self.seen: list[Message] = []
        self.subscribe(Message, self.seen.append)


# ---------------------------------------------------------------------- generated inputs


def market_inputs(seed: int, count: int, start_ns: int) -> Iterator[Message]:
    """A reproducible mix of quotes, bars (some without volume), crossed quotes and balances.

    Every message is stamped a few seconds after the previous one.
    """
    rng = random.Random(seed)
    mids = {"BTC/USDT": Decimal(40_000), "ETH/USDT": Decimal(2_000)}
    ts = start_ns
    for i in range(count):
        ts += rng.randint(1, 15) * NS_PER_SECOND
        symbol = rng.choice(sorted(mids))
        mid = mids[symbol] * (1 + Decimal(rng.randint(-60, 60)) / 10_000)
        mid = mid.quantize(Decimal("0.01"))
        mids[symbol] = mid
        roll = rng.random()
        if roll < 0.10:
            yield Bar(
                ts_event=ts,
                ts_init=ts,
                symbol=symbol,
                interval_s=60,
                open=mid * Decimal("0.995"),
                high=mid * Decimal("1.01"),
                low=mid * Decimal("0.99"),
                close=mid,
                volume=Decimal(0) if rng.random() < 0.3 else Decimal(rng.randint(1, 100)),
            )
        elif roll < 0.15:
            yield BalanceUpdated(
                ts_event=ts,
                ts_init=ts,
                account="spot",
                asset="USDT",
                free=Decimal(10_000 + i),
                locked=_ZERO,
            )
        else:
            half = Decimal("0.5") if rng.random() > 0.05 else Decimal("-0.5")  # some crossed
            yield QuoteTick(
                ts_event=ts,
                ts_init=ts,
                symbol=symbol,
                bid=mid - half,
                ask=mid + half,
                bid_size=Decimal(1),
                ask_size=Decimal(1),
            )


# ---------------------------------------------------------------------- small actors


class QuoteGuard(Actor):
    """Rejects crossed quotes: subscribes in ``__init__``, publishes a decision."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        super().__init__(bus, clock)
        self.checked = 0
        self.subscribe(QuoteTick, self.on_quote)

    def on_quote(self, quote: QuoteTick) -> None:
        self.checked += 1
        if quote.bid > quote.ask:
            self.publish(
                DataRejected(
                    ts_event=quote.ts_event,
                    ts_init=self.now(),
                    symbol=quote.symbol,
                    reason="crossed_quote",
                    detail=f"bid {quote.bid} > ask {quote.ask}",
                )
            )


class Heartbeat(Actor):
    """A timer set in ``__init__``; each firing is answered with a decision."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        interval_ns: int = CHECK_INTERVAL_NS,
        start_ns: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(bus, clock, name=name)
        self.beats: list[TimerFired] = []
        self.timer = self.every("beat", interval_ns, self.on_beat, start_ns=start_ns)

    def on_beat(self, event: TimerFired) -> None:
        self.beats.append(event)
        self.publish(
            DataRejected(
                ts_event=event.ts_event,
                ts_init=self.now(),
                symbol="*",
                reason="out_of_order",
                detail=f"{self.name} beat {len(self.beats)}",
            )
        )
