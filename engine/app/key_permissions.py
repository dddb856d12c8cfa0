"""On a start with real keys: can this API key withdraw? Say so loudly.

A trading engine needs to read and to trade; a key that can also withdraw turns a leaked key (or a
compromised host) into lost funds. Where the exchange lets us check (Binance:
``GET /sapi/v1/account/apiRestrictions``, ``enableWithdrawals``), :func:`check_key` asks once,
at start, and :func:`report` says what it found:

- the key can withdraw: a WARNING in the log and on stdout naming the risk, and
  ``ballast_api_key_withdrawals_enabled 1`` on ``/metrics``; the engine keeps running, unless
  ``[security] refuse_withdrawal_keys = true``: then it refuses to start (:class:`BallastError`,
  exit 1) before it trades;
- it cannot: an INFO line, the gauge at 0;
- the exchange does not answer (no such endpoint, a refusal, a timeout): a WARNING that it could
  not check, the gauge absent, the engine keeps running (even with ``refuse_withdrawal_keys``:
  the flag refuses a key known to withdraw, not an exchange that does not say).

The in-process paper exchange (``venue.kind = "paper"``) makes its own keys: nothing to check.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge

from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.redaction import redact

log = logging.getLogger(__name__)

GAUGE: Final = "ballast_api_key_withdrawals_enabled"
WITHDRAWALS: Final = "enableWithdrawals"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What the exchange said: ``can_withdraw`` None when it could not be checked (``problem``
    says why)."""

    can_withdraw: bool | None
    problem: str = ""

    def message(self) -> str:
        if self.can_withdraw is None:
            return (
                "warning: could not check whether the API key can withdraw "
                f"({self.problem}); make sure it cannot: Ballast needs only to read and trade"
            )
        if self.can_withdraw:
            return (
                "WARNING: the API key can WITHDRAW funds (the exchange says enableWithdrawals = "
                "true): whoever gets this key or this host can move the money out. Ballast needs "
                "only to read and trade: use a key without withdrawal permission (set "
                "[security] refuse_withdrawal_keys = true to refuse such a key)"
            )
        return "key check: the API key cannot withdraw (as it should)"


async def check_key(restrictions: Callable[[], Awaitable[Mapping[str, Any]]]) -> KeyCheck:
    """Ask the exchange (``restrictions``: the venue's ``key_restrictions``) once; any failure
    is an unchecked key, never a crash."""
    try:
        answer = await restrictions()
    except Exception as exc:  # a venue error, a timeout, a parse failure: all "could not check"
        return KeyCheck(None, redact(f"{type(exc).__name__}: {exc}")[:300])
    value = answer.get(WITHDRAWALS)
    if not isinstance(value, bool):
        return KeyCheck(None, f"the answer has no boolean {WITHDRAWALS}")
    return KeyCheck(value)


def report(check: KeyCheck, *, refuse: bool, registry: CollectorRegistry | None = None) -> None:
    """Log and print what ``check`` found, set the gauge in ``registry``; raise BallastError for
    a key that can withdraw when ``refuse`` (module docstring)."""
    text = check.message()
    if check.can_withdraw is False:
        log.info("%s", text)
    else:
        log.warning("%s", text)
    print(text, flush=True)
    if registry is not None and check.can_withdraw is not None:
        gauge = Gauge(
            GAUGE,
            "1 when the exchange says the API key can withdraw funds, 0 when it cannot; absent "
            "when it could not be checked (boolean)",
            registry=registry,
        )
        gauge.set(1 if check.can_withdraw else 0)
    if check.can_withdraw and refuse:
        raise BallastError(
            "the API key can withdraw funds and [security] refuse_withdrawal_keys is set: "
            "refusing to start; use a key without withdrawal permission"
        )
