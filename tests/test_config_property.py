"""Property: every key of ``examples/paper.toml``, mutated to a wrong type, an out-of-range or an
extreme value, is either refused by the one validation path with a config error naming that key,
or accepted and then workable: the plan's dry run over it builds a snapshot and decides, with no
exception. ``config check`` and ``plan`` both call that path first
(:func:`ballast.engine.app.config_check.load_checked_config`), so they agree; a few real
subprocesses of both commands check that end to end.
"""

from __future__ import annotations

import json
import math
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.cli.cmd_plan import priced_venue
from ballast.engine.app.config_check import check_startable
from ballast.engine.app.dry_run import dry_run
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.instruments import binance_defaults
from tests.support.cli import ROOT, ballast

D = Decimal
EXAMPLE = ROOT / "examples" / "paper.toml"
BASE: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
T0 = 1_700_000_000 * NS_PER_SECOND
PRICES = {"BTC": D(40_000), "ETH": D(2_000)}


def key_paths(document: dict[str, Any], prefix: str = "") -> list[str]:
    """Every section and key of the document: "risk", "risk.drawdown_limit", "targets.BTC", …"""
    out: list[str] = []
    for key, value in document.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict):
            out += key_paths(value, f"{path}.")
    return out


PATHS = key_paths(BASE)

SCALARS = st.one_of(
    st.sampled_from(
        [0, -1, 1, 2, 100, 150, 10**20, -(10**20), 0.5, 1.5, 1e-30, 1e308, -1e308, 1e15]
    ),
    st.sampled_from(["", "x", "EUR", "USDT", "BTC", "SOL", "os:system", "nomod:Nope", "1e308"]),
    st.sampled_from(["BTC/USDT", "SOL/USDT", "BTC/EUR", "BTC/USDT:USDT", "threshold", "calendar"]),
    st.sampled_from(
        ["conservative_hedger", "growth_optimizer", "ballast.engine.kernel.bus:Bus", "::", "a:b"]
    ),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.floats(min_value=1e-6, max_value=1e6),  # plausible magnitudes: more accepted cases
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(
        st.sampled_from(["BTC", "ETH", "SOL", "USDT", "weights", "x"]), SCALARS, max_size=3
    ),
)


def mutated(path: str, value: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(json.dumps(BASE))
    *parents, leaf = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    node[leaf] = value
    return document


# --------------------------------------------------------------------------- a TOML writer


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    items = ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
    return "{ " + items + " }"


def to_toml(document: dict[str, Any]) -> str:
    tables = {k: v for k, v in document.items() if isinstance(v, dict)}
    lines = [f"{k} = {toml_value(v)}" for k, v in document.items() if k not in tables]
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_the_writer_round_trips_the_example() -> None:
    assert tomllib.loads(to_toml(BASE)) == BASE


# ------------------------------------------------------------------------------ the property


def names_the_key(error: ConfigError, path: str) -> bool:
    """The error is about the mutated key: that key, a key inside it, the table holding it, or
    (for a constraint between two keys) a message that names it."""
    key = error.key
    inside = key == path or key.startswith((f"{path}.", f"{path}["))
    holding = bool(key) and path.startswith(f"{key}.")
    section, _, leaf = path.rpartition(".")
    sibling = bool(section) and key.rpartition(".")[0] == section and leaf in error.problem
    return inside or holding or sibling or path in error.problem


def validated(text: str) -> Config | ConfigError:
    """The one validation path, as ``config check`` and ``plan`` run it: the config or the
    error."""
    try:
        config = parse_config(text, source="mutated.toml")
        check_startable(config, source="mutated.toml")
    except ConfigError as error:
        return error
    return config


def tiny_market(config: Config) -> tuple[SimulatedVenue, list[Bar]]:
    """The plan's paper venue, priced by one bar per traded instrument instead of the bundled
    data (which would take a second to load per example)."""
    instruments = binance_defaults(sorted(config.instruments.assets()), config.venue.quote)
    prices = {i.symbol: PRICES.get(i.base, D(1)) for i in instruments}
    market = [
        Bar(T0, T0, symbol, 3600, price, price, price, price, D(1))
        for symbol, price in prices.items()
    ]
    return priced_venue(config, market), market


@pytest.mark.slow
@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(path=st.sampled_from(PATHS), value=VALUES)
async def test_a_mutated_key_is_refused_by_name_or_workable(path: str, value: Any) -> None:
    config = validated(to_toml(mutated(path, value)))
    event("refused" if isinstance(config, ConfigError) else "accepted")
    if isinstance(config, ConfigError):
        assert names_the_key(config, path), (path, value, str(config))
        assert "\n" not in str(config)
        return
    if config.venue.kind != "simulated":
        return  # plan: exit 1, the live venue is not available yet
    venue, market = tiny_market(config)
    result = await dry_run(config, venue, market)
    assert result.snapshot is not None, (path, value)
    assert result.decisions, (path, value)
    assert not result.failures, (path, value, result.failures)


# -------------------------------------------------------------------- the real commands, a few


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("bands.abs_pp", 10, 0),
        ("risk.max_gross_leverage", 1e308, 2),
        ("venue.quote", "EUR", 2),
    ],
)
def test_config_check_and_plan_agree(tmp_path: Path, path: str, value: Any, code: int) -> None:
    file = tmp_path / "mutated.toml"
    file.write_text(to_toml(mutated(path, value)))
    check = ballast("config", "check", str(file))
    plan = ballast("plan", "-c", str(file))
    assert (check.returncode, plan.returncode) == (code, code), check.stderr + plan.stderr
    assert "Traceback" not in check.stderr + plan.stderr
    if code == 2:
        assert check.stderr == plan.stderr
        [line] = check.stderr.splitlines()
        assert f"{file}: {path}: " in line
