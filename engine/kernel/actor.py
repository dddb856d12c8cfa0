"""The actor base: subscribe in ``__init__``, handle events, publish events.

An actor receives the bus, the clock and read-only views in ``__init__`` and talks to other actors
only through the bus: no actor imports another. Lifecycle is an async context manager:
``async with actor:`` starts it, leaving stops its timers and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.events import Message, TimerFired

M = TypeVar("M", bound=Message)


class Actor:
    """Base class of actors. Subclasses call ``self.subscribe`` in ``__init__``."""

    def __init__(self, bus: Bus, clock: Clock, *, name: str | None = None) -> None:
        self.bus = bus
        self.clock = clock
        self.name = name or type(self).__name__
        self.log = logging.getLogger(f"ballast.{self.name}")
        self._timers: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_handlers: dict[str, Callable[[TimerFired], None]] = {}
        self._started = False

    # ------------------------------------------------------------------ bus

    def subscribe(self, message_type: type[M], handler: Callable[[M], None]) -> None:
        self.bus.subscribe(message_type, handler, name=f"{self.name}.{_func_name(handler)}")

    def publish(self, message: Message) -> int:
        return self.bus.publish(message)

    def now(self) -> int:
        return self.clock.now_ns()

    # ------------------------------------------------------------------ timers

    def every(
        self,
        name: str,
        interval_ns: int,
        handler: Callable[[TimerFired], None],
        *,
        start_ns: int | None = None,
    ) -> str:
        """Run ``handler`` on a timer. The clock publishes a journaled TimerFired on each deadline
        (so replay re-feeds it); the handler runs when that event is dispatched."""
        full = f"{self.name}.{name}"
        if not self._timer_handlers:
            self.subscribe(TimerFired, self._on_timer)
        self._timer_handlers[full] = handler
        self.clock.every(full, interval_ns, self._publish_timer, start_ns=start_ns)
        self._timers.append(full)
        return full

    def after(self, name: str, at_ns: int, handler: Callable[[TimerFired], None]) -> str:
        """Run ``handler`` once, when a journaled TimerFired for ``at_ns`` is dispatched. Arming
        the same name again replaces the earlier deadline (on a replay clock, whose timers never
        fire, the earlier one is still registered)."""
        full = f"{self.name}.{name}"
        if not self._timer_handlers:
            self.subscribe(TimerFired, self._on_timer)
        self._timer_handlers[full] = handler
        self.clock.cancel(full)
        self.clock.at(full, at_ns, self._publish_timer)
        if full not in self._timers:
            self._timers.append(full)
        return full

    def _publish_timer(self, name: str, deadline_ns: int) -> None:
        self.publish(TimerFired(ts_event=deadline_ns, ts_init=self.clock.now_ns(), name=name))

    def _on_timer(self, event: TimerFired) -> None:
        handler = self._timer_handlers.get(event.name)
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------------ background work

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "") -> asyncio.Task[Any]:
        """Run ``coro`` in the background; ``idle()`` waits for it, ``stop()`` cancels it."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("background task %s failed: %r", task.get_name(), task.exception())

    async def idle(self) -> None:
        """Wait until no background task of this actor is running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Hook: called once when the actor starts."""

    async def on_stop(self) -> None:
        """Hook: called once when the actor stops, before timers and tasks are cancelled."""

    async def on_resume(self) -> None:
        """Hook: the session resumed from its journal; this actor, started and caught up on every
        earlier input (:mod:`ballast.engine.app.catch_up`), is live now (reconcile with the venue
        here). It may publish only what it learns from outside (input events): replay does not call
        it, it re-feeds those events."""

    async def start(self) -> None:
        if not self._started:
            self._started = True
            await self.on_start()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            await self.on_stop()
        finally:
            for name in self._timers:
                self.clock.cancel(name)
            self._timers.clear()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _func_name(handler: Callable[..., Any]) -> str:
    return str(getattr(handler, "__name__", repr(handler)))
