"""The floor under the backtest figures: the same market events, in the same order, through the
real bus (and the real journal, when on) to handlers that do nothing, driven by a loop of the
backtest driver's shape (clock moved once per instant, one ``await`` of the hand-off per event).

No ledger, no exchange model, no risk or strategy: whatever the full pipeline does costs time on
top of this. A target above the floor cannot be reached by tuning the actors; it needs a cheaper
bus, journal or event model. Run with ``python -m bench backtest``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.events import Bar, MarkPriceUpdated, Message
from ballast.engine.kernel.journal import Journal

# As many handlers as a backtest session subscribes to each type (the portfolio and the risk
# manager take bars; the rebalancer takes marks too).
SUBSCRIBERS: dict[type[Message], int] = {Bar: 2, MarkPriceUpdated: 3}


def _nothing(message: Message) -> None:
    return None


async def drive(events: Iterable[Message], journal: Journal | None) -> tuple[int, int, float]:
    """Send ``events`` through a bus to do-nothing handlers; (events, bars, seconds)."""
    clock = SimulatedClock(0)
    bus = Bus(clock, journal)
    for message_type, count in SUBSCRIBERS.items():
        for i in range(count):
            bus.subscribe(message_type, _nothing, name=f"floor.{message_type.__name__}.{i}")
    sent = bars = 0
    started = time.perf_counter()
    for event in events:
        if event.ts_event != clock.now_ns():
            clock.advance_to(event.ts_event)
        await bus.send(event)
        sent += 1
        bars += type(event) is Bar
    await bus.sync()
    return sent, bars, time.perf_counter() - started


async def floor(bundle: MarketBundle, *, journal: bool) -> tuple[int, int, float]:
    if not journal:
        return await drive(bundle.events(), None)
    with tempfile.TemporaryDirectory(prefix="ballast-floor-") as tmp:
        async with Journal(Path(tmp) / "floor.db") as writer:
            return await drive(bundle.events(), writer)


def line(label: str, measured: tuple[int, int, float], target: float) -> str:
    events, bars, seconds = measured
    rate = bars / seconds
    return (
        f"  floor, {label}: {bars:,} bar events ({events:,} incl. marks) in {seconds:.2f} s = "
        f"{rate:,.0f} bar-events/s ({'above' if rate >= target else 'BELOW'} the {target:,.0f} "
        "target)"
    )
