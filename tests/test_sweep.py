"""``ballast sweep`` (issue 15): a small grid gives the results of running each variant through
``ballast backtest``'s own path, on one process and on a local pool alike; a bad grid key or value
exits 2 naming the key and the variant before anything runs; the same grid gives the same table;
walk-forward windows are exact at their edges; the variant configs are the config file's."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from ballast.engine.app.backtest import market_bundle, market_series
from ballast.engine.app.cli.cmd_backtest import run_all
from ballast.engine.app.cli.main import main
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.sweep.configs import base_document
from ballast.engine.app.sweep.grid import WalkForward, parse_grid
from ballast.engine.app.sweep.runner import Outcome, prepare
from ballast.engine.app.sweep.table import rows
from ballast.engine.app.sweep.toml_text import toml_text
from ballast.engine.app.sweep.variants import variants
from ballast.engine.app.sweep.windows import windows
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_HOUR
from ballast.engine.kernel.config import load_config, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import OrderFilled
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.timefmt import parse_time
from tests.support.sweep_case import DATA, END, START, config_text, sweep, write

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GRID_18 = (
    '[grid]\n"risk.drawdown_limit" = { start = 0.3, stop = 0.5, step = 0.1 }\n'
    '"bands.abs_pp" = { start = 2, stop = 8, step = 3 }\n"execution.mode" = ["spot", "auto"]\n'
)


async def test_small_grid_gives_what_ballast_backtest_gives(tmp_path: Path) -> None:
    config, grid = write(tmp_path)
    outcome = await asyncio.to_thread(sweep, config, grid, tmp_path / "out", workers=2)
    by_variant = {r.variant: r for r in outcome.records}
    assert sorted(by_variant) == ["v0001", "v0002", "v0003", "v0004"]
    expected = {"v0001": (2, "0.4"), "v0002": (2, "0.6"), "v0003": (5, "0.4"), "v0004": (5, "0.6")}
    navs = set()
    for variant, (abs_pp, btc) in expected.items():
        file = tmp_path / f"{variant}.toml"
        file.write_text(config_text(abs_pp=abs_pp, btc=btc))
        cfg = load_checked_config(file)
        (run,) = await run_all(
            cfg,
            [cfg.strategy.name],
            data=DATA,
            start=START,
            end=END,
            journal=tmp_path / f"{variant}.db",
        )
        summary, record = run.performance.summary, by_variant[variant]
        assert record.metrics["final_nav"] == str(summary.final_nav)
        assert record.metrics["fees_paid"] == str(summary.fees_paid)
        assert record.metrics["sharpe"] == summary.sharpe
        assert record.metrics["max_drawdown"] == summary.max_drawdown
        assert record.metrics["fills"] == summary.fills
        assert record.events == run.events
        assert record.curve == [(c.ts_ns, str(c.nav)) for c in run.performance.series.closes]
        navs.add(summary.final_nav)
    assert len(navs) == 4, "every variant is another backtest"


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(file)]


def test_the_same_grid_gives_the_same_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, grid = write(tmp_path)
    outputs = []
    for out, workers in (("a", "1"), ("b", "2")):
        argv = ["sweep", "-c", str(config), "--grid", str(grid), "--out", str(tmp_path / out)]
        report = [] if out == "a" else ["--no-report"]
        assert main([*argv, "--workers", workers, *report]) == 0
        printed = capsys.readouterr().out
        outputs.append(printed[printed.index("top ") :].split("report: ")[0])
    assert outputs[0] == outputs[1]
    best = outputs[0].split("its neighbours")[1]
    assert best.count("\n v000") == 2, "in a 2 x 2 grid every point has two neighbours"
    first, second = _table(tmp_path / "a" / "results.csv"), _table(tmp_path / "b" / "results.csv")
    assert first == second
    assert len(first) == 4
    assert first[0]["bands.abs_pp"] == "2"
    assert first[0]["targets.BTC"] == "0.4"
    page = (tmp_path / "a" / "report.html").read_text()
    assert 'alt="sharpe heatmap"' in page
    assert 'alt="equity of the top variants"' in page
    assert not (tmp_path / "b" / "report.html").exists()
    import pyarrow.parquet as pq

    parquet = pq.read_table(tmp_path / "a" / "results.parquet").to_pylist()
    assert [row["final_nav"] for row in parquet] == [row["final_nav"] for row in first]


@pytest.mark.parametrize(
    ("grid", "key", "variant"),
    [
        ('[grid]\n"bands.abs_ppx" = [2, 5]\n', "bands.abs_ppx", "v0001"),
        ('[grid]\n"bands.abs_pp" = [5, -1]\n', "bands.abs_pp", "v0002"),
        ('[grid]\n"targets.BTC" = [0.5, 0.9]\n', "targets", "v0002"),
        ('[grid]\n"instruments.spot" = [["BTC/USDT"]]\n', "instruments", "v0001"),
    ],
)
def test_a_bad_grid_key_or_value_exits_2_naming_it_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grid: str, key: str, variant: str
) -> None:
    config, grid_file = write(tmp_path, grid)
    out = tmp_path / "out"
    assert main(["sweep", "-c", str(config), "--grid", str(grid_file), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f": {key}" in error, error
    assert f"variant {variant}" in error, error
    assert not out.exists(), "nothing ran"


def test_a_bad_grid_file_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"grid\.bands\.abs_pp: the list of values is empty"):
        parse_grid('[grid]\n"bands.abs_pp" = []\n')
    with pytest.raises(ConfigError, match=r"walk_forward\.train: must be a duration"):
        parse_grid('[grid]\na = [1]\n[walk_forward]\ntrain = "90 days"\ntest = "30d"\n')
    with pytest.raises(ConfigError, match=r"random\.samples"):
        parse_grid("[grid]\na = [1]\n[random]\nsamples = 0\n")


def test_ranges_and_the_seeded_random_sample() -> None:
    spec = parse_grid(GRID_18 + "[random]\nsamples = 5\nseed = 7\n")
    assert [str(v) for v in spec.axes[0].values] == ["0.3", "0.4", "0.5"]
    assert spec.axes[1].values == (2, 5, 8)
    sample = variants(spec)
    assert len(sample) == 5
    assert sample == variants(spec), "seeded: the same sample every time"
    full = {v.id: v for v in variants(parse_grid(GRID_18))}
    assert len(full) == 18
    assert all(full[v.id] == v for v in sample), "a sampled variant has its grid id"
    other = variants(parse_grid(GRID_18 + "[random]\nsamples = 5\nseed = 8\n"))
    assert [v.id for v in other] != [v.id for v in sample]


async def test_kept_journals_are_the_runs_journals(tmp_path: Path) -> None:
    config, grid = write(tmp_path, '[grid]\n"bands.abs_pp" = [2, 5]\n')
    outcome = await asyncio.to_thread(sweep, config, grid, tmp_path / "out", keep_journals=True)
    for record in outcome.records:
        assert record.journal == str(tmp_path / "out" / "journals" / f"{record.variant}.db")
        async with JournalReader(Path(record.journal)) as reader:
            fills = [m for m in await reader.messages() if isinstance(m, OrderFilled)]
        assert len(fills) == record.metrics["fills"]
    rows = _table_rows(outcome)
    assert [row["journal"] for row in rows] == [r.journal for r in outcome.records]


def _table_rows(outcome: Outcome) -> list[dict[str, object]]:
    spec = {v.id: v for v in variants(parse_grid('[grid]\n"bands.abs_pp" = [2, 5]\n'))}
    return rows(outcome.records, spec)


def test_the_example_grid_works_with_the_demo_config() -> None:
    setup = prepare(EXAMPLES / "demo.toml", EXAMPLES / "sweep.grid.toml")
    assert len(setup.variants) == len(setup.configs) == 12
    assert {c.bands.abs_pp for c in setup.configs.values()} == {3, 5, 8}
    assert {c.execution.mode for c in setup.configs.values()} == {"spot", "auto"}


@pytest.mark.parametrize("name", ["demo.toml", "research.toml", "paper.toml"])
def test_a_variant_config_is_the_config_file_written_back(name: str) -> None:
    file = EXAMPLES / name
    assert parse_config(toml_text(base_document(file))) == load_config(file)


def test_walk_forward_windows_are_exact_at_their_edges(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(config_text())
    cfg = load_config(config)
    series = market_series(cfg, DATA)
    start, end = parse_time("2023-01-01"), parse_time("2023-01-21")
    first, last = market_bundle(cfg, series, start=start, end=end).span()
    assert (first, last) == (start, end - NS_PER_HOUR)
    spec = WalkForward(train_ns=7 * NS_PER_DAY, test_ns=3 * NS_PER_DAY, step_ns=3 * NS_PER_DAY)
    made = windows(first, last + NS_PER_HOUR, spec)
    assert [(w.train[0] - start) // NS_PER_DAY for w in made] == [0, 3, 6, 9]
    assert made[-1].test[1] == start + 19 * NS_PER_DAY <= end
    for w in made:
        assert w.train[1] == w.test[0]
        train = market_bundle(cfg, series, start=w.train[0], end=w.train[1])
        test = market_bundle(cfg, series, start=w.test[0], end=w.test[1])
        assert train.span() == (w.train[0], w.train[1] - NS_PER_HOUR)
        assert test.span() == (w.test[0], w.test[1] - NS_PER_HOUR)
        bars = [e for e in train.events() if e.ts_event == w.train[1]]
        assert not bars, "a bar closing at the train end belongs to the test window"
        assert sum(1 for e in test.events() if getattr(e, "symbol", "") == "BTC/USDT") == 72
    assert windows(first, first + 10 * NS_PER_DAY - 1, spec) == []


def test_walk_forward_chooses_on_train_and_judges_on_test(tmp_path: Path) -> None:
    grid = '[grid]\n"bands.abs_pp" = [2, 5]\n[walk_forward]\ntrain = "2w"\ntest = "1w"\n'
    config, grid_file = write(tmp_path, grid)
    outcome = sweep(config, grid_file, tmp_path / "out")
    assert len(outcome.choices) == 2  # 31 days: windows at day 0 and day 7 (7 + 21 <= 31)
    first = parse_time(START)
    for choice in outcome.choices:
        train = [r for r in outcome.records if r.phase == "train" and r.window == choice.index]
        assert len(train) == 2
        best = max(train, key=lambda r: (r.metrics["sharpe"] or 0, r.variant))
        assert choice.chosen == best.variant == choice.in_sample.variant
        assert choice.train[0] == first + choice.index * 7 * NS_PER_DAY
        assert choice.out_of_sample is not None
        assert choice.out_of_sample.variant == choice.chosen
        assert choice.out_of_sample.start_ns >= choice.test[0] == choice.train[1]
        assert choice.out_of_sample.end_ns < choice.test[1]
