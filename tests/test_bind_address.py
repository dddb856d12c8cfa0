"""Metrics, health and the loopback exchange bind 127.0.0.1 unless told otherwise.

The defaults (``[metrics] address``, ``ballast venue serve --host``, the loopback server) say
127.0.0.1. What a live service actually listens on (``/proc``, :mod:`tests.support.listening`)
is checked on the live session of ``tests/test_read_only.py``, whose config leaves
``[metrics] address`` out.
"""

from __future__ import annotations

import inspect
import os
import socket

import pytest

from ballast.adapters.loopback.server import LoopbackServer
from ballast.engine.app.cli.main import build_parser
from ballast.engine.kernel.config import Config
from ballast.engine.observe.http_server import MetricsServer, parse_address
from tests.support.listening import listening

pytestmark = pytest.mark.reliability

DEFAULT_METRICS = ("127.0.0.1", 9464)


def test_the_defaults_bind_loopback_only() -> None:
    assert parse_address(Config().metrics.address) == DEFAULT_METRICS
    assert inspect.signature(MetricsServer).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(LoopbackServer).parameters["host"].default == "127.0.0.1"
    serve = build_parser().parse_args(["venue", "serve", "-c", "x.toml"])
    assert serve.host == "127.0.0.1"


def test_listening_reads_the_sockets_of_a_process() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        probe.listen()
        port = probe.getsockname()[1]
        assert ("127.0.0.1", port) in listening(os.getpid())
