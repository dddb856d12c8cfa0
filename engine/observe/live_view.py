"""LiveView: the engine as it runs, on the terminal (``ballast demo``, ``ballast run --view``).

An observer actor: it subscribes on the bus and publishes nothing, so a session decides exactly
the same with or without it (replay never builds one). Its handlers only update a small state
(cheap, constant time); drawing happens elsewhere:

- **rich mode** (stdout is a terminal): a compact panel drawn by :class:`rich.live.Live`, redrawn
  by a background task at most ``refresh_per_second`` times a second, and only when something
  changed: NAV and its change since the first valuation, drawdown, weight vs target and band per
  asset (with spot and perp quantities), net and gross leverage against the cap, regime and risk
  budget, venue connection per channel and reconnects, order and fill counts, fees and funding,
  and the last few orders, fills, vetoes and rejections.
- **plain mode** (stdout is a file or a pipe: tests, CI logs, ``| tee``): one compact line per
  rebalance decision, followed by one line for each of its orders the pre-trade check vetoed or
  cut (the rebalance line lists the intents as decided), plus one line for each regime change,
  kill switch, venue disconnection or reconnection and reconcile mismatch; nothing else.

It must never slow or break the engine: every handler and every drawing is guarded; the first
exception is logged once (redacted) and the view turns itself off (unsubscribes, stops drawing,
gives the terminal back). A failure is never a ``HandlerFailed`` on the bus, which would be
journaled and would make a replay of the run differ.

Definitions are those of :mod:`ballast.engine.observe.metrics` (weight = net exposure / NAV;
targets from the latest ``RebalanceDecided`` that listed the asset, else ``[targets]``; band =
target ± the band width of the risk budget in force).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Protocol, TypeVar

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus, Subscription
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    Bar,
    DataStale,
    FundingPaid,
    IntentApproved,
    KillSwitchReset,
    KillSwitchTriggered,
    Message,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    ReconcileMismatch,
    ReconcileResolved,
    RiskBudgetChanged,
    VenueConnectionChanged,
)
from ballast.engine.kernel.redaction import redact
from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.trading.bands import BandRules

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

REFRESH_PER_SECOND: Final = 4.0
LAST_ORDERS: Final = 6
_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
_CENT: Final = Decimal("0.01")


class Watched(Protocol):
    """What :func:`live_view` needs of a session: its configuration, bus and clock
    (:class:`ballast.engine.app.session.Session` is one; observation does not import the app)."""

    @property
    def config(self) -> Config: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(slots=True)
class AssetRow:
    """One asset as the panel shows it."""

    weight: Decimal = _ZERO
    target: Decimal = _ZERO
    band_low: Decimal = _ZERO
    band_high: Decimal = _ZERO
    spot_qty: Decimal = _ZERO
    perp_qty: Decimal = _ZERO

    @property
    def in_band(self) -> bool:
        return self.band_low <= self.weight <= self.band_high


@dataclass(slots=True)
class Tally:
    """Counts and running sums of the session, as the view saw them."""

    rebalances: int = 0
    orders: int = 0
    fills: int = 0
    vetoes: int = 0
    rejected: int = 0
    canceled: int = 0
    fees: dict[str, Decimal] = field(default_factory=dict)
    funding: Decimal = _ZERO


@dataclass(slots=True)
class ViewState:
    """Everything the view draws (updated by the handlers, read by the drawing)."""

    quote: str
    first_nav: Decimal | None = None
    nav: Decimal | None = None
    peak_nav: Decimal = _ZERO
    max_drawdown: Decimal = _ZERO
    net_leverage: Decimal = _ZERO
    gross_leverage: Decimal = _ZERO
    margin_used: Decimal = _ZERO
    snapshot_ns: int = 0
    market_ns: int = 0
    assets: dict[str, AssetRow] = field(default_factory=dict)
    regime: str = "—"
    volatility: Decimal | None = None
    band_abs: Decimal | None = None
    band_rel: Decimal | None = None
    max_gross: Decimal = Decimal(3)
    overlay_scale: Decimal = Decimal(1)
    channels: dict[str, str] = field(default_factory=dict)
    reconnects: int = 0
    venue: str = ""
    kill_switch: str | None = None
    unreconciled: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_ORDERS))

    @property
    def change(self) -> Decimal | None:
        """NAV change since the first valuation, as a fraction."""
        if self.first_nav is None or self.nav is None or self.first_nav == 0:
            return None
        return self.nav / self.first_nav - 1


class LiveView(Actor):
    """The live panel or the plain lines of one session (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        console: Console | None = None,
        plain: bool | None = None,
        quote: str = "USDT",
        targets: Mapping[str, Decimal] | None = None,
        band_abs: Decimal | None = Decimal("0.05"),
        band_rel: Decimal | None = None,
        band_rules: BandRules | None = None,
        max_gross_leverage: Decimal = Decimal(3),
        refresh_per_second: float = REFRESH_PER_SECOND,
        title: str = "Ballast",
        data_time: Callable[[], int | None] | None = None,
        name: str | None = None,
    ) -> None:
        """``console``: where to draw (default: stdout); ``plain``: None chooses by whether the
        console is a terminal; ``data_time``: the data time of a replayed market (shown in the
        header beside the clock's time), or None."""
        super().__init__(bus, clock, name=name)
        self.console = console if console is not None else Console(file=sys.stdout)
        self.plain = not self.console.is_terminal if plain is None else plain
        self.state = ViewState(
            quote=quote, band_abs=band_abs, band_rel=band_rel, max_gross=max_gross_leverage
        )
        self.band_rules = band_rules or BandRules()
        self.targets: dict[str, Decimal] = dict(targets or {})
        for asset in sorted(self.targets):
            self._row(asset)
        self.refresh_interval_s = 1.0 / refresh_per_second
        self.title = title
        self.data_time = data_time
        self.enabled = True
        self.failure: str | None = None
        self.draws = 0
        self._dirty = True
        self._subs: list[Subscription] = []
        self._live: Live | None = None
        self._rerouted: list[tuple[logging.StreamHandler[Any], Any]] = []
        self._drawer: asyncio.Task[None] | None = None
        self._subscribe_all()

    @classmethod
    def from_config(
        cls,
        config: Config,
        bus: Bus,
        clock: Clock,
        *,
        console: Console | None = None,
        plain: bool | None = None,
        data_time: Callable[[], int | None] | None = None,
        title: str = "Ballast",
    ) -> LiveView:
        bands = config.bands.band()  # the rule of assets without their own
        return cls(
            bus,
            clock,
            console=console,
            plain=plain,
            quote=config.venue.quote,
            targets=config.targets,
            band_abs=None if bands.abs_pp is None else bands.abs_pp / _HUNDRED,
            band_rel=bands.rel,
            band_rules=BandRules.of(config),
            max_gross_leverage=config.risk.max_gross_leverage,
            data_time=data_time,
            title=title,
        )

    # ------------------------------------------------------------------ subscriptions

    def _subscribe_all(self) -> None:
        self._on(QuoteTick, self.on_market)
        self._on(Bar, self.on_market)
        self._on(PortfolioSnapshot, self.on_snapshot)
        self._on(RiskBudgetChanged, self.on_budget)
        self._on(RebalanceDecided, self.on_decided)
        self._on(IntentApproved, self.on_approved)
        self._on(SubmitOrder, self.on_submit)
        self._on(OrderFilled, self.on_filled)
        self._on(OrderVetoed, self.on_vetoed)
        self._on(OrderRejected, self.on_rejected)
        self._on(OrderCanceled, self.on_canceled)
        self._on(FundingPaid, self.on_funding)
        self._on(KillSwitchTriggered, self.on_kill_switch)
        self._on(KillSwitchReset, self.on_kill_switch_reset)
        self._on(DataStale, self.on_stale)
        self._on(VenueConnectionChanged, self.on_connection)
        self._on(ReconcileMismatch, self.on_mismatch)
        self._on(ReconcileResolved, self.on_resolved)

    def _on(self, message_type: type[M], handler: Callable[[M], None]) -> None:
        """Subscribe ``handler`` guarded: an exception turns the view off, never reaches the
        bus (which would publish, and journal, a HandlerFailed)."""

        @functools.wraps(handler)
        def guarded(message: M) -> None:
            if not self.enabled:
                return
            try:
                handler(message)
            except Exception as exc:
                self._fail(exc)

        self._subs.append(self.bus.subscribe(message_type, guarded, name=f"{self.name}.view"))

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        if self.plain or not self.enabled:
            return
        try:
            self._live = Live(
                self.render(),
                console=self.console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=True,
                redirect_stderr=True,
            )
            self._live.start()
            self._route_logs()
        except Exception as exc:
            self._fail(exc)
            return
        self._drawer = asyncio.create_task(self._draw_loop(), name=f"{self.name}:draw")

    async def on_stop(self) -> None:
        drawer, self._drawer = self._drawer, None
        if drawer is not None:
            drawer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drawer
        if self._live is not None and self.enabled:
            self._draw()  # the final state stays on the terminal
        self._stop_live()
        for sub in self._subs:
            self.bus.unsubscribe(sub)
        self._subs.clear()

    async def _draw_loop(self) -> None:
        while self.enabled:
            await asyncio.sleep(self.refresh_interval_s)
            if self._dirty:
                self._draw()

    def _draw(self) -> None:
        live = self._live
        if live is None or not self.enabled:
            return
        try:
            self._dirty = False
            live.update(self.render(), refresh=True)
            self.draws += 1
        except Exception as exc:
            self._fail(exc)

    def _route_logs(self) -> None:
        """Log lines on the terminal go above the panel while it is drawn (through the
        console's proxies of stdout and stderr), not through it."""
        proxies = {id(sys.__stderr__): sys.stderr, id(sys.__stdout__): sys.stdout}
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in proxies:
                old = handler.setStream(proxies[id(handler.stream)])
                self._rerouted.append((handler, old))

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        for handler, stream in self._rerouted:
            handler.setStream(stream)
        self._rerouted.clear()
        if live is not None:
            with contextlib.suppress(Exception):
                live.stop()

    def _fail(self, exc: BaseException) -> None:
        """Log once, turn the view off (the engine goes on)."""
        if not self.enabled:
            return
        self.enabled = False
        self.failure = redact(f"{type(exc).__name__}: {exc}")[:300]
        log.error("live view failed and is turned off (the engine goes on): %s", self.failure)
        for sub in self._subs:
            self.bus.unsubscribe(sub)
        self._subs.clear()
        self._stop_live()
        drawer = self._drawer
        if drawer is not None and drawer is not asyncio.current_task():
            drawer.cancel()

    # ------------------------------------------------------------------ handlers (cheap)

    def _row(self, asset: str) -> AssetRow:
        row = self.state.assets.get(asset)
        if row is None:
            row = self.state.assets[asset] = AssetRow()
            self._set_target(asset, row, self.targets.get(asset, _ZERO))
        return row

    def _set_target(self, asset: str, row: AssetRow, target: Decimal) -> None:
        state = self.state
        regime = state.regime if state.regime in ("calm", "stressed") else "normal"
        width = self.band_rules.width(asset, target, state.band_abs, state.band_rel, regime)
        row.target, row.band_low, row.band_high = target, target - width, target + width

    def on_market(self, event: QuoteTick | Bar) -> None:
        state = self.state
        if event.ts_event > state.market_ns:
            state.market_ns = event.ts_event
        if state.stale:
            state.stale.discard(event.symbol)

    def on_snapshot(self, snap: PortfolioSnapshot) -> None:
        state = self.state
        nav = snap.nav
        if state.first_nav is None:
            state.first_nav = nav
        state.nav = nav
        state.peak_nav = max(state.peak_nav, nav)
        if state.peak_nav > 0:
            state.max_drawdown = max(state.max_drawdown, 1 - nav / state.peak_nav)
        state.net_leverage = snap.net_leverage
        state.gross_leverage = snap.gross_leverage
        state.margin_used = snap.margin_used
        state.snapshot_ns = snap.ts_event
        for asset in snap.assets:
            row = self._row(asset.asset)
            row.weight, row.spot_qty, row.perp_qty = asset.weight, asset.spot_qty, asset.perp_qty
        self._dirty = True

    def on_budget(self, event: RiskBudgetChanged) -> None:
        state = self.state
        state.regime = event.regime
        state.volatility = event.volatility
        state.band_abs, state.band_rel = event.band_abs, event.band_rel
        state.max_gross = event.max_gross_leverage
        state.overlay_scale = event.overlay_scale
        for asset, row in state.assets.items():
            self._set_target(asset, row, row.target)
        self._dirty = True
        if self.plain:
            self._line(
                f"{self._when(event.ts_event)} regime {event.regime}: vol "
                f"{_pct(event.volatility, 1)}, band {self._band_text()}, gross cap "
                f"{event.max_gross_leverage:g}x, overlay x{_num(event.overlay_scale, 2)}"
            )

    def on_decided(self, decision: RebalanceDecided) -> None:
        state = self.state
        for decided in decision.assets:
            self.targets[decided.asset] = decided.target
            row = self._row(decided.asset)
            row.weight, row.target = decided.weight, decided.target
            row.band_low, row.band_high = decided.band_low, decided.band_high
        if decision.intents:
            state.tally.rebalances += 1
        self._dirty = True
        if self.plain and decision.intents:
            self._line(self.rebalance_line(decision))

    def on_approved(self, event: IntentApproved) -> None:
        if event.cut_reason:
            intent = event.intent
            text = f"cut  {intent.side} {_qty(intent.qty)} {intent.symbol}: {event.cut_reason}"
            self._recent(event.ts_event, text)
            if self.plain:
                self._line(f"{self._when(event.ts_event)}   {text}")

    def on_submit(self, command: SubmitOrder) -> None:
        self.state.tally.orders += 1
        price = "market" if command.price is None else f"@ {_price(command.price)}"
        flags = " reduce-only" if command.reduce_only else ""
        self._recent(
            command.ts_event,
            f"sent {command.side:<4} {_qty(command.qty)} {command.symbol} {price}{flags}",
        )

    def on_filled(self, fill: OrderFilled) -> None:
        tally = self.state.tally
        tally.fills += 1
        tally.fees[fill.fee_asset] = tally.fees.get(fill.fee_asset, _ZERO) + fill.fee
        self._recent(
            fill.ts_event,
            f"fill {fill.side:<4} {_qty(fill.qty)} {fill.symbol} @ {_price(fill.price)} "
            f"fee {_num(fill.fee, 4)} {fill.fee_asset}",
        )

    def on_vetoed(self, event: OrderVetoed) -> None:
        self.state.tally.vetoes += 1
        self._recent(event.ts_event, f"veto {event.symbol}: {event.reason}")
        if self.plain:
            detail = f" ({redact(event.detail)[:80]})" if event.detail else ""
            self._line(
                f"{self._when(event.ts_event)}   vetoed {event.symbol}: {event.reason}{detail}"
            )

    def on_rejected(self, event: OrderRejected) -> None:
        self.state.tally.rejected += 1
        self._recent(event.ts_event, f"rejected {event.symbol}: {redact(event.reason)[:60]}")

    def on_canceled(self, event: OrderCanceled) -> None:
        self.state.tally.canceled += 1
        self._recent(event.ts_event, f"canceled {event.symbol}: {event.reason[:60]}")

    def on_funding(self, event: FundingPaid) -> None:
        self.state.tally.funding += event.amount
        self._dirty = True

    def on_kill_switch(self, event: KillSwitchTriggered) -> None:
        self.state.kill_switch = f"{event.reason}: {event.detail}"[:100]
        self._dirty = True
        if self.plain:
            self._line(f"{self._when(event.ts_event)} KILL SWITCH {event.reason}: {event.detail}")

    def on_kill_switch_reset(self, event: KillSwitchReset) -> None:
        self.state.kill_switch = None
        self._dirty = True

    def on_stale(self, event: DataStale) -> None:
        self.state.stale.add(event.symbol)
        self._dirty = True

    def on_connection(self, event: VenueConnectionChanged) -> None:
        state = self.state
        state.venue = event.venue
        state.channels[event.channel] = event.state
        reconnected = event.state == "connected" and event.attempt > 0
        if reconnected:
            state.reconnects += 1
        self._dirty = True
        if self.plain and (event.state == "disconnected" or reconnected):
            why = f" ({redact(event.reason)[:80]})" if event.reason else ""
            self._line(
                f"{self._when(event.ts_event)} venue {event.venue} {event.channel} "
                f"{event.state}{why}, attempt {event.attempt}"
            )

    def on_mismatch(self, event: ReconcileMismatch) -> None:
        self.state.unreconciled.add(event.subject)
        self._dirty = True
        if self.plain:
            self._line(
                f"{self._when(event.ts_event)} RECONCILE MISMATCH {event.subject}: journal "
                f"{event.journal_value}, venue {event.venue_value}"
            )

    def on_resolved(self, event: ReconcileResolved) -> None:
        self.state.unreconciled.clear()
        self._dirty = True

    def _recent(self, ts_ns: int, text: str) -> None:
        self.state.recent.append(f"{ns_to_iso(ts_ns)[11:19]} {text}")
        self._dirty = True

    def _line(self, text: str) -> None:
        file = self.console.file
        file.write(text + "\n")
        file.flush()

    # ------------------------------------------------------------------ text

    def _when(self, ts_ns: int) -> str:
        data_ns = self.data_time() if self.data_time is not None else None
        when = ns_to_iso(ts_ns)[:19]
        return when if data_ns is None else f"{when} [data {ns_to_iso(data_ns)[:16]}]"

    def _band_text(self) -> str:
        state = self.state
        if state.band_abs is not None:
            return f"±{_num(state.band_abs * _HUNDRED, 1)}pp"
        if state.band_rel is not None:
            return f"±{_num(state.band_rel * _HUNDRED, 0)}% of target"
        return "none"

    def rebalance_line(self, decision: RebalanceDecided) -> str:
        """The plain-mode line of one rebalance decision."""
        state = self.state
        weights = (
            " ".join(
                f"{d.asset} {_pct(d.weight, 1)}→{_pct(d.target, 1)}"
                for d in decision.assets
                if d.action != "hold" or d.target != 0
            )
            or "—"
        )
        intents = ", ".join(f"{i.side} {_qty(i.qty)} {i.symbol}" for i in decision.intents[:4]) + (
            f", +{len(decision.intents) - 4}" if len(decision.intents) > 4 else ""
        )
        nav = "NAV —" if state.nav is None else f"NAV {_money(state.nav)} {state.quote}"
        change = "" if state.change is None else f" ({_pct(state.change, 2, signed=True)})"
        return (
            f"{self._when(decision.ts_event)} rebalance #{state.tally.rebalances} "
            f"{decision.trigger}/{decision.mode} {decision.regime} | {nav}{change} | {weights} | "
            f"net {_num(state.net_leverage, 2)}x gross {_num(state.gross_leverage, 2)}x | "
            f"{intents}"
        )

    # ------------------------------------------------------------------ the panel

    def render(self) -> RenderableType:
        """The panel of the current state."""
        state = self.state
        parts: list[RenderableType] = [self._header(), self._assets_table(), self._risk_line()]
        alerts = self._alerts()
        if alerts is not None:
            parts.append(alerts)
        parts.append(self._counts_line())
        recent = Text("\n".join(state.recent) if state.recent else "no orders yet", style="dim")
        parts.append(recent)
        return Panel(Group(*parts), title=self.title, title_align="left", expand=False)

    def _header(self) -> Text:
        state = self.state
        text = Text()
        if state.nav is None:
            text.append("NAV —", style="bold")
        else:
            text.append(f"NAV {_money(state.nav)} {state.quote}", style="bold")
            change = state.change
            if change is not None:
                style = "green" if change >= 0 else "red"
                text.append(f"  {_pct(change, 2, signed=True)}", style=style)
            text.append(
                f"  from {_money(state.first_nav or _ZERO)}  max drawdown "
                f"{_pct(state.max_drawdown, 2)}"
            )
        clock = ns_to_iso(self.clock.now_ns())[11:19]
        text.append(f"\n{clock} UTC", style="dim")
        data_ns = self.data_time() if self.data_time is not None else None
        if data_ns is not None:
            text.append(f"   data time {ns_to_iso(data_ns)[:16].replace('T', ' ')}", style="cyan")
        return text

    def _assets_table(self) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for heading in ("asset", "weight", "target", "band", "", "spot", "perp"):
            table.add_column(heading, justify="left" if heading in ("asset", "") else "right")
        for asset in sorted(self.state.assets):
            row = self.state.assets[asset]
            mark = Text("in band", style="green") if row.in_band else Text("OUT", style="bold red")
            table.add_row(
                asset,
                _pct(row.weight, 1),
                _pct(row.target, 1),
                f"{_pct(row.band_low, 1)} … {_pct(row.band_high, 1)}",
                mark,
                _qty(row.spot_qty),
                _qty(row.perp_qty),
            )
        return table

    def _risk_line(self) -> Text:
        state = self.state
        text = Text()
        text.append(
            f"leverage net {_num(state.net_leverage, 2)}x  gross {_num(state.gross_leverage, 2)}x"
            f" (cap {_num(state.max_gross, 2)}x)"
        )
        if state.nav:
            text.append(f"  margin {_pct(state.margin_used / state.nav, 1)}")
        vol = "" if state.volatility is None else f" vol {_pct(state.volatility, 0)}"
        text.append(
            f"\nregime {state.regime}{vol}  band {self._band_text()}  overlay "
            f"x{_num(state.overlay_scale, 2)}"
        )
        if state.channels:
            text.append("\nvenue ")
            if state.venue:
                text.append(f"{state.venue} ")
            for channel in sorted(state.channels):
                link = state.channels[channel]
                style = "bold red" if link == "disconnected" else "green"
                text.append(f"{channel}:{'down' if link == 'disconnected' else 'up'} ", style=style)
            text.append(f" reconnects {state.reconnects}")
        return text

    def _alerts(self) -> Text | None:
        state = self.state
        lines = []
        if state.kill_switch is not None:
            lines.append(f"KILL SWITCH {state.kill_switch}")
        if state.unreconciled:
            lines.append(f"UNRECONCILED (trading halted): {', '.join(sorted(state.unreconciled))}")
        if state.stale:
            lines.append(f"STALE DATA (no new orders): {', '.join(sorted(state.stale))}")
        return Text("\n".join(lines), style="bold red") if lines else None

    def _counts_line(self) -> Text:
        tally = self.state.tally
        fees = ", ".join(f"{_money(v)} {k}" for k, v in sorted(tally.fees.items())) or "0"
        return Text(
            f"rebalances {tally.rebalances}  orders {tally.orders}  fills {tally.fills}  "
            f"vetoes {tally.vetoes}  rejected {tally.rejected}  fees {fees}  funding "
            f"{_money(tally.funding, signed=True)} {self.state.quote}"
        )


