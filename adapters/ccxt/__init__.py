"""The ccxt.pro venue: live trading through ccxt's unified API (:mod:`.venue`), with what is
exchange-specific declared in :mod:`.exchanges`."""

from ballast.adapters.ccxt.exchanges import BINANCE, EXCHANGES, ExchangeSpec
from ballast.adapters.ccxt.venue import CcxtVenue

__all__ = ["BINANCE", "EXCHANGES", "CcxtVenue", "ExchangeSpec"]
