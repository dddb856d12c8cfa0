"""Issue 14, fault injection on the REST side: the loopback exchange's seeded fault plan
(:mod:`ballast.adapters.loopback.faults`), each kind's answer as Binance gives it, and the live
engine trading through all of them: it keeps running and trading, and at rest there is no
duplicate order, no lost fill, the journal is whole and the book equals the exchange's.

The live test is the fault campaign of tests/support/fault_campaign.py (shared with the WS-API's,
tests/test_faults_ws_api.py) with orders over REST: ``ballast venue serve --faults ...
--fault-seed N`` with its clock 3 s behind the engine's (``skew_ms=-3000``) + ``ballast run``; the
REST faults switched on phase by phase through ``POST /_loopback/faults`` once the engine caught
up, each phase until each of its kinds was injected (bounded by a count of orders); then off, the
market paused and the book checked at rest. What the exchange injected, by kind (its
``GET /_loopback/faults`` counts), is the campaign's record ``faults_rest``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ccxt.base.errors import (
    BaseError,
    DDoSProtection,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    RequestTimeout,
)

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.ccxt.weight import WeightBudget
from ballast.adapters.loopback.faults import (
    KINDS,
    PARAMS,
    REST,
    FaultPlan,
    FaultSpecError,
    parse_spec,
)
from ballast.engine.app.reconcile import Reconciler
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MINUTE, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    Message,
    OrderAccepted,
    OrderRejected,
    ReconcileResolved,
    VenueConnectionChanged,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal
from ballast.engine.trading.venue import VenueError
from tests.conftest import START_NS
from tests.support.cli import ballast
from tests.support.fault_campaign import FaultCampaign, post_plan, run_campaign, trading
from tests.support.http_get import http_get
from tests.support.live_exchange import count_in, live_config
from tests.support.loopback import API_KEY, SECRET, Loopback, loopback_exchange
from tests.support.memory_venue import InMemoryVenue
from tests.support.waiting import eventually

pytestmark = pytest.mark.reliability

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


# ------------------------------------------------------------------------------ the plan


def test_a_spec_names_kinds_and_parameters() -> None:
    spec = parse_spec(" rest_5xx=0.05, slow=0.1 ,skew_ms=-3000,hold_s=2")
    assert spec.rates == {"rest_5xx": 0.05, "slow": 0.1}
    assert spec.params == {"skew_ms": -3000, "hold_s": 2}
    assert parse_spec("").rates == {}
    plan = FaultPlan(spec)
    assert plan.skew_ms == -3000
    assert plan.param("slow_ms") == PARAMS["slow_ms"][0]  # a default


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("rest_9xx=0.1", "rest_9xx"),
        ("rest_5xx", "rest_5xx"),
        ("rest_5xx=lots", "rest_5xx"),
        ("rest_5xx=1.5", "rest_5xx"),
        ("slow=-0.1", "slow"),
        ("slow=nan", "slow"),
        ("skew_ms=99999999999", "skew_ms"),
        ("slow=0.1,slow=0.2", "slow"),
        ("rest_5xx=0.6,slow=0.6", "more than 1"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_entry(text: str, named: str) -> None:
    with pytest.raises(FaultSpecError, match=named):
        parse_spec(text)


def draws(plan: FaultPlan, n: int) -> list[str | None]:
    out = []
    for i in range(n):
        where = ("order", "cancel", "other")[i % 3]
        fault = plan.rest_fault(where, futures=i % 2 == 0, reduce_only=i % 5 == 0)  # type: ignore[arg-type]
        out.append(None if fault is None else fault.kind)
    return out


EVERY_REST = ",".join(f"{k}=0.05" for k, owner in KINDS.items() if owner == REST)


def test_the_plan_is_deterministic_by_seed() -> None:
    first = draws(FaultPlan.parse(EVERY_REST, seed=7), 3000)
    assert first == draws(FaultPlan.parse(EVERY_REST, seed=7), 3000)
    assert first != draws(FaultPlan.parse(EVERY_REST, seed=8), 3000)
    assert {k for k in first if k} == {k for k, owner in KINDS.items() if owner == REST}


def test_rates_are_kept_and_counted_by_kind() -> None:
    plan = FaultPlan.parse("rest_5xx=0.2,slow=0.1", seed=3)
    kinds = [plan.rest_fault("other", futures=True) for _ in range(20_000)]
    hits = [k.kind for k in kinds if k is not None]
    assert abs(hits.count("rest_5xx") / 20_000 - 0.2) < 0.015
    assert abs(hits.count("slow") / 20_000 - 0.1) < 0.015
    assert plan.counts == {"rest_5xx": hits.count("rest_5xx"), "slow": hits.count("slow")}


def test_order_only_kinds_spare_the_other_endpoints() -> None:
    plan = FaultPlan.parse("rest_5xx_after=0.5,reject_margin=0.5", seed=1)
    assert all(plan.rest_fault("other", futures=True) is None for _ in range(200))
    assert plan.counts == {}
    cancels = {f.kind for f in (plan.rest_fault("cancel", futures=True) for _ in range(200)) if f}
    assert cancels == {"rest_5xx_after"}  # a cancel is never "rejected for margin"
    plan = FaultPlan.parse("reject_reduce_only=1")
    assert plan.rest_fault("order", futures=True, reduce_only=False) is None
    assert plan.rest_fault("order", futures=False, reduce_only=True) is None
    hit = plan.rest_fault("order", futures=True, reduce_only=True)
    assert hit is not None
    assert hit.kind == "reject_reduce_only"


def test_venue_serve_refuses_a_bad_spec_naming_it(tmp_path: Path) -> None:
    config = live_config(tmp_path, name="exchange.toml")
    result = ballast("venue", "serve", "-c", str(config), "--faults", "rest_5xx=0.1,bogus=1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--faults" in result.stderr, result.stderr
    assert "bogus" in result.stderr, result.stderr


# ------------------------------------------------------------------------------ each answer


async def faults_on(lb: Loopback, spec: str) -> None:
    lb.server.faults.replace(parse_spec(spec))


X1 = {"newClientOrderId": "x1"}


async def test_a_5xx_after_processing_leaves_the_order_placed_and_says_so(
    tmp_path: Path,
) -> None:
    async with loopback_exchange() as lb:
        await faults_on(lb, "rest_5xx_after=1")
        with pytest.raises(RequestTimeout, match="-1007"):  # ccxt: a NetworkError
            await lb.client.create_order(
                PERP, "market", "buy", 0.01, None, {"newClientOrderId": "x1"}
            )
        await faults_on(lb, "")
        assert lb.core.order(PERP, client_id="x1") is not None  # it was placed
        with pytest.raises(InvalidOrder, match="-4116"):  # a resend is a duplicate
            await lb.client.create_order(
                PERP, "market", "buy", 0.01, None, {"newClientOrderId": "x1"}
            )
        assert lb.server.faults.counts == {"rest_5xx_after": 1}


async def test_a_5xx_before_processing_places_nothing() -> None:
    async with loopback_exchange() as lb:
        await faults_on(lb, "rest_5xx=1")
        raised: list[str] = []
        for n in range(12):
            with pytest.raises(BaseError) as caught:
                await lb.client.create_order(
                    SPOT, "market", "buy", 0.01, None, {"newClientOrderId": f"y{n}"}
                )
            raised.append(str(caught.value))
        assert lb.server.faults.counts == {"rest_5xx": 12}
        assert not [o for o in lb.core.orders.values() if o.client_order_id.startswith("y")]
        # Binance's three: 500 internal error, a gateway's 502 (HTML), 503 overloaded
        assert all(any(what in text for text in raised) for what in ("-1001", " 502 ", "-1008"))


async def test_injected_429_and_418_carry_retry_after() -> None:
    async with loopback_exchange() as lb:
        for kind, status in (("rest_429", 429), ("rest_418", 418)):
            await faults_on(lb, f"{kind}=1,retry_after_s=7")
            response = await http_get("127.0.0.1", lb.server.port, "/fapi/v1/time")
            assert response.status == status, response.text
            assert response.headers.get("retry-after") == "7"
            assert json.loads(response.text)["code"] == -1003
            with pytest.raises(DDoSProtection):
                await lb.client.fetch_time()
        assert lb.server.faults.counts == {"rest_429": 2, "rest_418": 2}


@pytest.mark.parametrize(
    ("kind", "spot_class", "spot_code", "perp_class", "perp_code"),
    [
        ("reject_margin", InsufficientFunds, "insufficient balance", InsufficientFunds, "-2019"),
        ("reject_notional", InvalidOrder, "NOTIONAL", InvalidOrder, "-4164"),
        ("reject_precision", InvalidOrder, "-1111", InvalidOrder, "-1111"),
    ],
)
async def test_injected_rejects_are_binances(
    kind: str, spot_class: type[Exception], spot_code: str, perp_class: type[Exception],
    perp_code: str,
) -> None:  # fmt: skip
    async with loopback_exchange() as lb:
        await faults_on(lb, f"{kind}=1")
        with pytest.raises(spot_class, match=spot_code):
            await lb.client.create_order(SPOT, "market", "buy", 0.01)
        with pytest.raises(perp_class, match=perp_code):
            await lb.client.create_order(PERP, "market", "buy", 0.01)
        assert lb.server.faults.counts == {kind: 2}
        assert not lb.core.orders


async def test_an_injected_reduce_only_reject() -> None:
    async with loopback_exchange() as lb:
        await lb.client.create_order(PERP, "market", "buy", 0.01)
        await faults_on(lb, "reject_reduce_only=1")
        with pytest.raises(InvalidOrder, match="-2022"):
            await lb.client.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})
        await lb.client.create_order(PERP, "market", "buy", 0.01)  # not reduce-only: served


async def test_timeouts_hold_the_answer_past_the_clients_timeout() -> None:
    async with loopback_exchange() as lb:
        client = lb.new_client(timeout=200)
        await client.load_markets()
        await faults_on(lb, "timeout=1,hold_s=0.4")
        with pytest.raises(RequestTimeout):
            await client.create_order(PERP, "market", "buy", 0.01, None, {"newClientOrderId": "t1"})
        await asyncio.sleep(0.4)
        assert lb.core.order(PERP, client_id="t1") is None  # refused unprocessed
        await faults_on(lb, "timeout_after=1,hold_s=0.4")
        with pytest.raises(RequestTimeout):
            await client.create_order(PERP, "market", "buy", 0.01, None, {"newClientOrderId": "t2"})
        assert lb.core.order(PERP, client_id="t2") is not None  # processed at once
        await faults_on(lb, "slow=1,slow_ms=120")
        started = time.monotonic()
        await client.fetch_time()
        assert time.monotonic() - started >= 0.12
        assert lb.server.faults.counts == {"timeout": 1, "timeout_after": 1, "slow": 1}


async def test_clock_skew_moves_the_exchanges_clock() -> None:
    async with loopback_exchange() as lb:
        await faults_on(lb, "skew_ms=-4000")
        server_ms = await lb.client.fetch_time()
        assert abs(server_ms - (time.time() * 1000 - 4000)) < 1000
        with pytest.raises(InvalidNonce, match="-1021"):  # our clock is 4 s ahead of theirs
            await lb.client.fetch_balance()
        options = {**lb.server.ccxt_config("", "")["options"], "adjustForTimeDifference": True}
        adjusted = lb.new_client(options=options)
        await adjusted.load_markets()
        await adjusted.fetch_balance()
        assert lb.server.faults.counts["clock_skew"] >= 2


async def test_the_control_route_reads_and_changes_the_plan() -> None:
    async with loopback_exchange() as lb:
        status, _ = await post_plan(lb.server.rest_url, {"spec": "rest_5xx=1", "seed": 5})
        assert status == 200
        with pytest.raises(BaseError, match=r"-1001|-1008|502"):
            await lb.client.fetch_time()
        status, text = await post_plan(lb.server.rest_url, {"spec": "rest_5xx=2"})
        assert status == 400
        assert "rest_5xx" in text
        read = (await http_get("127.0.0.1", lb.server.port, "/_loopback/faults")).json()
        assert read["seed"] == 5
        assert read["rates"] == {"rest_5xx": 1.0}
        assert read["counts"] == {"rest_5xx": 1}


# ------------------------------------------------------------------------------ the venue


class Sink:
    def __init__(self) -> None:
        self.events: list[Message] = []

    async def __call__(self, event: Message) -> int:
        self.events.append(event)
        return len(self.events)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def venue_on(lb: Loopback, sink: Sink) -> CcxtVenue:
    venue = CcxtVenue(
        BINANCE,
        spot=[SPOT],
        perp=[PERP],
        api_key=API_KEY,
        api_secret=SECRET,
        clock=lb.clock,
        rest_url=lb.server.rest_url,
        ws_url=lb.server.ws_url,
        order_transport="rest",
    )
    venue.attach(sink)
    return venue


def market_order(coid: str, symbol: str = PERP) -> SubmitOrder:
    now = time.time_ns()
    return SubmitOrder(
        now, now, intent_id=coid, client_order_id=coid, symbol=symbol, side="buy",
        order_type="market", qty=Decimal("0.01"), price=None, reduce_only=False,
        post_only=False, time_in_force="IOC",
    )  # fmt: skip


async def test_the_venue_trades_on_an_exchange_whose_clock_is_behind() -> None:
    async with loopback_exchange() as lb:
        await faults_on(lb, "skew_ms=-3000")  # our requests look 3 s early to it
        sink = Sink()
        async with venue_on(lb, sink) as venue:
            await venue.connect()
            await venue.submit(market_order("bl-s1"))
        assert lb.core.order(PERP, client_id="bl-s1") is not None
        assert [e.client_order_id for e in sink.of(OrderAccepted)] == ["bl-s1"]
        assert not sink.of(OrderRejected)


async def test_a_refused_timestamp_makes_the_venue_measure_the_clock_again() -> None:
    async with loopback_exchange() as lb:
        sink = Sink()
        async with venue_on(lb, sink) as venue:
            await venue.connect()
            await faults_on(lb, "skew_ms=-5000")  # the exchange's clock jumps back
            await venue.submit(market_order("bl-s2", SPOT))
        assert lb.core.order(SPOT, client_id="bl-s2") is not None
        assert not sink.of(OrderRejected)


async def test_a_5xx_on_an_order_is_an_unknown_outcome_never_a_rejection() -> None:
    async with loopback_exchange() as lb:
        sink = Sink()
        async with venue_on(lb, sink) as venue:
            await venue.connect()
            await faults_on(lb, "rest_5xx=1")
            said = []
            for n in range(12):  # 500 -1001, 502 (HTML), 503 -1008, each several times
                with pytest.raises(VenueError) as caught:
                    await venue.submit(market_order(f"bl-u{n}", (SPOT, PERP)[n % 2]))
                said.append(str(caught.value))
            assert all(any(code in text for text in said) for code in ("-1001", "502", "-1008"))
            await faults_on(lb, "rest_5xx_after=1")
            with pytest.raises(VenueError, match="-1007"):
                await venue.submit(market_order("bl-u99"))
            await faults_on(lb, "")
            found = await venue.order_status("bl-u99", PERP)
        assert not sink.of(OrderRejected)  # the router looks each up and resends if absent
        assert found is not None
        assert found.filled_qty == Decimal("0.01")
        assert lb.server.faults.counts == {"rest_5xx": 12, "rest_5xx_after": 1}


async def test_a_read_that_loses_its_answer_is_read_again() -> None:
    """A read changes nothing at the exchange: a lost answer (5xx, timeout) is read again, twice,
    before the caller hears of it. A catch-up makes ~15 reads; failing it at the first lost one
    kept the user stream reconnecting under a quarter of lost answers (the WS-API campaign's
    timeout phase stalled)."""
    async with loopback_exchange() as lb:
        sink = Sink()
        async with venue_on(lb, sink) as venue:
            await venue.connect()
            await faults_on(lb, "rest_5xx=1")
            with pytest.raises(VenueError, match="fetchOrder"):
                await venue.order_status("bl-r1", PERP)
            assert lb.server.faults.counts == {"rest_5xx": 3}  # sent three times
            await faults_on(lb, "rest_5xx=0.5")
            statements = 0
            for _ in range(40):  # three reads each (spot, futures, positions)
                with contextlib.suppress(VenueError):
                    await venue.account()
                    statements += 1
            # each read fails at 0.5³ with the retries: ~27 of 40 succeed; without, ~5
            assert statements >= 16
            await faults_on(lb, "rest_5xx=1")
            before = lb.server.faults.counts["rest_5xx"]
            with pytest.raises(VenueError):  # an order is not a read: sent once by this layer
                await venue.submit(market_order("bl-r2"))
            assert lb.server.faults.counts["rest_5xx"] == before + 1


async def test_a_short_retry_after_holds_calls_that_long_not_the_whole_minute() -> None:
    clock = SimulatedClock(START_NS - START_NS % NS_PER_MINUTE)
    budget = WeightBudget(100, 0.8, clock)
    budget.block(2)  # an injected 429: "Retry-After: 2", the window's weight far from spent
    waiting = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock.advance_to(clock.now_ns() + 2 * NS_PER_SECOND)
    await asyncio.wait_for(waiting, 1)  # not the next minute
    budget.block(None)  # a 429 that names no wait: the rest of the window
    again = asyncio.create_task(budget.acquire(1))
    clock.advance_to(clock.now_ns() + 5 * NS_PER_SECOND)
    await asyncio.sleep(0.05)
    assert not again.done()
    clock.advance_to(clock.now_ns() + NS_PER_MINUTE)
    await asyncio.wait_for(again, 1)


class FlakyAccount(InMemoryVenue):
    """The in-memory venue whose next ``failures`` account reads fail like a 5xx."""

    failures = 0

    async def account(self) -> Sequence[Message]:
        if self.failures > 0:
            self.failures -= 1
            raise VenueError("memory: account: HTTP 503, outcome unknown")
        return await super().account()


async def test_a_failed_account_read_after_caught_up_is_tried_again_soon(tmp_path: Path) -> None:
    """Trading is held until the start's check agrees: a 5xx on its read must not hold it for
    a whole ``recheck_s`` (here 60 s)."""
    clock = SimulatedClock(START_NS)
    venue = FlakyAccount(binance_defaults(["BTC"]), {"USDT": Decimal(1000)}, clock)
    async with Journal(tmp_path / "j.db") as journal:
        bus = Bus(clock, journal)
        reconciler = Reconciler(bus, clock, venue, grace_s=0.05, recheck_s=60)
        reconciler.install()
        resolved: list[Message] = []
        bus.subscribe(ReconcileResolved, resolved.append)
        instruments = tuple((await venue.instruments()).values())
        bus.publish(InstrumentsLoaded(START_NS, START_NS, "memory", instruments))
        for event in await venue.account():  # the opening account
            bus.publish(event)
        venue.failures = 2  # the check's first two reads fail
        bus.publish(VenueConnectionChanged(START_NS, START_NS, "memory", "rest", "caught_up"))
        await eventually(lambda: bool(resolved), within_s=5, what="the check after two failures")
        await reconciler.close()
    assert venue.failures == 0


# ------------------------------------------------------------------------------ the live path


async def journal_orders(journal_path: Path) -> int:
    """Orders the engine sent (``SubmitOrder`` journaled): each is at least one REST order
    request, and each REST request draws from the plan."""
    return count_in(journal_path, "SubmitOrder")


OVER_REST = FaultCampaign(
    part="faults_rest",
    sections=trading("rest"),
    counted=lambda kind: kind,
    orders=lambda exchange, journal_path: journal_orders(journal_path),
)


async def test_the_engine_trades_through_rest_faults_and_doubles_nothing(tmp_path: Path) -> None:
    result = await run_campaign(tmp_path, OVER_REST)
    assert result.counts["clock_skew"] > result.traded
