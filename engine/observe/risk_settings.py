"""The risk features a configuration runs with, in one line: what may shape a run's result
besides the strategy (the summary's header line; what acted is
:mod:`ballast.engine.observe.risk_activity`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ballast.engine.kernel.config import Config, RiskConfig

_ONE: Final = Decimal(1)


def _pct(value: Decimal) -> str:
    return f"{(value * 100).normalize():f} %"


def _x(value: Decimal) -> str:
    return f"{value.normalize():f}"


def kill_switch_setting(risk: RiskConfig) -> str:
    drawdown = "off" if risk.drawdown_limit >= _ONE else f"at {_pct(risk.drawdown_limit)} drawdown"
    liquidation = f"{_pct(risk.min_liquidation_distance)} from liquidation"
    rearm = risk.rearm
    if not rearm.enabled:
        again = "no re-arm"
    else:
        parts = []
        if rearm.after_days is not None:
            parts.append(f"{rearm.after_days:g} days")
        if rearm.recovery is not None:
            parts.append(f"{_pct(rearm.recovery)} off the trough")
        again = f"re-arm after {' and '.join(parts)}"
    return f"kill switch {drawdown} or {liquidation}, {again} (risk.drawdown_limit, risk.rearm)"


def risk_settings_line(config: Config) -> str:
    """``risk settings: kill switch at 25 % drawdown ...; price guard ...; regime ...; caps ...``
    with the keys that turn each off or change it."""
    risk = config.risk
    regime = (
        f"regime bands ×{_x(risk.calm_band_scale)} calm (vol < {_pct(risk.calm_vol)}) / "
        f"×{_x(risk.stressed_band_scale)} stressed (vol > {_pct(risk.stressed_vol)}), "
        f"leverage caps ×{_x(min(risk.stressed_leverage_scale, _ONE))} stressed "
        "(risk.calm_band_scale, risk.stressed_band_scale, risk.stressed_leverage_scale)"
    )
    if risk.calm_band_scale == _ONE and risk.stressed_band_scale == _ONE:
        regime = "regime band scaling off"
    return "; ".join(
        [
            f"risk settings: {kill_switch_setting(risk)}",
            f"price guard rejects moves over {_pct(risk.max_price_deviation)} "
            "(risk.max_price_deviation)",
            regime,
            f"caps: net leverage {_x(risk.max_net_leverage)}×, gross "
            f"{_x(risk.max_gross_leverage)}×, margin usage {_pct(risk.max_margin_usage)}",
        ]
    )
