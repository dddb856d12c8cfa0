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

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback.permissions import KeyRestriction
from ballast.engine.app.key_permissions import GAUGE, KeyCheck, check_key, report
from ballast.engine.kernel.errors import BallastError
from ballast.engine.trading.venue import VenueError
from tests.support.loopback import API_KEY, SECRET, loopback_exchange

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
        venue = CcxtVenue(
            BINANCE,
            spot=["BTC/USDT"],
            perp=["BTC/USDT:USDT"],
            api_key=API_KEY,
            api_secret=SECRET,
            clock=lb.clock,
            rest_url=lb.server.rest_url,
            ws_url=lb.server.ws_url,
        )
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
