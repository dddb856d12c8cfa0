"""The instruments of the simulated venue, as a config sets them: the exchange's filters
(:func:`~ballast.engine.kernel.instruments.binance_defaults`) with ``[instruments]`` precision and
per-symbol ``specs``, and the ``[fees]`` rates.

The one source of truth for fees and filters in backtests, simulated paper runs and
``ballast plan``: the simulated exchange charges each instrument's ``maker_fee``/``taker_fee``,
the planner sizes with them, and the session journals them (``InstrumentsLoaded``).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from ballast.engine.kernel.config import Config, FeeRatesConfig, FeesConfig, InstrumentSpecConfig
from ballast.engine.kernel.fee_presets import FEE_PRESETS, MarketFees
from ballast.engine.kernel.instruments import Instrument, base_of, binance_defaults, plain

_ZERO = Decimal(0)


def simulated_instruments(config: Config) -> list[Instrument]:
    """Spot and perp of every asset ``config`` trades, in ``venue.quote``, with its filters and
    fees (module docstring)."""
    assets = sorted({base_of(s) for s in [*config.instruments.spot, *config.instruments.perp]})
    out = []
    for default in binance_defaults(assets, config.venue.quote):
        inst = _with_fees(default, fee_rates(config.fees, default))
        if config.instruments.precision == "exact":
            inst = exact(inst)
        spec = config.instruments.specs.get(inst.symbol)
        out.append(inst if spec is None else with_spec(inst, spec))
    return out


def fee_rates(fees: FeesConfig, instrument: Instrument) -> MarketFees:
    """The maker and taker rates of ``instrument``: the preset's for its market type, then the
    ``[fees] spot``/``perp`` rates, then its own ``[fees.symbols]`` rates."""
    preset = FEE_PRESETS[fees.preset]
    rates = preset.perp if instrument.is_perp else preset.spot
    kind = fees.perp if instrument.is_perp else fees.spot
    for override in (kind, fees.symbols.get(instrument.symbol)):
        rates = _override(rates, override)
    return rates


def _override(rates: MarketFees, override: FeeRatesConfig | None) -> MarketFees:
    if override is None:
        return rates
    return MarketFees(
        rates.maker if override.maker is None else plain(override.maker),
        rates.taker if override.taker is None else plain(override.taker),
    )


def _with_fees(instrument: Instrument, rates: MarketFees) -> Instrument:
    return msgspec.structs.replace(instrument, maker_fee=rates.maker, taker_fee=rates.taker)


def exact(instrument: Instrument) -> Instrument:
    """``instrument`` without filters: no lot or tick (0, see :class:`Instrument`), no minimum
    quantity or notional."""
    return msgspec.structs.replace(
        instrument, lot_size=_ZERO, tick_size=_ZERO, min_qty=_ZERO, min_notional=_ZERO
    )


def with_spec(instrument: Instrument, spec: InstrumentSpecConfig) -> Instrument:
    """``instrument`` with the filters ``spec`` sets; its minimum quantity follows a new lot size
    unless the spec sets it too."""
    if spec.contract_size is not None:  # lot and minimum in contracts (InstrumentSpecConfig)
        size = spec.contract_size
        lot = plain((spec.lot_size if spec.lot_size is not None else Decimal(1)) * size)
        min_qty = lot if spec.min_qty is None else spec.min_qty * size
        return _filters(instrument, spec, lot, min_qty)
    lot = instrument.lot_size if spec.lot_size is None else plain(spec.lot_size)
    if spec.min_qty is not None:
        least = spec.min_qty
    else:
        least = lot if spec.lot_size is not None else instrument.min_qty
    return _filters(instrument, spec, lot, least)


def _filters(
    instrument: Instrument, spec: InstrumentSpecConfig, lot: Decimal, min_qty: Decimal
) -> Instrument:
    return msgspec.structs.replace(
        instrument,
        lot_size=lot,
        tick_size=instrument.tick_size if spec.tick_size is None else plain(spec.tick_size),
        min_qty=plain(min_qty),
        min_notional=instrument.min_notional
        if spec.min_notional is None
        else plain(spec.min_notional),
    )


def describe_costs(config: Config) -> str:
    """One line of the simulated venue's costs and precision, for a run's header: ``fees
    binance_vip0 (maker/taker: spot 0.1 %/0.1 %, perp 0.02 %/0.05 %); precision exchange;
    slippage 2 bps``, naming the overrides there are."""
    fees = config.fees
    preset = FEE_PRESETS[fees.preset]
    spot = _override(preset.spot, fees.spot)
    perp = _override(preset.perp, fees.perp)
    text = f"fees {fees.preset}"
    if fees.spot is not None or fees.perp is not None:
        text += " overridden"
    text += f" (maker/taker: spot {_percent(spot)}, perp {_percent(perp)})"
    if fees.symbols:
        text += f", own rates for {', '.join(fees.symbols)}"
    text += f"; precision {config.instruments.precision}"
    if config.instruments.specs:
        text += f", own filters for {', '.join(config.instruments.specs)}"
    return f"{text}; slippage {plain(config.paper.slippage_bps)} bps"


def _percent(rates: MarketFees) -> str:
    return f"{plain(rates.maker * 100)} %/{plain(rates.taker * 100)} %"
