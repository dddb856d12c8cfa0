"""What is exchange-specific about the ccxt venue, declared in one ExchangeSpec: URLs pointed at
any host, the sandbox, error codes and readable rejection reasons. Nothing here opens a
connection."""

from __future__ import annotations

import ccxt
import pytest

from ballast.adapters.ccxt import BINANCE, EXCHANGES, CcxtVenue
from ballast.adapters.ccxt.convert import dec, order_state
from ballast.adapters.ccxt.exchanges import is_duplicate, is_unknown_order
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import VenueConfig
from tests.conftest import START_NS


def binance_error(kind: type[Exception], code: int, msg: str) -> Exception:
    return kind(f'binance {{"code":{code},"msg":"{msg}"}}')


def test_the_binance_spec_is_registered() -> None:
    assert EXCHANGES["binance"] is BINANCE
    assert BINANCE.limit("futures") == 2400
    assert BINANCE.limit("spot") == 6000
    assert BINANCE.weight("spot", "myTrades") == 20
    assert BINANCE.weight("futures", "never-heard-of") == 1


def test_every_api_points_at_the_given_host() -> None:
    urls = BINANCE.urls("http://127.0.0.1:9/", "ws://127.0.0.1:9")
    rest = {k: v for k, v in urls["api"].items() if k != "ws"}
    assert all(v.startswith("http://127.0.0.1:9/") for v in rest.values())
    client = ccxt.binance()
    assert set(client.urls["api"]) - {"ws"} <= set(rest)  # nothing left on Binance's hosts
    ws = urls["api"]["ws"]
    assert "/stream" in ws["spot"]  # ccxt requires it of the spot base
    assert ws["linear"].endswith("/ws")
    assert ws["ws-api"]["spot"] == "ws://127.0.0.1:9/ws-api/v3"


def venue(**kwargs: object) -> CcxtVenue:
    return CcxtVenue(
        BINANCE,
        spot=["BTC/USDT"],
        perp=["BTC/USDT:USDT"],
        api_key="key-for-a-test",
        api_secret="secret-for-a-test",
        clock=SimulatedClock(START_NS),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_testnet_uses_the_sandbox_urls_and_overrides_win() -> None:
    sandbox = venue(testnet=True).build_client()
    assert sandbox.urls["api"]["public"].startswith("https://testnet.binance.vision")
    assert sandbox.urls["api"]["fapiPrivate"].startswith("https://testnet.binancefuture.com")
    assert sandbox.urls["api"]["ws"]["spot"].startswith("wss://stream.testnet.binance.vision")
    assert not sandbox.enableRateLimit
    local = venue(testnet=True, rest_url="http://127.0.0.1:9", ws_url="ws://127.0.0.1:9")
    client = local.build_client()
    assert client.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert client.timeout_on_exit == 0
    real = venue().build_client()
    assert real.urls["api"]["public"].startswith("https://api.binance.com")
    for c in (sandbox, client, real):
        await c.close()


def test_rest_and_ws_urls_go_together() -> None:
    with pytest.raises(ValueError, match="together"):
        venue(rest_url="http://127.0.0.1:9")


def test_duplicate_and_unknown_order_codes() -> None:
    assert is_duplicate(
        BINANCE, binance_error(ccxt.InvalidOrder, -4116, "ClientOrderId is duplicated.")
    )
    assert is_duplicate(BINANCE, binance_error(ccxt.InvalidOrder, -2010, "Duplicate order sent."))
    assert not is_duplicate(
        BINANCE,
        binance_error(
            ccxt.InvalidOrder, -2010, "Account has insufficient balance for requested action."
        ),
    )
    assert not is_duplicate(BINANCE, ccxt.NetworkError("binance GET http://127.0.0.1"))
    assert is_unknown_order(
        BINANCE, binance_error(ccxt.OrderNotFound, -2013, "Order does not exist.")
    )
    assert not is_unknown_order(BINANCE, binance_error(ccxt.InvalidOrder, -1013, "x"))


@pytest.mark.parametrize(
    ("code", "msg", "words"),
    [
        (-2010, "Account has insufficient balance for requested action.", "insufficient balance"),
        (-2019, "Margin is insufficient.", "insufficient margin"),
        (-1013, "Filter failure: NOTIONAL", "notional below the minimum"),
        (-1013, "Filter failure: LOT_SIZE", "lot size"),
        (-4164, "Order's notional must be no smaller than 100", "notional below the minimum"),
        (-2022, "ReduceOnly Order is rejected.", "reduce-only"),
        (-5022, "Due to the order could not be executed as maker", "post-only"),
        (-2010, "Order would immediately match and take.", "post-only"),
        (-9999, "Something new.", "order refused"),
    ],
)
def test_rejections_read_plainly_and_keep_the_exchange_words(
    code: int, msg: str, words: str
) -> None:
    reason = BINANCE.rejection_reason(binance_error(ccxt.InvalidOrder, code, msg))
    assert words in reason
    assert str(code) in reason
    assert msg in reason


def test_amounts_stay_exact() -> None:
    assert dec("100042.504545454545") == dec("100042.504545454545000")
    assert str(dec("100042.504545454545")) == "100042.504545454545"
    assert dec(0.1) == dec("0.1")
    assert dec(1e-05) == dec("0.00001")
    assert dec(None) == 0
    assert dec("", None) is None
    with pytest.raises(ValueError, match="not an amount"):
        dec("abc")


@pytest.mark.parametrize(
    ("status", "filled", "state"),
    [
        ("open", "0", "open"),
        ("open", "0.1", "partially_filled"),
        ("closed", "1", "filled"),
        ("canceled", "0", "canceled"),
        ("expired", "0.5", "canceled"),
        ("rejected", "0", "rejected"),
    ],
)
def test_unified_statuses_map_to_venue_states(status: str, filled: str, state: str) -> None:
    amount = dec(filled)
    assert amount is not None
    assert order_state(status, amount) == state


def test_the_venue_and_the_config_default_to_the_same_order_transport() -> None:
    """Issue 11: the constructor said "rest" while ``venue.order_transport`` says "websocket"."""
    assert venue().order_transport == VenueConfig().order_transport == "websocket"
    assert venue(order_transport="rest").order_transport == "rest"
