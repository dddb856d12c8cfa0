"""``ballast run`` with ``venue.kind = "paper"`` as a real subprocess: the loopback Binance
exchange started in-process, the real ccxt.pro client, metrics and readiness, a clean stop on
SIGTERM; a restart resumes the journal, catches up with the exchange (whose state survived beside
the journal) and reconciles. (Kill, disconnect and end-to-end campaigns: tests/test_live_e2e.py,
tests/test_live_kill.py, ...)"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import gc
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from ballast.adapters.ccxt.venue import CcxtVenue
from ballast.engine.app.live_run import LiveResult, run_live
from ballast.engine.app.replay import replay
from ballast.engine.app.session import Session
from ballast.engine.app.venue_serve import loopback_exchange
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config, load_config
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    Message,
    OrderFilled,
    OrderRejected,
    OrderVetoed,
    QuoteTick,
    ReconcileMismatch,
    ReconcileResolved,
    SessionStarted,
    SessionStopped,
    VenueConnectionChanged,
)
from ballast.engine.kernel.timefmt import parse_time
from tests.support.cli import ballast
from tests.support.live_config import START, live_config
from tests.support.paper_config import Overrides
from tests.support.waiting import eventually
from tests.test_resume import count_in
from tests.test_run import journal_messages, running, served, until_metric, until_status

pytestmark = pytest.mark.xdist_group("test_live_run")
CONNECTED = 'ballast_venue_connected{{stream="{}",venue="paper"}}'
PACE = ("--metrics-address=127.0.0.1:0", "--step-s=0.05", "--max-runtime-s=120")


def of(messages: list[Message], kind: type[Message]) -> list[Message]:
    return [m for m in messages if isinstance(m, kind)]


async def test_a_paper_run_trades_on_the_loopback_exchange_and_resumes(tmp_path: Path) -> None:
    config = live_config(tmp_path)
    journal = tmp_path / "journal.db"
    async with running(tmp_path, config, *PACE) as engine:
        await served(engine)
        line = await engine.line("live: ", within_s=30)
        assert line.startswith("live: venue paper at loopback exchange http://127.0.0.1:")
        assert f"journal {journal}" in line
        await until_status(engine, "/readyz", 200, within_s=30)
        await until_metric(engine, CONNECTED.format("quotes:spot"), within_s=10)
        await until_metric(engine, 'ballast_orders_total{status="filled"}', within_s=30)
        weight = await until_metric(
            engine, 'ballast_venue_request_weight_used{venue="paper"}', within_s=10
        )
        assert weight > 0
        assert await engine.stop(signal.SIGTERM) == 0, engine.log.read_text()
    assert engine.lines[-1] == f"stopped (signal:SIGTERM); journal {journal} closed"
    assert (tmp_path / "journal.db.venue.db").exists()  # the exchange's own state
    first = await journal_messages(journal)
    [started] = of(first, SessionStarted)
    assert isinstance(started, SessionStarted)
    assert (started.venue, started.clock) == ("paper", "LiveClock")
    assert of(first, InstrumentsLoaded)
    assert of(first, QuoteTick)
    fills = of(first, OrderFilled)
    assert fills
    states = [
        m.state for m in of(first, VenueConnectionChanged) if isinstance(m, VenueConnectionChanged)
    ]
    assert "caught_up" in states
    stopped = first[-1]
    assert isinstance(stopped, SessionStopped)
    assert stopped.reason == "signal:SIGTERM"

    async with running(tmp_path, config, *PACE) as engine:
        await served(engine)
        await engine.line("resumed from seq ", within_s=30)
        await until_metric(engine, CONNECTED.format("user:futures"), within_s=30)
        await until_status(engine, "/readyz", 200, within_s=30)
        await eventually(lambda: count_in(journal, "ReconcileResolved") > 0, within_s=30)
        assert await engine.stop(signal.SIGINT) == 0, engine.log.read_text()
    both = await journal_messages(journal)
    second = both[len(first) :]
    resumed = second[0]
    assert isinstance(resumed, SessionStarted)
    assert resumed.resumed_from_seq == len(first)
    assert not of(second, ReconcileMismatch), of(second, ReconcileMismatch)
    assert of(second, ReconcileResolved)
    # no fill twice
    trade_ids = [m.trade_id for m in of(both, OrderFilled) if isinstance(m, OrderFilled)]
    assert len(trade_ids) == len(set(trade_ids))


async def test_run_live_in_process_with_a_watcher_stops_when_told(tmp_path: Path) -> None:
    """run_live as ``make demo`` may call it: a watcher (a live view) around the session, given
    the exchange's data time; ``stop`` ends the run gracefully."""
    config = load_config(live_config(tmp_path, overrides={"metrics": {"enabled": False}}))
    seen: list[tuple[str, int | None]] = []
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(
        session: Session, data_time: Callable[[], int | None] | None
    ) -> AsyncIterator[None]:
        assert data_time is not None
        seen.append(("entered", data_time()))
        yield
        seen.append(("left", data_time()))

    frozen: list[int] = []

    async def stop_after_a_fill() -> None:
        await eventually(lambda: count_in(tmp_path / "journal.db", "OrderFilled") > 0, within_s=60)
        frozen.append(gc.get_freeze_count())
        stop.set()

    before = gc.get_freeze_count()
    stopper = asyncio.create_task(stop_after_a_fill())
    result = await run_live(
        config, stop=stop, step_s=0.05, max_runtime_s=60, metrics_address=None, watch=watch
    )
    await stopper
    # the start-up heap is out of the collector's way while the session trades, back after it
    assert frozen[0] > before
    assert gc.get_freeze_count() == 0
    assert result.reason == "completed"
    assert result.resumed is None
    assert [what for what, _ in seen] == ["entered", "left"]
    left = seen[1][1]
    assert left is not None
    assert left >= parse_time(START)


