"""Seeded, switchable fault injection for the loopback exchange (issue 14): the plan (which kinds,
at what rate, the seed) and what it injected, counted by kind.

A spec is ``kind=rate`` and ``param=value`` entries separated by commas, e.g.
``rest_5xx=0.05,slow=0.1,skew_ms=-3000``. Rates are probabilities per request (0..1) of the
requests a kind applies to; at most one REST fault per request: the request draws one number
from the plan's seeded generator and the applicable kinds share [0, 1) in registry order, so
their rates add up to at most 1. The same seed and the same requests give the same faults.

Kinds are registered in :data:`KINDS` (name → owner): ``"rest"`` kinds are injected by
:meth:`FaultPlan.rest_fault` in the REST endpoint of
:class:`~ballast.adapters.loopback.server.LoopbackServer`; other owners (the stream side) take
their rates from the same plan (:meth:`FaultPlan.rate`, :meth:`FaultPlan.draw`,
:meth:`FaultPlan.count`), so ``ballast venue serve --faults`` takes every kind in one spec.

REST kinds, as Binance answers (HTTP status, ``{"code", "msg"}``):

- ``rest_5xx``: refused before the exchange processes it: 500 -1001 "Internal error", 502 with
  an HTML body (a gateway's), 503 -1008 "Server is currently overloaded"; any endpoint.
- ``rest_5xx_after``: order placement and cancel only: the exchange processes the request, the
  answer is lost: 503 -1007 "Timeout waiting for response from backend server. Send status
  unknown; execution status unknown." (the test of "never a duplicate order").
- ``rest_429`` / ``rest_418``: refused with -1003 and ``Retry-After: retry_after_s`` (429 too
  much weight, 418 IP banned), apart from the real weight limit.
- ``timeout``: the answer is held ``hold_s`` (beyond the client's timeout), then the request is
  refused unprocessed (503 -1007); ``timeout_after`` (orders only): processed at once, the answer
  held ``hold_s``.
- ``slow``: the answer is delayed ``slow_ms``, then served normally.
- rejects, order placement only: ``reject_margin`` (spot -2010 insufficient balance, futures
  -2019 margin is insufficient), ``reject_notional`` (spot -1013 NOTIONAL filter, futures
  -4164), ``reject_precision`` (-1111), ``reject_reduce_only`` (-2022, futures reduce-only
  orders).

The same kinds apply to the WebSocket API (``order.place`` on ``/ws-api/v3`` and
``/ws-fapi/v1``; the loopback serves no ``order.cancel``): one spec switches both transports, an
order request draws from the same generator whichever way it came, and the counts say which
transport got which: a REST fault is counted under its kind (``rest_5xx``), a WS-API fault under
``ws_api:<kind>`` (``ws_api:rest_5xx``). On the WS-API the error is Binance's WS-API reply
``{"id", "status": <HTTP status>, "error": {"code", "msg"}}``: ``rest_5xx`` is status 500 -1001,
502 -1001 "Bad Gateway" or 503 -1008 (unprocessed); ``rest_5xx_after`` 503 -1007 (processed);
``rest_429`` / ``rest_418`` status 429 / 418 -1003 with ``"data": {"serverTime", "retryAfter"}``
(``retryAfter``: the exchange's ms time the wait ends, ``retry_after_s`` from now);
``timeout`` holds the reply ``hold_s`` then answers 503 -1007 unprocessed; ``timeout_after``
places the order at once and holds the reply ``hold_s`` (a client that timed out hears nothing
on that socket); ``slow`` delays the reply ``slow_ms``; the rejects answer status 400 with the
REST endpoint's codes.

And a clock fault: ``skew_ms=N`` sets the exchange's clock N ms off the machine's (``serverTime``
and the ``timestamp``/``recvWindow`` check of signed requests); ``clock_skew`` counts the signed
requests judged on the skewed clock.

Parameters (:data:`PARAMS`): ``skew_ms`` (0), ``slow_ms`` (250), ``hold_s`` (12, above ccxt's
default 10 s timeout), ``retry_after_s`` (1).

Control routes (added to every loopback server): ``GET /_loopback/faults`` → ``{"spec",
"seed", "rates", "params", "counts"}``; ``POST /_loopback/faults`` with JSON ``{"spec": "...",
"seed": N}`` replaces the plan (counts kept; a bad spec is HTTP 400 naming the entry), ``{"spec":
""}`` switches every fault off.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from aiohttp import web

from ballast.adapters.loopback.errors import BinanceError, refusal

REST: Final = "rest"

KINDS: dict[str, str] = {
    "rest_5xx": REST,
    "rest_5xx_after": REST,
    "rest_429": REST,
    "rest_418": REST,
    "timeout": REST,
    "timeout_after": REST,
    "slow": REST,
    "reject_margin": REST,
    "reject_notional": REST,
    "reject_precision": REST,
    "reject_reduce_only": REST,
}
"""Every fault kind a spec may name, → its owner (the module that injects it). The stream side
adds its kinds here (owner ``"ws"``) so that one ``--faults`` spec switches both."""

PARAMS: dict[str, tuple[float, float, float]] = {
    "skew_ms": (0.0, -3_600_000.0, 3_600_000.0),
    "slow_ms": (250.0, 0.0, 60_000.0),
    "hold_s": (12.0, 0.0, 600.0),
    "retry_after_s": (1.0, 0.0, 3600.0),
}
"""Every parameter a spec may set → (default, lowest, highest)."""

SKEW_COUNTER: Final = "clock_skew"

WS_API: Final = "ws_api"

Transport = Literal["rest", "ws_api"]
"""The way an order request came: a REST request, or a WS-API request (``order.place``)."""

Endpoint = Literal["order", "cancel", "other"]
"""What a REST request does, for which kinds apply: places an order, cancels one, anything
else."""

_ORDER_ONLY: Final = frozenset(
    {"rest_5xx_after", "timeout_after", "reject_margin", "reject_notional", "reject_precision",
     "reject_reduce_only"}
)  # fmt: skip
_CANCEL_TOO: Final = frozenset({"rest_5xx_after", "timeout_after"})


class FaultSpecError(ValueError):
    """A bad fault spec; the message names the entry."""


@dataclass(frozen=True)
class FaultSpec:
    """A parsed spec: rates by kind and parameters (only those given)."""

    rates: Mapping[str, float]
    params: Mapping[str, float]
    text: str = ""


def parse_spec(text: str) -> FaultSpec:
    """``"rest_5xx=0.05,slow=0.1,skew_ms=-3000"`` → a :class:`FaultSpec`; raises
    :class:`FaultSpecError` naming the bad entry (unknown name, not a number, out of range, a
    name twice, REST rates adding up past 1)."""
    rates: dict[str, float] = {}
    params: dict[str, float] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, value = (part.strip() for part in entry.partition("="))
        if not sep:
            raise FaultSpecError(f"{entry!r}: expected NAME=VALUE")
        if name in rates or name in params:
            raise FaultSpecError(f"{name}: given twice")
        try:
            number = float(value)
        except ValueError:
            raise FaultSpecError(f"{name}: {value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise FaultSpecError(f"{name}: {value!r} is not a finite number")
        if name in KINDS:
            if not 0 <= number <= 1:
                raise FaultSpecError(f"{name}: rate {value} is not within 0..1")
            rates[name] = number
        elif name in PARAMS:
            _, low, high = PARAMS[name]
            if not low <= number <= high:
                raise FaultSpecError(f"{name}: {value} is not within {low:g}..{high:g}")
            params[name] = number
        else:
            known = ", ".join([*KINDS, *PARAMS])
            raise FaultSpecError(f"{name}: unknown fault kind or parameter (known: {known})")
    rest = sum(rate for kind, rate in rates.items() if KINDS[kind] == REST)
    if rest > 1 + 1e-9:
        raise FaultSpecError(f"{text.strip()!r}: the REST rates add up to {rest:g}, more than 1")
    return FaultSpec(rates, params, text.strip())


@dataclass(frozen=True)
class RestFault:
    """One REST fault to inject: its kind, whether the request is processed first, how long
    the answer waits, and the error answered (None: the real answer)."""

    kind: str
    processed: bool
    delay_s: float
    error: BinanceError | None


class InjectedError(BinanceError):
    """An injected error answer: a Binance error, or a raw body (a gateway's HTML), with
    ``Retry-After`` when set."""

    def __init__(
        self, code: int, msg: str, status: int, *, retry_after: str = "", raw: str = ""
    ) -> None:
        super().__init__(code, msg, status)
        self.retry_after = retry_after
        self.raw = raw

    def response(self, headers: Mapping[str, str]) -> web.Response:
        out = dict(headers)
        if self.retry_after:
            out["Retry-After"] = self.retry_after
        if self.raw:
            return web.Response(
                text=self.raw, status=self.status, content_type="text/html", headers=out
            )
        return web.json_response(self.body(), status=self.status, headers=out)

    def ws_error(self, now_ms: int) -> dict[str, Any]:
        """The ``error`` of a WS-API reply: ``{"code", "msg"}``, and for a 429/418 ``"data":
        {"serverTime", "retryAfter"}`` (``retryAfter``: when the wait ends, in ms)."""
        error = self.body()
        if self.retry_after:
            until = now_ms + int(self.retry_after) * 1000
            error["data"] = {"serverTime": now_ms, "retryAfter": until}
        return error


BACKEND_TIMEOUT: Final = (
    "Timeout waiting for response from backend server. Send status unknown; "
    "execution status unknown."
)
BAD_GATEWAY: Final = "<html><head><title>502 Bad Gateway</title></head><body>502</body></html>"


def backend_timeout() -> InjectedError:
    return InjectedError(-1007, BACKEND_TIMEOUT, 503)


class FaultPlan:
    """The kinds switched on, their rates, the seed, and the faults injected so far by kind."""

    def __init__(self, spec: FaultSpec | None = None, seed: int = 0) -> None:
        self.counts: Counter[str] = Counter()
        self.spec = FaultSpec({}, {})
        self.seed = seed
        self._rng = random.Random(seed)
        self.replace(spec or FaultSpec({}, {}), seed)

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> FaultPlan:
        return cls(parse_spec(text), seed)

    def replace(self, spec: FaultSpec, seed: int | None = None) -> None:
        """Switch to ``spec`` (and reseed when ``seed`` is given); the counts go on."""
        self.spec = spec
        if seed is not None:
            self.seed = seed
            self._rng = random.Random(seed)

    # ------------------------------------------------------------------ what any owner uses

    def rate(self, kind: str) -> float:
        return self.spec.rates.get(kind, 0.0)

    def param(self, name: str) -> float:
        return self.spec.params.get(name, PARAMS[name][0])

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n

    def draw(self, kind: str) -> bool:
        """One seeded draw for ``kind`` alone (counted when it hits)."""
        rate = self.rate(kind)
        if rate <= 0:
            return False
        hit = self._rng.random() < rate
        if hit:
            self.count(kind)
        return hit

    @property
    def active(self) -> bool:
        return any(self.spec.rates.values()) or bool(self.skew_ms)

    @property
    def skew_ms(self) -> int:
        return int(self.param("skew_ms"))

    def wall_ms(self, now_s: float) -> int:
        """The exchange's clock (the machine's ``now_s`` plus the skew), in ms."""
        return int(now_s * 1000) + self.skew_ms

    def judged_on_skew(self) -> None:
        """A signed request's timestamp was checked against the skewed clock."""
        if self.skew_ms:
            self.count(SKEW_COUNTER)

    # ------------------------------------------------------------------ REST

    def rest_fault(
        self,
        endpoint: Endpoint,
        *,
        futures: bool,
        reduce_only: bool = False,
        transport: Transport = REST,
    ) -> RestFault | None:
        """The fault for one REST request, or one WS-API order request (``transport``
        ``"ws_api"``), None: serve it normally; counted by kind (a WS-API one as
        ``ws_api:<kind>``)."""
        kinds = [k for k in KINDS if KINDS[k] == REST and self.rate(k) > 0]
        kinds = [
            k for k in kinds if _applies(k, endpoint, futures=futures, reduce_only=reduce_only)
        ]
        if not kinds:
            return None
        roll = self._rng.random()
        edge = 0.0
        for kind in kinds:
            edge += self.rate(kind)
            if roll < edge:
                self.count(kind if transport == REST else f"{transport}:{kind}")
                return self._make(kind, futures)
        return None

    def _make(self, kind: str, futures: bool) -> RestFault:
        hold = self.param("hold_s")
        retry = str(max(0, round(self.param("retry_after_s"))))
        if kind == "rest_5xx":
            return RestFault(kind, False, 0.0, self._server_error())
        if kind == "rest_5xx_after":
            return RestFault(kind, True, 0.0, backend_timeout())
        if kind == "rest_429":
            msg = "Too many requests; please use the websocket for live updates."
            return RestFault(kind, False, 0.0, InjectedError(-1003, msg, 429, retry_after=retry))
        if kind == "rest_418":
            msg = "Way too many requests; IP banned. Please use WebSocket Streams."
            return RestFault(kind, False, 0.0, InjectedError(-1003, msg, 418, retry_after=retry))
        if kind == "timeout":
            return RestFault(kind, False, hold, backend_timeout())
        if kind == "timeout_after":
            return RestFault(kind, True, hold, None)
        if kind == "slow":
            return RestFault(kind, True, self.param("slow_ms") / 1000, None)
        return RestFault(kind, False, 0.0, _reject(kind, futures))

    def _server_error(self) -> InjectedError:
        which = self._rng.randrange(3)
        if which == 0:
            return InjectedError(
                -1001, "Internal error; unable to process your request. Please try again.", 500
            )
        if which == 1:
            return InjectedError(-1001, "Bad Gateway", 502, raw=BAD_GATEWAY)
        return InjectedError(
            -1008,
            "Server is currently overloaded with other requests. Please try again in a few "
            "minutes.",
            503,
        )

    async def serve(self, fault: RestFault, handler: Callable[[], Awaitable[Any]]) -> Any:
        """Apply ``fault`` around ``handler`` (the endpoint's work): process first or not, wait,
        answer the real result or the injected error."""
        result: Any = None
        if fault.processed:
            result = await handler()
        if fault.delay_s > 0:
            await asyncio.sleep(fault.delay_s)
        if fault.error is not None:
            raise fault.error
        if not fault.processed:
            result = await handler()
        return result

    # ------------------------------------------------------------------ reporting

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /_loopback/faults`` answers."""
        params = {name: self.param(name) for name in PARAMS}
        return {
            "spec": self.spec.text,
            "seed": self.seed,
            "rates": dict(self.spec.rates),
            "params": params,
            "counts": dict(sorted(self.counts.items())),
        }


def _applies(kind: str, endpoint: Endpoint, *, futures: bool, reduce_only: bool) -> bool:
    if kind == "reject_reduce_only":
        return endpoint == "order" and futures and reduce_only
    if kind in _CANCEL_TOO:
        return endpoint in ("order", "cancel")
    if kind in _ORDER_ONLY:
        return endpoint == "order"
    return True


def _reject(kind: str, futures: bool) -> BinanceError:
    if kind == "reject_margin":
        return refusal("insufficient balance (injected)", futures, "5")
    if kind == "reject_notional":
        return refusal("notional below the minimum (injected)", futures, "5")
    if kind == "reject_reduce_only":
        return refusal("reduce-only order would not reduce (injected)", futures, "5")
    return BinanceError(-1111, "Precision is over the maximum defined for this asset.")


def endpoint_of(method: str, path: str) -> Endpoint:
    """``POST .../order`` places, ``DELETE .../order`` cancels, the rest is ``other``."""
    if path.endswith("/order"):
        if method == "POST":
            return "order"
        if method == "DELETE":
            return "cancel"
    return "other"


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Served(Protocol):
    faults: FaultPlan

    def add_control(
        self,
        method: str,
        path: str,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> None: ...


def register(server: _Served) -> None:
    """Add ``GET``/``POST /_loopback/faults`` to ``server`` (before it starts)."""

    async def get(request: web.Request) -> web.StreamResponse:
        return web.json_response(server.faults.snapshot())

    async def post(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            spec = parse_spec(str(body.get("spec", "")))
            seed = body.get("seed")
            if seed is not None and not isinstance(seed, int):
                raise FaultSpecError(f"seed: {seed!r} is not a whole number")
        except (ValueError, AttributeError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault plan: {exc}") from None
        server.faults.replace(spec, seed)
        return web.json_response(server.faults.snapshot())

    server.add_control("GET", "/_loopback/faults", get)
    server.add_control("POST", "/_loopback/faults", post)
