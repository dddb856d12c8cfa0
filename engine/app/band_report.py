"""The effective band of every traded asset, as ``ballast config check`` prints it.

For each asset: its target (``[targets]``, else what the strategy asks for on an all-cash book),
the band's lower and upper edge in % of NAV, and the rule that made it (the config key and the
widths), so that no band is hidden behind a default. The regime scales every band (calm
``risk.calm_band_scale``, stressed ``risk.stressed_band_scale``); the edges printed are the normal
regime's.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.config import Config, EffectiveBand
from ballast.engine.trading.bands import BandSpec

_HUNDRED: Final = Decimal(100)


def band_lines(config: Config) -> list[str]:
    """One line per traded asset, then one line for the rebalancing rule."""
    targets = _targets(config)
    lines = []
    for asset in sorted(config.instruments.assets()):
        band = config.bands.band(asset)
        target = targets.get(asset)
        if target is None:
            lines.append(f"  band {asset}: no target; {_rule(band)}")
            continue
        width = BandSpec.of(band).width(target)
        low, high = target - width, target + width
        lines.append(
            f"  band {asset}: target {_pct(target)}, band {_pct(low)} – {_pct(high)} "
            f"({_rule(band)})"
        )
    risk = config.risk
    lines.append(
        f"  bands scale by {risk.calm_band_scale} when calm, {risk.stressed_band_scale} when "
        f"stressed (risk.calm_band_scale, risk.stressed_band_scale); rebalance to "
        f"{config.bands.rebalance_to}"
    )
    lines.append(f"  rebalance: {_rebalance(config)}")
    return lines


def _rule(band: EffectiveBand) -> str:
    if band.source == "default":
        return f"{band.describe()}, the default: [bands] sets neither abs_pp nor rel"
    return f"{band.describe()}, from {band.source}"


def _rebalance(config: Config) -> str:
    rebalance = config.rebalance
    scope = {
        "breached": "only the assets out of band are traded",
        "all": "when any asset is out of band, every asset goes back to target",
    }[rebalance.scope]
    if rebalance.trigger == "threshold":
        return (
            f"trigger threshold (bands checked at every snapshot), scope {rebalance.scope}: {scope}"
        )
    every = f"{rebalance.every_days.normalize():f}" if rebalance.every_days is not None else "?"
    if rebalance.trigger == "calendar":
        return f"trigger calendar: every {every} days every asset back to target (bands unused)"
    return (
        f"trigger hybrid: bands checked every {every} days only, scope {rebalance.scope}: {scope}"
    )


def _targets(config: Config) -> Mapping[str, Decimal]:
    """``[targets]``, else the net targets the strategy asks for on an all-cash book (none when it
    needs market data for them)."""
    if config.targets:
        return config.targets
    from ballast.engine.app.dry_run import neutral_context
    from ballast.engine.strategy.guard import freeze_context
    from ballast.engine.strategy.registry import load_strategy, strategy_params

    try:
        strategy = load_strategy(config.strategy.name, strategy_params(config))
        wanted = strategy.targets(freeze_context(neutral_context()))
        return {asset: t.net for asset, t in wanted.resolve().items()}
    except Exception:  # a strategy that needs market data for its targets
        return {}


def _pct(x: Decimal) -> str:
    return f"{x * _HUNDRED:.2f} %"
