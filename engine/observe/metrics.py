"""MetricsExporter: the actor that turns bus events into Prometheus metrics.

It keeps prometheus-client metrics in its own :class:`~prometheus_client.CollectorRegistry`
(never the process-global one), updated synchronously from the events it subscribes to, and
publishes nothing, so it never changes what a session decides or what replay compares. Serving
the registry over HTTP is :mod:`ballast.engine.observe.http_server`'s job; a backtest may instead
write
:meth:`MetricsExporter.exposition` to a file at the end, or run without the exporter.

Definitions (as in :mod:`ballast.engine.trading.ledger`): NAV = cash + Σ spot value + Σ perp
unrealised PnL;
net exposure(asset) = spot value + perp notional; weight = net exposure / NAV; drift = weight −
target; gross leverage = Σ (|spot value| + |perp notional|) / NAV; net leverage = Σ net exposure
/ NAV; margin usage = margin used / NAV; distance to liquidation = |mark − liquidation| / mark.

Targets are those of the latest ``RebalanceDecided`` that listed the asset, else the configured
``[targets]`` (a held asset without a target has target 0, as in the planner); bands are
target ± the band width of the risk budget in force, by the config's band rules (an asset's
own rule, how abs and rel combine: :class:`ballast.engine.trading.bands.BandRules`).

Cost per event. Market data (the hot path) only records the newest event time per symbol (in
:class:`~ballast.engine.observe.health.Health`) and counts ``ts_init − ts_event`` into a plain
bucket array; ages, stale flags, the lag histogram, bus/journal depth and handler errors are
computed when the registry is scraped, from the engine's clock (on a simulated clock, ages are
simulated).

Labels are bounded: assets, symbols, currencies, reason codes, statuses, triggers, modes, regimes,
venues and strategy names; never ids or prices. Every label value passes through
:func:`ballast.engine.kernel.redaction.redact` and at most ``MAX_LABEL_VALUES`` distinct values per
label are kept (later ones are reported as ``other``); free-text fields (details, errors) are never
exported.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ballast.engine import __version__
from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    DataRejected,
    DataRejectReason,
    DataStale,
    FundingPaid,
    InstrumentsLoaded,
    JournalWriteChanged,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    RebalanceTrigger,
    ReconcileMismatch,
    ReconcileResolved,
    Regime,
    RiskBudgetChanged,
    StrategyFailed,
    TradeTick,
    VenueConnectionChanged,
    VenueMessageRejected,
)
from ballast.engine.kernel.redaction import redact
from ballast.engine.observe.health import Health
from ballast.engine.trading.bands import BandRules
from ballast.engine.trading.margin import default_margin_table
from ballast.engine.trading.measures import Book
from ballast.engine.trading.money_state import MONEY_STATE_OWNERS
from ballast.engine.trading.pretrade import REASON_CODES
from ballast.engine.trading.venue import VenueStats

MAX_LABEL_VALUES: Final = 64
OTHER: Final = "other"
_MAX_LABEL_LENGTH: Final = 64
_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
ORDER_STATUSES: Final = ("submitted", "accepted", "filled", "canceled", "rejected")
REBALANCE_TRIGGERS: Final[tuple[RebalanceTrigger, ...]] = get_args(RebalanceTrigger)
REGIMES: Final[tuple[Regime, ...]] = get_args(Regime)
DATA_REJECT_REASONS: Final[tuple[DataRejectReason, ...]] = get_args(DataRejectReason)
LAG_BUCKETS_S: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ROUND_TRIP_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
MAX_PENDING_ORDERS: Final = 10_000
"""Orders sent and not yet answered that the round-trip histogram remembers (oldest forgotten)."""
COMMIT_BUCKETS_S: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def _clean(value: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return redact(text)[:_MAX_LABEL_LENGTH] or "none"


class LabelValues:
    """Bounds one label: redacted, printable, short values; at most ``limit`` distinct ones."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        clean = _clean(value)
        if clean in self._seen:
            return clean
        if len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(clean)
        return clean


