"""The simulated exchange: one pure, synchronous exchange model for backtests and paper trading,
reused by the Binance-compatible loopback venue. See :mod:`ballast.adapters.sim.exchange`."""

from ballast.adapters.sim.config import Latency, SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.adapters.sim.fees import FeeRates, FeeSchedule
from ballast.adapters.sim.margin import Bracket
from ballast.adapters.sim.slippage import SlippageConfig

__all__ = [
    "Bracket",
    "FeeRates",
    "FeeSchedule",
    "Latency",
    "SimConfig",
    "SimExchange",
    "SlippageConfig",
]
