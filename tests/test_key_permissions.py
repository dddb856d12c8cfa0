"""On a start with real keys the engine asks the exchange whether its key can withdraw, and says
so loudly (``engine/app/key_permissions.py``); the loopback exchange answers Binance's
``GET /sapi/v1/account/apiRestrictions`` per key (``adapters/loopback/permissions.py``).

In process: the real ccxt.pro client of :class:`CcxtVenue` against the loopback server, for a
key that can withdraw, one that cannot, and an exchange that does not answer; what the engine
reports of each. As a user runs it (``ballast run`` against ``ballast venue serve
--key-restriction withdraw``: the warning on stdout and in the log, the gauge on ``/metrics``,
trading on; with ``[security] refuse_withdrawal_keys = true`` exit 1 before any order): the live
session of ``tests/test_secrets.py``, which also scans those outputs for the keys.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ballast.adapters.loopback.permissions import KeyRestriction
from ballast.engine.app.key_permissions import GAUGE, KeyCheck, check_key, report
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import OrderTransport
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import KEY_REFUSED, Message, OrderRejected
from ballast.engine.trading.venue import VenueError
from tests.support.loopback import SECRET, loopback_exchange

pytestmark = pytest.mark.reliability


@pytest.mark.parametrize(
    ("restriction", "expected"),
    [("withdraw", True), ("trade", False), ("read", False), ("unanswered", None)],
)
async def test_the_venue_reads_what_the_key_may_do_from_the_exchange(
    restriction: KeyRestriction, expected: bool | None
) -> None:
    async with loopback_exchange() as lb:
        lb.server.permissions.default = restriction
        venue = lb.venue()
        async with venue:
            check = await check_key(venue.key_restrictions)
            if expected is None:
                with pytest.raises(VenueError, match="apiRestrictions"):
                    await venue.key_restrictions()
            else:
                answer = await venue.key_restrictions()
                assert answer["enableReading"] is True
                assert answer["enableSpotAndMarginTrading"] is (restriction != "read")
    assert check.can_withdraw is expected, check
    if expected is None:
        assert check.problem
        assert "could not check" in check.message()


async def test_a_failing_or_odd_answer_is_an_unchecked_key_not_a_crash() -> None:
    async def broken() -> dict[str, object]:
        raise ConnectionResetError("peer went away")

    async def odd() -> dict[str, object]:
        return {"enableWithdrawals": "yes"}

    assert (await check_key(broken)).can_withdraw is None
    assert "ConnectionResetError" in (await check_key(broken)).problem
    assert (await check_key(odd)).can_withdraw is None


def test_report_sets_the_gauge_warns_and_refuses_only_a_withdrawing_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for can, value in ((True, "1.0"), (False, "0.0")):
        registry = CollectorRegistry()
        report(KeyCheck(can), refuse=False, registry=registry)
        assert f"{GAUGE} {value}" in generate_latest(registry).decode()
    unchecked = CollectorRegistry()
    report(KeyCheck(None, "HTTP 404"), refuse=True, registry=unchecked)  # no crash, no refusal
    assert GAUGE not in generate_latest(unchecked).decode()
    with pytest.raises(BallastError, match="refuse_withdrawal_keys"):
        report(KeyCheck(True), refuse=True)
    out = capsys.readouterr().out
    assert "WARNING: the API key can WITHDRAW funds" in out
    assert "cannot withdraw" in out
    assert "could not check whether the API key can withdraw (HTTP 404)" in out


@pytest.mark.parametrize("transport", ["rest", "websocket"])
async def test_a_key_that_loses_its_trade_permission_gets_its_orders_refused_not_rate_limited(
    transport: OrderTransport,
) -> None:
    """Binance answers -2015 to a key without the permission for an order; ccxt reports that as
    DDoSProtection once the key has worked (a "temporary ban"), on REST and on the WebSocket API.
    The venue names it for what it is: the order is refused for the key (its outcome is known,
    nothing to look up or wait out), and the reason says so without the secret."""
    async with loopback_exchange(balances={"USDT": "100000", "BTC": "1"}) as lb:
        venue = lb.venue(order_transport=transport)
        events: list[Message] = []

        async def sink(event: Message) -> int:
            events.append(event)
            return len(events)

        venue.attach(sink)
        async with venue:
            await venue.connect()
            await venue.submit(market_order("bl-k1"))  # the key works: ccxt remembers that
            assert [type(e) for e in events if isinstance(e, OrderRejected)] == []
            lb.server.permissions.default = "read"  # the key's trade permission is revoked

            for coid, symbol in (("bl-k2", "BTC/USDT"), ("bl-k3", "BTC/USDT:USDT")):
                await venue.submit(market_order(coid, symbol))  # no VenueError: not unknown

    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [e.client_order_id for e in rejected] == ["bl-k2", "bl-k3"]
    for e in rejected:
        assert e.reason.startswith(KEY_REFUSED + "API key refused"), e.reason
        assert "-2015" in e.reason
        assert "rate limit" not in e.reason
        assert SECRET not in e.reason


def market_order(coid: str, symbol: str = "BTC/USDT") -> SubmitOrder:
    return SubmitOrder(
        0,
        0,
        intent_id=coid,
        client_order_id=coid,
        symbol=symbol,
        side="buy",
        order_type="market",
        qty=Decimal("0.01"),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="IOC",
    )