# ---------------------------------------------------------------------- attaching it


@contextlib.asynccontextmanager
async def live_view(
    session: Watched,
    *,
    console: Console | None = None,
    plain: bool | None = None,
    data_time: Callable[[], int | None] | None = None,
    title: str = "Ballast",
) -> AsyncIterator[LiveView]:
    """Watch ``session`` while inside. Enter it before the session itself, so the view sees the
    session's start: ``async with live_view(session), session: ...``."""
    view = LiveView.from_config(
        session.config,
        session.bus,
        session.clock,
        console=console,
        plain=plain,
        data_time=data_time,
        title=title,
    )
    async with view:
        yield view


# ---------------------------------------------------------------------- formatting


def _num(value: Decimal | float, places: int) -> str:
    return f"{value:,.{places}f}"


def _pct(value: Decimal | float, places: int, *, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{float(value) * 100:{sign}.{places}f}%"


def _money(value: Decimal, *, signed: bool = False) -> str:
    amount = value.quantize(_CENT)
    return f"{amount:+,.2f}" if signed else f"{amount:,.2f}"


def _qty(value: Decimal) -> str:
    """A quantity without trailing zeros (0.0120 → 0.012; 0 → 0)."""
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


def _price(value: Decimal) -> str:
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value.normalize():f}"
