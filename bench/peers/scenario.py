"""The benchmark scenario `make bench` and `make bench-peers` both run (issue 13): a plain
threshold rebalance that keeps trading for the whole two years of bundled hourly data.

100,000 USDT; net targets BTC 40 % held as spot and ETH 20 % held as a perp long (so both a spot
and a perp book are traded), the rest cash; a fixed ±1 pp band at every snapshot (the regime's band
scaling is off so the band is the same at every instant, as on the peer side), back to target when
out. ETH's perp is Ballast's overlay, so it follows the overlay's cycle: a perp long in profit
back inside its band is closed into spot (case B), and in a stressed regime no new overlay long is
opened (spot is bought instead); the peer holds ETH as a perp only. The drawdown limit is 60 %
(the kill switch stays armed and measured, but this book's worst fall over the two years, about
44 %, does not reach it). Binance VIP 0 fees (spot 0.1 %, perp taker 0.05 %) and 2 bps slippage,
the defaults.

The peer (``bench/peers/nautilus_side.py``) is given the same figures on its command line (it
imports nothing of Ballast): keep :data:`TARGETS`, :data:`BAND_PP` and the fees in step with it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Final

from ballast.engine.kernel.config import Config, parse_config

DATA: Final = Path(__file__).resolve().parents[2] / "data" / "market"
START: Final = "2022-04-18T00:00+00:00"
"""The bundled data's first hour."""

TARGETS: Final[dict[str, tuple[str, Decimal]]] = {
    "BTC": ("spot", Decimal("0.4")),
    "ETH": ("perp", Decimal("0.2")),
}
"""Asset → (instrument it is held in, net target weight)."""
BAND_PP: Final = Decimal(1)
"""Absolute band, percentage points either side of the target."""
CASH: Final = Decimal(100_000)
DRAWDOWN_LIMIT: Final = Decimal("0.6")


def scenario_toml() -> str:
    weights = ", ".join(f"{a} = {w}" for a, (_, w) in TARGETS.items())
    prefer = ", ".join(f'{a} = "{kind}"' for a, (kind, _) in TARGETS.items())
    return (
        '[strategy]\nname = "threshold"\n'
        f"[strategy.params]\nweights = {{ {weights} }}\nprefer = {{ {prefer} }}\n"
        '[execution]\nmode = "auto"\n'
        f"[bands]\nabs_pp = {BAND_PP}\n"
        f"[risk]\ndrawdown_limit = {DRAWDOWN_LIMIT}\ncalm_band_scale = 1\nstressed_band_scale = 1\n"
        f"[paper]\nbalances = {{ USDT = {CASH} }}\n"
    )


def scenario_config() -> Config:
    """The scenario as a Ballast config."""
    return parse_config(scenario_toml())