async def run_until(
    config: Config,
    condition: Callable[[], bool],
    *,
    accept_venue_state: bool = False,
    metrics_address: str | None = None,
) -> LiveResult:
    """run_live until ``condition`` holds (polled), then a graceful stop."""
    stop = asyncio.Event()

    async def stopper() -> None:
        await eventually(condition, within_s=60)
        stop.set()

    task = asyncio.create_task(stopper())
    result = await run_live(
        config,
        stop=stop,
        step_s=0.05,
        max_runtime_s=90,
        metrics_address=metrics_address,
        accept_venue_state=accept_venue_state,
    )
    await task
    return result


async def test_an_exchange_that_lost_its_state_halts_until_the_operator_accepts_it(
    tmp_path: Path,
) -> None:
    config = load_config(live_config(tmp_path, overrides={"metrics": {"enabled": False}}))
    journal = tmp_path / "journal.db"
    await run_until(config, lambda: count_in(journal, "OrderFilled") > 0)
    for state in tmp_path.glob("journal.db.venue.db*"):
        state.unlink()  # the paper exchange starts afresh: 100,000 USDT, no position

    halted = await run_until(config, lambda: count_in(journal, "ReconcileMismatch") > 0)
    assert halted.resumed is not None
    messages = await journal_messages(journal)
    mismatches = [m for m in messages if isinstance(m, ReconcileMismatch)]
    assert mismatches
    assert all(m.venue == "paper" for m in mismatches)
    assert all(m.subject.startswith(("balance:", "position:")) for m in mismatches)

    resolutions = count_in(journal, "ReconcileResolved")  # the fresh start's confirmation
    await run_until(
        config,
        lambda: count_in(journal, "ReconcileResolved") > resolutions,
        accept_venue_state=True,
    )
    messages = await journal_messages(journal)
    [*_, resolved] = [m for m in messages if isinstance(m, ReconcileResolved)]
    assert isinstance(resolved, ReconcileResolved)
    assert resolved.detail.startswith("operator accepted the venue's account")
    assert mismatches[0].subject in resolved.detail
    after = messages[messages.index(resolved) :]
    assert not [m for m in after if isinstance(m, OrderVetoed) and m.reason == "unreconciled"]


async def test_a_second_run_on_the_same_journal_is_refused_before_its_exchange_starts(
    tmp_path: Path,
) -> None:
    config = live_config(tmp_path)
    async with running(tmp_path, config, *PACE) as engine:
        await served(engine)
        await engine.line("live: ", within_s=30)
        second = await asyncio.to_thread(ballast, "run", "-c", str(config), *PACE)
        assert second.returncode == 1, second.stderr
        assert "in use by another writer" in second.stderr
        assert "live: " not in second.stdout  # no exchange of its own was started
        assert await engine.stop(signal.SIGTERM) == 0


