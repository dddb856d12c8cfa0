"""The ccxt.pro ``binance`` constructor config for a loopback exchange (VENUE-NOTES.md of issue
11): every REST and WebSocket URL on the loopback server, ``enableRateLimit`` off,
markets limited to spot + linear, and the error codes ccxt only maps for Binance's own hostnames
(:data:`~ballast.adapters.loopback.errors.CCXT_EXTRA_CODES`) added to its common table, so each
rejection becomes the exception class it is against Binance. Importing this module does not
import ccxt (calling the function does)."""

from __future__ import annotations

from typing import Any

from ballast.adapters.loopback.errors import CCXT_EXTRA_CODES


def loopback_ccxt_config(rest_url: str, ws_url: str, api_key: str, secret: str) -> dict[str, Any]:
    """``{"apiKey", "secret", "enableRateLimit": False, "urls": {"api": ...}, "options": ...,
    "exceptions": ...}`` for ``ccxt.pro.binance(config)``; ``rest_url`` ``http://127.0.0.1:P``,
    ``ws_url`` ``ws://127.0.0.1:P``. Never call ``set_sandbox_mode`` on that client: it replaces
    ``urls["api"]``."""
    import ccxt  # only a ccxt user pays its import

    h, w = rest_url, ws_url
    paths = {
        "public": "/api/v3", "private": "/api/v3", "v1": "/api/v1",
        "sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3", "sapiV4": "/sapi/v4",
        "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1", "dapiPrivateV2": "/dapi/v2",
        "dapiData": "/futures/data", "eapiPublic": "/eapi/v1", "eapiPrivate": "/eapi/v1",
        "fapiPublic": "/fapi/v1", "fapiPrivate": "/fapi/v1",
        "fapiPublicV2": "/fapi/v2", "fapiPrivateV2": "/fapi/v2",
        "fapiPublicV3": "/fapi/v3", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data", "papi": "/papi/v1", "papiV2": "/papi/v2",
    }  # fmt: skip
    api: dict[str, Any] = {name: h + path for name, path in paths.items()}
    api["ws"] = {
        "spot": w + "/stream/ws",
        "margin": w + "/stream/ws",
        "linear": w + "/fws/ws",
        "inverse": w + "/dws/ws",
        "stock": w + "/equity/ws",
        "option": w + "/fws/public/ws",
        "optionMarket": w + "/fws/market/ws",
        "optionPrivate": w + "/fws/private/ws",
        "papi": w + "/pm/ws",
        "ws-api": {
            "spot": w + "/ws-api/v3",
            "linear": w + "/ws-fapi/v1",
            "inverse": w + "/ws-dapi/v1",
        },
    }
    exact = {code: getattr(ccxt, name) for code, name in CCXT_EXTRA_CODES.items()}
    return {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": False,
        "urls": {"api": api},
        "options": {
            "fetchMarkets": {"types": ["spot", "linear"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
        "exceptions": {"exact": exact},
    }
