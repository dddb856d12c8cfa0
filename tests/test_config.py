"""Configuration: defaults, the example file, errors that name the exact key path, secrets that
never leave the process, the JSON Schema."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from ballast.engine.kernel.config import (
    Config,
    RiskConfig,
    VenueConfig,
    config_from_json,
    config_to_json,
    json_schema,
    load_config,
    load_secrets,
    parse_config,
)
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.redaction import redact

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "paper.toml"

FULL = """
[engine]
log_level = "DEBUG"
actors = ["tests.support.actors:Decider", "pkg.mod:Outer.Inner"]

[venue]
kind = "binance"
quote = "USDC"
api_key_env = "MY_KEY"
api_secret_env = "MY_SECRET"
rest_url = "https://api.example"
ws_url = "wss://stream.example"

[instruments]
spot = ["BTC/USDC", "ETH/USDC", "SOL/USDC"]
perp = ["BTC/USDC:USDC"]

[strategy]
name = "mypkg.strats:Momentum"
params = { lookback = 20, assets = ["BTC", "ETH"], scale = 0.5 }

[targets]
BTC = 0.35
ETH = "0.25"
SOL = 0.1

[bands]
abs_pp = 4
rel = 0.2
combine = "narrower"
rebalance_to = "edge"

[risk]
max_gross_leverage = 2.5
max_asset_weight = 0.5
drawdown_limit = 0.3
min_liquidation_distance = 0.2
max_order_notional = 50000
max_daily_turnover = 1.5
max_price_deviation = 0.05
stale_after_s = 10
vol_half_life_h = 12
calendar = ["2024-03-20T18:00/2024-03-20T20:00"]

[execution]
mode = "auto"
cooldown_s = 0
check_interval_s = 30

[journal]
path = "var/x/journal.db"
batch_size = 100
flush_interval_ms = 10

