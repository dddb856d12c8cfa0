"""Shared fixtures. Journals are real SQLite files in tmp_path, never mocks."""

from __future__ import annotations

import pytest

from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.redaction import forget_secrets

START_NS = 1_700_000_000_000_000_000


@pytest.fixture
def sim_clock() -> SimulatedClock:
    return SimulatedClock(START_NS)


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> None:
    forget_secrets()
