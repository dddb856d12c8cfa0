"""What an API key of the loopback exchange may do, and ``GET /sapi/v1/account/apiRestrictions``.

Binance tells a key's owner what the key may do (signed, weight 1)::

    {"ipRestrict": false, "createTime": ..., "enableReading": true,
     "enableSpotAndMarginTrading": true, "enableFutures": true, "enableWithdrawals": false, ...}

Each key of the loopback exchange has one of these :data:`KeyRestriction` s:

- ``trade`` (the default): reads and trades, cannot withdraw;
- ``withdraw``: reads, trades and can withdraw (the key a trading engine should not be given);
- ``read``: reads only; every order-changing call (new order, cancel, leverage, margin type,
  position mode) is refused with Binance's -2015 "Invalid API-key, IP, or permissions for
  action." (HTTP 401), as Binance refuses a read-only key;
- ``unanswered``: trades, and the exchange does not answer the restrictions query (HTTP 404, as
  a venue without that endpoint): the engine cannot check.

``ballast venue serve --key-restriction R`` sets the restriction of the key pair it serves;
``POST /_loopback/keys?restriction=R`` changes the restriction of every key while it runs (a key's
permissions revoked under a running engine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast, get_args

from aiohttp import web

KeyRestriction = Literal["trade", "withdraw", "read", "unanswered"]
KEY_RESTRICTIONS: Final[tuple[str, ...]] = get_args(KeyRestriction)
RESTRICTIONS_PATH: Final = "/sapi/v1/account/apiRestrictions"
ORDER_PATHS: Final = frozenset(
    {
        ("POST", "/api/v3/order"),
        ("DELETE", "/api/v3/order"),
        ("DELETE", "/api/v3/openOrders"),
        ("POST", "/fapi/v1/order"),
        ("DELETE", "/fapi/v1/order"),
        ("DELETE", "/fapi/v1/allOpenOrders"),
        ("POST", "/fapi/v1/leverage"),
        ("POST", "/fapi/v1/marginType"),
        ("POST", "/fapi/v1/positionSide/dual"),
    }
)
"""The calls that change orders or the account's trading settings: what trading permission
covers."""


@dataclass
class KeyPermissions:
    """The restriction of each API key (keys not listed: ``default``)."""

    default: KeyRestriction = "trade"
    by_key: dict[str, KeyRestriction] = field(default_factory=dict)
    created_ms: int = 1_700_000_000_000

    def of(self, api_key: str) -> KeyRestriction:
        return self.by_key.get(api_key, self.default)

    def may(self, api_key: str, method: str, path: str) -> bool:
        """Whether ``api_key`` may make the call ``method path``."""
        return self.of(api_key) != "read" or (method, path) not in ORDER_PATHS

    def answers(self, api_key: str) -> bool:
        """Whether the restrictions query is answered for ``api_key``."""
        return self.of(api_key) != "unanswered"

    def restrictions(self, api_key: str) -> Mapping[str, Any]:
        """The ``apiRestrictions`` answer for ``api_key``."""
        restriction = self.of(api_key)
        trading = restriction != "read"
        return {
            "ipRestrict": False,
            "createTime": self.created_ms,
            "enableReading": True,
            "enableSpotAndMarginTrading": trading,
            "enableFutures": trading,
            "enableMargin": False,
            "enableWithdrawals": restriction == "withdraw",
            "enableInternalTransfer": False,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
            "enablePortfolioMarginTrading": False,
            "enableFixApiTrade": False,
            "enableFixReadOnly": False,
        }

    async def control(self, request: web.Request) -> web.StreamResponse:
        """``POST /_loopback/keys?restriction=R``: every key gets restriction R from now on."""
        restriction = request.query.get("restriction", "")
        if restriction not in KEY_RESTRICTIONS:
            raise web.HTTPBadRequest(text=f"restriction: one of {', '.join(KEY_RESTRICTIONS)}")
        self.default = cast(KeyRestriction, restriction)
        self.by_key.clear()
        return web.json_response({"restriction": restriction})
