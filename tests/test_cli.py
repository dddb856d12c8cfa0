"""The ``ballast`` console script, run as a real subprocess: exit codes, messages, and the
journal/config/demo commands end to end."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MINUTE, SimulatedClock
from ballast.engine.kernel.events import BalanceUpdated, DataRejected, Message, QuoteTick
from ballast.engine.kernel.journal import Journal
from ballast.engine.kernel.timefmt import ns_to_iso
from tests.conftest import START_NS
from tests.support.cli import ballast

MINUTE = NS_PER_MINUTE
EXPORT_KEYS = {"seq", "type", "ts_event", "ts_init", "event"}

GOOD = """
[targets]
BTC = 0.4
ETH = 0.2

[risk]
max_gross_leverage = 2
"""
BROKEN = """
[targets]
BTC = 0.4

[risk]
max_gross_leverage = -3
"""


@pytest.fixture
def good_toml(tmp_path: Path) -> Path:
    file = tmp_path / "good.toml"
    file.write_text(GOOD)
    return file


@pytest.fixture
def broken_toml(tmp_path: Path) -> Path:
    file = tmp_path / "broken.toml"
    file.write_text(BROKEN)
    return file


def sample_messages() -> list[Message]:
    """Twelve records one minute apart: quotes, balances, rejections."""
    out: list[Message] = []
    for i in range(12):
        ts = START_NS + i * MINUTE
        if i % 4 == 3:
            out.append(BalanceUpdated(ts, ts + 1, "spot", "USDT", Decimal(1000 + i), Decimal(0)))
        elif i % 4 == 2:
            out.append(DataRejected(ts, ts + 1, "BTC/USDT", "crossed_quote", f"sample {i}"))
        else:
            bid = Decimal("40000.5") + i
            out.append(QuoteTick(ts, ts + 1, "BTC/USDT", bid, bid + 1, Decimal("0.25"), Decimal(1)))
    return out


@pytest.fixture
async def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        bus = Bus(SimulatedClock(START_NS), journal)
        for message in sample_messages():
            bus.publish(message)
    return path


def export(*args: str) -> list[dict[str, Any]]:
    proc = ballast("journal", "export", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


# ------------------------------------------------------------------------------ top level


def test_help_lists_every_command() -> None:
    proc = ballast("--help")
    assert proc.returncode == 0
    for command in ("run", "demo", "backtest", "replay", "plan", "journal", "config"):
        assert re.search(rf"^\s+{command}\s", proc.stdout, re.MULTILINE), command
    assert "Exit codes" in proc.stdout


def test_version() -> None:
    proc = ballast("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("ballast ")


@pytest.mark.parametrize(
    "args", [(), ("nonsense",), ("journal",), ("config",), ("run",), ("journal", "export")]
)
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    proc = ballast(*args)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


# --------------------------------------------------------------------------------- config


def test_config_check_broken_file_exits_2_naming_the_key(broken_toml: Path) -> None:
    proc = ballast("config", "check", str(broken_toml))
    assert proc.returncode == 2
    assert "risk.max_gross_leverage" in proc.stderr
    assert "must be > 0" in proc.stderr
    assert str(broken_toml) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[risk]\nlevrage = 2\n", "risk.levrage"),
        ("[targets]\nBTC = 1.5\n", "targets.BTC"),
        ("[risk]\nmax_gross_leverage = nan\n", "risk.max_gross_leverage"),
        ("[engine]\nactors = [1]\n", "engine.actors[0]"),
    ],
)
def test_config_check_names_the_key_path(tmp_path: Path, text: str, key: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    proc = ballast("config", "check", str(file))
    assert proc.returncode == 2
    assert f"{key}:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_check_invalid_toml_and_missing_file_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[risk\n")
    proc = ballast("config", "check", str(file))
    assert proc.returncode == 2
    assert "invalid TOML" in proc.stderr
    proc = ballast("config", "check", str(tmp_path / "missing.toml"))
    assert proc.returncode == 2
    assert "cannot read config file" in proc.stderr


def test_config_check_good_file_exits_0(good_toml: Path) -> None:
    proc = ballast("config", "check", str(good_toml))
    assert proc.returncode == 0, proc.stderr
    assert f"{good_toml}: ok" in proc.stdout
    assert "BTC 0.4" in proc.stdout


def test_the_example_config_checks(tmp_path: Path) -> None:
    proc = ballast("config", "check", "examples/paper.toml")
    assert proc.returncode == 0, proc.stderr


def test_config_schema_prints_json() -> None:
    proc = ballast("config", "schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert set(schema["$defs"]["Config"]["properties"]) >= {
        "engine",
        "venue",
        "instruments",
        "strategy",
        "targets",
        "bands",
        "risk",
        "execution",
        "journal",
        "metrics",
    }


# ------------------------------------------ commands that take a config (ballast run: test_run.py)


@pytest.mark.parametrize("command", ["run", "backtest", "plan"])
def test_commands_check_the_config_first(command: str, broken_toml: Path) -> None:
    proc = ballast(command, "-c", str(broken_toml))
    assert proc.returncode == 2
    assert "risk.max_gross_leverage" in proc.stderr
    assert "not available yet" not in proc.stderr


# -------------------------------------------------------------------------------- journal


def test_journal_stats(journal_path: Path) -> None:
    proc = ballast("journal", "stats", str(journal_path), "--check")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"^records\s+12$", out, re.MULTILINE)
    assert re.search(r"^seq\s+1 \.\. 12$", out, re.MULTILINE)
    assert re.search(r"^gap-free\s+yes$", out, re.MULTILINE)
    assert re.search(r"^quick_check\s+ok$", out, re.MULTILINE)
    assert f"{ns_to_iso(START_NS)} .. {ns_to_iso(START_NS + 11 * MINUTE)}" in out
    assert re.search(r"^\s+QuoteTick\s+6$", out, re.MULTILINE)
    assert re.search(r"^\s+BalanceUpdated\s+3$", out, re.MULTILINE)
    assert re.search(r"^\s+DataRejected\s+3$", out, re.MULTILINE)


@pytest.mark.slow
def test_journal_tail(journal_path: Path) -> None:
    proc = ballast("journal", "tail", str(journal_path), "-n", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == [10, 11, 12]
    assert "BalanceUpdated" in lines[-1]
    assert ns_to_iso(START_NS + 11 * MINUTE) in lines[-1]

    proc = ballast("journal", "tail", str(journal_path), "--type", "DataRejected", "-n", "2")
    assert proc.returncode == 0
    assert [int(line.split()[0]) for line in proc.stdout.splitlines()] == [7, 11]


def test_journal_tail_unknown_type_exits_2(journal_path: Path) -> None:
    proc = ballast("journal", "tail", str(journal_path), "--type", "Quote")
    assert proc.returncode == 2
    assert "unknown type" in proc.stderr


def test_journal_export_prints_one_json_line_per_record(journal_path: Path) -> None:
    lines = export(str(journal_path))
    messages = sample_messages()
    assert len(lines) == len(messages)
    for seq, (line, message) in enumerate(zip(lines, messages, strict=True), start=1):
        assert set(line) == EXPORT_KEYS
        assert line["seq"] == seq
        assert line["type"] == type(message).__name__
        assert line["ts_event"] == message.ts_event
        assert line["ts_init"] == message.ts_init
        assert line["event"]["ts_event"] == message.ts_event
    first = lines[0]["event"]
    assert first == {
        "ts_event": START_NS,
        "ts_init": START_NS + 1,
        "symbol": "BTC/USDT",
        "bid": "40000.5",
        "ask": "40001.5",
        "bid_size": "0.25",
        "ask_size": "1",
    }


@pytest.mark.slow
def test_journal_export_filters(journal_path: Path) -> None:
    path = str(journal_path)

    def seqs(*args: str) -> list[int]:
        return [line["seq"] for line in export(path, *args)]

    assert seqs("--type", "DataRejected") == [3, 7, 11]
    assert seqs("--type", "DataRejected", "--type", "BalanceUpdated") == [3, 4, 7, 8, 11, 12]
    assert seqs("--from-seq", "10") == [10, 11, 12]
    assert seqs("--to-seq", "2") == [1, 2]
    assert seqs("--from-seq", "4", "--to-seq", "6") == [4, 5, 6]
    # ts_event in [since, until): ISO 8601 or epoch ns
    since, until = START_NS + 2 * MINUTE, START_NS + 5 * MINUTE
    assert seqs("--since", str(since), "--until", str(until)) == [3, 4, 5]
    assert seqs("--since", ns_to_iso(since), "--until", ns_to_iso(until)) == [3, 4, 5]
    assert seqs("--since", ns_to_iso(since).replace("Z", "+00:00")) == list(range(3, 13))
    assert seqs("--until", str(START_NS)) == []
    assert seqs("--type", "QuoteTick", "--from-seq", "5", "--until", str(until)) == [5]


def test_journal_export_to_a_file(journal_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = ballast("journal", "export", str(journal_path), "-o", str(out), "--to-seq", "3")
    assert proc.returncode == 0
    assert proc.stdout == ""
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--type", "Quote"), "unknown type"),
        (("--type", "QuoteTick", "--type", "Nope"), "unknown type"),
        (("--since", "yesterday"), "not a time"),
    ],
)
def test_journal_export_bad_filters_exit_2(
    journal_path: Path, args: tuple[str, ...], problem: str
) -> None:
    proc = ballast("journal", "export", str(journal_path), *args)
    assert proc.returncode == 2
    assert problem in proc.stderr
    assert proc.stdout == ""


@pytest.mark.slow
def test_journal_commands_on_a_missing_journal_exit_1(tmp_path: Path) -> None:
    for action in ("stats", "tail", "export"):
        proc = ballast("journal", action, str(tmp_path / "missing.db"))
        assert proc.returncode == 1
        assert "journal error" in proc.stderr
        assert "no such journal" in proc.stderr
    assert not (tmp_path / "missing.db").exists()


def test_replay_of_a_missing_journal_exits_1(tmp_path: Path) -> None:
    proc = ballast("replay", str(tmp_path / "missing.db"), "--verify")
    assert proc.returncode == 1
    assert "journal error" in proc.stderr


# ----------------------------------------------------------------------------------- demo


SESSION_ID = re.compile(r'"session_id":"[0-9a-f]+"')


@pytest.mark.slow
def test_backtest_cli_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    config = tmp_path / "growth.toml"
    config.write_text('[strategy]\nname = "growth_optimizer"\n[execution]\nmode = "auto"\n')
    exports, tables = [], []
    for _ in range(2):  # the same run twice into the same folder
        args = ["backtest", "-c", str(config), "--start", "2022-05-01", "--end", "2022-06-15"]
        proc = ballast(*args, "--journal", str(tmp_path / "j.db"), "--report", str(tmp_path / "r"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        tables.append(proc.stdout[proc.stdout.index("Metric") :])
        exported = ballast("journal", "export", str(tmp_path / "j.db"))
        assert exported.returncode == 0, exported.stderr
        exports.append(exported.stdout)
    assert exports[0].count("\n") > 3_000
    # On a simulated clock the session id derives from the config and the start time, so the
    # whole export, SessionStarted and SessionStopped included, is reproducible.
    assert exports[0] == exports[1]
    assert SESSION_ID.search(exports[0])
    assert tables[0] == tables[1]
    replayed = ballast("replay", str(tmp_path / "j.db"), "--verify")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "verify: ok" in replayed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--start", "garbage"), "argument --start: not a time: 'garbage' (use ISO 8601"),
        (("--end", "2023-13-45"), "argument --end: not a time: '2023-13-45'"),
        (("--start", "2023-02-01", "--end", "2023-01-01"), "--start 2023-02-01 00:00 is not"),
        (("--start", "1675209600", "--end", "2023-01-01"), "--start 2023-02-01 00:00 is not"),
        (("--strategies", " , "), "names no strategy"),
        (("--strategies", "threshold,nosuch"), "unknown strategy 'nosuch'"),
    ],
)
def test_backtest_bad_options_exit_2_before_reading_any_data(
    good_toml: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = ballast("backtest", "-c", str(good_toml), "--journal", str(tmp_path / "j.db"), *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "data:" not in proc.stdout
    assert not (tmp_path / "j.db").exists()


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (("--start", "2030-01-01"), "no bars from 2030-01-01T00:00"),
        (("--end", "2022-04-18T00:30"), "no bars before 2022-04-18T00:30"),
    ],
)
def test_a_backtest_range_outside_the_data_says_what_the_data_covers(
    good_toml: Path, tmp_path: Path, args: tuple[str, ...], wanted: str
) -> None:
    proc = ballast("backtest", "-c", str(good_toml), "--journal", str(tmp_path / "j.db"), *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{wanted}: the data has bars closing from 2022-04-18T01:00 to 2024-04-18T00:00" in (
        proc.stderr
    )
