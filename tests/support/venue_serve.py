"""``ballast venue serve`` with wider request-weight limits: ``python -m tests.support.venue_serve
LIMIT ARGS...`` runs ``ballast venue serve ARGS...`` whose exchange allows LIMIT weight per minute
on USD-M futures and 2.5 × LIMIT on spot (Binance: 2400 and 6000).

Why: a (re)start of the engine costs the exchange ~250 futures weight (markets, account,
positions, the catch-up's trades, income and open orders), and the engine budgets 80 % of the
limit it is told, so more than about 7 restarts a minute wait for the next minute window. The
kill campaign restarts the engine every few seconds. ``ballast venue serve`` has no option for
the limit (yet: asked for ``--weight-limit``), so this runs the same command with the server's
limits set wider; nothing else differs.
"""

from __future__ import annotations

import sys
from typing import Any

from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.server import LoopbackServer
from ballast.engine.app import venue_serve
from ballast.engine.app.cli.main import main

SPOT_FACTOR = 2.5


def wide(limit: int) -> type[LoopbackServer]:
    class WideServer(LoopbackServer):
        def __init__(self, core: LoopbackCore, **options: Any) -> None:
            options.setdefault("weight_limit", limit)
            options.setdefault("spot_weight_limit", int(limit * SPOT_FACTOR))
            super().__init__(core, **options)

    return WideServer


if __name__ == "__main__":
    setattr(venue_serve, "LoopbackServer", wide(int(sys.argv[1])))  # noqa: B010
    sys.exit(main(["venue", "serve", *sys.argv[2:]]))
