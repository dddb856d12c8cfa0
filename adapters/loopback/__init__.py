"""The loopback exchange: the simulated exchange core behind Binance's REST and WebSocket APIs.

:mod:`~ballast.adapters.loopback.core` holds the state (one
:class:`~ballast.adapters.sim.exchange.SimExchange`, Binance-style order and trade records, the
durable input log), :mod:`~ballast.adapters.loopback.server` speaks the protocol on 127.0.0.1,
:mod:`~ballast.adapters.loopback.wire` formats Binance's JSON.
"""
