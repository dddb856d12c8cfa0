"""``ballast run`` on a live venue: the composition root of a long-running engine trading through
the real ccxt.pro client.

``venue.kind = "paper"`` starts the loopback Binance-compatible exchange in-process
(:func:`ballast.engine.app.venue_serve.loopback_exchange`: the simulated exchange core behind
Binance's REST and WebSocket API on 127.0.0.1, fed by ``[paper]``'s market data at ``step_s``
seconds per bar time, with API keys generated for this run) and trades on it through
:class:`~ballast.adapters.ccxt.venue.CcxtVenue`; the exchange keeps its own durable state beside
the journal (``<journal>.venue.db``), so it survives a restart with the engine.
``venue.kind = "binance"`` connects the same adapter to Binance (``venue.testnet``: its sandbox),
or to any Binance-compatible exchange at ``venue.rest_url``/``venue.ws_url`` (a ``ballast venue
serve``), with the keys read from the environment variables the config names; at start it
asks the exchange whether the key can withdraw and warns loudly if so
(:mod:`ballast.engine.app.key_permissions`).

Restart = resume + reconcile. A journal of earlier live sessions on the same venue is resumed:
the session's actors catch up on it (:mod:`ballast.engine.app.catch_up`); the venue is told the
time of the journal's last fill and the trade ids it holds, so its ``start()`` emits only the
fills the journal lacks, then reports the account; the router looks up every order it still
holds as working by client order id (never resends blindly); and the
:class:`~ballast.engine.app.reconcile.Reconciler` compares the journal's book with the venue's
account: a difference no fill or funding explains halts trading until it is resolved
(``accept_venue_state``: the operator accepts the venue's account). From the session's start
(fresh or resumed) and after a user-stream gap, the risk actor holds every intent until the venue
caught up and a reconcile agreed (``/readyz``: ``trading_held:…``).

Graceful stop (SIGTERM, SIGINT, ``max_runtime_s``): market data stops reaching the engine (no new
decisions), orders being sent get up to ``venue.shutdown_timeout_s`` to finish (every
``SubmitOrder`` is durable before it is sent; one still unanswered is looked up on restart), the
venue is closed, ``SessionStopped`` is recorded and the journal closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

from ballast.adapters.ccxt.exchanges import EXCHANGES
from ballast.adapters.ccxt.venue import CcxtVenue
from ballast.engine.app.bundled import data_dir as bundled_data_dir
from ballast.engine.app.catch_up import CatchUpClock
from ballast.engine.app.key_permissions import check_key, report
from ballast.engine.app.reconcile import Reconciler
from ballast.engine.app.service import host_port, journal_path, metrics_server, resume_point
from ballast.engine.app.session import Session
from ballast.engine.app.venue_serve import loopback_exchange
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import Config, require_secrets
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import FundingPaid, Message, OrderFilled, SessionStarted
from ballast.engine.kernel.journal import Journal, JournalReader, damaged
from ballast.engine.kernel.redaction import register_secret
from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.trading.risk import RiskManager
from ballast.engine.trading.router import OrderRouter

log = logging.getLogger(__name__)

LIVE_CLOCK: Final = "LiveClock"
SEEN_MARGIN_NS: Final = 60 * NS_PER_SECOND
"""The venue's catch-up of fills starts this long before the journal's last fill, and the trade
ids the journal holds from then on are passed to it as seen: fills reach the engine in no strict
time order (spot and futures streams, REST replies), so one the journal lacks may be older than
the last one it has."""


Watcher = Callable[
    [Session, Callable[[], int | None] | None], contextlib.AbstractAsyncContextManager[object]
]
"""Something watching a live session while it runs (a live view): given the session and, for a
paper run, the data time of the exchange's last market step."""


