"""Binance's error replies: ``{"code": -xxxx, "msg": "..."}`` with its HTTP status, and the
mapping of the simulated exchange's refusals onto Binance's codes and words."""

from __future__ import annotations

from typing import Any, Final

from ballast.adapters.sim.exchange import POST_ONLY_REJECT


class BinanceError(Exception):
    """A Binance error reply."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def bad_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def invalid_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def bad_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str) -> BinanceError:
    return BinanceError(
        -1100,
        f"Illegal characters found in parameter '{name}'; "
        "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    )


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def unknown_order() -> BinanceError:
    return BinanceError(-2011, "Unknown order sent.")


def no_such_order() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def duplicate(futures: bool) -> BinanceError:
    if futures:
        return BinanceError(-4116, "ClientOrderId is duplicated.")
    return BinanceError(-2010, "Duplicate order sent.")


POST_ONLY_FUTURES: Final = (
    "Due to the order could not be executed as maker, the Post Only order will be rejected. "
    "The order will not be recorded in the order history"
)


def refusal(reason: str, futures: bool, min_notional: str) -> BinanceError:
    """Binance's reply to an order the simulated exchange refused with ``reason``."""
    if reason.startswith("unknown symbol"):
        return invalid_symbol()
    if reason == "limit order without a price":
        return mandatory("price")
    if reason.startswith("no market price"):
        return BinanceError(-1013, "Market is closed.")
    if reason.startswith("reduce-only"):
        return BinanceError(-2022, "ReduceOnly Order is rejected.")
    if reason == POST_ONLY_REJECT:
        if futures:
            return BinanceError(-5022, POST_ONLY_FUTURES)
        return BinanceError(-2010, "Order would immediately match and take.")
    if reason.startswith("insufficient"):
        if futures:
            return BinanceError(-2019, "Margin is insufficient.")
        return BinanceError(-2010, "Account has insufficient balance for requested action.")
    if reason.startswith("quantity"):
        if not futures:
            return BinanceError(-1013, "Filter failure: LOT_SIZE")
        if "not positive" in reason:
            return BinanceError(-4003, "Quantity less than or equal to zero.")
        if "minimum quantity" in reason:
            return BinanceError(-4004, "Quantity less than min quantity.")
        return BinanceError(-1111, "Precision is over the maximum defined for this asset.")
    if reason.startswith("price"):
        if not futures:
            return BinanceError(-1013, "Filter failure: PRICE_FILTER")
        if "not positive" in reason:
            return BinanceError(-4001, "Price less than 0.")
        return BinanceError(-4014, "Price not increased by tick size.")
    if reason.startswith("notional"):
        if not futures:
            return BinanceError(-1013, "Filter failure: NOTIONAL")
        return BinanceError(
            -4164,
            f"Order's notional must be no smaller than {min_notional} "
            "(unless you choose reduce only).",
        )
    return BinanceError(-2010, f"Order was rejected: {reason}")


CCXT_EXTRA_CODES: Final = {
    "-1013": "InvalidOrder",
    "-1111": "InvalidOrder",
    "-2019": "InsufficientFunds",
    "-2022": "InvalidOrder",
    "-4001": "InvalidOrder",
    "-4003": "InvalidOrder",
    "-4004": "InvalidOrder",
    "-4014": "InvalidOrder",
    "-4116": "InvalidOrder",
    "-4164": "InvalidOrder",
    "-5022": "OrderNotFillable",
}
"""Codes ccxt maps only for Binance's own hosts (its per-market tables, chosen by URL): the
loopback ``ccxt_config`` adds them to the common table so each becomes the same exception class
as on Binance (filter failures are InvalidOrder)."""
