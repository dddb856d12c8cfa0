"""The ``[venue]`` section of a live run: kinds, keys from the environment, ranges; and
``ballast run`` refusing a binance venue without its keys (exit 2 naming the variables)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ballast.engine.kernel.config import Config, parse_config, require_secrets
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.redaction import redact
from tests.support.cli import BALLAST, ENV, ROOT
from tests.support.live_config import live_config


def venue_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value


def test_the_three_kinds_and_their_defaults() -> None:
    for kind in ("simulated", "paper", "binance"):
        config = parse_config(f'[venue]\nkind = "{kind}"\n')
        assert config.venue.kind == kind
    venue = Config().venue
    assert (venue.kind, venue.testnet, venue.silent_order_s, venue.shutdown_timeout_s) == (
        "simulated",
        False,
        10.0,
        10.0,
    )
    binance = parse_config(
        '[venue]\nkind = "binance"\nrest_url = "http://127.0.0.1:8080"\n'
        'ws_url = "ws://127.0.0.1:8080"\nsilent_order_s = 2.5\n'
    )
    assert binance.venue.rest_url == "http://127.0.0.1:8080"
    assert binance.venue.silent_order_s == 2.5
    assert parse_config('[venue]\nkind = "binance"\ntestnet = true\n').venue.testnet


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('kind = "kraken"', "venue.kind", "Invalid enum value"),
        ("silent_order_s = 0", "venue.silent_order_s", ""),
        ("silent_order_s = 100000", "venue.silent_order_s", ""),
        ("shutdown_timeout_s = -1", "venue.shutdown_timeout_s", ""),
        ('kind = "paper"\ntestnet = true', "venue.testnet", "only for kind = 'binance'"),
        ('kind = "simulated"\nrest_url = "http://x"\nws_url = "ws://x"', "venue.rest_url", "only"),
        ('kind = "binance"\nrest_url = "http://x"', "venue.ws_url", "set together"),
        (
            'kind = "binance"\ntestnet = true\nrest_url = "http://x"\nws_url = "ws://x"',
            "venue.testnet",
            "not both",
        ),
        ('kind = "binance"\nws_url = "http://x"\nrest_url = "http://x"', "venue.ws_url", "ws://"),
    ],
)
def test_a_bad_venue_value_names_its_key(text: str, key: str, words: str) -> None:
    error = venue_error(f"[venue]\n{text}\n")
    assert error.key == key, str(error)
    assert words in error.problem


def test_paper_balances_must_be_priced_assets_for_the_paper_kind_too() -> None:
    error = venue_error('[venue]\nkind = "paper"\n[paper]\nbalances = { DOGE = 1 }\n')
    assert error.key == "paper.balances.DOGE"
    parse_config('[venue]\nkind = "binance"\n[paper]\nbalances = { DOGE = 1 }\n')


def test_keys_come_only_from_the_named_variables() -> None:
    venue = parse_config(
        '[venue]\nkind = "binance"\napi_key_env = "K"\napi_secret_env = "S"\n'
    ).venue
    keys = require_secrets(venue, {"K": "key-1234567", "S": "secret-7654321"})
    assert (keys.api_key, keys.api_secret) == ("key-1234567", "secret-7654321")
    assert "secret-7654321" not in repr(keys)
    assert redact("boom secret-7654321") == "boom ***"
    with pytest.raises(ConfigError) as caught:
        require_secrets(venue, {"K": "key-1234567"})
    assert caught.value.key == "env:S"
    assert "K and S" in caught.value.problem
    assert "key-1234567" not in str(caught.value)


def test_run_on_binance_without_keys_exits_2_naming_the_variables(tmp_path: Path) -> None:
    config = live_config(
        tmp_path,
        kind="binance",
        overrides={
            "venue": {"api_key_env": "BALLAST_TEST_KEY", "api_secret_env": "BALLAST_TEST_SECRET"}
        },
    )
    proc = subprocess.run(
        [str(BALLAST), "run", "-c", str(config)],
        cwd=ROOT,
        env={**ENV, "BALLAST_TEST_KEY": "only-the-key-1234"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "BALLAST_TEST_KEY and BALLAST_TEST_SECRET" in proc.stderr
    assert "not set: BALLAST_TEST_SECRET" in proc.stderr
    assert "only-the-key-1234" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "journal.db").exists()  # nothing started
