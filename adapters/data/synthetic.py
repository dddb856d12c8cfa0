"""A seeded, regime-switching synthetic crypto market: spot and perp bars plus 8-hourly funding.

Same seed, same configuration → the very same events, on every call and every machine (only
``random.Random``; no numpy). Bars are generated lazily: a year of 1-minute bars for two assets
never sits in memory. :meth:`SyntheticMarket.bundle` returns an
:class:`ballast.adapters.data.bundle.MarketBundle`, so a backtest runs on synthetic data exactly as
on loaded CSV files.

The model, per bar of ``interval_s`` seconds (``dt`` in years):

- **Regimes** (default calm / normal / stressed) form a Markov chain shared by all assets. A
  regime lasts ``mean_hours`` on average (stay probability per bar ``exp(-dt_h / mean_hours)``,
  so persistence does not depend on the bar interval); on leaving, the next regime is drawn with
  the weights of its ``exits``. Each regime has an annualised ``vol`` and ``drift`` of log prices.
- **Returns** of asset k: ``drift·dt + vol·vol_scale_k·√dt·(ρ_k·Z_common + √(1−ρ_k²)·Z_k) +
  vol_scale_k·J``: the common factor ``Z_common`` correlates the assets (correlation ρ_i·ρ_j).
- **Jumps** J: market-wide, a Poisson process of ``jumps_per_year``; log sizes ~
  N(``jump_mean``, ``jump_std``); at most one jump per bar.
- **Perp** = spot × (1 + basis_k); the basis is an Ornstein-Uhlenbeck process (exactly
  discretised: half-life ``basis_half_life_h``, stationary std ``basis_std``) around the regime's
  ``basis`` mean (a premium in calm uptrends, a discount under stress).
- **Funding** settles every ``funding_interval_h`` hours on the UTC grid (00/08/16 for 8 h) with
  Binance's rule on the premium P = mean basis since the last settlement (a prior settlement at or
  before the start, on the initial basis, gives the first marks a rate):
  ``rate = P + clamp(interest − P, ±funding_clamp)``, capped at ±``funding_cap``, rounded to 1e-8.
  So it mean-reverts with the basis, sits at the interest rate in quiet times, is higher in calm
  uptrends and negative under stress.
- **Bars**: open = previous close; high/low extend max/min(open, close) by a random fraction of the
  bar's volatility; perp high/low also cover spot high/low × (1 + basis). Prices are rounded to
  the asset's tick (never below one tick), volumes to 0.001.

Regimes, jumps and the basis come from one random stream and the prices from another, so the
funding settlements are computed (cheaply) without generating the prices.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from ballast.adapters.data.bundle import FundingSettlement, MarketBundle
from ballast.adapters.data.gaps import Coverage, DataReport
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND, NS_PER_YEAR
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.instruments import kind_of, perp_symbol, spot_symbol

YEAR_S = NS_PER_YEAR // NS_PER_SECOND
_RATE_STEP = Decimal("0.00000001")
_VOLUME_STEP = Decimal("0.001")


@dataclass(frozen=True)
class Regime:
    """A market regime: annualised ``vol`` and ``drift`` of log prices, mean duration of a visit
    in hours, mean perp ``basis`` (fraction of spot), and the weights of the next regime."""

    name: str
    vol: float
    drift: float
    mean_hours: float
    basis: float
    exits: tuple[tuple[str, float], ...]


DEFAULT_REGIMES = (
    Regime("calm", 0.35, 0.60, 24 * 14, 0.0008, (("normal", 0.85), ("stressed", 0.15))),
    Regime("normal", 0.55, 0.0, 24 * 10, 0.0002, (("calm", 0.5), ("stressed", 0.5))),
    Regime("stressed", 1.10, -1.00, 24 * 4, -0.0006, (("normal", 0.75), ("calm", 0.25))),
)


@dataclass(frozen=True)
class AssetSpec:
    """One synthetic asset: start ``price``, vol multiplier, loading ρ on the common factor,
    mean spot volume per hour, price tick, perp volume as a multiple of spot volume."""

    name: str
    price: float
    vol_scale: float = 1.0
    loading: float = 0.8
    volume_per_hour: float = 1000.0
    tick: Decimal = Decimal("0.01")
    perp_volume_ratio: float = 4.0


DEFAULT_ASSETS = (
    AssetSpec("BTC", 42_000.0, 1.0, 0.9, 1_500.0),
    AssetSpec("ETH", 2_300.0, 1.25, 0.85, 15_000.0),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic market (see the module docstring).

    ``start_ns`` is the open of the first bar (default 2024-01-01 00:00 UTC); ``bars`` bars of
    ``interval_s`` seconds follow. Keep ``start_ns`` on the funding grid for settlements exactly
    every ``funding_interval_h`` hours from the first one.
    """

    seed: int = 0
    assets: tuple[AssetSpec, ...] = DEFAULT_ASSETS
    quote: str = "USDT"
    start_ns: int = 1_704_067_200 * NS_PER_SECOND
    bars: int = 24 * 365
    interval_s: int = 3600
    regimes: tuple[Regime, ...] = DEFAULT_REGIMES
    start_regime: str = "normal"
    jumps_per_year: float = 6.0
    jump_mean: float = -0.03
    jump_std: float = 0.05
    basis_half_life_h: float = 12.0
    basis_std: float = 0.0004
    funding_interval_h: int = 8
    funding_interest: float = 0.0001
    funding_clamp: float = 0.0005
    funding_cap: float = 0.003

    def validate(self) -> None:
        """Raise ValueError for an inconsistent configuration."""
        names = [r.name for r in self.regimes]
        if self.start_regime not in names:
            raise ValueError(f"start regime {self.start_regime!r} is not one of {names}")
        for regime in self.regimes:
            for target, weight in regime.exits:
                if target not in names or weight < 0:
                    raise ValueError(f"regime {regime.name}: bad exit {target!r} ({weight})")
        if self.bars < 1 or self.interval_s <= 0 or self.funding_interval_h <= 0:
            raise ValueError("bars, interval_s and funding_interval_h must be positive")
        if any(r.mean_hours <= 0 or r.vol < 0 for r in self.regimes):
            raise ValueError("every regime needs mean_hours > 0 and vol >= 0")
        for asset in self.assets:
            if asset.price <= 0 or not 0 <= asset.loading <= 1 or asset.tick <= 0:
                raise ValueError(f"asset {asset.name}: price, loading or tick out of range")


