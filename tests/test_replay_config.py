"""``ballast replay J -c CONFIG`` with the config a backtest was made from reproduces it (the
backtest's derived ``risk.stale_after_s`` is named and kept); a key CONFIG changes is named and
replayed with CONFIG's value. Real backtests and replays through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.engine.kernel.events import SessionStarted, SessionStopped
from ballast.engine.kernel.journal import JournalReader
from tests.support.cli import ballast
from tests.support.paper_config import DATA, rewrite

# One pytest-xdist worker runs this module (--dist loadgroup): the module-scoped backtest is shared.
pytestmark = pytest.mark.xdist_group("test_replay_config")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "paper.toml"
WEEK = ("--start", "2023-01-01", "--end", "2023-01-08")


def example(path: Path, **sections: dict[str, str | float]) -> Path:
    """examples/paper.toml with ``sections`` overridden (its journal path is never used: the
    backtests here name theirs)."""
    path.write_text(rewrite(EXAMPLE.read_text(), sections))
    return path


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(journal, config) of a week's backtest of examples/paper.toml."""
    folder = tmp_path_factory.mktemp("backtest")
    config = example(folder / "paper.toml")
    journal = folder / "week.db"
    made = ballast(
        "backtest",
        "-c",
        str(config),
        "--data",
        str(DATA),
        *WEEK,
        "--journal",
        str(journal),
        "--no-report",
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return journal, config


def test_replay_with_the_backtests_own_config_reproduces_it(backtested: tuple[Path, Path]) -> None:
    journal, config = backtested
    proc = ballast("replay", str(journal), "--verify", "-c", str(config))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: ok" in proc.stdout
    notes = [line for line in proc.stdout.splitlines() if line.startswith("config: ")]
    assert len(notes) == 1, proc.stdout
    assert "risk.stale_after_s: recorded 7200.0, derived by the command from 30.0" in notes[0]
    assert notes[0].endswith(": kept")


def test_replay_names_each_key_the_given_config_changes(
    backtested: tuple[Path, Path], tmp_path: Path
) -> None:
    journal, _ = backtested
    changed = example(tmp_path / "wider.toml", bands={"abs_pp": 10}, risk={"drawdown_limit": 0.5})
    proc = ballast("replay", str(journal), "-c", str(changed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("config: ")]
    keys = [line.split(": ")[2] for line in notes]
    assert keys == ["bands.abs_pp", "risk.drawdown_limit", "risk.stale_after_s"], notes
    assert notes[0].endswith(
        'bands.abs_pp: recorded "5", given "10": replayed with the given value'
    )
    verified = ballast("replay", str(journal), "--verify", "-c", str(changed))
    assert verified.returncode == 1  # wider bands: other decisions, and it says where
    assert "divergence at seq" in verified.stdout


async def test_a_backtest_session_stops_as_completed(backtested: tuple[Path, Path]) -> None:
    journal, _ = backtested
    async with JournalReader(journal) as reader:
        messages = await reader.messages(types=["SessionStarted", "SessionStopped"])
    started, stopped = messages
    assert isinstance(started, SessionStarted)
    assert isinstance(stopped, SessionStopped)
    assert stopped.reason == "completed"
    assert '"stale_after_s":30.0' in started.source_config_json
    assert '"stale_after_s":7200.0' in started.config_json


def test_replay_without_a_config_uses_the_recorded_one(backtested: tuple[Path, Path]) -> None:
    journal, _ = backtested
    proc = ballast("replay", str(journal), "--verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config: " not in proc.stdout
