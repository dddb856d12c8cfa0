"""Issue 14, fault injection on the REST side: the loopback exchange's seeded fault plan
(:mod:`ballast.adapters.loopback.faults`), each kind's answer as Binance gives it, and the live
engine trading through all of them: it keeps running and trading, and at rest there is no
duplicate order, no lost fill, the journal is whole and the book equals the exchange's.

The live test (``ballast venue serve --faults ... --fault-seed N`` + ``ballast run``) starts the
exchange with its clock 3 s behind the engine's (``skew_ms=-3000``), switches the REST faults on
through ``POST /_loopback/faults`` once the engine caught up, lets it trade, switches them off,
pauses the market and checks the book at rest. What the exchange injected, by kind (its
``GET /_loopback/faults`` counts), is the campaign's record ``faults_rest``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ccxt.base.errors import (
    BaseError,
    DDoSProtection,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    RequestTimeout,
)

from ballast.adapters.loopback.faults import (
    KINDS,
    PARAMS,
    REST,
    FaultPlan,
    FaultSpecError,
    parse_spec,
)
from tests.support.cli import ballast
from tests.support.http_get import http_get
from tests.support.live_exchange import (
    live_config,
)
from tests.support.loopback import Loopback, loopback_exchange

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


async def post_plan(rest_url: str, body: dict[str, Any]) -> tuple[int, str]:
    """``POST /_loopback/faults`` with ``body``: (status, text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(rest_url + "/_loopback/faults", json=body) as response,
    ):
        return response.status, await response.text()


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
        client = lb.new_client(timeout=300)
        await client.load_markets()
        await faults_on(lb, "timeout=1,hold_s=0.6")
        with pytest.raises(RequestTimeout):
            await client.create_order(PERP, "market", "buy", 0.01, None, {"newClientOrderId": "t1"})
        await asyncio.sleep(0.6)
        assert lb.core.order(PERP, client_id="t1") is None  # refused unprocessed
        await faults_on(lb, "timeout_after=1,hold_s=0.6")
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
