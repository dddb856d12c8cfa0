"""A frame ccxt.pro cannot read must not stop the socket it came on.

ccxt.pro's WebSocket client decodes each text frame and hands it to the exchange's handler from a
done callback of its receive task, then schedules the next receive (``Client.receive_loop``). An
exception there (malformed JSON, or a handler that fails on a missing or mistyped field) escapes
into the event loop's exception handler and the next receive is never scheduled: the socket stays
open and silent (its quotes, or its fills, stop) until a keep-alive notices, if ever.

:func:`guard_frames` wraps the frame handler of every ccxt WebSocket client the exchange creates:
a frame whose decoding or handling raises is dropped, reported to ``on_bad(url, frame, error)``,
and the socket goes on reading. A frame holding a number with a three-digit exponent
(``"1e999999999"``) is dropped the same way before ccxt sees it: ccxt's string arithmetic
(``Precise``) computes ``10 ** exponent`` for it and blocks the event loop for as long as that takes
(forever, for such a number); no exchange writes amounts with exponents.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Final

log = logging.getLogger(__name__)

BadFrame = Callable[[str, Any, BaseException], None]
"""``(client url, the frame as received, the exception)``."""

_GUARDED: Final = "_ballast_frames_guarded"
_HUGE_EXPONENT: Final = re.compile(
    r'(?:"[-+]?\d*\.?\d+[eE][-+]?\d{3,}"|[:\[,]\s*-?\d*\.?\d+[eE][-+]?\d{3,})'
)
"""A number (bare, or a string that is one) with an exponent of three digits or more."""


class HugeExponent(ValueError):
    """A frame holding a number no exchange sends (module docstring)."""


def guard_frames(exchange: Any, on_bad: BadFrame) -> None:
    """Make every WebSocket client of ``exchange`` (a ccxt.pro instance) drop and report a frame
    it cannot read instead of stopping (module docstring). Clients already created are guarded
    too."""
    make_client = exchange.client

    def client(url: str) -> Any:
        found = make_client(url)
        _guard(found, url, on_bad)
        return found

    exchange.client = client
    for url, existing in dict(getattr(exchange, "clients", None) or {}).items():
        _guard(existing, url, on_bad)


def _guard(ws_client: Any, url: str, on_bad: BadFrame) -> None:
    if getattr(ws_client, _GUARDED, False):
        return
    handle = ws_client.handle_text_or_binary_message

    def guarded(data: Any) -> None:
        try:
            text = data.decode(errors="replace") if isinstance(data, bytes) else data
            if isinstance(text, str) and _HUGE_EXPONENT.search(text):
                raise HugeExponent("a number with an exponent of three digits or more")
            handle(data)
        except Exception as e:  # one bad frame must not stop the socket
            try:
                on_bad(url, data, e)
            except Exception:
                log.exception("bad frame report failed")

    ws_client.handle_text_or_binary_message = guarded
    setattr(ws_client, _GUARDED, True)
