"""The simulated exchange: one pure, synchronous exchange model for backtests and paper trading,
reused by the Binance-compatible loopback venue. See :mod:`adapters.sim.exchange`."""

from adapters.sim.config import Latency, SimConfig
from adapters.sim.exchange import SimExchange
from adapters.sim.fees import FeeRates, FeeSchedule
from adapters.sim.margin import Bracket
from adapters.sim.slippage import SlippageConfig

__all__ = [
    "Bracket",
    "FeeRates",
    "FeeSchedule",
    "Latency",
    "SimConfig",
    "SimExchange",
    "SlippageConfig",
]