async def test_a_user_stream_gap_is_caught_up_and_reconciled(tmp_path: Path) -> None:
    """A binance-kind run against a loopback exchange of the test's own: its user streams drop;
    the venue reconnects and catches up, the reconciler checks the account after the gap, and
    the reconnect is counted."""
    key, secret = "gap-test-key-123", "gap-test-secret-456"
    served_config = load_config(live_config(tmp_path, name="exchange.toml"))
    async with loopback_exchange(
        served_config, step_s=0.05, api_key=key, api_secret=secret
    ) as exchange:
        config = load_config(
            live_config(
                tmp_path,
                kind="binance",
                rest_url=exchange.rest_url,
                ws_url=exchange.ws_url,
                overrides={"metrics": {"enabled": False}},
            )
        )
        journal = tmp_path / "journal.db"
        stop = asyncio.Event()

        async def drop_then_stop() -> None:
            await eventually(lambda: count_in(journal, "OrderFilled") > 0, within_s=60)
            resolutions = count_in(journal, "ReconcileResolved")  # the start's
            await exchange.server.drop_connections("user")
            await eventually(
                lambda: count_in(journal, "ReconcileResolved") > resolutions, within_s=60
            )
            stop.set()

        task = asyncio.create_task(drop_then_stop())
        await run_live(
            config,
            stop=stop,
            step_s=0.05,
            max_runtime_s=90,
            metrics_address=None,
            environ={"BALLAST_API_KEY": key, "BALLAST_API_SECRET": secret},
        )
        await task
    messages = await journal_messages(journal)
    links = [m for m in messages if isinstance(m, VenueConnectionChanged)]
    dropped = next(i for i, m in enumerate(links) if m.state == "disconnected")
    assert links[dropped].channel.startswith("user")
    assert "caught_up" in [m.state for m in links[dropped:]]
    assert not [m for m in messages if isinstance(m, ReconcileMismatch)]
    resolved = [m for m in messages if isinstance(m, ReconcileResolved)]
    assert len(resolved) >= 2  # the start's, then the gap's
    after_gap = messages[messages.index(links[dropped]) :]
    assert [m for m in after_gap if isinstance(m, ReconcileResolved)]
    assert all(m.detail == "the venue's account agrees with the journal" for m in resolved)


TRADING: Overrides = {
    "metrics": {"enabled": False},
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.3, "check_interval_s": 0.3},
}
"""A pace at which the rebalancer decides every few tenths of a second (as the kill campaign)."""


async def held_reasons(capsys: pytest.CaptureFixture[str], seen: set[str]) -> None:
    """Read ``/readyz`` of the run whose ``listening HOST:PORT`` line is printed, adding every
    ``trading_held:…`` reason to ``seen`` (until cancelled)."""
    out = ""
    while "listening " not in out:
        out += capsys.readouterr().out
        await asyncio.sleep(0.02)
    address = out.split("listening ", 1)[1].split()[0]
    async with aiohttp.ClientSession() as client:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with client.get(f"http://{address}/readyz") as response:
                    body = await response.json(content_type=None)
                    seen.update(r for r in body["reasons"] if r.startswith("trading_held:"))
            await asyncio.sleep(0.05)


