"""The ccxt.pro ``binance`` constructor config for a loopback exchange (VENUE-NOTES.md of issue
11): every REST and WebSocket URL on the loopback server (the venue adapter's own block,
:meth:`~ballast.adapters.ccxt.exchanges.ExchangeSpec.urls`), ``enableRateLimit`` off,
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

    from ballast.adapters.ccxt.exchanges import BINANCE  # the venue's own URL block

    exact = {code: getattr(ccxt, name) for code, name in CCXT_EXTRA_CODES.items()}
    return {
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": False,
        "urls": BINANCE.urls(rest_url, ws_url),
        "options": {
            "fetchMarkets": {"types": ["spot", "linear"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
        "exceptions": {"exact": exact},
    }