@dataclass(frozen=True, slots=True)
class _Latent:
    """State of one bar shared by the random streams: regime index, jump, basis per asset."""

    regime: int
    jump: float
    basis: tuple[float, ...]


class _LatentProcess:
    """Regime chain, jumps and basis: one random stream, reproducible on its own."""

    def __init__(self, config: SyntheticConfig) -> None:
        self._config = config
        self._dt_h = config.interval_s / 3600
        names = [r.name for r in config.regimes]
        self._stay = [math.exp(-self._dt_h / r.mean_hours) for r in config.regimes]
        self._exits = [
            ([names.index(t) for t, _ in r.exits], [w for _, w in r.exits]) for r in config.regimes
        ]
        decay = math.log(2) / config.basis_half_life_h if config.basis_half_life_h > 0 else math.inf
        self._keep = math.exp(-decay * self._dt_h)
        self._shock = config.basis_std * math.sqrt(1 - self._keep**2)
        self._jump_p = -math.expm1(-config.jumps_per_year * config.interval_s / YEAR_S)

    def run(self) -> Iterator[_Latent]:
        cfg = self._config
        rng = random.Random(f"ballast-synthetic/{cfg.seed}/latent")
        regime = [r.name for r in cfg.regimes].index(cfg.start_regime)
        basis = [cfg.regimes[regime].basis] * len(cfg.assets)
        for _ in range(cfg.bars):
            jump = rng.gauss(cfg.jump_mean, cfg.jump_std) if rng.random() < self._jump_p else 0.0
            mean = cfg.regimes[regime].basis
            basis = [mean + (b - mean) * self._keep + self._shock * rng.gauss(0, 1) for b in basis]
            yield _Latent(regime, jump, tuple(basis))
            regime = self._next_regime(rng, regime)

    def _next_regime(self, rng: random.Random, regime: int) -> int:
        if rng.random() < self._stay[regime]:
            return regime
        targets, weights = self._exits[regime]
        return rng.choices(targets, weights)[0] if targets else regime