async def test_a_resumed_session_sends_no_order_before_its_venue_caught_up_and_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kill campaign's bug: a restarted engine decided on the journal's stale book and sent
    orders while its venue was still catching up (its REST catch-up waiting for request weight).
    Here the venue's catch-up at start waits 3 s while its streams already deliver prices: every
    intent meanwhile is held (``unreconciled``), none is sent before the reconcile after
    ``caught_up`` agreed, trading resumes after it, and the journal replays the same verdicts."""
    config = load_config(live_config(tmp_path, overrides=TRADING))
    journal = tmp_path / "journal.db"
    await run_until(config, lambda: count_in(journal, "OrderFilled") > 0)
    first = len(await journal_messages(journal))

    catch_up = CcxtVenue._catch_up

    async def slow_catch_up(self: CcxtVenue, why: str) -> None:
        if why == "start":
            await asyncio.sleep(3)  # as a start waiting for request weight
        await catch_up(self, why)

    monkeypatch.setattr(CcxtVenue, "_catch_up", slow_catch_up)
    submits = count_in(journal, "SubmitOrder")
    resolutions = count_in(journal, "ReconcileResolved")

    def traded_after_reconciling() -> bool:
        return (
            count_in(journal, "ReconcileResolved") > resolutions
            and count_in(journal, "SubmitOrder") > submits
        )

    metered = {**TRADING, "metrics": {"enabled": True}}  # at 127.0.0.1:0
    config = load_config(live_config(tmp_path, overrides=metered, name="metered.toml"))
    capsys.readouterr()
    held_seen: set[str] = set()
    readyz = asyncio.create_task(held_reasons(capsys, held_seen))
    result = await run_until(config, traded_after_reconciling, metrics_address="127.0.0.1:0")
    readyz.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await readyz
    assert "trading_held:start" in held_seen  # /readyz said why while held
    assert result.resumed is not None
    second = (await journal_messages(journal))[first:]
    assert isinstance(second[0], SessionStarted)
    caught = next(
        i
        for i, m in enumerate(second)
        if isinstance(m, VenueConnectionChanged) and m.state == "caught_up"
    )
    resolved = next(
        i for i, m in enumerate(second) if isinstance(m, ReconcileResolved) and i > caught
    )
    sent = [i for i, m in enumerate(second) if isinstance(m, SubmitOrder)]
    assert sent
    assert min(sent) > resolved, (sent, caught, resolved)
    held = [
        m
        for m in second[:caught]
        if isinstance(m, OrderVetoed) and m.reason == "unreconciled" and "held" in m.detail
    ]
    assert held  # it did decide meanwhile, and was held
    assert not of(second, ReconcileMismatch)
    replayed = await replay(journal, verify=True)
    assert replayed.ok, replayed.divergence


async def sigterm_during_an_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, release_after_s: float | None
) -> tuple[LiveResult, list[Message], list[int]]:
    """run_live with the CLI's signal handlers; the first order sent waits on the wire (before
    its REST request) when SIGTERM comes; it is let go after ``release_after_s`` (None: never).
    Returns the result, the journal, and how many SubmitOrder records the journal file held
    (read by another connection) when each submit reached the venue."""
    from ballast.engine.app.cli.cmd_run import _signals

    config = load_config(
        live_config(
            tmp_path, overrides={**TRADING, "venue": {"kind": "paper", "shutdown_timeout_s": 1}}
        )
    )
    journal = tmp_path / "journal.db"
    submit = CcxtVenue.submit
    durable: list[int] = []
    on_wire = asyncio.Event()
    release = asyncio.Event()

    async def held_submit(self: CcxtVenue, order: SubmitOrder) -> None:
        durable.append(count_in(journal, "SubmitOrder"))
        if not on_wire.is_set():
            on_wire.set()
            os.kill(os.getpid(), signal.SIGTERM)
            await release.wait()
        await submit(self, order)

    monkeypatch.setattr(CcxtVenue, "submit", held_submit)
    stop = asyncio.Event()
    seen: list[str] = []

    async def let_go() -> None:
        await on_wire.wait()
        if release_after_s is not None:
            await asyncio.sleep(release_after_s)
            release.set()

    releaser = asyncio.create_task(let_go())
    with _signals(stop, asyncio.Event(), seen):
        result = await run_live(
            config, stop=stop, step_s=0.05, max_runtime_s=60, metrics_address=None, signals=seen
        )
    release.set()
    await releaser
    return result, await journal_messages(journal), durable


async def test_sigterm_with_an_order_on_the_wire_lets_it_finish_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, messages, durable = await sigterm_during_an_order(
        tmp_path, monkeypatch, release_after_s=0.2
    )
    assert result.reason == "signal:SIGTERM"
    assert durable
    # each SubmitOrder on disk (seen by another connection) before it is sent
    assert all(n >= i + 1 for i, n in enumerate(durable)), durable
    kinds = [type(m).__name__ for m in messages]
    first = next(m for m in messages if isinstance(m, SubmitOrder))
    answers = [
        type(m).__name__
        for m in messages
        if getattr(m, "client_order_id", None) == first.client_order_id
        and not isinstance(m, SubmitOrder)
    ]
    assert answers, kinds[-20:]  # the venue's answer to the order sent during the stop
    stopped = messages[-1]
    assert isinstance(stopped, SessionStopped)
    assert stopped.reason == "signal:SIGTERM"


async def test_sigterm_with_an_order_stuck_on_the_wire_records_it_and_a_restart_looks_it_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, messages, durable = await sigterm_during_an_order(
        tmp_path, monkeypatch, release_after_s=None
    )
    assert result.reason == "signal:SIGTERM"
    assert durable
    assert all(n >= i + 1 for i, n in enumerate(durable)), durable
    sent = next(m for m in messages if isinstance(m, SubmitOrder))  # the one stuck
    stopped = messages[-1]
    assert isinstance(stopped, SessionStopped)
    assert stopped.reason == "signal:SIGTERM"
    # the restart asks the venue about it (never received: given up, not resent blindly)
    monkeypatch.undo()
    config = load_config(live_config(tmp_path, overrides=TRADING))
    journal = tmp_path / "journal.db"
    await run_until(config, lambda: count_in(journal, "ReconcileResolved") >= 2)
    after = (await journal_messages(journal))[len(messages) :]
    rejected = [
        m
        for m in after
        if isinstance(m, OrderRejected) and m.client_order_id == sent.client_order_id
    ]
    assert rejected
    assert "never received" in rejected[0].reason
    resent = [
        m for m in after if isinstance(m, SubmitOrder) and m.client_order_id == sent.client_order_id
    ]
    assert not resent


async def test_a_live_run_leaves_the_engines_decimal_context_alone(tmp_path: Path) -> None:
    """ccxt's precision helpers set the thread's decimal context (ROUND_HALF_UP, Underflow
    trapped): the engine's arithmetic then rounded differently from its replay."""
    decimal.setcontext(decimal.Context())  # this test's own, whatever ran before
    config = load_config(live_config(tmp_path, overrides={"metrics": {"enabled": False}}))
    journal = tmp_path / "journal.db"
    await run_until(config, lambda: count_in(journal, "OrderFilled") > 0)
    context = decimal.getcontext()
    assert context.rounding == decimal.ROUND_HALF_EVEN
    assert not context.traps[decimal.Underflow]
    assert (await replay(journal, verify=True)).ok
