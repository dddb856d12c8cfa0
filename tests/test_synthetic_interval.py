"""``ballast venue serve --synthetic SEED --interval-s SECONDS``: a synthetic market of bars that
many seconds apart (1: the 1-second quotes of the soak); the option is refused without
``--synthetic`` (exit 2 naming it) and an interval must be positive."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ballast.engine.app.cli.main import main
from ballast.engine.app.venue_serve import market_of, synthetic_market
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import load_config
from tests.support.paper_config import paper_config


def config(tmp_path: Path) -> Path:
    span = {"start": "2024-01-01T00:00:00", "end": "2024-01-01T00:10:00"}
    return paper_config(tmp_path / "c.toml", {"paper": span, "venue": {"kind": "paper"}})


def test_a_synthetic_market_of_one_second_bars(tmp_path: Path) -> None:
    bundle = synthetic_market(load_config(config(tmp_path)), 7, interval_s=1)
    assert bundle.interval_s == 1
    first, last = bundle.span()
    assert last - first == (600 - 2) * NS_PER_SECOND  # the bars of 10 minutes, 1 s apart
    times = sorted({e.ts_event for e in bundle.events()})
    assert {b - a for a, b in itertools.pairwise(times)} == {NS_PER_SECOND}


def test_the_interval_is_for_a_synthetic_market_and_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_config(config(tmp_path))
    with pytest.raises(ValueError, match="interval_s"):
        market_of(loaded, interval_s=1)
    with pytest.raises(ValueError, match="interval_s"):
        synthetic_market(loaded, 7, interval_s=0)
    path = str(config(tmp_path))
    assert main(["venue", "serve", "-c", path, "--interval-s", "1"]) == 2
    assert "--interval-s: sets the bar interval of a --synthetic market only" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exited:
        main(["venue", "serve", "-c", path, "--synthetic=1", "--interval-s=0"])
    assert exited.value.code == 2
    assert "must be positive" in capsys.readouterr().err
