"""The published JSON Schema (``ballast config schema``) against a real JSON Schema validator:
every shipped config validates, numbers are stated as numbers with the loader's bounds, and what
the loader refuses for a bad type, an unknown key or an out-of-range number the schema refuses
too."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ballast.engine.app.config_check import load_checked_config
from ballast.engine.kernel.config import json_schema

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    p
    for p in [*ROOT.glob("examples/*.toml"), *ROOT.glob("deploy/*.toml")]
    if not p.name.endswith(".grid.toml")  # a sweep's grid file (tests/test_sweep.py), not a config
)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Draft202012Validator, document: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_every_shipped_config_is_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SHIPPED}
    assert {"examples/paper.toml", "examples/demo.toml", "deploy/paper.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_validates_against_the_schema(
    validator: Draft202012Validator, path: Path
) -> None:
    load_checked_config(path)  # the one validation path accepts it ...
    document = tomllib.loads(path.read_text())
    assert errors(validator, document) == []  # ... and so does the schema


def test_numbers_are_numbers_with_their_bounds() -> None:
    defs = json_schema()["$defs"]
    leverage = defs["RiskConfig"]["properties"]["max_gross_leverage"]
    assert {"type": "number"} in leverage["anyOf"]
    assert leverage["exclusiveMinimum"] == 0
    assert leverage["maximum"] == 100
    assert leverage["default"] == 3
    assert defs["BandsConfig"]["properties"]["abs_pp"]["exclusiveMaximum"] == 100
    balances = defs["PaperConfig"]["properties"]["balances"]["additionalProperties"]
    assert balances["minimum"] == 0


@pytest.mark.parametrize(
    "document",
    [
        {"risk": {"max_gross_leverage": 1e308}},
        {"risk": {"max_gross_leverage": "lots"}},
        {"risk": {"levrage": 2}},
        {"bands": {"abs_pp": 150}},
        {"bands": {"rel": 2}},
        {"risk": {"drawdown_limit": 0}},
        {"paper": {"balances": {"USDT": -1}}},
        {"journal": {"batch_size": 1.5}},
        {"targets": {"BTC": -0.1}},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(
    validator: Draft202012Validator, document: dict[str, Any]
) -> None:
    assert errors(validator, document) != []