@dataclass(frozen=True, slots=True)
class LivePast:
    """What a live journal says of its past."""

    last_seq: int
    sessions: int
    fills_after_ns: int
    """Where the venue's catch-up of fills starts: ``SEEN_MARGIN_NS`` before the journal's last
    fill (a fill the journal lacks may be a little older than the last one it has; the ones it
    has in that margin are passed as seen), never before its first session (what happened on
    the account before is not this engine's)."""
    seen_trade_ids: frozenset[str]
    fills: int
    funding_after_ns: int = 0
    """Where the venue's catch-up of funding starts: ``SEEN_MARGIN_NS`` before the earliest of
    the perps' last journaled settlements (the perps settle at the same time, to the ms or a few
    ms apart, and their payments may reach the journal in either order), never before its first
    session; the ones the journal holds from then on are dropped when sent again."""
    funding_seen: frozenset[tuple[str, int]] = frozenset()
    """(symbol, ``ts_event``) of the journal's funding payments from ``funding_after_ns`` on: a
    re-sent one is dropped (:func:`funding_filter`)."""
    last_session: SessionStarted | None = None


@dataclass
class LiveResult:
    reason: str = "completed"
    resumed: LivePast | None = None
    stats: dict[str, int] = field(default_factory=dict)


def venue_state_path(journal: Path) -> Path:
    """Where a paper run's loopback exchange keeps its durable state: beside the journal."""
    return journal.with_name(journal.name + ".venue.db")


async def live_past(path: Path, venue: str) -> LivePast | None:
    """The live sessions of the journal at ``path`` on ``venue``; None when there is none. A
    journal holding another kind of session (a paper run on the simulator, a backtest, a live run
    on another venue) is refused."""
    if not _has_content(path):
        return None
    last_seq = sessions = fills = first_ns = 0
    last: SessionStarted | None = None
    fill_times: list[tuple[int, str]] = []
    funding: list[tuple[str, int]] = []
    async with JournalReader(path) as reader:
        verdict = await reader.integrity_check()
        if verdict != "ok":
            raise damaged(path, f"quick_check: {verdict}")
        async for rec in reader.records():
            message = rec.message
            if isinstance(message, SessionStarted):
                _check_live(path, message, venue)
                sessions += 1
                last = message
                first_ns = first_ns or message.ts_init
            elif isinstance(message, OrderFilled):
                fills += 1
                fill_times.append((message.ts_event, message.trade_id))
            elif isinstance(message, FundingPaid):
                funding.append((message.symbol, message.ts_event))
            last_seq = rec.seq
    if sessions == 0:
        return None
    last_fill = max((ts for ts, _ in fill_times), default=0)
    seen = frozenset(tid for ts, tid in fill_times if ts >= last_fill - SEEN_MARGIN_NS)
    after = max(last_fill - SEEN_MARGIN_NS, first_ns) if last_fill else first_ns
    last_settled: dict[str, int] = {}
    for symbol, ts in funding:
        last_settled[symbol] = max(ts, last_settled.get(symbol, 0))
    earliest = min(last_settled.values(), default=0)
    funding_after = max(earliest - SEEN_MARGIN_NS, first_ns) if earliest else first_ns
    funding_seen = frozenset((s, ts) for s, ts in funding if ts >= funding_after)
    return LivePast(last_seq, sessions, after, seen, fills, funding_after, funding_seen, last)


def funding_filter(seen: Collection[tuple[str, int]]) -> Callable[[Message], bool]:
    """False for a ``FundingPaid`` already journaled (same symbol and settlement time): the
    venue's funding catch-up starts at the earliest of the perps' last settlements, so it may
    send again what the journal holds for the others."""
    known = set(seen)

    def keep(event: Message) -> bool:
        if not isinstance(event, FundingPaid):
            return True
        key = (event.symbol, event.ts_event)
        if key in known:
            log.info("funding of %s at %d already in the journal: dropped", *key)
            return False
        known.add(key)
        return True

    return keep


def _has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _check_live(path: Path, started: SessionStarted, venue: str) -> None:
    if started.clock == LIVE_CLOCK and started.venue == venue:
        return
    raise BallastError(
        f"{path}: holds session {started.session_id} (clock {started.clock}, venue "
        f"{started.venue or 'none'}), not a live run on venue {venue}: a live run resumes only "
        "its own sessions; use another journal"
    )


def trading_held(session: Session) -> str | None:
    """Why the session's risk actor holds intents (``/readyz``: ``trading_held:…``), or None."""
    for actor in session.actors:
        if isinstance(actor, RiskManager):
            return actor.held
    return None