class SyntheticMarket:
    """A seeded synthetic market (module docstring); ``bars()`` is a :data:`BarFeed`."""

    def __init__(self, config: SyntheticConfig | None = None) -> None:
        self.config = config or SyntheticConfig()
        self.config.validate()
        self._assets = sorted(self.config.assets, key=lambda a: spot_symbol(a.name, "Q"))
        self._latent = _LatentProcess(self.config)
        self._step_ns = self.config.interval_s * NS_PER_SECOND

    @property
    def symbols(self) -> list[str]:
        """Spot symbols then perp symbols, each in stream order."""
        quote = self.config.quote
        spots = [spot_symbol(a.name, quote) for a in self._assets]
        return spots + [perp_symbol(a.name, quote) for a in self._assets]

    def close_time(self, i: int) -> int:
        """Close time (ts_event) of bar ``i`` (0-based)."""
        return self.config.start_ns + (i + 1) * self._step_ns

    def bars(self) -> Iterator[Bar]:
        """All bars in stream order (time, spot before perp, symbol), generated lazily."""
        return _BarMaker(self.config, self._assets).run(self._latent.run())

    @cached_property
    def _history(self) -> list[FundingSettlement]:
        return _FundingMaker(self.config, self._assets).run(self._latent.run())

    @cached_property
    def _settlements(self) -> list[FundingSettlement]:
        return [s for s in self._history if s.ts_ns > self.config.start_ns]

    def settlements(self) -> list[FundingSettlement]:
        """The funding settlements the venue applies (after ``start_ns``), in time order (ties
        by symbol)."""
        return list(self._settlements)

    def funding_history(self) -> list[FundingSettlement]:
        """:meth:`settlements` preceded by the settlement on the funding grid at or before the
        start (on the initial basis), so that the first marks know a rate, as on a real market."""
        return list(self._history)

    def regime_path(self) -> list[tuple[int, str]]:
        """``(close time of the first bar, regime name)`` at the start and at every switch."""
        names = [r.name for r in self.config.regimes]
        path: list[tuple[int, str]] = []
        for i, state in enumerate(self._latent.run()):
            if not path or path[-1][1] != names[state.regime]:
                path.append((self.close_time(i), names[state.regime]))
        return path

    def report(self) -> DataReport:
        """Coverage of every series (synthetic data has no gaps)."""
        cfg = self.config
        first, last = self.close_time(0), self.close_time(cfg.bars - 1)
        source = f"synthetic seed={cfg.seed}"
        bars = tuple(
            Coverage(s, kind_of(s), source, cfg.bars, first, last, self._step_ns)
            for s in self.symbols
        )
        return DataReport(bars + self._funding_coverage(source))

    def _funding_coverage(self, source: str) -> tuple[Coverage, ...]:
        step = self.config.funding_interval_h * NS_PER_HOUR
        out = []
        for symbol in self.symbols[len(self._assets) :]:
            times = [s.ts_ns for s in self._settlements if s.symbol == symbol]
            first, last = (times[0], times[-1]) if times else (None, None)
            out.append(Coverage(symbol, "funding", source, len(times), first, last, step))
        return tuple(out)

    def bundle(self) -> MarketBundle:
        """This market as a :class:`MarketBundle` (same API as loaded CSV data)."""
        span = (self.close_time(0), self.close_time(self.config.bars - 1))
        after = self.config.start_ns + 1  # the prior settlement is history, not for the venue
        return MarketBundle(self.bars, self._history, self.report(), start=after, span=span)


class _FundingMaker:
    """Settlements from the latent basis: Binance's premium + clamped interest rule."""

    def __init__(self, config: SyntheticConfig, assets: list[AssetSpec]) -> None:
        self._config = config
        self._symbols = [perp_symbol(a.name, config.quote) for a in assets]
        self._step = config.funding_interval_h * NS_PER_HOUR

    def run(self, latent: Iterator[_Latent]) -> list[FundingSettlement]:
        """Settle at every grid time up to each bar's close, on the mean basis since the last
        settlement (the bar's own basis if no bar closed in between)."""
        cfg = self._config
        out: list[FundingSettlement] = []
        sums, count = [0.0] * len(self._symbols), 0
        due = cfg.start_ns // self._step * self._step
        basis0 = next(r.basis for r in cfg.regimes if r.name == cfg.start_regime)
        out += [self._settle(due, symbol, basis0) for symbol in self._symbols]
        due += self._step
        for i, state in enumerate(latent):
            sums = [s + b for s, b in zip(sums, state.basis, strict=True)]
            count += 1
            close = cfg.start_ns + (i + 1) * cfg.interval_s * NS_PER_SECOND
            while close >= due:
                premiums = [s / count for s in sums] if count else list(state.basis)
                out += [
                    self._settle(due, sym, p)
                    for sym, p in zip(self._symbols, premiums, strict=True)
                ]
                sums, count, due = [0.0] * len(sums), 0, due + self._step
        return out

    def _settle(self, ts: int, symbol: str, premium: float) -> FundingSettlement:
        cfg = self._config
        clamp = cfg.funding_clamp
        rate = premium + max(-clamp, min(clamp, cfg.funding_interest - premium))
        rate = max(-cfg.funding_cap, min(cfg.funding_cap, rate))
        exact = Decimal(round(rate * 100_000_000)) * _RATE_STEP
        return FundingSettlement(ts, symbol, exact, cfg.funding_interval_h)