[metrics]
enabled = false
address = "0.0.0.0:9100"
"""


def error_of(text: str | bytes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="bad.toml")
    return info.value


# ----------------------------------------------------------------------------- good files


def test_defaults_are_valid() -> None:
    config = parse_config("")
    assert config == Config()
    assert config.venue.kind == "simulated"
    assert config.targets == {}
    assert config_from_json(config_to_json(config)) == config


def test_a_full_config_parses() -> None:
    config = parse_config(FULL)
    assert config.engine.actors == ["tests.support.actors:Decider", "pkg.mod:Outer.Inner"]
    assert config.venue.api_key_env == "MY_KEY"
    assert config.instruments.perp == ["BTC/USDC:USDC"]
    assert config.strategy.params == {"lookback": 20, "assets": ["BTC", "ETH"], "scale": 0.5}
    assert config.targets == {"BTC": Decimal("0.35"), "ETH": Decimal("0.25"), "SOL": Decimal("0.1")}
    assert config.bands.rel == Decimal("0.2")
    assert config.risk.max_gross_leverage == Decimal("2.5")
    assert config.risk.stale_after_s == 10.0
    assert config.execution.mode == "auto"
    assert config.metrics.address == "0.0.0.0:9100"
    assert config_from_json(config_to_json(config)) == config


def test_the_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert config.venue.kind == "simulated"
    assert sum(config.targets.values()) <= 1


def test_decimals_stay_exact() -> None:
    config = parse_config("[targets]\nBTC = 0.1\nETH = 0.2\n")
    assert config.targets["BTC"] + config.targets["ETH"] == Decimal("0.3")


def test_leverage_limits_have_their_own_keys_and_the_deleverage_distance_follows() -> None:
    risk = RiskConfig()
    assert (risk.max_net_leverage, risk.max_gross_leverage, risk.max_margin_usage) == (
        Decimal(3),
        Decimal(3),
        Decimal(1),
    )
    assert risk.deleverage_distance == Decimal("0.20")
    assert RiskConfig(min_liquidation_distance=Decimal("0.3")).deleverage_distance == Decimal(
        "0.35"
    )
    set_explicitly = RiskConfig(deleverage_liquidation_distance=Decimal("0.4"))
    assert set_explicitly.deleverage_distance == Decimal("0.4")


# ------------------------------------------------------------------------------ bad files


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[risk]\nmax_gross_leverage = -1\n", "risk.max_gross_leverage", "must be > 0"),
        ("[risk]\nmax_gross_leverage = 0\n", "risk.max_gross_leverage", "must be > 0"),
        ("[risk]\nmax_gross_leverage = 'lots'\n", "risk.max_gross_leverage", "decimal"),
        ("[risk]\nmax_gross_leverage = true\n", "risk.max_gross_leverage", "Expected"),
        ("[risk]\nlevrage = 2\n", "risk.levrage", "unknown key"),
        ("[riks]\nmax_gross_leverage = 2\n", "riks", "unknown key"),
        ("[strategy]\nname = 'x'\n[strategy.paramz]\n", "strategy.paramz", "unknown key"),
        ("[risk]\ndrawdown_limit = 1.5\n", "risk.drawdown_limit", "must be > 0 and <= 1"),
        ("[risk]\nmax_net_leverage = 0\n", "risk.max_net_leverage", "must be > 0"),
        ("[risk]\nmax_margin_usage = 1.5\n", "risk.max_margin_usage", "must be > 0 and <= 1"),
        ("[risk]\nmax_margin_usage = 0\n", "risk.max_margin_usage", "must be > 0"),
        (
            "[risk]\ndeleverage_liquidation_distance = 0.1\n",
            "risk.deleverage_liquidation_distance",
            "must be >= min_liquidation_distance (0.15)",
        ),
        ("[risk]\nstale_after_s = 0\n", "risk.stale_after_s", "must be >= 1"),
        ("[risk]\nmax_asset_weight = 0\n", "risk.max_asset_weight", "must be > 0"),
        (
            "[risk]\nmax_asset_weight = 0.5\n[targets]\nBTC = 0.3\nETH = 0.6\n",
            "targets.ETH",
            "risk.max_asset_weight (0.5)",
        ),
        ("[targets]\nBTC = -0.1\n", "targets.BTC", "between 0 and"),
        ("[targets]\nBTC = 'half'\n", "targets.BTC", "decimal"),
        ("[targets]\nBTC = 0.6\nETH = 0.6\n", "targets", "add up to 1.2"),
        ("targets = 3\n", "targets", "Expected `object`"),
        ("[bands]\nabs_pp = -5\n", "bands.abs_pp", "must be > 0"),
        ("[bands]\nrel = 0\n", "bands.rel", "must be > 0"),
        ("[bands]\nrebalance_to = 'middle'\n", "bands.rebalance_to", "Invalid enum value"),
        ("[metrics]\naddress = 'localhost'\n", "metrics.address", "HOST:PORT"),
        ("[metrics]\naddress = 'localhost:70000'\n", "metrics.address", "HOST:PORT"),
        ("[metrics]\nenabled = 'yes'\n", "metrics.enabled", "Expected `bool`"),
        ("[engine]\nactors = ['no-colon']\n", "engine.actors", "module:Class"),
        ("[engine]\nactors = ['ok.mod:Cls', 42]\n", "engine.actors[1]", "Expected `str`"),
        ("[engine]\nactors = 'mod:Cls'\n", "engine.actors", "Expected `array`"),
        ("[engine]\nlog_level = 'LOUD'\n", "engine.log_level", "Invalid enum value"),
        ("[instruments]\nspot = ['BTCUSDT']\n", "instruments.spot", "not a spot symbol"),
        ("[instruments]\nspot = ['BTC/USDT:USDT']\n", "instruments.spot", "not a spot symbol"),
        ("[instruments]\nperp = ['BTC/USDT']\n", "instruments.perp", "not a perp symbol"),
        ("[instruments]\nspot = ['BTC/USDT', 1]\n", "instruments.spot[1]", "Expected `str`"),
        ("[venue]\nkind = 'kraken'\n", "venue.kind", "Invalid enum value"),
        ("[execution]\ncooldown_s = -1\n", "execution.cooldown_s", "must be >= 0"),
        ("[execution]\nmode = 'yolo'\n", "execution.mode", "Invalid enum value"),
        ("[journal]\nbatch_size = 0\n", "journal.batch_size", "must be > 0"),
        ("[journal]\nbatch_size = 1.5\n", "journal.batch_size", "Expected `int`"),
    ],
)
def test_a_bad_value_names_its_key_path(text: str, key: str, problem: str) -> None:
    error = error_of(text)
    assert error.key == key
    assert problem in error.problem
    assert str(error).startswith(f"bad.toml: {key}: ")
    assert error.source == "bad.toml"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[risk]\nmax_gross_leverage = nan\n", "risk.max_gross_leverage"),
        ("[risk]\nmax_gross_leverage = 'NaN'\n", "risk.max_gross_leverage"),
        ("[risk]\nmax_gross_leverage = inf\n", "risk.max_gross_leverage"),
        ("[risk]\nmax_order_notional = 'Infinity'\n", "risk.max_order_notional"),
        ("[risk]\nmax_daily_turnover = nan\n", "risk.max_daily_turnover"),
        ("[risk]\nstale_after_s = nan\n", "risk.stale_after_s"),
        ("[risk]\ndrawdown_limit = nan\n", "risk.drawdown_limit"),
        ("[targets]\nBTC = nan\n", "targets.BTC"),
        ("[bands]\nabs_pp = inf\n", "bands.abs_pp"),
        ("[execution]\ncooldown_s = nan\n", "execution.cooldown_s"),
        ("[execution]\nmargin_buffer = nan\n", "execution.margin_buffer"),
        ("[execution]\nmargin_buffer = 1\n", "execution.margin_buffer"),
        ("[execution]\nmargin_buffer = -0.1\n", "execution.margin_buffer"),
        ("[execution]\nperp_leverage = 0.5\n", "execution.perp_leverage"),
        ("[execution]\nprice_snapshot_interval_s = -1\n", "execution.price_snapshot_interval_s"),
        ("[execution]\nprice_snapshot_interval_s = nan\n", "execution.price_snapshot_interval_s"),
    ],
)
def test_non_finite_numbers_are_config_errors(text: str, key: str) -> None:
    error = error_of(text)
    assert error.key == key
    assert "finite" in error.problem or "must be" in error.problem


def test_a_target_asset_with_punctuation_is_named() -> None:
    error = error_of('[targets]\n"1000-SHIB" = 2\n')
    assert error.key == "targets.1000-SHIB"


@pytest.mark.parametrize(
    "text",
    [
        "[risk\nmax_gross_leverage = 2\n",
        "[risk]\nmax_gross_leverage = \n",
        "[risk]\nmax_gross_leverage = 2\nmax_gross_leverage = 3\n",
        "just words",
    ],
)
def test_invalid_toml_is_a_config_error(text: str) -> None:
    error = error_of(text)
    assert error.key == ""
    assert error.problem.startswith("invalid TOML")
    assert str(error).startswith("bad.toml:")
    assert "invalid TOML" in str(error)
    assert "<root>" not in str(error)


def test_a_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "binary.toml"
    file.write_bytes(b"\xff\xfe[risk]\x00")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.key == ""
    assert "invalid TOML" in info.value.problem
    assert info.value.source == str(file)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.source == str(tmp_path / "nope.toml")


# --------------------------------------------------------------------------------- secrets


def test_load_secrets_reads_the_variables_the_config_names() -> None:
    config = parse_config(FULL)
    key, secret = "AKIA-very-secret-key", "shhh-0123456789-secret"
    env = {"MY_KEY": key, "MY_SECRET": secret, "BALLAST_API_KEY": "wrong-one"}
    secrets = load_secrets(config.venue, env)
    assert secrets.api_key == key
    assert secrets.api_secret == secret
    for text in (repr(secrets), str(secrets), f"{secrets}", f"{secrets!r}"):
        assert key not in text
        assert secret not in text
    # registered for redaction, also URL-encoded
    assert redact(f"key={key}&s={secret}") == "key=***&s=***"
    assert key not in config_to_json(config)
    assert secret not in config_to_json(config)
    assert "MY_KEY" in config_to_json(config)


def test_missing_credentials_are_none() -> None:
    secrets = load_secrets(VenueConfig(), {})
    assert secrets.api_key is None
    assert secrets.api_secret is None
    assert "None" in repr(secrets)


def test_a_too_short_credential_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_secrets(VenueConfig(), {"BALLAST_API_KEY": "abc"})
    assert info.value.key == "env:BALLAST_API_KEY"
    assert "abc" not in str(info.value)


def test_secrets_never_reach_the_config_json() -> None:
    """The config holds variable names only; a secret in the environment never enters it."""
    config = parse_config(FULL)
    load_secrets(config.venue, {"MY_KEY": "key-value-1234", "MY_SECRET": "secret-value-5678"})
    text = config_to_json(config)
    assert "key-value-1234" not in text
    assert "secret-value-5678" not in text
    stored = json.loads(text)
    assert stored["venue"]["api_key_env"] == "MY_KEY"
    assert config_from_json(text) == config


def test_config_json_is_canonical() -> None:
    a = parse_config("[targets]\nBTC = 0.4\nETH = 0.2\n")
    b = parse_config("[targets]\nETH = 0.2\nBTC = 0.4\n")
    assert config_to_json(a) == config_to_json(b)


# ---------------------------------------------------------------------------------- schema


def test_json_schema_describes_every_section_and_key() -> None:
    schema = json_schema()
    assert isinstance(schema, dict)
    assert schema["$schema"].startswith("https://json-schema.org/")
    json.dumps(schema)  # serialisable
    defs = schema["$defs"]
    root = defs["Config"]
    assert set(root["properties"]) == set(Config.__struct_fields__)
    for section in Config.__struct_fields__:
        value = getattr(Config(), section)
        if isinstance(value, msgspec.Struct):
            properties = defs[type(value).__name__]["properties"]
            assert set(properties) == set(type(value).__struct_fields__), section
            assert defs[type(value).__name__].get("additionalProperties") is False
