"""The reliability campaign's table: records added up (sums; the largest growth), its verdict
(non-zero should-be-zero keys, growth at the limit, failed tests, parts without a record) and the
runner end to end on a small campaign of its own (real pytest, real record files)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.campaign_table import EXPECTED_PARTS, add_up, problems, render, table_rows
from tests.support.reliability import SHOULD_BE_ZERO, collect, record

ROOT = Path(__file__).resolve().parents[1]


def rec(part: str, **counts: int | float) -> dict[str, object]:
    return {"part": part, "counts": counts}


def every_part(**counts: int | float) -> list[dict[str, object]]:
    return [rec(part, **counts) for part in EXPECTED_PARTS]


def test_counts_add_up_across_records_and_parts() -> None:
    totals = add_up(
        [
            rec("kills", kills=25, duplicate_orders=0, lost_fills=0, journal_gaps=0),
            rec("kills", kills=25, duplicate_orders=0, lost_fills=0, journal_gaps=0),
            rec("faults_rest", **{"faults.rest_5xx": 7, "faults.rest_429": 2}, lost_fills=0),
            rec("faults_stream", **{"faults.ws_drop": 3}),
            rec("live_disconnect", **{"faults.ws_drop": 5}),
        ]
    )
    assert totals.counts["kills"] == 50
    assert totals.counts["faults.ws_drop"] == 8
    assert totals.counts["faults.rest_5xx"] == 7
    assert totals.parts == {"kills": 2, "faults_rest": 1, "faults_stream": 1, "live_disconnect": 1}
    assert totals.by_part["kills"]["kills"] == 50
    assert totals.by_part["live_disconnect"] == {"faults.ws_drop": 5}
    rows = dict(table_rows(totals))
    assert rows["faults injected: ws_drop"] == "8"
    assert rows["faults injected, all kinds"] == "17"
    assert rows["engine SIGKILLs (restarted each time)"] == "50"
    assert rows["fuzz cases through the live path"] == "not measured"


def test_growth_takes_the_largest_not_the_sum() -> None:
    totals = add_up(
        [
            rec("soak", rss_growth_pct=1.5, fd_growth_pct=0.0, task_growth_pct=2.0),
            rec("soak", rss_growth_pct=3.25, fd_growth_pct=0.0, task_growth_pct=0.5),
        ]
    )
    assert totals.counts["rss_growth_pct"] == 3.25
    assert totals.counts["task_growth_pct"] == 2.0
    assert dict(table_rows(totals))["RSS growth after warm-up, %"] == "3.25"


def test_a_clean_campaign_with_every_part_passes() -> None:
    totals = add_up(every_part(duplicate_orders=0, lost_fills=0, rss_growth_pct=4.99))
    assert problems(totals, pytest_status=0) == []
    shown = render(
        totals,
        found=[],
        wall_s=600,
        when="2026-12-03 06:00 UTC",
        commit="abc1234",
        command="make reliability",
    )
    assert "PASSED" in shown
    assert "commit abc1234" in shown
    assert "wall 10.0 min" in shown


@pytest.mark.parametrize("key", SHOULD_BE_ZERO)
def test_a_non_zero_should_be_zero_count_fails_the_campaign(key: str) -> None:
    records = [*every_part(), rec("kills", **{key: 1})]
    found = problems(add_up(records), pytest_status=0)
    assert found == [f"{key} = 1 (should be zero)"]
    assert "FAILED" in render(
        add_up(records), found=found, wall_s=1, when="", commit="", command=""
    )


def test_growth_at_the_limit_fails_the_campaign() -> None:
    found = problems(add_up([*every_part(), rec("soak", fd_growth_pct=5.0)]), pytest_status=0)
    assert found == ["fd_growth_pct = 5.00 (limit: below 5)"]


def test_parts_that_left_no_record_are_named() -> None:
    records = [r for r in every_part(kills=1) if r["part"] not in ("soak", "secrets")]
    assert problems(add_up(records), pytest_status=0) == [
        "parts that left no record: soak, secrets"
    ]
    assert problems(add_up(records), expected=["kills"], pytest_status=0) == []


def test_a_failed_test_fails_the_campaign() -> None:
    found = problems(add_up(every_part()), pytest_status=1)
    assert found == ["a test of the campaign failed (see pytest's report above)"]
    # no test collected (5), interrupted (2): the campaign did not run
    assert problems(add_up(every_part()), pytest_status=5) == [
        "pytest exited with status 5 (see its output above)"
    ]


def test_a_malformed_record_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="lost_fills = 'none' is not a number"):
        add_up([rec("kills"), {"part": "kills", "counts": {"lost_fills": "none"}}])
    with pytest.raises(ValueError, match="not a campaign record"):
        add_up([{"counts": {}}])


def test_records_written_by_tests_are_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BALLAST_RELIABILITY_OUT", str(tmp_path / "out"))
    record("kills", kills=3, duplicate_orders=0)
    record("kills", kills=4, duplicate_orders=1)
    totals = add_up(collect(tmp_path / "out"))
    assert totals.counts == {"kills": 7, "duplicate_orders": 1}


CAMPAIGN = """
import pytest
from tests.support.reliability import record, size

@pytest.mark.reliability
def test_counts() -> None:
    record("kills", kills=size(1, 200), lost_fills=0)
    record("soak", rss_growth_pct=1.0)

@pytest.mark.reliability
def test_other() -> None:
    record("secrets", secrets_found=SECRETS)

def test_not_in_the_campaign() -> None:
    record("kills", kills=1000)
"""


INI = """[pytest]
addopts = --strict-markers
filterwarnings = error
asyncio_default_fixture_loop_scope = function
markers = reliability: a part of the small campaign
"""


def campaign(tmp_path: Path, secrets: int) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "campaign"
    folder.mkdir()
    test_file = folder / "test_small_campaign.py"
    test_file.write_text(textwrap.dedent(CAMPAIGN).replace("SECRETS", str(secrets)))
    (folder / "pytest.ini").write_text(INI)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability_campaign",
            "--out",
            str(tmp_path / "out"),
            "--expect",
            "kills,soak,secrets",
            "--workers",
            "0",
            str(test_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_runner_runs_the_marked_tests_at_full_size_and_prints_the_table(
    tmp_path: Path,
) -> None:
    done = campaign(tmp_path, secrets=0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| engine SIGKILLs (restarted each time) | 200 |" in done.stdout
    assert "PASSED" in done.stdout
    assert (tmp_path / "out" / "table.md").read_text().strip() in done.stdout


def test_the_runner_fails_on_a_non_zero_count(tmp_path: Path) -> None:
    done = campaign(tmp_path, secrets=2)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "- secrets_found = 2 (should be zero)" in done.stdout