def _once(close: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    done = False

    async def run() -> None:
        nonlocal done
        if not done:
            done = True
            await close()

    return run


async def run_live(
    config: Config,
    *,
    stop: asyncio.Event,
    step_s: float,
    max_runtime_s: float | None,
    metrics_address: str | None,
    signals: list[str] | None = None,
    source: Config | None = None,
    accept_venue_state: bool = False,
    data: Path | None = None,
    environ: dict[str, str] | None = None,
    watch: Watcher | None = None,
) -> LiveResult:
    """Trade on ``config``'s live venue until ``stop`` is set (or ``max_runtime_s`` passed);
    resumes the live sessions its journal holds (module docstring). ``signals``: names of the
    signals that set ``stop``; ``source``: the config as the file said; ``data``: a paper run's
    market data folder (default ``[paper] data_dir``); ``watch``: entered around the session
    (before it, like the metrics), given the session and, for a paper run, the data time of the
    loopback exchange's last market step (a live view: ``watch=lambda s, t: live_view(s,
    data_time=t)``)."""
    kind = config.venue.kind
    if kind not in ("paper", "binance"):
        raise BallastError(f"run_live: venue.kind {kind!r} is not a live venue")
    if kind == "binance":
        keys = require_secrets(config.venue, environ)
        api_key, api_secret = keys.api_key or "", keys.api_secret or ""
    else:  # the loopback exchange accepts the pair generated for this run
        api_key, api_secret = secrets.token_hex(16), secrets.token_hex(32)
        register_secret(api_key)
        register_secret(api_secret)
    path = journal_path(config)
    past = await live_past(path, kind)
    result = LiveResult(resumed=past)
    clock = CatchUpClock()
    started_ns = clock.now_ns()  # a fresh start: the account's earlier fills are not ours
    async with contextlib.AsyncExitStack() as stack:
        # The journal first: its lock keeps a second run (and its paper exchange) out.
        journal = await stack.enter_async_context(
            Journal(
                path,
                batch_size=config.journal.batch_size,
                flush_interval_s=config.journal.flush_interval_ms / 1000,
                durable_on_loop=config.journal.durable_write == "loop",
                kind="live",
            )
        )
        resume_from = resume_point(journal, past.last_seq if past is not None else None)
        rest_url, ws_url, where = config.venue.rest_url, config.venue.ws_url, ""
        finished: asyncio.Event | None = None
        data_time: Callable[[], int | None] | None = None
        if kind == "paper":
            folder = data if data is not None else bundled_data_dir(config.paper.data_dir)
            handle = await stack.enter_async_context(
                loopback_exchange(
                    config,
                    step_s=step_s,
                    state_path=venue_state_path(path),
                    api_key=api_key,
                    api_secret=api_secret,
                    data_dir=folder,
                )
            )
            rest_url, ws_url = handle.rest_url, handle.ws_url
            finished = handle.driver.finished
            driver = handle.driver

            def data_time() -> int | None:
                return driver.data_ts_ns

            where = f"loopback exchange {rest_url} (data {folder}, {step_s:g} s per bar time)"
        else:
            where = rest_url or ("binance testnet" if config.venue.testnet else "binance")
        venue = CcxtVenue(
            EXCHANGES["binance"],
            spot=config.instruments.spot,
            perp=config.instruments.perp,
            api_key=api_key,
            api_secret=api_secret,
            clock=clock,
            name=kind,
            rest_url=rest_url,
            ws_url=ws_url,
            testnet=config.venue.testnet,
            fills_after_ns=past.fills_after_ns if past is not None else started_ns,
            seen_trade_ids=past.seen_trade_ids if past is not None else (),
            silent_order_s=config.venue.silent_order_s,
            ws_keepalive_s=config.venue.ws_keepalive_s,
            funding_after_ns=past.funding_after_ns if past is not None else started_ns,
            seen_funding=past.funding_seen if past is not None else (),
            order_transport=config.venue.order_transport,
            request_timeout_s=config.venue.request_timeout_s,
        )
        close_venue = _once(venue.close)
        stack.push_async_callback(close_venue)
        await venue.connect()
        # real keys: can this one withdraw? (the paper exchange's keys are this run's own)
        key_check = await check_key(venue.key_restrictions) if kind == "binance" else None
        session = Session(
            config,
            clock,
            journal=journal,
            venue=venue,
            resume_from=resume_from,
            source=source,
            account_on_resume=False,
            venue_filter=funding_filter(past.funding_seen if past is not None else ()),
        )
        reconciler = Reconciler(session.bus, clock, venue, accept_venue_state=accept_venue_state)
        reconciler.install()
        stack.push_async_callback(reconciler.close)
        server = await stack.enter_async_context(metrics_server(session, metrics_address))
        if key_check is not None:
            registry = server.exporter.registry if server is not None else None
            report(key_check, refuse=config.security.refuse_withdrawal_keys, registry=registry)
        if server is not None:
            server.exporter.venue_stats = venue.stats
            server.health.trading_held = partial(trading_held, session)
            print(f"listening {host_port(server)}", flush=True)
        symbols = ", ".join([*config.instruments.spot, *config.instruments.perp])
        print(f"live: venue {kind} at {where}; {symbols}; journal {path}", flush=True)
        if kind == "paper" and step_s >= config.risk.stale_after_s:
            print(
                f"warning: --step-s {step_s:g} is not below risk.stale_after_s "
                f"{config.risk.stale_after_s:g}: data will look stale between bars",
                flush=True,
            )
        if past is not None:
            print(_resumed(past), flush=True)
        if watch is not None:
            await stack.enter_async_context(watch(session, data_time))
        async with session:
            freeze_startup_heap()
            stack.callback(gc.unfreeze)  # the run's heap goes back to the collector at its end
            if finished is not None:
                watcher = asyncio.create_task(_exhausted(finished), name="data-exhausted")
                stack.callback(watcher.cancel)
            seen = signals if signals is not None else []
            session.stop_reason = await _serve(stop, max_runtime_s, seen)
            result.reason = session.stop_reason
            await wind_down(session, config.venue.shutdown_timeout_s)
            await close_venue()
            await reconciler.close()
    return result


def _resumed(past: LivePast) -> str:
    return (
        f"resumed from seq {past.last_seq} ({past.sessions} earlier session(s), {past.fills:,} "
        f"fills; the venue's fills caught up from {ns_to_iso(past.fills_after_ns)}): catching "
        "up with the venue, then reconciling"
    )


async def _exhausted(finished: asyncio.Event) -> None:
    await finished.wait()
    print(
        "feed: data exhausted; the loopback exchange sends no more market data (it goes stale); "
        "serving until SIGTERM or SIGINT",
        flush=True,
    )


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive after start-up (markets, config, the loaded
    modules) out of the cyclic collector's reach (``gc.freeze``): a full collection then walks
    only what the session made since, not the start-up heap, on the path of a quote and its
    order. Objects freed by their reference counts are freed as before."""
    gc.collect()
    gc.freeze()


async def _serve(stop: asyncio.Event, max_runtime_s: float | None, signals: list[str]) -> str:
    """Wait for ``stop`` (or the end of the runtime); why the session stops."""
    try:
        await asyncio.wait_for(stop.wait(), max_runtime_s)
    except TimeoutError:
        print(f"max runtime reached ({max_runtime_s:g} s): stopping", flush=True)
        return "max_runtime"
    finally:
        stop.set()
    return f"signal:{signals[0]}" if signals else "completed"


async def wind_down(session: Session, timeout_s: float) -> None:
    """No new decisions on new prices; the orders being sent get ``timeout_s`` to finish."""
    session.mute_market()
    routers = [actor for actor in session.actors if isinstance(actor, OrderRouter)]
    pending = sum(len(router._tasks) for router in routers)
    if not pending or timeout_s <= 0:
        return
    print(f"stopping: waiting up to {timeout_s:g} s for {pending} order(s) being sent", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(router.idle() for router in routers)), timeout_s)
    except TimeoutError:
        log.warning(
            "stopping: orders still being sent after %g s; they are looked up on restart",
            timeout_s,
        )