class LagHistogram:
    """``ts_init − ts_event`` of market data in integer ns, counted into fixed buckets. Cheaper
    than a prometheus-client Histogram on the hot path; exposed as a histogram on scrape."""

    def __init__(self, buckets_s: Iterable[float] = LAG_BUCKETS_S) -> None:
        self.bounds_s = tuple(buckets_s)
        self.bounds_ns = [round(b * NS_PER_SECOND) for b in self.bounds_s]
        self.counts = [0] * (len(self.bounds_ns) + 1)
        self.sum_ns = 0

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return HistogramMetricFamily(
            name, documentation, buckets=buckets, sum_value=self.sum_ns / NS_PER_SECOND
        )


class _Catalogue:
    """The metrics updated from events (scrape-time ones are in :class:`_ScrapeCollector`)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.build = Info("ballast_build", "Ballast build (version label); value 1", registry=r)
        self._portfolio(r)
        self._assets(r)
        self._budget(r)
        self._flows(r)
        self._activity(r)
        self._health(r)

    def _portfolio(self, r: CollectorRegistry) -> None:
        self.nav = Gauge(
            "ballast_nav",
            "Net asset value, in the currency of the currency label",
            ["currency"],
            registry=r,
        )
        self.gross = Gauge(
            "ballast_leverage_gross_ratio",
            "Gross leverage: sum of |spot value| + |perp notional| over NAV (ratio)",
            registry=r,
        )
        self.net = Gauge(
            "ballast_leverage_net_ratio",
            "Net leverage: sum of |net exposure| over NAV (ratio)",
            registry=r,
        )
        self.cap = Gauge(
            "ballast_leverage_cap_ratio",
            "Gross leverage cap of the risk budget in force (ratio of NAV)",
            registry=r,
        )
        self.margin = Gauge(
            "ballast_margin_usage_ratio",
            "Margin used by perp positions over NAV (ratio)",
            registry=r,
        )
        self.liquidation = Gauge(
            "ballast_liquidation_distance_ratio",
            "Distance of a perp position to liquidation: |mark - liquidation| / mark (ratio)",
            ["symbol"],
            registry=r,
        )
        self.realized = Gauge(
            "ballast_realized_pnl",
            "Realised PnL of the session, in the currency of the currency label",
            ["currency"],
            registry=r,
        )

    def _assets(self, r: CollectorRegistry) -> None:
        def asset_gauge(name: str, what: str) -> Gauge:
            return Gauge(name, f"{what} (ratio of NAV, 1 = 100 %)", ["asset"], registry=r)

        self.weight = asset_gauge("ballast_asset_weight_ratio", "Asset weight: net exposure / NAV")
        self.target = asset_gauge("ballast_asset_target_ratio", "Target weight of the asset")
        self.band_low = asset_gauge("ballast_asset_band_low_ratio", "Lower edge of the band")
        self.band_high = asset_gauge("ballast_asset_band_high_ratio", "Upper edge of the band")
        self.drift = asset_gauge("ballast_asset_drift_ratio", "Drift: weight minus target")
        self.exposure = Gauge(
            "ballast_asset_net_exposure",
            "Net exposure: spot value + perp notional, in the currency of the currency label",
            ["asset", "currency"],
            registry=r,
        )

    def _budget(self, r: CollectorRegistry) -> None:
        self.regime = Gauge(
            "ballast_regime",
            "Market regime: 1 for the regime in force, 0 for the others",
            ["regime"],
            registry=r,
        )
        self.volatility = Gauge(
            "ballast_volatility_annualised_ratio",
            "Annualised realised volatility of the regime asset (ratio, 0.5 = 50 %)",
            registry=r,
        )
        self.band = Gauge(
            "ballast_budget_band_ratio",
            "Band half-width of the risk budget in force: absolute band as a fraction of NAV, "
            "or the relative band (fraction of the target) when no absolute band is set (ratio)",
            registry=r,
        )
        self.overlay = Gauge(
            "ballast_budget_overlay_scale_ratio",
            "Overlay scale of the risk budget in force (ratio: 1 full overlay, 0 none)",
            registry=r,
        )
        self.kill_switch = Gauge(
            "ballast_kill_switch_engaged",
            "1 while the kill switch is engaged, else 0 (boolean)",
            registry=r,
        )

    def _flows(self, r: CollectorRegistry) -> None:
        self.funding_rate = Gauge(
            "ballast_funding_rate_ratio",
            "Current funding rate of a perp, per funding interval (ratio; > 0: longs pay)",
            ["symbol"],
            registry=r,
        )
        self.funding_paid = Counter(
            "ballast_funding_paid_total",
            "Funding paid, absolute amount in the currency of the currency label",
            ["currency"],
            registry=r,
        )
        self.funding_received = Counter(
            "ballast_funding_received_total",
            "Funding received, absolute amount in the currency of the currency label",
            ["currency"],
            registry=r,
        )
        self.fees = Counter(
            "ballast_fees_paid_total",
            "Trading fees paid, in the fee currency of the currency label",
            ["currency"],
            registry=r,
        )

    def _activity(self, r: CollectorRegistry) -> None:
        self.rebalances = Counter(
            "ballast_rebalances_total",
            "Rebalance decisions by trigger and mode (count)",
            ["trigger", "mode"],
            registry=r,
        )
        self.orders = Counter(
            "ballast_orders_total",
            "Order events by status (count): submitted = orders sent, filled = executions",
            ["status"],
            registry=r,
        )
        self.vetoes = Counter(
            "ballast_vetoes_total",
            "Intents vetoed by the pre-trade check, by reason (count)",
            ["reason"],
            registry=r,
        )

    def _health(self, r: CollectorRegistry) -> None:
        self.data_rejected = Counter(
            "ballast_data_rejected_total",
            "Market data points rejected, by reason (count)",
            ["reason"],
            registry=r,
        )
        self.venue_rejected = Counter(
            "ballast_venue_messages_rejected_total",
            "Venue stream messages that could not be read and were dropped, by venue, channel "
            "and reason (count)",
            ["venue", "channel", "reason"],
            registry=r,
        )
        self.commit = Histogram(
            "ballast_journal_commit_duration_seconds",
            "Duration of one journal group commit (seconds)",
            buckets=COMMIT_BUCKETS_S,
            registry=r,
        )
        self._venue(r)
        self.strategy_errors = Counter(
            "ballast_strategy_errors_total",
            "Strategy plug-in failures, by strategy (count)",
            ["strategy"],
            registry=r,
        )

    def _venue(self, r: CollectorRegistry) -> None:
        self.reconnects = Counter(
            "ballast_venue_reconnects_total",
            "Venue stream re-establishments after a drop (count), from the live venue's "
            "VenueConnectionChanged events; none on the simulated venue or in a backtest",
            ["venue"],
            registry=r,
        )
        self.connected = Gauge(
            "ballast_venue_connected",
            "1 while a live venue's stream is connected, 0 while it is down (boolean)",
            ["venue", "stream"],
            registry=r,
        )
        self.round_trip = Histogram(
            "ballast_order_round_trip_seconds",
            "Order round trip: OrderSubmitted to the venue's first answer (accepted, filled, "
            "rejected, canceled or a status report), on the engine's clock (seconds)",
            buckets=ROUND_TRIP_BUCKETS_S,
            registry=r,
        )
        self.mismatches = Gauge(
            "ballast_reconcile_mismatches",
            "Reconciliation mismatches open (count): the venue's account differs from the "
            "journal's and trading is halted until it is resolved",
            registry=r,
        )


@dataclass(slots=True)
class _AssetSeries:
    """The series of one asset, label values resolved once (snapshots are frequent)."""

    weight: Gauge
    target: Gauge
    band_low: Gauge
    band_high: Gauge
    drift: Gauge
    exposure: Gauge
    target_value: Decimal = _ZERO
    weight_value: Decimal = _ZERO

    def set_weight(self, weight: Decimal, exposure: Decimal) -> None:
        self.weight_value = weight
        self.weight.set(float(weight))
        self.exposure.set(float(exposure))
        self.drift.set(float(weight - self.target_value))

    def set_target(self, target: Decimal, width: Decimal) -> None:
        self.target_value = target
        self.target.set(float(target))
        self.band_low.set(float(target - width))
        self.band_high.set(float(target + width))
        self.drift.set(float(self.weight_value - target))


class _ScrapeCollector(Collector):
    """Values computed when the registry is collected: ages, stale flags, lag, depths, errors."""

    def __init__(self, exporter: MetricsExporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        exporter = self.exporter
        yield from self._data(exporter.health, exporter.clock.now_ns())
        yield exporter.lag.family(
            "ballast_event_lag_seconds",
            "Market data lag: ts_init - ts_event, the time from origin to this process (seconds)",
        )
        yield from self._engine(exporter.bus)
        yield from self._venue(exporter)

    def _venue(self, exporter: MetricsExporter) -> Iterator[Metric]:
        stats = exporter.venue_stats() if exporter.venue_stats is not None else None
        if stats is None:
            return
        venue = exporter.label("venue", exporter.venue_name or "venue")
        for name, value, what in (
            ("used", stats.weight_used, "spent in the exchange's current window"),
            ("limit", stats.weight_limit, "budget of the window (limit less the safety margin)"),
        ):
            family = GaugeMetricFamily(
                f"ballast_venue_request_weight_{name}",
                f"Request weight {what}, as the venue adapter counts it (weight units)",
                labels=["venue"],
            )
            family.add_metric([venue], float(value))
            yield family

    def _data(self, health: Health, now_ns: int) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "ballast_market_data_age_seconds",
            "Age of the newest market data of a symbol on the engine clock (seconds)",
            labels=["symbol"],
        )
        stale = GaugeMetricFamily(
            "ballast_market_data_stale",
            "1 while a symbol's market data is stale (older than the threshold), else 0 (boolean)",
            labels=["symbol"],
        )
        for symbol in health.symbols():
            label = self.exporter.label_symbol(symbol)
            seconds = health.age_s(symbol, now_ns)
            if seconds is not None:
                age.add_metric([label], seconds)
            stale.add_metric([label], 1.0 if health.is_stale(symbol, now_ns) else 0.0)
        yield age
        yield stale

    def _engine(self, bus: Bus) -> Iterator[Metric]:
        journal = bus.journal
        backlog = journal.backlog if journal is not None else 0
        yield GaugeMetricFamily(
            "ballast_bus_queue_depth",
            "Messages waiting on the bus: not yet dispatched plus not yet committed to the "
            "journal (messages)",
            value=bus.pending + backlog,
        )
        written = journal.committed_seq - journal.opened_at_seq if journal is not None else 0
        yield CounterMetricFamily(
            "ballast_journal_events_written_total",
            "Records committed to the journal by this process (records)",
            value=written,
        )
        yield GaugeMetricFamily(
            "ballast_journal_writable",
            "1 while the journal accepts writes, 0 while the disk refuses them (full, read-only, "
            "an I/O error: no order is sent meanwhile) (boolean)",
            value=1 if journal is None or journal.writable else 0,
        )
        yield CounterMetricFamily(
            "ballast_journal_write_failures",
            "Journal writes the disk refused (full, read-only, an I/O error), each retry "
            "counting (count)",
            value=journal.write_failures if journal is not None else 0,
        )
        yield self._handler_errors(bus)

    def _handler_errors(self, bus: Bus) -> Metric:
        """Per actor (the part of the handler's name before the dot); the actors that own money
        state are there at 0 from the start, so the first failure of one is an increase."""
        errors = CounterMetricFamily(
            "ballast_handler_errors",
            "Bus handler exceptions caught and isolated, by actor (count); one in an actor that "
            "owns money state (Portfolio, RiskManager, OrderRouter) also trips the kill switch",
            labels=["actor"],
        )
        by_actor = {self.exporter.label("actor", owner): 0 for owner in sorted(MONEY_STATE_OWNERS)}
        for handler, count in bus.handler_errors_by_name.items():
            actor = self.exporter.label("actor", handler.partition(".")[0])
            by_actor[actor] = by_actor.get(actor, 0) + count
        for actor, count in by_actor.items():
            errors.add_metric([actor], count)
        return errors


class MetricsExporter(Actor):
    """Keeps the Prometheus metrics of one engine (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        registry: CollectorRegistry | None = None,
        quote: str = "USDT",
        stale_after_s: float = 30.0,
        targets: Mapping[str, Decimal] | None = None,
        band_abs: Decimal | None = Decimal("0.05"),
        band_rel: Decimal | None = None,
        band_rules: BandRules | None = None,
        leverage_cap: Decimal = Decimal(3),
        mode: str = "spot",
        strategy: str = "",
        symbols: Iterable[str] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(bus, clock, name=name)
        # ``*_created`` series carry wall-clock times, not the engine's clock, and double the
        # series count. Process-wide: Ballast owns its process, and no other registry wants them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        self.quote = quote
        self._margin = default_margin_table()
        self.health = Health(clock, stale_after_s=stale_after_s, symbols=symbols)
        self._last_data_ns = self.health.last_data_ns
        self._flagged_stale = self.health.flagged_stale
        self.lag = LagHistogram()
        self.m = _Catalogue(self.registry)
        self.registry.register(_ScrapeCollector(self))
        self.targets: dict[str, Decimal] = dict(targets or {})
        self.band_abs, self.band_rel = band_abs, band_rel
        self.band_rules = band_rules or BandRules()
        self._regime = "normal"
        self._labels: dict[str, LabelValues] = {}
        self._assets: dict[str, _AssetSeries] = {}
        self._liquidation_symbols: set[str] = set()
        self._regimes: set[str] = set(REGIMES)
        self.venue_stats: Callable[[], VenueStats | None] | None = None
        """A live venue's ``stats()``, read at scrape time (set by the live runner)."""
        self.venue_name = ""
        self._sent: dict[str, int] = {}
        """Client order id → ``ts_init`` of its OrderSubmitted, until the first answer."""
        self._links: dict[tuple[str, str], bool] = {}
        """(venue, stream) → connected, from VenueConnectionChanged."""
        self._initialise(leverage_cap, mode, strategy)
        self._subscribe_all()

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> MetricsExporter:
        bands = config.bands.band()  # the rule of assets without their own
        return cls(
            bus,
            clock,
            quote=config.venue.quote,
            stale_after_s=config.risk.stale_after_s,
            targets=config.targets,
            band_abs=None if bands.abs_pp is None else bands.abs_pp / _HUNDRED,
            band_rel=bands.rel,
            band_rules=BandRules.of(config),
            leverage_cap=config.risk.max_gross_leverage,
            mode=config.execution.mode,
            strategy=config.strategy.name,
            symbols=[*config.instruments.spot, *config.instruments.perp],
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ labels

    def label(self, kind: str, value: str) -> str:
        """``value`` as a bounded label value; ``kind`` names the label's domain (values of one
        kind share one bound: asset, symbol, currency, or a metric's own codes)."""
        guard = self._labels.get(kind)
        if guard is None:
            guard = self._labels[kind] = LabelValues()
        return guard(value)

    def label_symbol(self, symbol: str) -> str:
        return self.label("symbol", symbol)

    def _asset(self, asset: str) -> str:
        return self.label("asset", asset)

    def _currency(self, currency: str) -> str:
        return self.label("currency", currency)

    # ------------------------------------------------------------------ set-up

    def _initialise(self, leverage_cap: Decimal, mode: str, strategy: str) -> None:
        """Series that exist before their first event, so dashboards and alerts see zeros."""
        m, quote = self.m, self._currency(self.quote)
        m.build.info({"version": __version__})
        for counter in (m.funding_paid, m.funding_received, m.fees):
            counter.labels(quote)
        self._realized = m.realized.labels(quote)
        self._nav: Gauge | None = None  # no NAV series before the first valuation
        for status in ORDER_STATUSES:
            m.orders.labels(status)
        for trigger in REBALANCE_TRIGGERS:
            m.rebalances.labels(trigger, self.label("mode", mode))
        for reason in sorted(REASON_CODES):
            m.vetoes.labels(self.label("veto", reason))
        for rejected in DATA_REJECT_REASONS:
            m.data_rejected.labels(self.label("data_rejected", rejected))
        for regime in REGIMES:
            m.regime.labels(regime).set(0)
        if strategy:
            m.strategy_errors.labels(self.label("strategy", strategy))
        m.cap.set(float(leverage_cap))
        m.overlay.set(1)
        m.mismatches.set(0)
        self._set_band(self.band_abs, self.band_rel)

    def _subscribe_all(self) -> None:
        self.subscribe(QuoteTick, self.on_market)
        self.subscribe(TradeTick, self.on_market)
        self.subscribe(Bar, self.on_market)
        self.subscribe(MarkPriceUpdated, self.on_market)
        self.subscribe(MarkPriceUpdated, self.on_mark)
        self.subscribe(PortfolioSnapshot, self.on_snapshot)
        self.subscribe(RebalanceDecided, self.on_decided)
        self.subscribe(RiskBudgetChanged, self.on_budget)
        self.subscribe(KillSwitchTriggered, self.on_kill_switch)
        self.subscribe(KillSwitchReset, self.on_kill_switch_reset)
        self.subscribe(OrderVetoed, self.on_vetoed)
        self._subscribe_orders()
        self.subscribe(FundingPaid, self.on_funding)
        self.subscribe(DataStale, self.on_stale)
        self.subscribe(DataRejected, self.on_data_rejected)
        self.subscribe(StrategyFailed, self.on_strategy_failed)
        self.subscribe(InstrumentsLoaded, self.on_instruments)
        self.subscribe(BalanceUpdated, self.on_balance)
        self.subscribe(VenueConnectionChanged, self.on_connection)
        self.subscribe(JournalWriteChanged, self.on_journal)
        self.subscribe(VenueMessageRejected, self.on_venue_message_rejected)
        self.subscribe(ReconcileMismatch, self.on_mismatch)
        self.subscribe(ReconcileResolved, self.on_resolved)

    def _subscribe_orders(self) -> None:
        self.subscribe(SubmitOrder, self.on_submit)
        self.subscribe(OrderAccepted, self.on_accepted)
        self.subscribe(OrderFilled, self.on_filled)
        self.subscribe(OrderCanceled, self.on_canceled)
        self.subscribe(OrderRejected, self.on_rejected)
        self.subscribe(OrderSubmitted, self.on_sent)
        for answer in (OrderAccepted, OrderFilled, OrderCanceled, OrderRejected):
            self.subscribe(answer, self.on_answer)
        self.subscribe(OrderStatusReported, self.on_answer)

    async def on_start(self) -> None:
        journal = self.bus.journal
        if journal is not None and self._on_commit not in journal.commit_observers:
            journal.commit_observers.append(self._on_commit)

    async def on_stop(self) -> None:
        journal = self.bus.journal
        if journal is not None and self._on_commit in journal.commit_observers:
            journal.commit_observers.remove(self._on_commit)

    def _on_commit(self, seconds: float, records: int) -> None:
        self.m.commit.observe(seconds)

    # ------------------------------------------------------------------ market data (hot path)

    def on_market(self, event: QuoteTick | TradeTick | Bar | MarkPriceUpdated) -> None:
        """A lag observation (a negative lag, clock skew, counts as none) and Health.on_data,
        inlined: this runs for every tick."""
        ts, symbol = event.ts_event, event.symbol
        lag, lag_ns = self.lag, event.ts_init - ts
        lag.counts[bisect_left(lag.bounds_ns, lag_ns)] += 1  # skew (< 0) lands in the first
        if lag_ns > 0:
            lag.sum_ns += lag_ns
        last = self._last_data_ns
        if ts > last.get(symbol, -1):
            last[symbol] = ts
        if self._flagged_stale:
            self._flagged_stale.discard(symbol)

    def on_mark(self, event: MarkPriceUpdated) -> None:
        self.m.funding_rate.labels(self.label_symbol(event.symbol)).set(float(event.funding_rate))

    def on_stale(self, event: DataStale) -> None:
        self.health.on_stale(event.symbol)

    def on_data_rejected(self, event: DataRejected) -> None:
        self.m.data_rejected.labels(self.label("data_rejected", event.reason)).inc()

    # ------------------------------------------------------------------ portfolio

    def on_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        m, nav = self.m, snapshot.nav
        if self._nav is None:
            self._nav = m.nav.labels(self._currency(self.quote))
        self._nav.set(float(nav))
        self._realized.set(float(snapshot.realized_pnl))
        m.gross.set(float(snapshot.gross_leverage))
        m.net.set(float(snapshot.net_leverage))
        if nav > 0:
            m.margin.set(float(snapshot.margin_used / nav))
        for state in snapshot.assets:
            self._series(state.asset, state.weight).set_weight(state.weight, state.net_exposure)
        self._liquidation(snapshot)

    def _series(self, asset: str, weight: Decimal) -> _AssetSeries:
        """The series of ``asset``, created (at ``weight``) with its target and band."""
        series = self._assets.get(asset)
        if series is None:
            m, label = self.m, self._asset(asset)
            series = _AssetSeries(
                weight=m.weight.labels(label),
                target=m.target.labels(label),
                band_low=m.band_low.labels(label),
                band_high=m.band_high.labels(label),
                drift=m.drift.labels(label),
                exposure=m.exposure.labels(label, self._currency(self.quote)),
                weight_value=weight,
            )
            self._assets[asset] = series
            self._set_target(asset, series)
        return series

    def _set_target(self, asset: str, series: _AssetSeries) -> None:
        target = self.targets.get(asset, _ZERO)
        width = self.band_rules.width(asset, target, self.band_abs, self.band_rel, self._regime)
        series.set_target(target, width)

    def _liquidation(self, snapshot: PortfolioSnapshot) -> None:
        """Each perp's distance to liquidation, computed from the snapshot with the engine's
        margin formula (:mod:`ballast.engine.trading.measures`), as the risk actor does; the venue's
        estimate is refreshed only on a fill."""
        live: set[str] = set()
        book = Book(snapshot, {}, self._margin, quote=self.quote)
        for liquidation in book.liquidations():
            distance = liquidation.distance
            if distance is None:
                continue
            symbol = self.label_symbol(liquidation.symbol)
            live.add(symbol)
            self.m.liquidation.labels(symbol).set(float(distance))
        for gone in self._liquidation_symbols - live:
            self.m.liquidation.remove(gone)  # the position closed: no distance to show
        self._liquidation_symbols = live

    def on_decided(self, decision: RebalanceDecided) -> None:
        trigger, mode = self.label("trigger", decision.trigger), self.label("mode", decision.mode)
        self.m.rebalances.labels(trigger, mode).inc()
        for decided in decision.assets:
            self.targets[decided.asset] = decided.target
            self._set_target(decided.asset, self._series(decided.asset, decided.weight))

    def on_budget(self, event: RiskBudgetChanged) -> None:
        m = self.m
        current = self.label("regime", event.regime)
        self._regimes.add(current)
        for regime in sorted(self._regimes):
            m.regime.labels(regime).set(1 if regime == current else 0)
        m.volatility.set(float(event.volatility))
        m.cap.set(float(event.max_gross_leverage))
        m.overlay.set(float(event.overlay_scale))
        self._regime = event.regime
        self._set_band(event.band_abs, event.band_rel)
        for asset, series in self._assets.items():
            self._set_target(asset, series)

    def _set_band(self, band_abs: Decimal | None, band_rel: Decimal | None) -> None:
        self.band_abs, self.band_rel = band_abs, band_rel
        band = band_abs if band_abs is not None else band_rel
        if band is not None:
            self.m.band.set(float(band))

    # ------------------------------------------------------------------ risk and orders

    def on_kill_switch(self, event: KillSwitchTriggered) -> None:
        self.m.kill_switch.set(1)
        self.health.on_kill_switch(event.reason)

    def on_kill_switch_reset(self, event: KillSwitchReset) -> None:
        self.m.kill_switch.set(0)
        self.health.on_kill_switch(None)

    def on_vetoed(self, event: OrderVetoed) -> None:
        self.m.vetoes.labels(self.label("veto", event.reason)).inc()

    def on_submit(self, command: SubmitOrder) -> None:
        self.m.orders.labels("submitted").inc()

    def on_accepted(self, event: OrderAccepted) -> None:
        self.m.orders.labels("accepted").inc()

    def on_canceled(self, event: OrderCanceled) -> None:
        self.m.orders.labels("canceled").inc()

    def on_rejected(self, event: OrderRejected) -> None:
        self.m.orders.labels("rejected").inc()

    def on_filled(self, fill: OrderFilled) -> None:
        self.m.orders.labels("filled").inc()
        if fill.fee > 0:  # a maker rebate (negative fee) is income, not a fee paid
            self.m.fees.labels(self._currency(fill.fee_asset)).inc(float(fill.fee))

    def on_funding(self, event: FundingPaid) -> None:
        currency = self._currency(event.asset)
        if event.amount < 0:
            self.m.funding_paid.labels(currency).inc(float(-event.amount))
        elif event.amount > 0:
            self.m.funding_received.labels(currency).inc(float(event.amount))

    # ------------------------------------------------------------------ system

    def on_strategy_failed(self, event: StrategyFailed) -> None:
        self.m.strategy_errors.labels(self.label("strategy", event.strategy)).inc()
        self.health.strategy_halted = True

    def on_instruments(self, event: InstrumentsLoaded) -> None:
        self.venue_name = event.venue
        self.m.reconnects.labels(self.label("venue", event.venue))
        self.health.instruments_loaded = True
        self.health.journal_error = None  # a session starts on a journal it could write

    # ------------------------------------------------------------------ live venue

    def on_sent(self, event: OrderSubmitted) -> None:
        sent = self._sent
        if len(sent) >= MAX_PENDING_ORDERS:
            del sent[next(iter(sent))]  # the oldest: never answered (a lost order is looked up)
        sent.setdefault(event.client_order_id, event.ts_init)

    def on_answer(self, event: OrderEvent) -> None:
        """The venue's first answer to an order sent (accepted, filled, canceled, rejected or
        a status report)."""
        sent = self._sent.pop(getattr(event, "client_order_id", ""), None)
        if sent is not None:
            self.m.round_trip.observe(max(0, event.ts_init - sent) / NS_PER_SECOND)

    def on_journal(self, event: JournalWriteChanged) -> None:
        self.health.journal_error = None if event.writable else (event.error or "not writable")

    def on_connection(self, event: VenueConnectionChanged) -> None:
        """A stream that comes back after a drop is a reconnect. ``caught_up`` (the REST
        catch-up after a start or a gap) is no stream's state."""
        if event.state == "caught_up":
            return
        venue, stream = self.label("venue", event.venue), self.label("stream", event.channel)
        key = (venue, stream)
        up = event.state == "connected"
        replaying = getattr(self.clock, "replaying", False)  # a resumed session catching up
        if up and self._links.get(key) is False and not replaying:
            self.m.reconnects.labels(venue).inc()  # this process's reconnects, not the journal's
        self._links[key] = up
        self.m.connected.labels(venue, stream).set(1 if up else 0)
        self.health.on_link(f"{event.venue}:{event.channel}", up)

    def on_venue_message_rejected(self, event: VenueMessageRejected) -> None:
        venue, channel = self.label("venue", event.venue), self.label("stream", event.channel)
        reason = self.label("venue_rejected", event.reason)
        self.m.venue_rejected.labels(venue, channel, reason).inc()

    def on_mismatch(self, event: ReconcileMismatch) -> None:
        self.health.on_mismatch(event.subject)
        self.m.mismatches.set(len(self.health.mismatches))

    def on_resolved(self, event: ReconcileResolved) -> None:
        self.health.on_mismatch(None)
        self.m.mismatches.set(0)

    def on_balance(self, event: BalanceUpdated) -> None:
        self.health.account_loaded = True