class _BarMaker:
    """Prices from their own random stream, driven by the latent regime, jumps and basis."""

    def __init__(self, config: SyntheticConfig, assets: list[AssetSpec]) -> None:
        self._config = config
        self._assets = assets
        dt = config.interval_s / YEAR_S
        self._spot = [spot_symbol(a.name, config.quote) for a in assets]
        self._perp = [perp_symbol(a.name, config.quote) for a in assets]
        self._mu = [r.drift * dt for r in config.regimes]
        self._sigma = [
            [r.vol * a.vol_scale * math.sqrt(dt) for a in assets] for r in config.regimes
        ]
        ref = next(r.vol for r in config.regimes if r.name == config.start_regime)
        self._activity = [math.sqrt(r.vol / ref) if ref > 0 else 1.0 for r in config.regimes]
        self._idio = [math.sqrt(1 - a.loading**2) for a in assets]
        self._inv_tick = [float(1 / a.tick) for a in assets]
        self._volume = [a.volume_per_hour * config.interval_s / 3600 for a in assets]

    def run(self, latent: Iterator[_Latent]) -> Iterator[Bar]:
        cfg = self._config
        rng = random.Random(f"ballast-synthetic/{cfg.seed}/prices")
        basis0 = next(r.basis for r in cfg.regimes if r.name == cfg.start_regime)
        spot = [_Leg(a.price, self._price(k, a.price)) for k, a in enumerate(self._assets)]
        perp = [
            _Leg(a.price * (1 + basis0), self._price(k, a.price * (1 + basis0)))
            for k, a in enumerate(self._assets)
        ]
        for i, state in enumerate(latent):
            ts = cfg.start_ns + (i + 1) * cfg.interval_s * NS_PER_SECOND
            common = rng.gauss(0.0, 1.0)
            perps: list[Bar] = []
            for k in range(len(self._assets)):
                spot_bar, perp_bar = self._bars(rng, k, state, common, ts, spot[k], perp[k])
                perps.append(perp_bar)
                yield spot_bar
            yield from perps

    def _bars(
        self,
        rng: random.Random,
        k: int,
        state: _Latent,
        common: float,
        ts: int,
        spot: _Leg,
        perp: _Leg,
    ) -> tuple[Bar, Bar]:
        asset = self._assets[k]
        sigma = self._sigma[state.regime][k]
        shock = asset.loading * common + self._idio[k] * rng.gauss(0.0, 1.0)
        ret = self._mu[state.regime] + sigma * shock + asset.vol_scale * state.jump
        close = spot.close * math.exp(ret)
        high = max(spot.close, close) * math.exp(sigma * 0.4 * -math.log(1.0 - rng.random()))
        low = min(spot.close, close) * math.exp(-sigma * 0.4 * -math.log(1.0 - rng.random()))
        volume = self._volume[k] * self._activity[state.regime] * (0.5 + rng.random())
        premium = 1.0 + state.basis[k]
        perp_close = close * premium
        perp_high = max(perp.close, perp_close, high * premium)
        perp_low = min(perp.close, perp_close, low * premium)
        spot_bar = self._bar(k, ts, self._spot[k], spot, close, high, low, volume)
        perp_volume = volume * asset.perp_volume_ratio
        perp_bar = self._bar(
            k, ts, self._perp[k], perp, perp_close, perp_high, perp_low, perp_volume
        )
        return spot_bar, perp_bar

    def _bar(
        self,
        k: int,
        ts: int,
        symbol: str,
        leg: _Leg,
        close: float,
        high: float,
        low: float,
        volume: float,
    ) -> Bar:
        opened = leg.close_dec
        leg.close, leg.close_dec = close, self._price(k, close)
        qty = Decimal(round(volume * 1000)) * _VOLUME_STEP
        interval = self._config.interval_s
        return Bar(
            ts,
            ts,
            symbol,
            interval,
            opened,
            self._price(k, high),
            self._price(k, low),
            leg.close_dec,
            qty,
        )

    def _price(self, k: int, value: float) -> Decimal:
        """Round to the asset's tick, never below one tick."""
        ticks = round(value * self._inv_tick[k])
        return Decimal(ticks if ticks > 0 else 1) * self._assets[k].tick


@dataclass(slots=True)
class _Leg:
    """Last close of one instrument: float for the model, Decimal (on tick) for the next open."""

    close: float
    close_dec: Decimal
