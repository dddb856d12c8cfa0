"""Real market data bundled with Ballast (Binance hourly klines and funding rates; see
market/PROVENANCE.md), shipped as package data so `ballast demo` runs from any folder."""
