"""On a start with real keys the engine asks the exchange whether its key can withdraw, and says
so loudly (``engine/app/key_permissions.py``); the loopback exchange answers Binance's
``GET /sapi/v1/account/apiRestrictions`` per key (``adapters/loopback/permissions.py``).

In process: the real ccxt.pro client of :class:`CcxtVenue` against the loopback server, for a
key that can withdraw, one that cannot, and an exchange that does not answer. As a user runs it:
``ballast run`` against ``ballast venue serve --key-restriction withdraw`` with
``[security] refuse_withdrawal_keys = true`` refuses to start (exit 1) and sends nothing; without
it, it warns on stdout and in its log, shows ``ballast_api_key_withdrawals_enabled 1`` on
``/metrics`` and keeps running.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback.permissions import KeyRestriction
from ballast.engine.app.key_permissions import GAUGE, KeyCheck, check_key, report
from ballast.engine.kernel.errors import BallastError
from ballast.engine.trading.venue import VenueError
from tests.support.live_exchange import (
    caught_up,
    engine_running,
    exchange_serving,
    live_config,
)
from tests.support.loopback import API_KEY, SECRET, loopback_exchange
from tests.support.paper_config import Overrides

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


SHORT: Overrides = {"paper": {"start": "2024-01-01", "end": "2024-02-01"}}
"""A month of the bundled data: the exchange starts faster."""


async def test_a_live_run_with_a_withdrawing_key_warns_loudly_keeps_running_or_refuses(
    tmp_path: Path,
) -> None:
    served = live_config(tmp_path, name="exchange.toml", sections=SHORT)
    args = ("--key-restriction", "withdraw")
    async with exchange_serving(tmp_path, served, step_s=0.2, args=args) as exchange:
        urls = {"rest_url": exchange.rest_url, "ws_url": exchange.ws_url}
        refusing = live_config(
            tmp_path,
            name="refusing.toml",
            **urls,
            sections={
                **SHORT,
                "security": {"refuse_withdrawal_keys": True},
                "journal": {"path": str(tmp_path / "refused.db")},
            },
        )
        async with engine_running(tmp_path, refusing, log="refused.log") as refused:
            code = await refused.stop(signal.SIGCONT, within_s=60)  # a harmless signal: wait
        assert code == 1, (refused.lines, refused.stderr())
        assert "refuse_withdrawal_keys is set: refusing to start" in refused.stderr()
        assert (await exchange.state()).ours() == []

        config = live_config(tmp_path, **urls, sections={**SHORT, "metrics": {"enabled": True}})
        async with engine_running(tmp_path, config, "--metrics-address=127.0.0.1:0") as engine:
            await engine.served()
            await caught_up(tmp_path / "journal.db", 0, engine)
            metrics = (await engine.get("/metrics")).text
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
    assert f"{GAUGE} 1.0" in metrics
    warning = [line for line in engine.lines if "can WITHDRAW" in line]
    assert warning, engine.lines
    assert "WARNING" in engine.stderr() and "can WITHDRAW" in engine.stderr()
