"""Hypothesis strategies for raw Binance WebSocket frames a client should never have been sent.

Each generated :class:`Frame` is the text put on the wire (by
:func:`ballast.adapters.loopback.inject.inject`), the target sockets, what was done to it, and
whether the engine must quarantine it (``bad``: a ``DataRejected`` or a ``VenueMessageRejected``
must follow) or may take it (a harmless variant: a missing size, an unreadable exchange time that
ccxt replaces by none). Market frames are built around one true price (``BASE_BID`` /
``BASE_ASK``, mark ``BASE_MARK``): the engine must never value or trade on anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NamedTuple

from hypothesis import strategies as st

from ballast.adapters.loopback.inject import Target

BASE_BID: Final = Decimal("49999")
BASE_ASK: Final = Decimal("50001")
BASE_MARK: Final = Decimal("50000")
WIRE_SYMBOL: Final = "BTCUSDT"
HOUR_MS: Final = 3_600_000


class Now(NamedTuple):
    """A time in a message: the exchange's clock at injection + ``offset_ms`` (generated data
    must not depend on the clock: hypothesis replays it)."""

    offset_ms: int


@dataclass(frozen=True)
class Frame:
    target: Target
    message: Any
    """The message (JSON-able, :class:`Now` for times), or the raw text itself."""
    what: str
    bad: bool
    series: str = ""
    """The guard series a price anomaly targets (``spot``, ``perp``, ``mark``): a third
    consistent spike in a row is a confirmed move, not an anomaly; the generator avoids it."""
    cut: int = 0
    """Cut the text after this many characters (malformed JSON; 0: whole)."""

    def text(self, now_ms: int) -> str:
        """The frame as put on the wire at exchange time ``now_ms``."""
        if isinstance(self.message, str):
            return self.message
        text = json.dumps(_at(self.message, now_ms), separators=(",", ":"))
        return text[: min(self.cut, len(text) - 2)] if self.cut else text


def _at(value: Any, now_ms: int) -> Any:
    if isinstance(value, Now):
        return now_ms + value.offset_ms
    if isinstance(value, dict):
        return {k: _at(v, now_ms) for k, v in value.items()}
    if isinstance(value, list):
        return [_at(v, now_ms) for v in value]
    return value


BAD_PRICES: Final = (
    "NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "0",
    "0.0",
    "-1",
    "-50000",
    "1e999999999",
    "abc",
    "",
    "sNaN",
    "0x10",
)
WRONG_TYPES: Final[tuple[Any, ...]] = ([1], {"x": 1}, True, None, [])
SPIKES: Final = (Decimal("1.5"), Decimal("0.5"), Decimal(2), Decimal(10), Decimal("0.1"))


def _book(perp: bool, update_id: int) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "u": update_id,
        "s": WIRE_SYMBOL,
        "b": str(BASE_BID),
        "B": "1",
        "a": str(BASE_ASK),
        "A": "1",
    }
    if perp:
        return {"e": "bookTicker", **msg, "E": Now(0), "T": Now(0)}
    return msg


def _mark() -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": Now(0),
        "s": WIRE_SYMBOL,
        "p": str(BASE_MARK),
        "i": str(BASE_MARK),
        "P": str(BASE_MARK),
        "r": "0.0001",
        "T": Now(8 * HOUR_MS),
    }


@st.composite
def market_frame(draw: st.DrawFn) -> Frame:
    """One market data frame: spot or futures bookTicker, or markPrice, mutated one way."""
    kind = draw(st.sampled_from(("spot", "perp", "mark")))
    target: Target = "spot" if kind == "spot" else "futures"
    msg = _mark() if kind == "mark" else _book(kind == "perp", draw(st.integers(1, 10**12)))
    prices = ("p",) if kind == "mark" else ("b", "a")
    times = ("E", "T") if kind == "perp" else ("E",) if kind == "mark" else ()
    choices = ["ok", "bad_price", "wrong_type", "missing", "spike", "symbol", "json", "text"]
    if kind != "mark":
        choices.append("crossed")
    if times:
        choices += ["future", "backwards", "huge_time", "garbage_time"]
    if kind == "mark":
        choices += ["funding_rate", "funding_time"]
    value: Any
    how = draw(st.sampled_from(choices))
    bad, series = True, ""
    what = f"{kind} {how}"
    if how == "ok":
        bad = False
    elif how == "bad_price":
        field, value = draw(st.sampled_from(prices)), draw(st.sampled_from(BAD_PRICES))
        msg[field] = value
        what += f" {field}={value!r}"
    elif how == "wrong_type":
        field, value = draw(st.sampled_from(prices)), draw(st.sampled_from(WRONG_TYPES))
        msg[field] = value
        what += f" {field}={value!r}"
    elif how == "missing":
        field = draw(
            st.sampled_from((*prices, "s", "B", "A") if kind != "mark" else ("p", "s", "r"))
        )
        del msg[field]
        bad = field not in ("B", "A")  # a missing size reads as 0: harmless
        what += f" {field}"
    elif how == "spike":
        factor = draw(st.sampled_from(SPIKES))
        for field in prices:
            msg[field] = str(Decimal(msg[field]) * factor)
        what += f" x{factor}"
        series = kind
    elif how == "symbol":
        msg["s"] = draw(st.sampled_from(("FOOUSDT", "btcusdt ", "BTC", "X" * 40)))
        what += f" {msg['s']!r}"
    elif how == "crossed":
        gap = draw(st.sampled_from((Decimal(1), Decimal(100), Decimal(5000))))
        msg["b"], msg["a"] = str(BASE_ASK + gap), str(BASE_BID)
        what += f" +{gap}"
    elif how == "future":
        ahead = draw(st.integers(10 * 60_000, 10**6 * HOUR_MS))
        for field in times:
            msg[field] = Now(ahead)
        what += f" +{ahead} ms"
    elif how == "backwards":
        back = draw(st.integers(60_000, 10**12))
        for field in times:
            msg[field] = Now(-back)
        what += f" -{back} ms"
    elif how == "huge_time":
        value = draw(st.sampled_from((2**63, 2**70, -(2**70), 10**30)))
        for field in times:
            msg[field] = value
        what += f" {value}"
    elif how == "garbage_time":
        value = draw(st.sampled_from(("abc", None, [], {"t": 1})))
        for field in times:
            msg[field] = value
        bad = False  # ccxt reads no time: the engine's own clock stamps it
        what += f" {value!r}"
    elif how == "funding_rate":
        value = draw(st.sampled_from(("NaN", "5.0", "-0.5", "abc", "Infinity", None, [1])))
        msg["r"] = value
        what += f" r={value!r}"
    elif how == "funding_time":
        value = draw(st.sampled_from((2**70, "abc", [1], -(2**70))))
        msg["T"] = value
        what += f" T={value!r}"
    if how == "json":
        cut = draw(st.integers(1, 120))
        return Frame(target, msg, what + f" cut at {cut}", True, cut=cut)
    if how == "text":
        garbage = draw(st.sampled_from(("{", "[", "{}", "[]", "null", "[1,2]", '{"e":null}')))
        return Frame(target, garbage, what + f" {garbage!r}", True)
    return Frame(target, msg, what, bad, series)


def without_confirmed_spikes(frames: list[Frame]) -> list[Frame]:
    """Drop every spike after the second one of a series in a batch (three consistent points
    are a confirmed move, which the guard rightly accepts)."""
    seen: dict[str, int] = {}
    kept = []
    for frame in frames:
        if frame.series:
            seen[frame.series] = seen.get(frame.series, 0) + 1
            if seen[frame.series] > 2:
                continue
        kept.append(frame)
    return kept


def market_batches() -> st.SearchStrategy[list[Frame]]:
    """A batch of 1 to 6 market frames."""
    return st.lists(market_frame(), min_size=1, max_size=6).map(without_confirmed_spikes)


def user_batches() -> st.SearchStrategy[list[Frame]]:
    """A batch of 1 to 3 user-stream frames."""
    return st.lists(user_frame(), min_size=1, max_size=3)


GARBAGE: Final[tuple[Any, ...]] = ("abc", "NaN", "-Infinity", [1], {"a": 1}, True, "1e999999999")


@st.composite
def user_frame(draw: st.DrawFn) -> Frame:
    """One user-stream frame of an order this engine never sent, or of an account update, with
    something wrong in it."""
    now_ms = Now(0)
    kind = draw(st.sampled_from(("spot_order", "perp_order", "spot_balance", "perp_account")))
    n = draw(st.integers(10**6, 10**9))
    target: Target = "spot_user" if kind.startswith("spot") else "futures_user"
    msg: dict[str, Any]
    if kind in ("spot_order", "perp_order"):
        order: dict[str, Any] = {
            "s": WIRE_SYMBOL,
            "c": f"fz-{n}",
            "S": "BUY",
            "o": "MARKET",
            "f": "GTC",
            "q": "0.01",
            "p": "0",
            "x": "TRADE",
            "X": "FILLED",
            "i": n,
            "l": "0.01",
            "z": "0.01",
            "L": "50000",
            "n": "0.5",
            "N": "USDT",
            "T": now_ms,
            "t": n,
            "m": False,
        }
        how = draw(st.sampled_from(("unknown_order", "garbage", "missing", "json")))
        what = f"{kind} {how}"
        if how == "garbage":
            field = draw(st.sampled_from(("l", "L", "n", "t", "T", "s", "S", "q", "z", "i", "c")))
            order[field] = draw(st.sampled_from(GARBAGE))
            what += f" {field}={order[field]!r}"
        elif how == "missing":
            field = draw(st.sampled_from(("c", "i", "t", "l", "L", "s", "n")))
            del order[field]
            what += f" {field}"
        if kind == "spot_order":
            msg = {"e": "executionReport", "E": now_ms, **order}
        else:
            msg = {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": order}
    elif kind == "spot_balance":
        row: dict[str, Any] = {"a": "BTC", "f": "1", "l": "0"}
        field = draw(st.sampled_from(("f", "l")))
        row[field] = draw(st.sampled_from(GARBAGE))
        how = "json" if draw(st.booleans()) and draw(st.booleans()) else "garbage"
        what = f"{kind} {how} {field}={row[field]!r}"
        msg = {"e": "outboundAccountPosition", "E": now_ms, "u": now_ms, "B": [row]}
    else:
        position: dict[str, Any] = {
            "s": WIRE_SYMBOL,
            "pa": "0",
            "ep": "0",
            "bep": "0",
            "cr": "0",
            "up": "0",
            "mt": "cross",
            "iw": "0",
            "ps": "BOTH",
        }
        field = draw(st.sampled_from(("pa", "ep", "up")))
        position[field] = draw(st.sampled_from(GARBAGE))
        how = "json" if draw(st.booleans()) and draw(st.booleans()) else "garbage"
        what = f"{kind} {how} {field}={position[field]!r}"
        msg = {
            "e": "ACCOUNT_UPDATE",
            "E": now_ms,
            "T": now_ms,
            "a": {"m": "ORDER", "B": [], "P": [position]},
        }
    wrapped = {"subscriptionId": 0, "event": msg} if target == "spot_user" else msg
    if how == "json":
        cut = draw(st.integers(1, 200))
        return Frame(target, wrapped, what + f" cut at {cut}", True, cut=cut)
    return Frame(target, wrapped, what, True)


def every_kind_of_rejection() -> list[Frame]:
    """One batch with a frame of every rejection the gate and the venue know (the examples
    every run includes, whatever hypothesis draws)."""
    negative, crossed, spike = _book(False, 1), _book(True, 2), _book(False, 3)
    negative["b"] = "-1"
    crossed["b"], crossed["a"] = "50101", "49999"
    spike["b"], spike["a"] = "74998.5", "75001.5"
    backwards, future, funding, nan = _book(True, 4), _mark(), _mark(), _mark()
    backwards["E"] = backwards["T"] = Now(-HOUR_MS)
    future["E"] = Now(1000 * HOUR_MS)
    funding["r"] = "5.0"
    nan["p"] = "NaN"
    unknown = _book(True, 5)
    unknown["s"] = "FOOUSDT"
    return [
        Frame("spot", negative, "spot b=-1", True),
        Frame("futures", crossed, "perp crossed", True),
        Frame("spot", spike, "spot x1.5", True, series="spot"),
        Frame("futures", backwards, "perp backwards", True),
        Frame("futures", future, "mark future", True),
        Frame("futures", funding, "mark r=5.0", True),
        Frame("futures", nan, "mark p=NaN", True),
        Frame("futures", unknown, "perp unknown symbol", True),
        Frame("futures", _book(True, 6), "perp json", True, cut=30),
        Frame("spot", "{}", "spot text '{}'", True),
    ]
