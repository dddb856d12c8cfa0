"""``ballast config check`` rejects everything ``plan``/``backtest``/``run`` would reject at start,
with the same one-line message naming the key: strategy resolution and its params, plug-in
actors, targets against the traded assets, the quote against the instruments, numeric ranges, and
TOML syntax errors by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.engine.app.cli.main import main
from tests.support.cli import ballast

THRESHOLD_TARGETS = "[targets]\nBTC = 0.4\n"


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``ballast config check`` in process: exit code and stderr."""
    file = tmp_path / "c.toml"
    file.write_text(text)
    code = main(["config", "check", str(file)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        # item 7: what plan/backtest/run rejected only once they built the strategy or actors
        ('[strategy]\nname = "conservative_hedger"\n' + THRESHOLD_TARGETS, "targets", "weights"),
        ('[strategy]\nname = "nope"\n', "strategy.name", "unknown strategy 'nope'"),
        ('[strategy]\nname = "os:system"\n', "strategy.name", "not a subclass"),
        ("[strategy]\nparams = { foo = 1 }\n", "strategy.params.foo", "unknown key"),
        (
            '[strategy]\nname = "growth_optimizer"\nparams = { sample_h = 0 }\n',
            "strategy.params.sample_h",
            "between 1",
        ),
        (
            '[strategy]\nname = "growth_optimizer"\nparams = { lookback_h = 100000000 }\n',
            "strategy.params.lookback_h",
            "between 1 and 43800",
        ),
        (
            '[strategy]\nname = "calendar"\nparams = { every_days = 100000000 }\n',
            "strategy.params.every_days",
            "between 1 and 3650",
        ),
        ('[engine]\nactors = ["nomod:Nope"]\n', "engine.actors[0]", "cannot import"),
        (
            '[engine]\nactors = ["ballast.engine.kernel.bus:Bus"]\n',
            "engine.actors[0]",
            "not an Actor",
        ),
        ("[targets]\nSOL = 0.2\n", "targets.SOL", "not traded"),
        (
            "[strategy]\nparams = { weights = { DOGE = 0.1 } }\n",
            "strategy.params",
            "DOGE",
        ),
        (
            '[instruments]\nspot = ["BTC/USDT"]\nperp = []\n'
            '[strategy]\nname = "conservative_hedger"\n',
            "strategy.params",
            "ETH",
        ),
        # item 8: ranges and consistency
        ("[risk]\nmax_gross_leverage = 1e308\n", "risk.max_gross_leverage", "<= 100"),
        ("[bands]\nabs_pp = 150\n", "bands.abs_pp", "< 100"),
        ("[bands]\nrel = 2\n", "bands.rel", "<= 1"),
        ("[risk]\ndrawdown_limit = 0\n", "risk.drawdown_limit", "> 0"),
        ('[venue]\nquote = "EUR"\n', "venue.quote", "USDT"),
        ('[instruments]\nspot = ["BTC/EUR"]\n', "instruments.spot[0]", "quote"),
        ("[instruments]\nspot = []\nperp = []\n", "instruments.spot", "no instrument"),
        ("[paper]\nbalances = { SOL = 3 }\n", "paper.balances.SOL", "not traded"),
        ('[risk]\nregime_asset = "SOL"\n', "risk.regime_asset", "not traded"),
        ("[risk]\nstale_after_s = 1e300\n", "risk.stale_after_s", "<= 604800"),
        ("[execution]\nsubmit_attempts = 100000000000\n", "execution.submit_attempts", "<= 100"),
        ('[paper]\nstart = "2024-01-01"\nend = "2023-01-01"\n', "paper.end", "after"),
        ('[risk]\ncalendar = ["x/y"]\n', "risk.calendar[0]", "not a time"),
        ('[risk]\ncalendar = ["2024-03-20/2024-03-19"]\n', "risk.calendar[0]", "ends before"),
    ],
)
def test_config_check_rejects_what_the_engine_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, problem: str
) -> None:
    code, err = check(tmp_path, text, capsys)
    assert code == 2, err
    [line] = err.splitlines()
    assert f": {key}: " in line
    assert problem in line
    assert "Traceback" not in err


def test_a_toml_syntax_error_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = check(tmp_path, "[risk]\nmax_gross_leverage = 2\n[bands\nabs_pp = 5\n", capsys)
    assert code == 2
    assert "<root>" not in err
    assert "c.toml:3:" in err
    assert "invalid TOML" in err


def test_a_good_config_still_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, THRESHOLD_TARGETS + "ETH = 0.2\n", capsys)
    assert code == 0, err


@pytest.mark.parametrize("command", [("config", "check"), ("plan", "-c")])
def test_check_and_plan_give_the_same_message(tmp_path: Path, command: tuple[str, str]) -> None:
    """The preset-with-targets case: plan used to name strategy.params.weights, a key the user
    never wrote, and config check passed it."""
    file = tmp_path / "preset.toml"
    file.write_text('[strategy]\nname = "conservative_hedger"\n' + THRESHOLD_TARGETS)
    proc = ballast(*command, str(file))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    [line] = proc.stderr.splitlines()
    assert f"{file}: targets: " in line
    assert "strategy.params.weights" not in line
